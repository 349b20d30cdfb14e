r"""Exact log marginal likelihood by quadrature, and Bayes factors (numpy / scipy only).

Row :math:`i` in cluster :math:`j`, known sampling variance :math:`v_i`:

.. math::

    y = X\beta + u_j + e_i + \varepsilon_i,\quad u_j \sim N(0, \tau^2\rho),\quad
    e_i \sim N(0, \tau^2(1-\rho)),\quad \varepsilon_i \sim N(0, v_i),

:math:`\beta \sim N(m, \mathrm{diag}(s^2))` on the design as given, :math:`\tau \sim
\mathrm{HalfNormal}(\sigma_\tau)`, :math:`\rho \sim \mathrm{Beta}(a, b)`. Given
:math:`(\tau, \rho)` the data are Gaussian with :math:`\beta` integrated out, so
:math:`p(y)` is a 2-D (1-D, 0-D) integral over :math:`(\log\tau, \mathrm{logit}\,\rho)`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import special

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
_DROP = 32.0  # box = {log integrand > max - 32}: the mass left outside is < ~1e-13 of the total
_CHUNK = 8192  # grid points per vectorised block (memory ~ _CHUNK * k * 8 bytes per array)


@dataclass(frozen=True)
class LogMarginalLikelihood:
    r"""Log marginal likelihood :math:`\log p(y)` and its quadrature error estimate.

    Attributes
    ----------
    value : float
        :math:`\log p(y)`.
    error : float
        :math:`|\log I_h - \log I_{2h}|`, the change from the half grid (every second node) to
        the final grid. The trapezoid rule converges geometrically here (halving :math:`h`
        roughly squares the relative error), so the final grid's error is far smaller.
        0 when nothing is integrated.
    n_points : int
        Nodes of the final grid (1 when nothing is integrated).
    details : Mapping[str, Any]
        Posterior mean and sd of ``tau``, ``rho`` and ``beta`` from the same quadrature, the
        free axes, the mode, the sinh map, the box in t-coordinates, level, evaluations, time.
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
    """Model table, inclusion Bayes factors and pairwise Bayes factors of an ensemble."""

    models: pd.DataFrame
    inclusion: pd.DataFrame
    pairwise: pd.DataFrame


# --------------------------------------------------------------------------------- validation


def _vector(name: str, x: Any, k: int | None = None, positive: bool = False) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"'{name}' must be numeric; got {type(x).__name__}.") from None
    if a.ndim != 1 or (k is not None and a.shape[0] != k):
        want = "a 1-D array" if k is None else f"a 1-D array of length {k}"
        raise ValueError(f"'{name}' must be {want}; got shape {a.shape}.")
    bad = ~np.isfinite(a) | ((a <= 0) if positive else False)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        rule = "finite and > 0" if positive else "finite"
        raise ValueError(f"'{name}' must be {rule}; row {i + 1} has {a[i].item()!r}.")
    return a


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
    y = _vector("yi", yi)
    k = y.shape[0]
    if k == 0:
        raise ValueError("'yi' must have at least one row; got 0.")
    v = _vector("vi", vi, k, positive=True)
    Xa = np.ones((k, 1)) if X is None else np.asarray(X, dtype=float)
    Xa = Xa[:, None] if Xa.ndim == 1 else Xa
    if Xa.ndim != 2 or Xa.shape[0] != k:
        raise ValueError(f"'X' must have shape ({k}, p), one row per estimate; got {Xa.shape}.")
    bad = ~np.isfinite(Xa).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"'X' must be finite; row {i + 1} has {Xa[i].tolist()}.")
    p = Xa.shape[1]
    m, s = (np.full(p, x, dtype=object) if np.ndim(x) == 0 else x for x in (beta_mean, beta_sd))
    m, s = _vector("beta_mean", m, p), _vector("beta_sd", s, p, positive=True)
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


# --------------------------------------------------------------------------------- integrand


