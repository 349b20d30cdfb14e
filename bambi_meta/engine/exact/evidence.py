r"""Exact log marginal likelihood by quadrature, and Bayes factors (numpy / scipy / numba).

Row :math:`i` in cluster :math:`j`, known sampling variance :math:`v_i`:

.. math::

    y = X\beta + u_j + e_i + \varepsilon_i,\quad u_j \sim N(0, \tau^2\rho),\quad
    e_i \sim N(0, \tau^2(1-\rho)),\quad \varepsilon_i \sim N(0, v_i),

:math:`\beta \sim N(m, \mathrm{diag}(s^2))` on the design as given, :math:`\tau \sim
\mathrm{HalfNormal}(\sigma_\tau)` (or any proper prior given as a log-density callable),
:math:`\rho \sim \mathrm{Beta}(a, b)` (or a callable). Given :math:`(\tau, \rho)` the data are
Gaussian with :math:`\beta` integrated out, so :math:`p(y)` is a 2-D (1-D, 0-D) integral over
:math:`(\log\tau, \mathrm{logit}\,\rho)`, computed by the exact engine
(:func:`bambi_meta.engine.exact.fit_exact`: one pass over the rows per batch of grid points,
memory :math:`O(\text{points} + k)`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import special

from bambi_meta.engine.exact import gaussian
from bambi_meta.engine.exact.fit import BetaPrior, ExactPosterior, HalfNormalPrior, fit_exact

__all__ = [
    "BayesFactor",
    "EnsembleBayesFactors",
    "LogMarginalLikelihood",
    "SavageDickey",
    "bayes_factor",
    "conditional_log_density",
    "log_marginal_likelihood",
    "savage_dickey",
    "standard_bayes_factors",
]

_LOG_2PI = math.log(2.0 * math.pi)
LogDensity = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class LogMarginalLikelihood:
    r"""Log marginal likelihood :math:`\log p(y)` and its quadrature error estimate.

    Attributes
    ----------
    value : float
        :math:`\log p(y)`.
    error : float
        :math:`\sum_a |\log I_h - \log I_{2h,a}|`, the changes from the half grids (every
        second node along each axis) to the final grid. The trapezoid rule converges
        geometrically here (halving :math:`h` roughly squares the relative error), so the final
        grid's error is far smaller. 0 when nothing is integrated.
    n_points : int
        Nodes of the final grid (1 when nothing is integrated).
    details : Mapping[str, Any]
        Posterior mean and sd of ``tau``, ``rho`` and ``beta`` from the same quadrature, the
        free axes, the mode, the sinh map, the box in t-coordinates, nodes per axis,
        evaluations, time, and ``exact``: the engine's :class:`ExactPosterior` (quantiles,
        the grid, ``sample``).
    """

    value: float
    error: float
    n_points: int
    details: Mapping[str, Any] = field(default_factory=dict, repr=False)


class BayesFactor(NamedTuple):
    """Bayes factor of model 1 over model 0, on the log and the natural scale."""

    log_bf: float
    bf: float


class SavageDickey(NamedTuple):
    """Savage-Dickey density ratio :math:`BF_{01}` for a point null on one coefficient."""

    log_bf01: float
    bf01: float
    log_posterior_density: float
    log_prior_density: float


@dataclass(frozen=True)
class EnsembleBayesFactors:
    """Model table, inclusion Bayes factors and pairwise Bayes factors of an ensemble.

    What ``standard_bayes_factors`` returns; ``bambi_meta.inclusion_bayes_factors`` returns the
    subclass ``bambi_meta.results.comparison.InclusionBayesFactors``, which prints them like
    RoBMA's summary.
    """

    models: pd.DataFrame
    inclusion: pd.DataFrame
    pairwise: pd.DataFrame


# --------------------------------------------------------------------------------- validation


def _scalar(
    name: str, x: Any, lo: float = 0.0, closed: bool = False, hi: float = math.inf
) -> float:
    try:
        val = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"'{name}' must be a real number; got {x!r}.") from None
    if not (math.isfinite(val) and (val >= lo if closed else val > lo) and val <= hi):
        rule = f"{'>=' if closed else '>'} {lo:g}" + (f" and <= {hi:g}" if hi < math.inf else "")
        raise ValueError(f"'{name}' must be finite and {rule}; got {x!r}.")
    return val


def _exp(x: float) -> float:
    return math.exp(x) if x < 709.0 else math.inf


def _index(name: str, x: Any, p: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int | np.integer) or not 0 <= x < p:
        raise ValueError(f"'{name}' must be a column index in [0, {p - 1}]; got {x!r}.")
    return int(x)


@dataclass(frozen=True)
class _Data:
    y: np.ndarray
    v: np.ndarray
    X: np.ndarray
    m: np.ndarray
    s: np.ndarray
    codes: np.ndarray | None
    n_clusters: int


def _prepare(yi, vi, X, cluster, beta_mean, beta_sd) -> _Data:
    y, v, Xa, m, s = gaussian.check_arrays(yi, vi, X, beta_mean, beta_sd, flat_allowed=False)
    k = y.shape[0]
    codes, n_clusters = None, 0
    if cluster is not None:
        labels = np.asarray(cluster)
        if labels.ndim != 1 or labels.shape[0] != k:
            raise ValueError(f"'cluster' must be 1-D of length {k}; got shape {labels.shape}.")
        codes, uniques = pd.factorize(labels)
        if (codes < 0).any():
            i = int(np.flatnonzero(codes < 0)[0])
            raise ValueError(f"'cluster' must not be missing; row {i + 1} has {labels[i]!r}.")
        n_clusters = len(uniques)
    return _Data(y, v, Xa, m.copy(), s.copy(), codes, n_clusters)


# --------------------------------------------------------------------------------- priors


def _tau_prior(tau_sd, tau_prior, tau_fixed) -> LogDensity | float:
    """The engine's prior on tau: HalfNormal(tau_sd), a callable, or the fixed value."""
    sd = None if tau_sd is None else _scalar("tau_sd", tau_sd)
    if tau_prior is not None:
        if sd is not None:
            raise ValueError("Give 'tau_sd' (HalfNormal) or 'tau_prior' (a callable), not both.")
        if not callable(tau_prior):
            raise ValueError(
                f"'tau_prior' must be a vectorised log-density callable of tau; got {tau_prior!r}."
            )
    if tau_fixed is not None:
        return _scalar("tau_fixed", tau_fixed, closed=True)
    if tau_prior is not None:
        return tau_prior
    if sd is None:
        raise ValueError("'tau_sd' or 'tau_prior' is required unless 'tau_fixed' is given.")
    return HalfNormalPrior(sd)


