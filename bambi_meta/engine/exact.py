r"""Exact posterior of the three-level meta-analytic model by quadrature, and exact draws.

Row :math:`i` in cluster :math:`j`: :math:`y_i = X_i\beta + u_j + e_i + \varepsilon_i`,
:math:`u_j \sim N(0, \tau^2\rho)`, :math:`e_i \sim N(0, \tau^2(1-\rho))`,
:math:`\varepsilon_i \sim N(0, v_i)`, :math:`\beta \sim N(m, \mathrm{diag}(s^2))`. Given
:math:`(\tau, \rho)` the model is Gaussian in :math:`\beta` (:mod:`.gaussian`), so

.. math::

    p(\tau, \rho \mid y) \propto p(y \mid \tau, \rho)\,p(\tau)\,p(\rho),\qquad
    \beta \mid \tau, \rho, y \sim N(m + h, A^{-1}),

a 2-D density (1-D without clusters or with :math:`\rho` fixed, 0-D with :math:`\tau` fixed)
integrated on an adaptive sinh-mapped trapezoid grid (:mod:`.quadrature`): the log marginal
likelihood, posterior moments and quantiles to about ``tol``. :meth:`ExactPosterior.sample`
draws :math:`(\tau, \rho)` by inverse CDF from the grid (:mod:`.sampler`) and then
:math:`\beta` exactly from its Gaussian at each drawn point: independent draws, no MCMC.

The engine takes arrays and callables and knows nothing of Bambi; ``MetaModel`` passes it the
design the priors act on (standardised continuous moderators, treatment-coded factors).

Examples
--------
>>> import numpy as np
>>> from bambi_meta.engine.exact import fit_exact
>>> from bambi_meta.engine.priors import BetaPrior, HalfNormalPrior
>>> post = fit_exact(
...     [0.1, 0.3, 0.2, 0.5], [0.01, 0.02, 0.015, 0.01], None, [1, 1, 2, 2],
...     beta_mean=0.0, beta_sd=1.0, tau_prior=HalfNormalPrior(0.5), rho_prior=BetaPrior(1, 1),
... )
>>> bool(post.log_marginal_likelihood_error < 1e-9)
True
>>> draws = post.sample(1000, np.random.default_rng(1))
>>> draws["beta"].shape
(1000, 1)
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from bambi_meta.engine import quadrature
from bambi_meta.engine.gaussian import GaussianModel, _cluster_codes, prepare
from bambi_meta.engine.priors import (
    Axis,
    BetaPrior,
    HalfNormalPrior,
    detect_support,
    from_real_line,
)
from bambi_meta.engine.quadrature import QuadratureError, SinhMap
from bambi_meta.engine.sampler import GridSampler, fine_step

__all__ = [
    "AxisGrid",
    "BetaPrior",
    "ExactPosterior",
    "HalfNormalPrior",
    "QuadratureError",
    "QuadratureGrid",
    "Summary",
    "fit_exact",
]

PROBS = (0.025, 0.05, 0.5, 0.95, 0.975)
LogDensity = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Summary:
    """Posterior mean, sd and quantiles (``{probability: value}``) of one parameter."""

    mean: float
    sd: float
    quantiles: Mapping[float, float]


@dataclass(frozen=True)
class AxisGrid:
    r"""One free axis: support, map, sinh map and the final nodes.

    ``kind`` ``"log"``: :math:`x = a + e^u`; ``"logit"``: :math:`x = a + (b-a)\,\mathrm{expit}(u)`;
    then :math:`u = c + s\sinh t` with :math:`t` on ``n_nodes`` nodes over ``t_range``, which
    covers ``parameter_range`` of the parameter.
    """

    name: str
    kind: str
    support: tuple[float, float]
    center: float
    scale: float
    t_range: tuple[float, float]
    n_nodes: int
    parameter_range: tuple[float, float]

    def nodes(self) -> np.ndarray:
        """The t-coordinates of the nodes."""
        return np.linspace(*self.t_range, self.n_nodes)

    def value(self, t: np.ndarray) -> np.ndarray:
        """The parameter at t-coordinates ``t``."""
        return from_real_line(self.center + self.scale * np.sinh(t), *self.support)

    def to_t(self, x: np.ndarray) -> np.ndarray:
        """t-coordinates of parameter values ``x`` inside the support."""
        lower, upper = self.support
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (
                np.log(x - lower)
                if self.kind == "log"
                else special.logit((x - lower) / (upper - lower))
            )
        return np.arcsinh((u - self.center) / self.scale)


@dataclass(frozen=True)
class QuadratureGrid:
    """The final grid: nodes (flattened, C order over ``shape``), weights, conditional moments."""

    axes: tuple[AxisGrid, ...]
    shape: tuple[int, ...]
    weights: np.ndarray  # (G,) normalised posterior weights
    log_density: np.ndarray  # (G,) log integrand in t-coordinates
    tau: np.ndarray  # (G,)
    rho: np.ndarray  # (G,) (0 without a cluster level)
    beta_mean: np.ndarray  # (G, p): m + h
    beta_cov: np.ndarray  # (G, p, p): A^-1


@dataclass(frozen=True)
class ExactPosterior:
    r"""Exact posterior of :math:`(\tau, \rho, \beta)`: quadrature results and a sampler.

    Attributes
    ----------
    log_marginal_likelihood, log_marginal_likelihood_error : float
        :math:`\log p(y)` and the half-grid change bounding its quadrature error.
    improper : bool
        Some coefficient has a flat prior: :math:`\log p(y)` drops its
        :math:`\log(s\sqrt{2\pi})` and compares only models with the same flat coefficients.
    converged : bool
        Every half-grid change met its tolerance (False only with ``on_failure="warn"``).
    tau, rho : Summary
        ``rho`` is None without a cluster level (no clusters, or :math:`\tau = 0`).
    beta : tuple of Summary
        One per column of ``X`` (quantiles of the normal mixture over the grid).
    beta_cov : numpy.ndarray, shape (p, p)
        :math:`\sum_g \pi_g (A_g^{-1} + \mu_g\mu_g^\top) - E[\beta]E[\beta]^\top`.
    free : tuple of str
        Integrated parameters, ``"tau"`` and/or ``"rho"``.
    nodes_per_axis : tuple of int
    box : tuple of (float, float)
        Range of each free parameter covered by the grid.
    n_evaluations : int
        Points at which the likelihood kernel was evaluated (scan, mode, grid).
    seconds : float
        Wall time of the fit.
    grid : QuadratureGrid
    """

    log_marginal_likelihood: float
    log_marginal_likelihood_error: float
    improper: bool
    converged: bool
    tau: Summary
    rho: Summary | None
    beta: tuple[Summary, ...]
    beta_cov: np.ndarray
    free: tuple[str, ...]
    nodes_per_axis: tuple[int, ...]
    box: tuple[tuple[float, float], ...]
    n_evaluations: int
    seconds: float
    grid: QuadratureGrid = field(repr=False)
    model: GaussianModel = field(repr=False, compare=False)
    fixed: Mapping[str, float] = field(repr=False, compare=False)
    _samplers: dict[float, GridSampler] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def sampler(self, n_draws: int) -> GridSampler | None:
        """The inverse-CDF sampler for ``n_draws`` draws (:func:`.sampler.fine_step`; cached).

        None when nothing is integrated.
        """
        if not self.free:
            return None
        step = fine_step(n_draws)
        if step not in self._samplers:
            values = np.exp(self.grid.log_density - self.grid.log_density.max())
            t_axes = [ax.nodes() for ax in self.grid.axes]
            self._samplers[step] = GridSampler.from_nodes(
                values.reshape(self.grid.shape), t_axes, step
            )
        return self._samplers[step]

    def cdf(self, name: str, x: ArrayLike) -> np.ndarray:
        r"""Posterior CDF of a free ``"tau"`` or ``"rho"`` at ``x`` (sinc-interpolated grid).

        The marginal over the other axis is a trapezoid sum at each node; between nodes the
        CDF integrates the sinc interpolant (:func:`.quadrature.sinc_cdf`), as accurate as
        the quadrature.
        """
        axes = [ax.name for ax in self.grid.axes]
        if name not in axes:
            raise ValueError(f"'name' must be one of the free parameters {axes}; got {name!r}.")
        a = axes.index(name)
        ax, shape = self.grid.axes[a], self.grid.shape
        marginal = self.grid.weights.reshape(shape).sum(
            axis=tuple(b for b in range(len(shape)) if b != a)
        )
        t = ax.nodes()
        x = np.asarray(x, dtype=float)
        flat = x.ravel()
        lower, upper = ax.support
        inside = (flat > lower) & (flat < upper)
        out = np.where(flat >= upper, 1.0, 0.0)
        if inside.any():
            cdf = quadrature.sinc_cdf(marginal / (t[1] - t[0]), t, ax.to_t(flat[inside]))[0]
            out[inside] = np.clip(cdf, 0.0, 1.0)
        return out.reshape(x.shape)

    def sample(self, n_draws: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        r"""Independent exact draws: :math:`(\tau, \rho)` by inverse CDF, then :math:`\beta`.

        Uses ``rng.random((n_draws, d))`` and then ``rng.standard_normal((n_draws, p))``, so a
        seeded Generator gives the same draws in any process. The interpolation table's
        resolution grows with ``n_draws`` (its error stays below 1/20 of the Monte Carlo
        error), so the first 4,000 of 10^6 draws are not the draws of ``sample(4000, ...)``.

        Returns
        -------
        dict
            ``tau`` (n,), ``rho`` (n,) (absent without a cluster level), ``beta`` (n, p).
        """
        if isinstance(n_draws, bool) or not isinstance(n_draws, int | np.integer) or n_draws < 1:
            raise ValueError(f"'n_draws' must be a positive integer; got {n_draws!r}.")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"'rng' must be a numpy.random.Generator; got {type(rng).__name__}.")
        uniforms = rng.random((int(n_draws), len(self.free)))
        normals = rng.standard_normal((int(n_draws), self.model.p))
        params = {name: np.full(int(n_draws), value) for name, value in self.fixed.items()}
        if self.free:
            t = self.sampler(int(n_draws)).draw(uniforms)
            for a, ax in enumerate(self.grid.axes):
                params[ax.name] = ax.value(t[:, a])
        rho = params.get("rho", np.zeros(int(n_draws)))
        out = {"tau": params["tau"]}
        if self.rho is not None:
            out["rho"] = rho
        out["beta"] = self.model.draw_beta(params["tau"], rho, normals)
        return out


# ------------------------------------------------------------------------------ the integrand


class _Integrand:
    """Log posterior density of the free axes in u, with per-point side results."""

    def __init__(self, model: GaussianModel, axes: list[Axis], fixed: dict[str, float]):
        self.model, self.axes, self.fixed = model, axes, fixed

    def parameters(self, u: np.ndarray) -> dict[str, np.ndarray]:
        """Tau and rho at points u (fixed values broadcast; rho 0 if absent)."""
        n = len(u)
        out = {name: np.full(n, value) for name, value in self.fixed.items()}
        for a, axis in enumerate(self.axes):
            out[axis.name] = axis.value(u[:, a])
        out.setdefault("rho", np.zeros(n))
        return out

    def __call__(self, u: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Log density (prior, Jacobians, likelihood) and side results at points u (n, d)."""
        return self._evaluate(u, side_results=True)

    def log_density(self, u: np.ndarray) -> np.ndarray:
        """The log density only (for the scan and the mode search)."""
        return self._evaluate(u, side_results=False)[0]

    def _evaluate(self, u: np.ndarray, side_results: bool):
        n, p = len(u), self.model.p
        par = self.parameters(u)
        log_prior = np.zeros(n)
        for a, axis in enumerate(self.axes):
            log_prior += axis.log_density(u[:, a])
        ok = np.isfinite(log_prior) & (np.abs(par["tau"]) < 1e150)  # tau^2 stays finite
        every = bool(ok.all())
        if not every:
            par = {name: x[ok] for name, x in par.items()}
        val = np.full(n, -np.inf)
        aux = {"tau": par["tau"], "rho": par["rho"]}
        if len(par["tau"]):
            cond = self.model.conditional(par["tau"], par["rho"])
            if np.isnan(cond.log_lik).any():
                raise ValueError(
                    "S^-1 + X' V^-1 X is not positive definite at some (tau, rho): with flat "
                    "priors ('beta_sd' = inf) the columns of 'X' must be linearly independent."
                )
            val[ok] = cond.log_lik + (log_prior if every else log_prior[ok])
            if side_results:
                aux["beta"], aux["beta:cov"] = cond.mean, cond.covariance()
        elif side_results:
            aux["beta"], aux["beta:cov"] = np.zeros((0, p)), np.zeros((0, p, p))
        if side_results and not every:  # zeros where the density is 0: weight 0, no nan
            for name, x in aux.items():
                full = np.zeros((n, *x.shape[1:]))
                full[ok] = x
                aux[name] = full
        return val, aux