class _Evaluator:
    r"""Vectorised :math:`\log p(y \mid \tau, \rho)`, :math:`\beta` integrated out."""

    def __init__(self, data: _Data):
        self.data = data
        Z = np.column_stack([data.y - data.X @ data.m, data.X])  # [r0, X], q = p + 1 columns
        self.q = Z.shape[1]
        self.zz = (Z[:, :, None] * Z[:, None, :]).reshape(len(Z), -1)
        if data.codes is not None:
            self.E = np.zeros((len(Z), data.n_clusters))  # row-to-cluster indicator
            self.E[np.arange(len(Z)), data.codes] = 1.0
            self.EZ = (self.E[:, :, None] * Z[:, None, :]).reshape(len(Z), -1)
        self.const = len(Z) * _LOG_2PI + 2.0 * np.log(data.s).sum()

    def __call__(self, t2w: np.ndarray, t2b: np.ndarray, moments: bool = False):
        """Arguments: tau^2 (1 - rho) and tau^2 rho per point; returns (logp[, mean, var])."""
        parts = [
            self._block(t2w[i : i + _CHUNK], t2b[i : i + _CHUNK], moments)
            for i in range(0, len(t2w), _CHUNK)
        ]
        return tuple(np.concatenate(a) for a in zip(*parts, strict=True))

    def _block(self, t2w, t2b, moments):
        d, q, G = self.data, self.q, len(t2w)
        w = 1.0 / (d.v + t2w[:, None])  # 1 / d_i
        M = (w @ self.zz).reshape(G, q, q)  # Z' D^-1 Z
        logdet = -np.log(w).sum(axis=1)
        if d.codes is not None and np.any(t2b > 0):
            W = w @ self.E  # sum of 1/d_i per cluster: S_bb = b^2 W
            C = (w @ self.EZ).reshape(G, d.n_clusters, q)  # sum of Z_i/d_i per cluster
            f = t2b[:, None] / (1.0 + t2b[:, None] * W)  # Sherman-Morrison: b^2 / (1 + S_bb)
            M = M - np.matmul(np.swapaxes(C * f[:, :, None], 1, 2), C)  # Z' V^-1 Z
            logdet = logdet + np.log1p(t2b[:, None] * W).sum(axis=1)
        quad, p = M[:, 0, 0], q - 1
        mean, var = np.empty((G, p)), np.empty((G, p))
        if p:
            A = M[:, 1:, 1:] + np.diag(1.0 / d.s**2)  # S^-1 + X' V^-1 X (Woodbury)
            L = np.linalg.cholesky(A)
            logdet = logdet + 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
            h = np.linalg.solve(A, M[:, 1:, :1])[:, :, 0]  # A^-1 X' V^-1 r0
            quad = quad - (M[:, 1:, 0] * h).sum(axis=1)
            if moments:  # beta | tau, rho, y ~ N(m + h, A^-1)
                mean, var = d.m + h, np.diagonal(np.linalg.inv(A), axis1=1, axis2=2).copy()
        logp = -0.5 * (self.const + logdet + quad)
        return (logp, mean, var) if moments else (logp,)