def _rho_prior(rho_a, rho_b, rho_prior, rho_fixed, clustered) -> LogDensity | float | None:
    """The engine's prior on rho: Beta(rho_a, rho_b), a callable, the fixed value or None."""
    a, b = _scalar("rho_a", rho_a), _scalar("rho_b", rho_b)
    if rho_prior is not None:
        if (a, b) != (1.0, 1.0):
            raise ValueError("Give 'rho_a'/'rho_b' (Beta) or 'rho_prior' (a callable), not both.")
        if not callable(rho_prior):
            raise ValueError(
                f"'rho_prior' must be a vectorised log-density callable of rho; got {rho_prior!r}."
            )
    if rho_fixed is not None:
        rho_fixed = _scalar("rho_fixed", rho_fixed, closed=True, hi=1.0)
        if not clustered and rho_fixed != 0.0:
            raise ValueError(f"'rho_fixed' must be None or 0 without 'cluster'; got {rho_fixed!r}.")
        return rho_fixed if clustered else None
    if not clustered:
        return None
    return rho_prior if rho_prior is not None else BetaPrior(a, b)


# --------------------------------------------------------------------------------- quadrature


def _fit(yi, vi, X, cluster, beta_mean, beta_sd, priors: Mapping[str, Any], tol):
    """Validate, run the exact engine, and describe the result the way this module always has."""
    data = _prepare(yi, vi, X, cluster, beta_mean, beta_sd)
    clustered = data.codes is not None
    tau = _tau_prior(priors["tau_sd"], priors["tau_prior"], priors["tau_fixed"])
    rho = _rho_prior(
        priors["rho_a"], priors["rho_b"], priors["rho_prior"], priors["rho_fixed"], clustered
    )
    tol = _scalar("tol", tol)
    # moment_tol = inf: the rule refines until the half-grid change of log p(y) is below tol
    # (this module's contract); the engine's moment criterion is for posterior summaries.
    post = fit_exact(
        data.y,
        data.v,
        data.X,
        data.codes,
        beta_mean=data.m,
        beta_sd=data.s,
        tau_prior=tau,
        rho_prior=rho,
        tol=tol,
        moment_tol=math.inf,
        on_failure="warn",
    )
    axes = post.grid.axes
    details: dict[str, Any] = {
        "free": [f"{ax.kind}_{ax.name}" for ax in axes],
        "mode": {f"{ax.kind}_{ax.name}": ax.center for ax in axes},
        "sinh_map_scale": [ax.scale for ax in axes],
        "t_box": [list(ax.t_range) for ax in axes],
        "nodes_per_axis": post.nodes_per_axis,
        "converged": post.converged,
        "n_evaluations": post.n_evaluations,
    }
    for name in ("tau", "rho"):
        summary = getattr(post, name)
        if summary is not None:
            details[name] = {"mean": summary.mean, "sd": summary.sd}
    details["beta"] = {
        "mean": np.array([b.mean for b in post.beta]),
        "sd": np.array([b.sd for b in post.beta]),
    }
    details["seconds"] = post.seconds
    details["exact"] = post
    n_points = int(np.prod(post.nodes_per_axis)) if axes else 1
    lml = LogMarginalLikelihood(
        post.log_marginal_likelihood, post.log_marginal_likelihood_error, n_points, details
    )
    return lml, data, post