# ------------------------------------------------------------------------------ set-up


def _number(name: str, x: Any, lo: float, hi: float) -> float:
    try:
        val = float(x)
    except (TypeError, ValueError):
        raise ValueError(
            f"'{name}' must be a log-density callable or a number in [{lo:g}, {hi:g}]; got {x!r}."
        ) from None
    if not (lo <= val <= hi):
        raise ValueError(f"'{name}' fixed at {x!r}: must lie in [{lo:g}, {hi:g}].")
    return val


def _tau_axis(prior: LogDensity, scale: float) -> Axis:
    probe = scale * np.exp(np.linspace(-25.0, 25.0, 201))
    lower, upper = detect_support(prior, "tau", probe, (0.0, math.inf))
    return Axis("tau", lower, upper, prior)


def _rho_axis(prior: LogDensity) -> Axis:
    if isinstance(prior, BetaPrior):
        return Axis("rho", 0.0, 1.0, prior)
    probe = special.expit(np.linspace(-25.0, 25.0, 201))
    lower, upper = detect_support(prior, "rho", probe, (0.0, 1.0))
    return Axis("rho", lower, upper, prior)


def _scan_axis(axis: Axis, v: np.ndarray, spread: float) -> tuple[np.ndarray, float]:
    """Scan points in u: log tau over the data's scales, logit-mapped axes over [-10, 10]."""
    if axis.kind == "log":
        lo = 0.5 * math.log(v.min()) - 8.0
        hi = math.log(max(spread, math.sqrt(v.max()))) + 3.0
        return np.arange(lo, hi + 0.5, 0.5), 0.5
    return np.linspace(-10.0, 10.0, 17), 1.25


