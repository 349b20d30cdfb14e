r"""Profiled likelihood of the compound-symmetric multilevel meta-analysis model.

Internal numerical core of :mod:`bambi_meta.frequentist` (pure numpy/scipy). Row ``i`` of cluster
``j`` has marginal covariance block

.. math::

    V_j = \operatorname{diag}(v_i + a) + c\,\mathbf{1}\mathbf{1}^\top,
    \qquad a = \tau^2 (1 - \rho), \quad c = \tau^2 \rho,

so ``a`` is the estimate-level and ``c`` the cluster-level (co)variance. ``c`` may be negative in
the compound-symmetry ("CS") parameterisation as long as :math:`V` stays positive definite. The
fixed effects are profiled out by GLS; the (restricted) log-likelihood, its gradient in ``(a, c)``
and :math:`(X^\top V^{-1} X)^{-1}` cost :math:`O(k p^2)` via Sherman-Morrison per cluster,

.. math::

    V_j^{-1} x = \frac{x}{d} - \frac{\gamma_j}{d} \sum_{i \in j} \frac{x_i}{d_i},\quad
    \gamma_j = \frac{c}{1 + c S_j},\quad S_j = \sum_{i \in j} 1/d_i,\quad
    \log|V_j| = \sum_{i \in j} \log d_i + \log(1 + c S_j),

with :math:`d_i = v_i + a`. No :math:`k \times k` matrix is ever formed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.optimize
import scipy.sparse

LOG_2PI = float(np.log(2.0 * np.pi))
# L-BFGS-B settings: the objective is smooth and cheap, so converge to (almost) machine precision.
_LBFGSB = {"ftol": 1e-15, "gtol": 1e-11, "maxiter": 2000}
# Maps the free optimisation variables x (natural units) to (a, c) and d(a, c)/dx (2 x len(x)).
ParamMap = Callable[[np.ndarray], tuple[float, float, np.ndarray]]


@dataclass(frozen=True, eq=False)
class ModelData:
    """Validated arrays of one fit plus the cluster-sum operator.

    Parameters
    ----------
    y, v : numpy.ndarray
        Estimates and known sampling variances, shape ``(k,)``.
    X : numpy.ndarray
        Design matrix of full column rank, shape ``(k, p)``.
    codes : numpy.ndarray
        Cluster index ``0..m-1`` of every row; ``arange(k)`` for a single-level model.
    clustered : bool
        Whether a cluster-level variance component is part of the model.
    """

    y: np.ndarray
    v: np.ndarray
    X: np.ndarray
    codes: np.ndarray
    clustered: bool

    def __post_init__(self) -> None:
        m = int(self.codes.max()) + 1
        k = self.y.shape[0]
        indicator = scipy.sparse.csr_array(
            (np.ones(k), (self.codes, np.arange(k))), shape=(m, k)
        )
        object.__setattr__(self, "indicator", indicator)
        object.__setattr__(self, "cluster_sizes", np.bincount(self.codes))
        object.__setattr__(self, "logdet_xtx", float(np.linalg.slogdet(self.X.T @ self.X)[1]))
        # variance scale of the optimiser: mean sampling variance, so scaled variables are O(1)
        object.__setattr__(self, "scale", float(np.mean(self.v)))

    @property
    def k(self) -> int:
        """Number of estimates."""
        return int(self.y.shape[0])

    @property
    def p(self) -> int:
        """Number of fixed-effect coefficients."""
        return int(self.X.shape[1])

    def seg(self, values: np.ndarray) -> np.ndarray:
        """Sum rows of ``values`` within clusters (shape ``(m,)`` or ``(m, p)``)."""
        return self.indicator @ values


@dataclass(frozen=True)
class Evaluation:
    """Profiled (restricted) log-likelihood and GLS results at one ``(a, c)``."""

    loglik: float
    beta: np.ndarray
    vcov: np.ndarray
    rss: float
    grad: np.ndarray  # d loglik / d(a, c)


def evaluate(data: ModelData, a: float, c: float, reml: bool) -> Evaluation | None:
    r"""Evaluate the profiled log-likelihood at ``(a, c)``; ``None`` if V is not positive definite.

    The ML and REML (metafor's convention, including :math:`+\tfrac12 \log|X^\top X|`) values are

    .. math::

        \ell_{ML} = -\tfrac12\left[k \log 2\pi + \log|V| + r^\top V^{-1} r\right],\qquad
        \ell_{REML} = -\tfrac12\left[(k-p) \log 2\pi + \log|V| + \log|X^\top V^{-1} X|
        - \log|X^\top X| + r^\top V^{-1} r\right],

    with :math:`r = y - X\hat\beta` the GLS residuals.
    """
    d = data.v + a
    if np.any(d <= 0.0):
        return None
    w = 1.0 / d
    s = data.seg(w)
    denom = 1.0 + c * s
    if np.any(denom <= 0.0):
        return None
    gw = w * (c / denom)[data.codes]  # w_i * gamma_j(i)

    def vinv(m: np.ndarray) -> np.ndarray:
        wm = (w * m.T).T
        return wm - (gw * data.seg(wm)[data.codes].T).T

    u = vinv(data.X)
    chol = scipy.linalg.cho_factor(data.X.T @ u, lower=True)
    vcov = scipy.linalg.cho_solve(chol, np.eye(data.p))
    beta = vcov @ (u.T @ data.y)
    q = vinv(data.y - data.X @ beta)
    rss = float((data.y - data.X @ beta) @ q)
    logdet_v = float(np.sum(np.log(d)) + np.sum(np.log(denom)))
    # d/d theta of -1/2 [log|V| + rss] = -1/2 [tr(V^-1 dV) - q' dV q] with dV = I or blockdiag(11')
    grad = -0.5 * np.array(
        [np.sum(w) - np.sum(gw * w) - q @ q, np.sum(s / denom) - np.sum(data.seg(q) ** 2)]
    )
    if reml:
        logdet_a = 2.0 * float(np.sum(np.log(np.diag(chol[0]))))
        loglik = -0.5 * ((data.k - data.p) * LOG_2PI + logdet_v + logdet_a + rss)
        loglik += 0.5 * data.logdet_xtx
        su = data.seg(u)
        grad += 0.5 * np.array([np.sum(vcov * (u.T @ u)), np.sum(vcov * (su.T @ su))])
    else:
        loglik = -0.5 * (data.k * LOG_2PI + logdet_v + rss)
    return Evaluation(float(loglik), beta, vcov, rss, grad)


# --------------------------------------------------------------------------------------------
# parameterisations and positive-definiteness limits (only relevant for rho < 0 in "CS")


def _pd_margin(data: ModelData, tau2: float, rho: float) -> float:
    """Smallest ``1 + c S_j`` over clusters (> 0 iff V is positive definite)."""
    s = data.seg(1.0 / (data.v + tau2 * (1.0 - rho)))
    return float(np.min(1.0 + tau2 * rho * s))


def rho_floor(data: ModelData, tau2: float) -> float:
    """Smallest admissible rho in CS at fixed ``tau2`` (V positive definite), at least -1."""
    if tau2 <= 0.0 or _pd_margin(data, tau2, -1.0) > 0.0:
        return -1.0
    root = scipy.optimize.brentq(lambda r: _pd_margin(data, tau2, r), -1.0, 0.0, xtol=1e-15)
    return root + 1e-9


def tau2_ceiling(data: ModelData, rho: float) -> float:
    """Largest admissible tau2 in CS at fixed ``rho`` (``inf`` unless rho < -1/(n_max - 1))."""
    n_max = int(data.cluster_sizes.max())
    if rho >= 0.0 or n_max < 2 or rho > -1.0 / (n_max - 1):
        return np.inf
    upper = data.scale
    while _pd_margin(data, upper, rho) > 0.0:
        upper *= 2.0
    root = scipy.optimize.brentq(lambda t: _pd_margin(data, t, rho), 0.0, upper, xtol=1e-300)
    return root * (1.0 - 1e-9)


def main_map(x: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Map ``(tau2, rho)`` to ``(a, c)``."""
    tau2, rho = x
    return tau2 * (1.0 - rho), tau2 * rho, np.array([[1.0 - rho, -tau2], [rho, tau2]])


def fixed_map(parameter: str, value: float) -> ParamMap:
    """Map of the one remaining free variable when ``parameter`` is held at ``value``."""
    maps: dict[str, ParamMap] = {
        "tau2": lambda x: (value * (1 - x[0]), value * x[0], np.array([[-value], [value]])),
        "rho": lambda x: (x[0] * (1 - value), x[0] * value, np.array([[1 - value], [value]])),
        "sigma2_cluster": lambda x: (x[0], value, np.array([[1.0], [0.0]])),
        "sigma2_estimate": lambda x: (value, x[0], np.array([[0.0], [1.0]])),
        "uni": lambda x: (x[0], 0.0, np.array([[1.0], [0.0]])),
    }
    return maps[parameter]


def maximise(
    data: ModelData,
    reml: bool,
    fmap: ParamMap,
    x0: np.ndarray,
    bounds: list[tuple[float, float]],
    scales: np.ndarray,
) -> tuple[np.ndarray, Evaluation, bool]:
    """Maximise the profiled log-likelihood over the free variables with L-BFGS-B.

    Variables are divided by ``scales`` so that the optimiser sees O(1) quantities; the analytic
    gradient is mapped through the Jacobian of ``fmap``. Returns ``(x, evaluation, converged)``.
    """

    def objective(z: np.ndarray) -> tuple[float, np.ndarray]:
        a, c, jac = fmap(z * scales)
        ev = evaluate(data, a, c, reml)
        if ev is None:  # only reachable through rounding at a positive-definiteness limit
            return np.inf, np.zeros_like(z)
        return -ev.loglik, -(jac.T @ ev.grad) * scales

    lows = np.array([lo for lo, _ in bounds]) / scales
    highs = np.array([hi for _, hi in bounds]) / scales
    zb = [(lo, None if np.isinf(hi) else hi) for lo, hi in zip(lows, highs)]
    z0 = np.clip(np.asarray(x0, float) / scales, lows, highs)
    res = scipy.optimize.minimize(
        objective, z0, jac=True, method="L-BFGS-B", bounds=zb, options=_LBFGSB
    )
    x = res.x * scales
    a, c, _ = fmap(x)
    return x, evaluate(data, a, c, reml), bool(res.success)


# --------------------------------------------------------------------------------------------
# profiles over one variance parameter


def profile_fit(
    data: ModelData, reml: bool, struct: str, parameter: str, value: float, start: dict
) -> tuple[float, Evaluation]:
    """Maximise over the other variance parameter with ``parameter`` held at ``value``.

    ``struct`` is ``"uni"``, ``"nested"`` or ``"CS"``; ``start`` holds the estimates (keys
    ``tau2``, ``rho``, ``sigma2_cluster``, ``sigma2_estimate``) used as starting values. Returns
    the maximiser of the free parameter and the evaluation there.
    """
    if struct == "uni":
        return value, evaluate(data, value, 0.0, reml)
    if parameter == "tau2":
        lo = rho_floor(data, value) if struct == "CS" else 0.0
        x0, bounds, scale = start["rho"], (lo, 1.0), 1.0
    elif parameter == "rho":
        hi = tau2_ceiling(data, value) if struct == "CS" else np.inf
        x0, bounds, scale = start["tau2"], (0.0, hi), data.scale
    else:  # the other nested component is free
        other = "sigma2_estimate" if parameter == "sigma2_cluster" else "sigma2_cluster"
        x0, bounds, scale = start[other], (0.0, np.inf), data.scale
    x0 = x0 if np.isfinite(x0) else 0.5
    x, ev, _ = maximise(
        data, reml, fixed_map(parameter, value), np.array([x0]), [bounds], np.array([scale])
    )
    return float(x[0]), ev


def typical_variance(data: ModelData) -> float:
    r"""Typical sampling variance :math:`(k - p) / \operatorname{tr}(P)` (metafor's multilevel I2).

    .. math::

        P = W - W X (X^\top W X)^{-1} X^\top W, \qquad W = \operatorname{diag}(1/v_i).
    """
    w = 1.0 / data.v
    xw = data.X * w[:, None]
    tr_p = np.sum(w) - np.trace(np.linalg.solve(data.X.T @ xw, xw.T @ xw))
    return (data.k - data.p) / tr_p


def fit_components(data: ModelData, reml: bool, struct: str) -> tuple[dict, Evaluation, bool]:
    """(RE)ML estimates of the variance parameters.

    Maximises over ``(tau2, rho)`` in the box ``[0, inf) x [rho_min, 1]`` (``rho_min = 0`` for
    the nested model, the positive-semidefinite limit ``-1/(n_max - 1)`` for CS) from a
    DerSimonian-Laird-type start and three starting values of rho. A CS optimum at that limit is
    refined by a bounded one-dimensional search over ``rho`` in ``[-1, rho_min]``.
    """
    ev0 = evaluate(data, 0.0, 0.0, reml)  # rss at zero heterogeneity is the Q statistic
    tau2_dl = (ev0.rss - (data.k - data.p)) / (data.k - data.p) * typical_variance(data)
    tau2_0 = max(tau2_dl, 0.1 * data.scale)
    if struct == "uni":
        x, ev, ok = maximise(
            data, reml, fixed_map("uni", 0.0), [tau2_0], [(0.0, np.inf)], np.array([data.scale])
        )
        return {"tau2": float(x[0])}, ev, ok
    n_max = int(data.cluster_sizes.max())
    rho_min = 0.0 if struct == "nested" else (-1.0 if n_max < 2 else -1.0 / (n_max - 1))
    best = None
    for rho0 in (0.2, 0.5, 0.8):
        cand = maximise(
            data, reml, main_map, np.array([tau2_0, rho0]), [(0.0, np.inf), (rho_min, 1.0)],
            np.array([data.scale, 1.0]),
        )
        if best is None or cand[1].loglik > best[1].loglik:
            best = cand
    x, ev, ok = best
    tau2, rho = float(x[0]), float(x[1])
    if struct == "CS" and rho_min > -1.0 and rho <= rho_min + 1e-8:
        start = {"tau2": tau2, "rho": rho}
        res = scipy.optimize.minimize_scalar(
            lambda r: -profile_fit(data, reml, "CS", "rho", r, start)[1].loglik,
            bounds=(-1.0, rho_min), method="bounded", options={"xatol": 1e-10},
        )
        if -res.fun > ev.loglik:
            rho = float(res.x)
            tau2, ev = profile_fit(data, reml, "CS", "rho", rho, start)
    if tau2 == 0.0:
        rho = np.nan  # not identified without heterogeneity
    return {"tau2": tau2, "rho": rho}, ev, ok


def profile_interval(
    profile: Callable[[float], float],
    estimate: float,
    domain: tuple[float, float],
    scale: float,
    drop: float,
) -> tuple[float, float]:
    """Profile-likelihood interval: where ``profile`` falls ``drop`` below its maximum.

    ``profile(estimate)`` is the maximum. A bound whose domain end is still inside the interval
    (e.g. a variance whose profile at 0 is above the cut-off) is reported as that end, as metafor
    does. Roots are found with :func:`scipy.optimize.brentq`.
    """
    cutoff = profile(estimate) - drop

    def f(t: float) -> float:
        return profile(t) - cutoff

    lo, hi = domain
    tol = {"xtol": 1e-12 * max(scale, 1e-300), "rtol": 1e-10}
    lower = lo if estimate <= lo or f(lo) >= 0.0 else scipy.optimize.brentq(f, lo, estimate, **tol)
    if np.isfinite(hi):
        upper = hi if estimate >= hi or f(hi) >= 0.0 else None
        inner = estimate
    else:  # expand until the profile drops below the cut-off
        step, inner, hi, upper = max(estimate, scale), estimate, estimate + max(estimate, scale), None
        while f(hi) >= 0.0:
            if hi > 1e12 * scale:
                return lower, np.inf
            inner, step = hi, 2.0 * step
            hi = hi + step
    if upper is None:
        upper = scipy.optimize.brentq(f, inner, hi, **tol)
    return lower, upper