def _prior_args(tau_sd, tau_prior, rho_a, rho_b, rho_prior, tau_fixed, rho_fixed) -> dict:
    return {
        "tau_sd": tau_sd,
        "tau_prior": tau_prior,
        "rho_a": rho_a,
        "rho_b": rho_b,
        "rho_prior": rho_prior,
        "tau_fixed": tau_fixed,
        "rho_fixed": rho_fixed,
    }


# --------------------------------------------------------------------------------- public API


def log_marginal_likelihood(
    yi: ArrayLike,
    vi: ArrayLike,
    X: ArrayLike | None,
    cluster: ArrayLike | None = None,
    *,
    beta_mean: ArrayLike,
    beta_sd: ArrayLike,
    tau_sd: float | None = None,
    rho_a: float = 1.0,
    rho_b: float = 1.0,
    tau_fixed: float | None = None,
    rho_fixed: float | None = None,
    tol: float = 1e-9,
    tau_prior: LogDensity | None = None,
    rho_prior: LogDensity | None = None,
) -> LogMarginalLikelihood:
    r"""Exact log marginal likelihood of the (three-level) meta-analytic model.

    :math:`\beta` is integrated out analytically (:func:`conditional_log_density`); with
    :math:`u = \log\tau`, :math:`w = \mathrm{logit}\,\rho`,

    .. math::

        p(y) = \iint p(y \mid \tau, \rho)\, p(\tau)\,\tau\; p(\rho)\,\rho(1-\rho)\; du\, dw,

    by the tensor trapezoid rule in t-coordinates, :math:`x = c + s\sinh t` per axis
    (:math:`c` the mode, :math:`s` the Laplace sd). The integrand is analytic and, after the
    sinh map, its tails decay double-exponentially, so the trapezoid rule converges
    geometrically. Box: bounding box of :math:`\{\log\text{integrand} > \max - 32\}` plus one
    node. Each axis's spacing is halved (nested) until the change from its half grid of
    :math:`\log p(y)` is below ``tol`` / (number of axes); a tolerance the node caps cannot
    meet gives a ``RuntimeWarning`` and ``details["converged"] = False``
    (:mod:`bambi_meta.engine.exact.quadrature`).

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effect sizes and their known sampling VARIANCES (not standard errors).
    X : array_like, shape (k, p), or None
        Design in the parametrisation the priors act on (None: intercept only; p may be 0).
    cluster : array_like, shape (k,), optional
        Cluster labels. None: the two-level random-effects model (no :math:`\rho`).
    beta_mean, beta_sd : float or array_like, shape (p,)
        Independent normal priors on the coefficients.
    tau_sd : float, optional
        Scale of the half-normal prior on :math:`\tau` (or give ``tau_prior``).
    rho_a, rho_b : float
        Beta prior on :math:`\rho` (used only when ``cluster`` is given and :math:`\rho` free).
    tau_fixed : float, optional
        Fix :math:`\tau \ge 0`; 0 is the common-effect model (:math:`\rho` is then irrelevant).
    rho_fixed : float, optional
        Fix :math:`\rho \in [0, 1]`; 0 removes the cluster level.
    tol : float
        Target for the half-grid change of :math:`\log p(y)`.
    tau_prior, rho_prior : callable, optional
        Any proper prior instead of HalfNormal(``tau_sd``) / Beta(``rho_a``, ``rho_b``): a
        vectorised log-density of :math:`\tau` on :math:`(0, \infty)` (a bounded support such
        as Uniform(0, 2) is detected and mapped) or of :math:`\rho` on :math:`(0, 1)`.

    Returns
    -------
    LogMarginalLikelihood

    Examples
    --------
    >>> lml = log_marginal_likelihood(
    ...     [0.1, 0.3, 0.2], [0.01, 0.02, 0.015], None, beta_mean=0.0, beta_sd=1.0, tau_sd=0.5
    ... )
    >>> bool(lml.error < 1e-9)
    True
    """
    priors = _prior_args(tau_sd, tau_prior, rho_a, rho_b, rho_prior, tau_fixed, rho_fixed)
    return _fit(yi, vi, X, cluster, beta_mean, beta_sd, priors, tol)[0]