def _summary(mean: float, sd: float, probs, values) -> Summary:
    return Summary(
        float(mean), float(sd), dict(zip(map(float, probs), map(float, values), strict=True))
    )


def _mixture_quantiles(w, mean, sd, probs, shape) -> np.ndarray:
    r"""Quantiles of :math:`\sum_g w_g N(\mu_g, \sigma_g^2)` over the grid (Newton, safeguarded).

    The mixture's CDF is itself a trapezoid sum over the grid: on the half grid (every second
    node per axis) it is within about the quadrature's half-grid error, so Newton converges
    there first; one Newton step on the full grid then squares that error (more steps only
    if it moved by more than 1e-6 sds). Nodes with weight below 1e-16 of the largest are left
    out (they move the CDF by < 1e-13).
    """
    probs = np.asarray(probs)
    if (sd == 0).all() and np.ptp(mean) == 0:
        return np.full(len(probs), mean[0])
    keep = w > 1e-16 * w.max()
    half = np.zeros(shape, dtype=bool)
    half[(slice(None, None, 2),) * len(shape)] = True
    half = half.ravel() & keep

    def newton(subset, x0, tol, max_steps):
        wk, mk, sk = w[subset] / w[subset].sum(), mean[subset], sd[subset]

        def cdf_and_density(b):
            z = (b[:, None] - mk) / sk
            dens = np.exp(-0.5 * z**2) / (sk * math.sqrt(2 * math.pi))
            return _dot(special.ndtr(z), wk), _dot(dens, wk)

        bracket = ((mk - 40 * sk).min(), (mk + 40 * sk).max())
        return quadrature.newton_quantiles(cdf_and_density, x0, probs, bracket, tol, max_steps)

    m = _dot(mean, w)
    s = math.sqrt(max(_dot(sd**2 + mean**2, w) - m**2, 1e-300))
    x = newton(half if half.sum() > 1 else keep, m + s * special.ndtri(probs), 1e-13, 200)
    x_full = newton(keep, x, 0.0, 1)
    if np.abs(x_full - x).max() > 1e-6 * s:
        x_full = newton(keep, x_full, 1e-13, 200)
    return x_full