class _Integrand:
    """Log posterior kernel on the free axes ``log_tau`` and/or ``logit_rho`` (Jacobians in)."""

    def __init__(self, ev, tau_sd, a, b, tau_fixed, rho_fixed, clustered):
        self.ev, self.tau_sd, self.a, self.b = ev, tau_sd, a, b
        self.tau_fixed, self.rho_fixed = tau_fixed, rho_fixed
        self.axes = [] if tau_fixed is not None else ["log_tau"]
        if clustered and rho_fixed is None and tau_fixed != 0.0:
            self.axes.append("logit_rho")

    def parameters(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tau and rho at the points (rho nan where absent or irrelevant)."""
        col = dict(zip(self.axes, pts.T, strict=True))
        tau = np.exp(col["log_tau"]) if "log_tau" in col else np.full(len(pts), self.tau_fixed)
        if "logit_rho" in col:
            return tau, special.expit(col["logit_rho"])
        absent = self.rho_fixed is None or self.tau_fixed == 0.0
        return tau, np.full(len(pts), np.nan if absent else self.rho_fixed)

    def __call__(self, pts: np.ndarray, moments: bool = False):
        col, n, extra = dict(zip(self.axes, pts.T, strict=True)), len(pts), 0.0
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if "log_tau" in col:  # HalfNormal(tau_sd) density of tau = e^u, times tau
                u, ls = col["log_tau"], math.log(self.tau_sd)
                extra = 0.5 * math.log(2 / math.pi) - ls - 0.5 * np.exp(2 * (u - ls)) + u
                log_t2 = 2.0 * u
            else:
                log_t2 = np.full(n, 2.0 * math.log(self.tau_fixed) if self.tau_fixed else -np.inf)
            if "logit_rho" in col:  # Beta(a, b) density of rho = expit(w), times rho (1 - rho)
                w = col["logit_rho"]
                log_r, log_1m = -np.logaddexp(0.0, -w), -np.logaddexp(0.0, w)
                extra = extra + self.a * log_r + self.b * log_1m - special.betaln(self.a, self.b)
            else:
                r = np.full(n, self.rho_fixed or 0.0)
                log_r, log_1m = np.log(r), np.log1p(-r)
            res = self.ev(np.exp(log_t2 + log_1m), np.exp(log_t2 + log_r), moments)
            val = res[0] + extra
        val = np.where(np.isfinite(val), val, -np.inf)
        return (val, *res[1:]) if moments else val


# --------------------------------------------------------------------------------- quadrature


def _derivatives(fv: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian by central differences from values on a 3 x ... x 3 stencil."""
    d, e = fv.ndim, np.eye(fv.ndim, dtype=int)

    def at(shift: np.ndarray) -> float:
        return fv[tuple(1 + shift)]

    g, H = np.empty(d), np.empty((d, d))
    for i, j in np.ndindex(d, d):
        if i == j:
            g[i] = (at(e[i]) - at(-e[i])) / (2.0 * h)
            H[i, i] = (at(e[i]) - 2.0 * at(0 * e[i]) + at(-e[i])) / h**2
        else:
            cross = at(e[i] + e[j]) - at(e[i] - e[j]) - at(e[j] - e[i]) + at(-e[i] - e[j])
            H[i, j] = cross / (4.0 * h**2)
    return g, H


def _mode_and_scale(f: _Integrand) -> tuple[np.ndarray, np.ndarray, int]:
    """Mode of the log kernel (coarse scan, then damped Newton) and Laplace sds there."""
    scan = {"log_tau": math.log(f.tau_sd) + np.linspace(-9, 3, 25), "logit_rho": np.arange(-8, 9)}
    grid = _tensor([scan[a] for a in f.axes])
    x, d, h, evals = grid[int(np.argmax(f(grid)))], len(f.axes), 1e-3, len(grid)
    stencil, damp = _tensor([np.array([-h, 0.0, h])] * d), 0.5 ** np.arange(10)
    for _ in range(100):
        fv = f(x + stencil).reshape((3,) * d)
        g, H = _derivatives(fv, h)
        try:
            np.linalg.cholesky(-H)
            step = np.linalg.solve(-H, g)
        except np.linalg.LinAlgError:  # not concave here: gradient direction
            step = g / max(np.abs(g).max(), 1e-300)
        step *= min(1.0, 2.0 / max(np.abs(step).max(), 1e-300))  # at most 2 units per axis
        trial = x + damp[:, None] * step
        ft = f(trial)
        evals += len(fv.ravel()) + len(trial)
        best = int(np.argmax(ft))
        if not ft[best] > fv[(1,) * d]:
            break
        x = trial[best]
        if np.abs(damp[best] * step).max() < 1e-6:
            break
    try:
        np.linalg.cholesky(-H)
        sd = np.sqrt(np.diag(np.linalg.inv(-H)))
    except np.linalg.LinAlgError:  # fall back to the curvatures
        sd = 1.0 / np.sqrt(np.maximum(-np.diag(H), 1e-2))
    return x, np.where(np.isfinite(sd) & (sd > 0), sd, 1.0), evals


def _tensor(axes: list[np.ndarray]) -> np.ndarray:
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))


def _t_kernel(f: _Integrand, c, s, t: np.ndarray, moments: bool = False):
    """Log integrand in t-coordinates, x = c + s sinh(t), dx/dt = s cosh(t)."""
    x = c + s * np.sinh(t)
    logcosh = np.abs(t) + np.log1p(np.exp(-2.0 * np.abs(t))) - math.log(2.0)
    res = f(x, True) if moments else (f(x),)
    return (res[0] + (np.log(s) + logcosh).sum(axis=1), x, *res[1:])


def _find_box(f: _Integrand, c, s) -> tuple[np.ndarray, np.ndarray, int]:
    """Bounding box (t-coordinates) of {log integrand > max - 32}, plus one search cell."""
    d, n = len(c), 33
    lo, hi, evals = np.full(d, -4.0), np.full(d, 4.0), 0
    while True:
        ts = [np.linspace(lo[a], hi[a], n) for a in range(d)]
        g = _t_kernel(f, c, s, _tensor(ts))[0].reshape((n,) * d)
        evals += g.size
        keep = g > g.max() - _DROP
        idx = [
            np.flatnonzero(keep.any(axis=tuple(b for b in range(d) if b != a))) for a in range(d)
        ]
        low = np.array([i[0] == 0 for i in idx])
        high = np.array([i[-1] == n - 1 for i in idx])
        if not (low.any() or high.any()):
            break
        lo, hi = lo - low, hi + high  # grow by one unit of t (a factor e in sinh t)
        if max(-lo.min(), hi.max()) > 14.0:  # sinh(14) ~ 6e5 Laplace sds
            raise RuntimeError("quadrature box search failed: the posterior is not concentrated.")
    lo = np.array([ts[a][i[0] - 1] for a, i in enumerate(idx)])
    hi = np.array([ts[a][i[-1] + 1] for a, i in enumerate(idx)])
    return lo, hi, evals