def conditional_log_density(
    yi: ArrayLike,
    vi: ArrayLike,
    X: ArrayLike | None,
    cluster: ArrayLike | None = None,
    *,
    tau: ArrayLike,
    rho: ArrayLike = 0.0,
    beta_mean: ArrayLike,
    beta_sd: ArrayLike,
) -> np.ndarray:
    r"""Log density of the data given :math:`(\tau, \rho)`, :math:`\beta` integrated out.

    .. math::

        \log p(y \mid \tau, \rho) = \log N(y;\ Xm,\ V + XSX^\top),\quad
        V_j = D_j + bb^\top,\ d_i = v_i + \tau^2(1-\rho),\ b_i = \tau\sqrt\rho,

    without :math:`k \times k` matrices (:mod:`bambi_meta.engine.exact.kernel`: one pass over the
    rows sorted by cluster for all points): Sherman-Morrison per cluster,
    :math:`\log|V_j| = \sum\log d_i + \log(1 + S_{bb})`, :math:`S_{bb} = \sum b_i^2/d_i`, and
    Woodbury, :math:`\log|V + XSX^\top| = \log|V| + \log|S| + \log|S^{-1} + X^\top V^{-1}X|`.
    ``tau`` and ``rho`` broadcast; the result has their broadcast shape.
    """
    data = _prepare(yi, vi, X, cluster, beta_mean, beta_sd)
    t, r = np.broadcast_arrays(np.asarray(tau, dtype=float), np.asarray(rho, dtype=float))
    if not np.all(np.isfinite(t) & (t >= 0)):
        raise ValueError(
            f"'tau' must be finite and >= 0; got {t[~(np.isfinite(t) & (t >= 0))][0]!r}."
        )
    if not np.all((r >= 0) & (r <= 1) & ((r == 0) | (cluster is not None))):
        raise ValueError("'rho' must lie in [0, 1], and be 0 without 'cluster'.")
    model = gaussian.prepare(data.y, data.v, data.X, data.codes, data.m, data.s)
    return model.conditional(t.ravel(), r.ravel()).log_lik.reshape(t.shape)