def _dot(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted sum over the last axis of a (no BLAS: its threads cost ms on small arrays)."""
    return np.einsum("...g,g->...", a, w)


def _parse_priors(tau_prior, rho_prior, clustered: bool):
    """Free axes' priors and fixed values from the arguments."""
    fixed: dict[str, float] = {}
    if callable(tau_prior):
        tau_free = tau_prior
    else:
        tau_free, fixed["tau"] = None, _number("tau_prior", tau_prior, 0.0, math.inf)
    rho_free = None
    if not clustered:
        if rho_prior is not None and not (not callable(rho_prior) and float(rho_prior) == 0.0):
            raise ValueError(
                f"'rho_prior' must be None (or 0) without 'cluster'; got {rho_prior!r}."
            )
    elif rho_prior is None:
        raise ValueError(
            "'rho_prior' must be a log-density callable or a value in [0, 1] with 'cluster'."
        )
    elif callable(rho_prior):
        rho_free = rho_prior
    else:
        fixed["rho"] = _number("rho_prior", rho_prior, 0.0, 1.0)
    if fixed.get("tau") == 0.0:  # the common-effect model: rho is irrelevant
        rho_free = None
        fixed.pop("rho", None)
    return tau_free, rho_free, fixed


def fit_exact(
    yi: ArrayLike,
    vi: ArrayLike,
    X: ArrayLike | None = None,
    cluster: ArrayLike | None = None,
    *,
    beta_mean: ArrayLike,
    beta_sd: ArrayLike,
    tau_prior: LogDensity | float,
    rho_prior: LogDensity | float | None = None,
    tol: float = 1e-9,
    moment_tol: float = 1e-7,
    probs: tuple[float, ...] = PROBS,
    on_failure: Literal["raise", "warn"] = "raise",
) -> ExactPosterior:
    r"""Exact posterior of the three-level model by adaptive quadrature over :math:`(\tau, \rho)`.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effect sizes and their known sampling VARIANCES.
    X : array_like, shape (k, p), optional
        Design in the parametrisation the priors act on (None: intercept only; p may be 0).
    cluster : array_like, shape (k,), optional
        Cluster labels (any order). None: the two-level random-effects model.
    beta_mean, beta_sd : float or array_like, shape (p,)
        Independent normal priors; ``beta_sd = inf``: flat prior (``improper`` is then True).
    tau_prior : callable or float
        Vectorised log-density of :math:`\tau` on :math:`(0, \infty)` (numpy array in, array
        out; -inf or nan outside its support, which may be bounded, e.g. Uniform(0, 2)), or a
        fixed :math:`\tau \ge 0` (0: the common-effect model).
    rho_prior : callable or float, optional
        Log-density of :math:`\rho` on :math:`(0, 1)` (a :class:`BetaPrior` is evaluated
        accurately near :math:`\rho = 1`), or a fixed :math:`\rho \in [0, 1]`. Required with
        ``cluster``; None without.
    tol : float
        Target for the half-grid change of :math:`\log p(y)`.
    moment_tol : float
        Target for the half-grid changes of the posterior means and sds, relative to the sd
        (``inf``: refine for ``tol`` only).
    probs : tuple of float
        Probabilities of the reported quantiles.
    on_failure : {"raise", "warn"}
        When the node caps stop the refinement short of the tolerances: raise
        :class:`QuadratureError`, or warn and return the result with ``converged=False``.

    Returns
    -------
    ExactPosterior

    Raises
    ------
    QuadratureError
        The posterior could not be integrated to the tolerances (the message suggests MCMC).
    """
    start = time.perf_counter()
    if on_failure not in ("raise", "warn"):
        raise ValueError(f"'on_failure' must be 'raise' or 'warn'; got {on_failure!r}.")
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"'tol' must be a finite number > 0; got {tol!r}.")
    if not (isinstance(moment_tol, int | float) and moment_tol > 0):
        raise ValueError(
            f"'moment_tol' must be a number > 0 (inf: not checked); got {moment_tol!r}."
        )
    probs = tuple(float(q) for q in probs)
    if not all(0.0 < q < 1.0 for q in probs):
        raise ValueError(f"'probs' must lie in (0, 1); got {probs!r}.")
    tau_free, rho_free, fixed = _parse_priors(tau_prior, rho_prior, cluster is not None)
    cluster_level = cluster is not None and fixed.get("tau") != 0.0 and fixed.get("rho") != 0.0
    if cluster is not None and not cluster_level:
        _cluster_codes(cluster, len(np.atleast_1d(np.asarray(yi))))  # validate all the same
    model = prepare(yi, vi, X, cluster if cluster_level else None, beta_mean, beta_sd)
    v, spread = model.variances, float(np.std(model.design[:, 0]))
    axes = []
    if tau_free is not None:
        axes.append(_tau_axis(tau_free, math.sqrt(float(np.median(v)))))
    if rho_free is not None and cluster_level:
        axes.append(_rho_axis(rho_free))
    elif cluster_level:
        fixed.setdefault("rho", 0.0)
    f = _Integrand(model, axes, fixed)
    moments = ["tau", "rho", "beta"] if axes else []
    if axes:
        grid, est, converged, evals = _integrate(f, axes, v, spread, tol, moment_tol, moments)
    else:
        grid, est, converged, evals = _single_point(f), None, True, 1
    error = 0.0 if est is None else float(est.error.sum())
    if not converged:
        msg = (
            f"quadrature stopped at {grid.shape} nodes with half-grid change {error:.2g} of "
            f"log p(y) (tol {tol:g}) or of a posterior moment (moment_tol {moment_tol:g})"
        )
        if on_failure == "raise":
            raise quadrature._fail(msg)
        warnings.warn(msg + ".", RuntimeWarning, stacklevel=2)
    log_ml = float(est.log_integral) if est is not None else float(grid.log_density[0])
    return _result(grid, model, f, fixed, log_ml, error, converged, probs, evals, start)