def _log_trapezoid(g: np.ndarray) -> tuple[float, np.ndarray]:
    """Log of the trapezoid sum of exp(g) on a tensor grid of unit steps, and log weights."""
    logw = np.zeros_like(g)
    for a in range(g.ndim):
        ends = [slice(None)] * g.ndim
        ends[a] = [0, -1]
        logw[tuple(ends)] += math.log(0.5)
    return float(special.logsumexp(g + logw)), logw


def _quadrature(f: _Integrand, tol: float):
    """Nested tensor trapezoid rule in sinh-mapped coordinates with a half-grid error."""
    d = len(f.axes)
    c, s, evals = _mode_and_scale(f)
    lo, hi, more = _find_box(f, c, s)
    evals += more
    vals = None
    for level in range(4, 11 - d):  # 17, 33, ... nodes per axis, each grid nesting the last
        n = 2**level + 1
        ts = _tensor([np.linspace(lo[a], hi[a], n) for a in range(d)])
        new = np.ones((n,) * d, dtype=bool)
        if vals is not None:  # the previous grid's nodes are every second node of this one
            new[(slice(None, None, 2),) * d] = False
        new = new.ravel()
        fresh = _t_kernel(f, c, s, ts[new], True)
        evals += int(new.sum())
        if vals is None:
            vals = fresh
        else:
            old, vals = vals, tuple(np.empty((len(ts), *a.shape[1:])) for a in fresh)
            for full, a, b in zip(vals, fresh, old, strict=True):
                full[new], full[~new] = a, b
        g, x, mean, var = vals
        g = g.reshape((n,) * d)
        log_h = float(np.log((hi - lo) / (n - 1)).sum())
        log_sum, logw = _log_trapezoid(g)
        log_half = _log_trapezoid(g[(slice(None, None, 2),) * d])[0] + d * math.log(2.0)
        err = abs(log_sum - log_half)
        if err < tol:
            break
    if err >= tol:
        msg = f"quadrature stopped at {n} nodes per axis with half-grid change {err:.2g} >= tol."
        warnings.warn(msg, RuntimeWarning, stacklevel=4)
    post = np.exp(g + logw - log_sum).ravel()
    info = dict(mode=dict(zip(f.axes, c.tolist(), strict=True)), sinh_map_scale=s.tolist())
    info.update(t_box=np.column_stack([lo, hi]).tolist(), nodes_per_axis=n)
    info.update(converged=bool(err < tol), n_evaluations=evals)
    return log_sum + log_h, err, x, post, mean, var, info


# --------------------------------------------------------------------------------- public API


def _fit(yi, vi, X, cluster, beta_mean, beta_sd, tau_sd, rho_a, rho_b, tau_fixed, rho_fixed, tol):
    start = time.perf_counter()
    data = _prepare(yi, vi, X, cluster, beta_mean, beta_sd)
    tau_sd, rho_a, rho_b = (
        _scalar("tau_sd", tau_sd),
        _scalar("rho_a", rho_a),
        _scalar("rho_b", rho_b),
    )
    if tau_fixed is not None:
        tau_fixed = _scalar("tau_fixed", tau_fixed, closed=True)
    if rho_fixed is not None:
        rho_fixed = _scalar("rho_fixed", rho_fixed, closed=True, hi=1.0)
        if cluster is None and rho_fixed != 0.0:
            raise ValueError(f"'rho_fixed' must be None or 0 without 'cluster'; got {rho_fixed!r}.")
    tol = _scalar("tol", tol)
    f = _Integrand(
        _Evaluator(data), tau_sd, rho_a, rho_b, tau_fixed, rho_fixed, cluster is not None
    )
    if f.axes:
        value, err, x, post, mean, var, info = _quadrature(f, tol)
    else:  # tau fixed and rho fixed, absent or irrelevant (tau = 0): nothing to integrate
        x, post, info = np.zeros((1, 0)), np.ones(1), {"converged": True, "n_evaluations": 1}
        val, mean, var = f(x, moments=True)
        value, err = float(val[0]), 0.0
    details: dict[str, Any] = {"free": list(f.axes), **info}
    for name, arr in zip(("tau", "rho"), f.parameters(x), strict=True):
        if np.all(np.isfinite(arr)):
            mu = float(post @ arr)
            details[name] = {"mean": mu, "sd": math.sqrt(max(float(post @ arr**2) - mu**2, 0.0))}
    b_mean = post @ mean
    b_sd = np.sqrt(np.maximum(post @ (var + mean**2) - b_mean**2, 0.0))
    details["beta"] = {"mean": b_mean, "sd": b_sd}
    details["seconds"] = time.perf_counter() - start
    return LogMarginalLikelihood(float(value), err, len(post), details), data, post, mean, var