def bayes_factor(
    logml_1: LogMarginalLikelihood | float, logml_0: LogMarginalLikelihood | float
) -> BayesFactor:
    r"""Bayes factor :math:`\log BF_{10} = \log p(y \mid M_1) - \log p(y \mid M_0)`.

    Parameters
    ----------
    logml_1, logml_0 : LogMarginalLikelihood or float
        Log marginal likelihoods of the numerator and the denominator model.

    Returns
    -------
    BayesFactor
        ``(log_bf, bf)``; ``bf`` is ``inf`` or 0 beyond the float range.
    """
    vals = []
    for name, x in (("logml_1", logml_1), ("logml_0", logml_0)):
        val = x.value if isinstance(x, LogMarginalLikelihood) else x
        if isinstance(val, bool) or not isinstance(val, int | float) or not math.isfinite(val):
            raise ValueError(
                f"'{name}' must be a LogMarginalLikelihood or a finite float; got {x!r}."
            )
        vals.append(float(val))
    log_bf = vals[0] - vals[1]
    return BayesFactor(log_bf, _exp(log_bf))


def savage_dickey(
    yi: ArrayLike,
    vi: ArrayLike,
    X: ArrayLike | None,
    cluster: ArrayLike | None = None,
    *,
    column: int = 0,
    value: float = 0.0,
    beta_mean: ArrayLike,
    beta_sd: ArrayLike,
    tau_sd: float | None = None,
    rho_a: float = 1.0,
    rho_b: float = 1.0,
    tau_fixed: float | None = None,
    rho_fixed: float | None = None,
    tol: float = 1e-9,
    tau_prior: LogDensity | None = None,
    rho_prior: LogDensity | None = None,
) -> SavageDickey:
    r"""Savage-Dickey density ratio for the point null :math:`\beta_c = \beta_0`.

    .. math::

        BF_{01} = \frac{p(\beta_c = \beta_0 \mid y)}{p(\beta_c = \beta_0)},\quad
        p(\beta_c \mid y) = \sum_g \pi_g\, N\big(\beta_c;\ \hat\beta_{c,g},\ (A_g^{-1})_{cc}\big),

    the quadrature mixture (normalised weights :math:`\pi_g`) of the Gaussian posteriors of
    :math:`\beta` given :math:`(\tau_g, \rho_g)`. The priors being independent, it is exact: for
    :math:`\beta_0 = 0` it equals the ratio of the marginal likelihoods of the model without
    column ``column`` and the full model (up to quadrature error).

    Parameters
    ----------
    yi, vi, X, cluster, beta_mean, beta_sd, tau_sd, rho_a, rho_b, tau_fixed, rho_fixed, tol
        The full model, as in :func:`log_marginal_likelihood`.
    tau_prior, rho_prior : callable, optional
        As in :func:`log_marginal_likelihood`.
    column : int
        Index of the tested coefficient (default 0, the intercept :math:`\mu`).
    value : float
        The point null :math:`\beta_0`.

    Returns
    -------
    SavageDickey
    """
    priors = _prior_args(tau_sd, tau_prior, rho_a, rho_b, rho_prior, tau_fixed, rho_fixed)
    c = _index("column", column, _prepare(yi, vi, X, cluster, beta_mean, beta_sd).X.shape[1])
    b0 = _scalar("value", value, lo=-math.inf)
    _, data, post = _fit(yi, vi, X, cluster, beta_mean, beta_sd, priors, tol)
    log_post = _log_mixture_density(post, c, b0)
    m, s = float(data.m[c]), float(data.s[c])
    log_prior = -0.5 * (_LOG_2PI + 2.0 * math.log(s) + (b0 - m) ** 2 / s**2)
    return SavageDickey(log_post - log_prior, _exp(log_post - log_prior), log_post, log_prior)


def _log_mixture_density(post: ExactPosterior, column: int, value: float) -> float:
    r""":math:`\log \sum_g \pi_g N(b;\ \hat\beta_{c,g}, (A_g^{-1})_{cc})` on the final grid."""
    grid = post.grid
    mean, var = grid.beta_mean[:, column], grid.beta_cov[:, column, column]
    log_dens = -0.5 * (_LOG_2PI + np.log(var) + (value - mean) ** 2 / var)
    return float(special.logsumexp(log_dens, b=grid.weights))