def _single_point(f: _Integrand) -> QuadratureGrid:
    val, aux = f(np.zeros((1, 0)))
    return QuadratureGrid(
        (), (), np.ones(1), val, aux["tau"], aux["rho"], aux["beta"], aux["beta:cov"]
    )


def _integrate(f, axes, v, spread, tol, moment_tol, moments):
    scans = [_scan_axis(axis, v, spread) for axis in axes]
    steps = np.array([s[1] for s in scans])
    found = quadrature.scan(f.log_density, [s[0] for s in scans], steps)
    mode, sd, more = quadrature.find_mode(f.log_density, found.best, steps)
    smap = SinhMap(mode, sd)
    growth = np.array([axis.name == "tau" and axis.kind == "log" for axis in axes])
    names = tuple(axis.name for axis in axes)
    lattice, est, converged = quadrature.integrate(f, smap, growth, moments, tol, moment_tol, names)
    quadrature.check_scan_inside(lattice, found)
    evals = len(found.values) + more + lattice.n_evaluations
    t_axes = lattice.t_axes()
    grid_axes = []
    for a, (axis, t) in enumerate(zip(axes, t_axes, strict=True)):
        ends = axis.value(smap.center[a] + smap.scale[a] * np.sinh(t[[0, -1]]))
        grid_axes.append(
            AxisGrid(
                axis.name,
                axis.kind,
                (axis.lower, axis.upper),
                float(smap.center[a]),
                float(smap.scale[a]),
                (float(t[0]), float(t[-1])),
                len(t),
                (float(ends[0]), float(ends[1])),
            )
        )
    n, d = lattice.log.size, lattice.log.ndim
    aux = {k: v.reshape((n, *v.shape[d:])) for k, v in lattice.aux.items()}
    grid = QuadratureGrid(
        tuple(grid_axes),
        lattice.log.shape,
        est.weights.ravel(),
        lattice.log.ravel(),
        aux["tau"],
        aux["rho"],
        aux["beta"],
        aux["beta:cov"],
    )
    return grid, est, converged, evals


