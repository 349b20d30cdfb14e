r"""Profiled likelihood of the compound-symmetric multilevel meta-analysis model.

Internal numerical core of :mod:`bambi_meta.results.frequentist` (pure numpy/scipy): validated data,
the likelihood, its maximisation and profile intervals. Row ``i`` of cluster
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
import pandas as pd
import scipy.optimize

LOG_2PI = float(np.log(2.0 * np.pi))
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
        object.__setattr__(self, "cluster_sizes", np.bincount(self.codes))
        object.__setattr__(self, "Xy", np.column_stack([self.X, self.y]))
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
        m = self.cluster_sizes.shape[0]
        if values.ndim == 1:
            return np.bincount(self.codes, weights=values, minlength=m)
        return np.stack([np.bincount(self.codes, weights=col, minlength=m) for col in values.T], 1)


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
    if (d <= 0.0).any():
        return None
    w = 1.0 / d
    s = data.seg(w)
    denom = 1.0 + c * s
    if (denom <= 0.0).any():
        return None
    gamma = c / denom
    # V^{-1} [X | y] by Sherman-Morrison within clusters
    wm = data.Xy * w[:, None]
    vm = wm - (w * gamma[data.codes])[:, None] * data.seg(wm)[data.codes]
    u, vy = vm[:, :-1], vm[:, -1]
    a_mat = data.X.T @ u
    vcov = np.linalg.inv(a_mat)
    xvy = u.T @ data.y
    beta = vcov @ xvy
    rss = float(data.y @ vy - beta @ xvy)
    q = vy - u @ beta  # V^{-1} r
    seg_vm = data.seg(vm)
    seg_q = seg_vm[:, -1] - seg_vm[:, :-1] @ beta
    logdet_v = float(np.log(d).sum() + np.log(denom).sum())
    # d/d theta of -1/2 [log|V| + rss] = -1/2 [tr(V^-1 dV) - q' dV q] with dV = I or blockdiag(11')
    tr_vinv = w.sum() - (gamma * data.seg(w * w)).sum()
    grad = -0.5 * np.array([tr_vinv - q @ q, (s / denom).sum() - seg_q @ seg_q])
    if reml:
        logdet_a = 2.0 * float(np.log(np.diag(np.linalg.cholesky(a_mat))).sum())
        loglik = -0.5 * ((data.k - data.p) * LOG_2PI + logdet_v + logdet_a + rss)
        loglik += 0.5 * data.logdet_xtx
        su = seg_vm[:, :-1]
        grad += 0.5 * np.array([(vcov * (u.T @ u)).sum(), (vcov * (su.T @ su)).sum()])
    else:
        loglik = -0.5 * (data.k * LOG_2PI + logdet_v + rss)
    return Evaluation(float(loglik), beta, vcov, rss, grad)


def _vector(name: str, values: object, k: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"'{name}' must be numeric.") from err
    if arr.ndim != 1:
        raise ValueError(f"'{name}' must be 1-D; got shape {arr.shape}.")
    if k is not None and arr.shape[0] != k:
        raise ValueError(f"'{name}' must have the same length as 'yi' ({k}); got {arr.shape[0]}.")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"'{name}' must be finite; row {bad[0]} has {arr[bad[0]]}.")
    return arr


def build_data(
    yi: object, vi: object, X: object, cluster: object, X_names: list[str] | None
) -> tuple[ModelData, list[str]]:
    """Validate the data arguments of ``fit_frequentist``; return ``(ModelData, names)``.

    Errors name the argument and the first offending row (0-based).
    """
    y = _vector("yi", yi)
    k = y.shape[0]
    v = _vector("vi", vi, k)
    bad = np.flatnonzero(v <= 0)
    if bad.size:
        raise ValueError(f"'vi' must be finite and > 0; row {bad[0]} has {v[bad[0]]}.")
    if X is None:
        design, default_names = np.ones((k, 1)), ["intrcpt"]
    else:
        default_names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
        try:
            design = np.asarray(X, dtype=float)
        except (TypeError, ValueError) as err:
            raise ValueError("'X' must be numeric.") from err
        if design.ndim != 2 or design.shape[0] != k:
            raise ValueError(f"'X' must be 2-D with {k} rows (k x p); got shape {design.shape}.")
        bad = np.argwhere(~np.isfinite(design))
        if bad.size:
            raise ValueError(f"'X' must be finite; row {bad[0][0]}, column {bad[0][1]} is not.")
        if np.linalg.matrix_rank(design) < design.shape[1]:
            raise ValueError("'X' is not of full column rank; drop redundant columns.")
    p = design.shape[1]
    if k <= p:
        raise ValueError(f"Need more estimates than coefficients; k = {k}, p = {p}.")
    names = list(X_names) if X_names is not None else default_names or [f"x{j}" for j in range(p)]
    if len(names) != p or len(set(names)) != p:
        raise ValueError(f"'X_names' must hold {p} distinct names; got {names!r}.")
    if cluster is None:
        codes = np.arange(k)
    else:
        labels = pd.Series(np.asarray(cluster, dtype=object).ravel())
        if labels.shape[0] != k or np.ndim(cluster) != 1:
            raise ValueError(
                f"'cluster' must be 1-D with {k} labels; got shape {np.shape(cluster)}."
            )
        missing = np.flatnonzero(labels.isna().to_numpy())
        if missing.size:
            raise ValueError(f"'cluster' must not be missing; row {missing[0]} is.")
        codes = pd.factorize(labels)[0]
        if codes.max() < 1:
            raise ValueError("'cluster' must have at least 2 distinct labels.")
    data = ModelData(y, v, design, codes.astype(np.intp), clustered=cluster is not None)
    return data, names


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


def rho_psd(data: ModelData) -> float:
    """Smallest rho with a positive-semidefinite CS random-effects matrix, -1/(n_max - 1)."""
    n_max = int(data.cluster_sizes.max())
    return -1.0 / (n_max - 1) if n_max > 2 else -1.0


def tau2_ceiling(data: ModelData, rho: float) -> float:
    """Largest admissible tau2 in CS at fixed ``rho`` (``inf`` unless rho < -1/(n_max - 1))."""
    if rho >= rho_psd(data):
        return np.inf
    upper = data.scale
    while _pd_margin(data, upper, rho) > 0.0:
        upper *= 2.0
    root = scipy.optimize.brentq(lambda t: _pd_margin(data, t, rho), 0.0, upper, xtol=1e-300)
    return root * (1.0 - 1e-9)


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


# --------------------------------------------------------------------------------------------
# profiles over one variance parameter


def profile_fit(
    data: ModelData, reml: bool, struct: str, parameter: str, value: float
) -> tuple[float, Evaluation]:
    """Maximise over the other variance parameter with ``parameter`` held at ``value``.

    ``struct`` is ``"uni"``, ``"nested"`` or ``"CS"`` (where rho may be negative). Returns the
    maximiser of the free parameter and the evaluation there.
    """
    if struct == "uni":
        return value, evaluate(data, value, 0.0, reml)
    singular = None  # an end where V turns singular (CS only, beyond the PSD region)
    if parameter == "tau2":
        lo = rho_floor(data, value) if struct == "CS" else 0.0
        bounds, scale, singular = (lo, 1.0), 1.0, ("lo" if lo > -1.0 else None)
    elif parameter == "rho":
        hi = tau2_ceiling(data, value) if struct == "CS" else np.inf
        bounds, scale, singular = (0.0, hi), data.scale, ("hi" if np.isfinite(hi) else None)
    else:  # the other nested component is free
        bounds, scale = (0.0, np.inf), data.scale
    return maximise_1d(data, reml, fixed_map(parameter, value), bounds, scale, singular)


def maximise_1d(
    data: ModelData,
    reml: bool,
    fmap: ParamMap,
    bounds: tuple[float, float],
    scale: float,
    singular: str | None = None,
) -> tuple[float, Evaluation]:
    """Maximise over one free variable on ``bounds`` by bracketing the root of the score.

    An end point is the maximiser when the score there points out of the interval; otherwise
    the score's sign change is bracketed (doubling the step for an infinite upper bound) and
    solved by :func:`scipy.optimize.brentq`; these profiles are unimodal in practice. An end
    marked ``singular`` (``"lo"``/``"hi"``), where V becomes singular, is no admissible
    maximiser (the ML likelihood diverges there): the best interior local maximum found on a
    grid is returned instead, which is what a local optimiser such as metafor's finds.
    """

    def at(x: float) -> tuple[Evaluation, float]:
        a, c, jac = fmap(np.array([x]))
        ev = evaluate(data, a, c, reml)
        return ev, float(jac[:, 0] @ ev.grad)

    def root(left: float, right: float) -> tuple[float, Evaluation]:
        x = scipy.optimize.brentq(lambda t: at(t)[1], left, right, xtol=1e-14 * scale, rtol=1e-12)
        return x, at(x)[0]

    lo, hi = bounds
    if singular is not None:
        xs = np.linspace(lo, hi, 17)
        scores = [at(x)[1] for x in xs]
        found = [root(xs[i], xs[i + 1]) for i in range(16) if scores[i] > 0.0 > scores[i + 1]]
        if singular == "hi" and scores[0] <= 0.0:
            found.append((lo, at(lo)[0]))
        if singular == "lo" and scores[-1] >= 0.0:
            found.append((hi, at(hi)[0]))
        end = hi if singular == "hi" else lo
        return max(found, key=lambda f: f[1].loglik) if found else (end, at(end)[0])
    ev_lo, score_lo = at(lo)
    if score_lo <= 0.0:
        return lo, ev_lo
    if np.isfinite(hi):
        ev_hi, score_hi = at(hi)
        if score_hi >= 0.0:
            return hi, ev_hi
    else:
        step, hi = scale, lo + scale
        while (hi_eval := at(hi))[1] > 0.0:
            if hi > 1e15 * scale:  # likelihood still increasing: report the (huge) end point
                return hi, hi_eval[0]
            lo, step = hi, 2.0 * step
            hi = lo + step
    return root(lo, hi)


def typical_variance(data: ModelData) -> float:
    r"""Typical sampling variance :math:`(k - p) / \operatorname{tr}(P)` (metafor's multilevel I2).

    .. math::

        P = W - W X (X^\top W X)^{-1} X^\top W, \qquad W = \operatorname{diag}(1/v_i).
    """
    w = 1.0 / data.v
    xw = data.X * w[:, None]
    tr_p = np.sum(w) - np.trace(np.linalg.solve(data.X.T @ xw, xw.T @ xw))
    return (data.k - data.p) / tr_p


def fit_components(data: ModelData, reml: bool, struct: str) -> tuple[dict, Evaluation]:
    r"""(RE)ML estimates of the variance parameters.

    The single-level model is a one-dimensional problem in :math:`\tau^2`. With clusters, the
    profile :math:`P(\rho) = \max_{\tau^2} \ell(\tau^2, \rho)` is maximised over
    :math:`\rho \in [0, 1]` (nested) or :math:`[-1/(n_{max} - 1), 1]` (CS, the range with a
    positive-semidefinite random-effects matrix): it is evaluated on a grid, and
    every sign change of its derivative, which by the envelope theorem is
    :math:`\partial\ell/\partial\rho = \hat\tau^2(\rho)\,(\partial_c\ell - \partial_a\ell)`,
    is solved with :func:`scipy.optimize.brentq`; the best of grid points and roots wins, so
    boundary optima (a component at exactly 0) come out exactly.
    """
    if struct == "uni":
        tau2, ev = maximise_1d(data, reml, fixed_map("uni", 0.0), (0.0, np.inf), data.scale)
        return {"tau2": tau2}, ev

    def rho_profile(rho: float) -> tuple[float, float, float, Evaluation]:
        tau2, ev = profile_fit(data, reml, struct, "rho", rho)
        return ev.loglik, tau2 * (ev.grad[1] - ev.grad[0]), tau2, ev

    grid = np.linspace(0.0, 1.0, 5) if struct == "nested" else np.linspace(rho_psd(data), 1.0, 9)
    points = {float(r): rho_profile(r) for r in grid}
    for left, right in zip(grid[:-1], grid[1:], strict=True):
        if points[left][1] > 0.0 > points[right][1]:
            root = scipy.optimize.brentq(
                lambda r: rho_profile(r)[1], left, right, xtol=1e-13, rtol=1e-12
            )
            points[float(root)] = rho_profile(root)
    rho = max(points, key=lambda r: points[r][0])
    _, _, tau2, ev = points[rho]
    return {"tau2": tau2, "rho": rho if tau2 > 0.0 else np.nan}, ev  # rho: undefined if tau2 = 0


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
    inner, upper = estimate, None
    if np.isfinite(hi):
        if estimate >= hi or f(hi) >= 0.0:
            upper = hi
    else:  # expand with doubling steps until the profile drops below the cut-off
        step = max(estimate, scale)
        hi = estimate + step
        while f(hi) >= 0.0:
            if hi > 1e12 * scale:
                return lower, np.inf
            inner, step = hi, 2.0 * step
            hi += step
    if upper is None:
        upper = scipy.optimize.brentq(f, inner, hi, **tol)
    return lower, upper