def _inclusion(lp: np.ndarray, lm: np.ndarray, incl: np.ndarray) -> tuple[float, float, float]:
    """Prior and posterior inclusion probabilities and the log inclusion Bayes factor."""
    if not (np.isfinite(lp[incl]).any() and np.isfinite(lp[~incl]).any()):
        return math.nan, math.nan, math.nan
    lse = special.logsumexp
    log_prior_odds = lse(lp[incl]) - lse(lp[~incl])
    log_post_odds = lse(lp[incl] + lm[incl]) - lse(lp[~incl] + lm[~incl])
    prior, posterior = special.expit(log_prior_odds), special.expit(log_post_odds)
    return float(prior), float(posterior), float(log_post_odds - log_prior_odds)


def _prior_probs(probs: Any, names: list[str]) -> np.ndarray:
    if not isinstance(probs, Mapping | str) and np.ndim(probs) == 1 and len(probs) == len(names):
        probs = dict(zip(names, probs, strict=True))  # array-like, in the order of the models
    if not isinstance(probs, Mapping) or set(probs) != set(names):
        got = list(probs) if isinstance(probs, Mapping) else probs
        raise ValueError(f"'prior_model_probs' must give a weight to each of {names}; got {got!r}.")
    w = np.array([_scalar(f"prior_model_probs[{n!r}]", probs[n], closed=True) for n in names])
    if w.sum() <= 0:
        raise ValueError("'prior_model_probs' must have a positive sum; got all zeros.")
    return w / w.sum()