def _result(grid, model, f, fixed, log_ml, error, converged, probs, evals, start) -> ExactPosterior:
    w = grid.weights
    summaries: dict[str, Summary] = {}
    for a, ax in enumerate(grid.axes):
        marg = w.reshape(grid.shape).sum(axis=tuple(b for b in range(len(grid.shape)) if b != a))
        t = ax.nodes()
        x = ax.value(quadrature.sinc_quantiles(marg / (t[1] - t[0]), t, np.array(probs)))
        values = grid.tau if ax.name == "tau" else grid.rho
        mean = float(_dot(values, w))
        sd = math.sqrt(max(float(_dot(values**2, w)) - mean**2, 0.0))
        summaries[ax.name] = _summary(mean, sd, probs, x)
    for name, value in fixed.items():
        summaries[name] = _summary(value, 0.0, probs, [value] * len(probs))
    cluster_level = model.n_clusters > 0
    mean = _dot(grid.beta_mean.T, w)
    second = np.einsum(
        "g,gab->ab", w, grid.beta_cov + grid.beta_mean[:, :, None] * grid.beta_mean[:, None, :]
    )
    cov = second - np.outer(mean, mean)
    sds = np.sqrt(np.maximum(np.diag(cov), 0.0))
    cond_sd = np.sqrt(np.maximum(np.diagonal(grid.beta_cov, axis1=1, axis2=2), 0.0))
    beta = tuple(
        _summary(
            mean[c],
            sds[c],
            probs,
            _mixture_quantiles(w, grid.beta_mean[:, c], cond_sd[:, c], probs, grid.shape),
        )
        for c in range(model.p)
    )
    return ExactPosterior(
        log_marginal_likelihood=log_ml,
        log_marginal_likelihood_error=error,
        improper=model.improper,
        converged=converged,
        tau=summaries["tau"],
        rho=summaries.get("rho") if cluster_level else None,
        beta=beta,
        beta_cov=cov,
        free=tuple(ax.name for ax in grid.axes),
        nodes_per_axis=tuple(ax.n_nodes for ax in grid.axes),
        box=tuple(ax.parameter_range for ax in grid.axes),
        n_evaluations=int(evals),
        seconds=time.perf_counter() - start,
        grid=grid,
        model=model,
        fixed={k: v for k, v in fixed.items() if k == "tau" or cluster_level},
    )