def log_marginal_likelihood(
    yi: ArrayLike,
    vi: ArrayLike,
    X: ArrayLike | None,
    cluster: ArrayLike | None = None,
    *,
    beta_mean: ArrayLike,
    beta_sd: ArrayLike,
    tau_sd: float,
    rho_a: float = 1.0,
    rho_b: float = 1.0,
    tau_fixed: float | None = None,
    rho_fixed: float | None = None,
    tol: float = 1e-9,
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
    search cell. Nodes per axis: 17, 33, 65, ... (nested) until the half-grid change of
    :math:`\log p(y)` is below ``tol``.

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
    tau_sd : float
        Scale of the half-normal prior on :math:`\tau`.
    rho_a, rho_b : float
        Beta prior on :math:`\rho` (used only when ``cluster`` is given and :math:`\rho` free).
    tau_fixed : float, optional
        Fix :math:`\tau \ge 0`; 0 is the common-effect model (:math:`\rho` is then irrelevant).
    rho_fixed : float, optional
        Fix :math:`\rho \in [0, 1]`; 0 removes the cluster level.
    tol : float
        Target for the half-grid change of :math:`\log p(y)`.

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
    args = (beta_mean, beta_sd, tau_sd, rho_a, rho_b, tau_fixed, rho_fixed, tol)
    return _fit(yi, vi, X, cluster, *args)[0]


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

    without :math:`k \times k` matrices: Sherman-Morrison per cluster,
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
    t2, r = (t**2).ravel(), r.ravel()
    return _Evaluator(data)(t2 * (1.0 - r), t2 * r)[0].reshape(t.shape)


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
    tau_sd: float,
    rho_a: float = 1.0,
    rho_b: float = 1.0,
    tau_fixed: float | None = None,
    rho_fixed: float | None = None,
    tol: float = 1e-9,
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
    column : int
        Index of the tested coefficient (default 0, the intercept :math:`\mu`).
    value : float
        The point null :math:`\beta_0`.

    Returns
    -------
    SavageDickey
    """
    args = (beta_mean, beta_sd, tau_sd, rho_a, rho_b, tau_fixed, rho_fixed, tol)
    c = _index("column", column, _prepare(yi, vi, X, cluster, beta_mean, beta_sd).X.shape[1])
    b0 = _scalar("value", value, lo=-math.inf)
    _, data, post, mean, var = _fit(yi, vi, X, cluster, *args)
    log_dens = -0.5 * (_LOG_2PI + np.log(var[:, c]) + (b0 - mean[:, c]) ** 2 / var[:, c])
    log_post = float(special.logsumexp(log_dens, b=post))
    m, s = float(data.m[c]), float(data.s[c])
    log_prior = -0.5 * (_LOG_2PI + 2.0 * math.log(s) + (b0 - m) ** 2 / s**2)
    return SavageDickey(log_post - log_prior, _exp(log_post - log_prior), log_post, log_prior)


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
    tau_sd: float,
    rho_a: float = 1.0,
    rho_b: float = 1.0,
    prior_model_probs: Mapping[str, float] | None = None,
    effect_column: int = 0,
    tol: float = 1e-9,
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
    yi, vi, X, cluster, beta_mean, beta_sd, tau_sd, rho_a, rho_b, tol
        The full model (effect column included), as in :func:`log_marginal_likelihood`.
    prior_model_probs : Mapping[str, float], optional
        Prior weight of each model keyed by its name in ``models.model`` (``"mu, tau, rho"``,
        ``"mu=0, tau=0"``, ...); every name is required; normalised; zeros allowed.
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