def standard_bayes_factors(
    yi: ArrayLike,
    vi: ArrayLike,
    X: ArrayLike | None,
    cluster: ArrayLike | None = None,
    *,
    beta_mean: ArrayLike,
    beta_sd: ArrayLike,
    tau_sd: float | None = None,
    rho_a: float = 1.0,
    rho_b: float = 1.0,
    prior_model_probs: Mapping[str, float] | None = None,
    effect_column: int = 0,
    tol: float = 1e-9,
    tau_prior: LogDensity | None = None,
    rho_prior: LogDensity | None = None,
) -> EnsembleBayesFactors:
    r"""Effect x heterogeneity (x cluster level) ensemble: model table and Bayes factors.

    Components: effect (:math:`\mu` free vs :math:`\mu = 0`: only column ``effect_column``
    is dropped, moderators stay), heterogeneity (:math:`\tau` free vs :math:`\tau = 0`) and,
    with ``cluster``, the cluster level (:math:`\rho` free vs :math:`\rho = 0`).

    **Common-effect models and the cluster level.** With :math:`\tau = 0` the two cluster-level
    cells of the 2x2x2 factorial are one model, so there are 6 distinct models (4 without
    clusters). Default prior probabilities are the factorial's equal cell weights with those
    two cells merged: 1/4 for each :math:`\tau = 0` model, 1/8 for each other, so effect and
    heterogeneity have prior inclusion probability 1/2. The cluster-level question is moot
    without heterogeneity, so its inclusion Bayes factor is computed among the
    :math:`\tau > 0` models only; the :math:`\tau = 0` models are on neither side. (RoBMA's
    bookkeeping counts them as excluding the cluster level, which mixes the evidence for
    heterogeneity into the cluster-level Bayes factor.)

    Inclusion Bayes factors (RoBMA's definition), :math:`I` the models with the component:

    .. math::

        BF_{\mathrm{incl}} = \frac{\sum_{i \in I} p(M_i \mid y) \big/
        \sum_{i \notin I} p(M_i \mid y)}{\sum_{i \in I} p(M_i) \big/ \sum_{i \notin I} p(M_i)}.

    Parameters
    ----------
    yi, vi, X, cluster, beta_mean, beta_sd, tau_sd, rho_a, rho_b, tol, tau_prior, rho_prior
        The full model (effect column included), as in :func:`log_marginal_likelihood`.
    prior_model_probs : Mapping[str, float] or array-like, optional
        Prior weight of each model keyed by its name in ``models.model`` (``"mu, tau, rho"``,
        ``"mu=0, tau=0"``, ...), or in the order of ``models``; every model is required;
        normalised; zeros allowed.
    effect_column : int
        Column of ``X`` whose coefficient is the effect :math:`\mu` (default 0).

    Returns
    -------
    EnsembleBayesFactors
        ``models``: log ml, its error, prior and posterior probability per model;
        ``inclusion``: one row per component; ``pairwise``: effect (``mu, tau[, rho]`` vs
        ``mu=0, tau[, rho]``), heterogeneity (``mu, tau[, rho]`` vs ``mu, tau=0``), cluster
        level (``mu, tau, rho`` vs ``mu, tau, rho=0``) as :math:`BF_{10}` and :math:`BF_{01}`.
    """
    data = _prepare(yi, vi, X, cluster, beta_mean, beta_sd)
    keep = np.arange(data.X.shape[1]) != _index("effect_column", effect_column, data.X.shape[1])
    het = [("tau=0", False, None, {"tau_fixed": 0.0}, 0.5)]  # label, tau, rho, fixed, weight
    if cluster is None:
        het.append(("tau", True, None, {}, 0.5))
    else:
        het += [("tau, rho=0", True, False, {"rho_fixed": 0.0}, 0.25)]
        het += [("tau, rho", True, True, {}, 0.25)]
    priors = {"tau_sd": tau_sd, "rho_a": rho_a, "rho_b": rho_b, "tol": tol}
    priors.update(tau_prior=tau_prior, rho_prior=rho_prior)
    names = [f"{mu}, {h[0]}" for mu in ("mu=0", "mu") for h in het]
    weights = None if prior_model_probs is None else _prior_probs(prior_model_probs, names)
    rows = []
    for effect in (False, True):
        sel = slice(None) if effect else keep
        for _, has_tau, has_rho, fixed, weight in het:
            Xe, me, se = data.X[:, sel], data.m[sel], data.s[sel]
            lml = log_marginal_likelihood(
                data.y, data.v, Xe, cluster, beta_mean=me, beta_sd=se, **priors, **fixed
            )
            row = (effect, has_tau, has_rho, lml.value, lml.error, weight / 2)
            rows.append((names[len(rows)], *row))
    cols = "model effect heterogeneity cluster_level log_ml log_ml_error prior_prob".split()
    models = pd.DataFrame(rows, columns=cols).astype({"cluster_level": "boolean"})
    if weights is not None:
        models["prior_prob"] = weights
    with np.errstate(divide="ignore"):
        lp = np.log(models.prior_prob.to_numpy())
    lm = models.log_ml.to_numpy()
    models["posterior_prob"] = np.exp(lp + lm - special.logsumexp(lp + lm))
    every, het_on = np.ones(len(models), dtype=bool), models.heterogeneity.to_numpy()
    comps = [("effect", models.effect.to_numpy(), every, "all models")]
    comps += [("heterogeneity", het_on, every, "all models")]
    if cluster is not None:
        rho_on = models.cluster_level.fillna(False).to_numpy(dtype=bool)
        comps += [("cluster_level", rho_on, het_on, "tau > 0")]
    incl_rows = [(c, among, *_inclusion(lp[sub], lm[sub], on[sub])) for c, on, sub, among in comps]
    cols = "component among prior_incl_prob posterior_incl_prob log_inclusion_bf".split()
    inclusion = pd.DataFrame(incl_rows, columns=cols)
    full = "tau" if cluster is None else "tau, rho"
    pairs = [("effect", f"mu, {full}", f"mu=0, {full}")]
    pairs += [("heterogeneity", f"mu, {full}", "mu, tau=0")]
    if cluster is not None:
        pairs += [("cluster_level", "mu, tau, rho", "mu, tau, rho=0")]
    ml, err = models.set_index("model").log_ml, models.set_index("model").log_ml_error
    pair_rows = [(t, m1, m0, ml[m1] - ml[m0], err[m1] + err[m0]) for t, m1, m0 in pairs]
    cols = "test model_1 model_0 log_bf10 log_bf10_error".split()
    pairwise = pd.DataFrame(pair_rows, columns=cols)
    with np.errstate(over="ignore"):
        inclusion["inclusion_bf"] = np.exp(inclusion.log_inclusion_bf)
        pairwise["bf10"], pairwise["bf01"] = np.exp(pairwise.log_bf10), np.exp(-pairwise.log_bf10)
    return EnsembleBayesFactors(models, inclusion, pairwise)
