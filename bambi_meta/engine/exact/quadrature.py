r"""Adaptive sinh-mapped trapezoid rule for a log-density on :math:`\mathbb R^d` (:math:`d \le 2`).

Per axis :math:`u = c + s\sinh t`, with :math:`c` the mode and :math:`s` the Laplace sd, so
that in :math:`t` every posterior looks alike: a concentrated one (large :math:`k`) needs no
more nodes than a wide one, and its tails decay double-exponentially. Nodes sit on the lattice
:math:`t = i\,h_a`, :math:`h_a = 2^{-\ell_a}/2`, inside an index box. The box is the bounding box
of :math:`\{\log F > \max\log F - 32\}` (:math:`F` the integrand in :math:`t`; for
:math:`\log\tau` the test adds :math:`2\max(0, u - c)`, so that the mass of :math:`\tau^2 F`
left outside is negligible too) plus one node per side. Each axis is refined (:math:`h_a`
halved, old nodes kept) until the change from its half grid (every second node along that
axis),

.. math::

    \epsilon_a = \Big|\log \sum_g F_g\,h - \log \sum_{g:\,i_a\ \mathrm{even}} F_g\,2h\Big|,

is below the tolerance, and so are the changes of the posterior means and sds (relative to the
sd). The trapezoid rule converges geometrically for such analytic integrands (halving :math:`h`
roughly squares the error), so :math:`\epsilon_a`, the error of the half grid, bounds the error
of the final grid by far.

Quantiles use the sinc interpolant the trapezoid rule is exact for (Stenger's indefinite sinc
integration), as accurate as the rule itself:

.. math::

    P(T \le t) = \sum_i f_i\,h\,\Big[\tfrac12
        + \tfrac1\pi\,\mathrm{Si}\big(\pi(t - t_i)/h\big)\Big].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = [
    "Lattice",
    "QuadratureError",
    "SinhMap",
    "integrate",
    "newton_quantiles",
    "refuse",
    "sinc_cdf",
    "sinc_quantiles",
    "tensor",
]

STEP0 = 0.5  # node spacing in t on the coarsest level
DROP = 32.0  # box: log F > max - 32 (mass outside < ~1e-13 of the total)
T_MAX = 14.0  # |t| of the box: sinh(14) ~ 6e5 Laplace sds
MAX_LEVEL = 6  # finest spacing 0.5 / 64 in t (smooth posteriors converge by level 3-4)
MAX_NODES = 2**17

# func(u) -> (log density (n,), {name: array (n, ...)}) at points u of shape (n, d)
Evaluate = Callable[[np.ndarray], tuple[np.ndarray, dict[str, np.ndarray]]]


class QuadratureError(RuntimeError):
    """The exact (quadrature) posterior could not be computed to the requested accuracy."""


def refuse(what: str) -> QuadratureError:
    """The error for a posterior the quadrature cannot integrate, suggesting MCMC."""
    return QuadratureError(
        f"exact inference failed: {what}. The posterior of (tau, rho) may be improper, "
        "multimodal or too heavy-tailed for the quadrature; fit the model with MCMC instead "
        '(inference_method="nutpie").'
    )


def tensor(axes: list[np.ndarray]) -> np.ndarray:
    """All points of the tensor grid of the given axes, shape (n, d), C order."""
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))


@dataclass(frozen=True)
class SinhMap:
    r""":math:`u = c + s\sinh t` per axis."""

    center: np.ndarray
    scale: np.ndarray

    def u(self, t: np.ndarray) -> np.ndarray:
        """Map t-coordinates (n, d) to u."""
        return self.center + self.scale * np.sinh(t)

    def log_jacobian(self, t: np.ndarray) -> np.ndarray:
        r""":math:`\sum_a \log(s_a\cosh t_a)`, shape (n,)."""
        a = np.abs(t)
        log_cosh = a + np.log1p(np.exp(-2.0 * a)) - math.log(2.0)
        return (np.log(self.scale) + log_cosh).sum(axis=1)


class Lattice:
    r"""Nodes :math:`t = i h_a` over an index box, with the integrand and its side results.

    ``log`` holds :math:`\log F` (the log-density in u plus the log-Jacobian of the sinh map);
    ``aux`` the arrays the evaluation returns per node (parameters, conditional moments).
    """

    def __init__(
        self, evaluate: Evaluate, smap: SinhMap, growth: np.ndarray, names: tuple[str, ...] = ()
    ):
        self.evaluate, self.smap, self.growth, self.names = evaluate, smap, growth, names
        d = len(smap.center)
        self.level = np.zeros(d, dtype=int)
        self.lo = np.full(d, -7)
        self.hi = np.full(d, 7)
        self.log = np.empty((0,) * d)
        self.aux: dict[str, np.ndarray] = {}
        self.n_evaluations = 0
        self._resize(self.lo, self.hi, self.level, first=True)

    @property
    def step(self) -> np.ndarray:
        """Node spacing per axis."""
        return STEP0 / 2.0**self.level

    def t_axes(self) -> list[np.ndarray]:
        """Node coordinates per axis."""
        return [
            np.arange(lo, hi + 1) * h for lo, hi, h in zip(self.lo, self.hi, self.step, strict=True)
        ]

    def _resize(self, lo, hi, level, first=False) -> None:
        shape = tuple(int(n) for n in hi - lo + 1)
        known = np.zeros(shape, dtype=bool)
        log = np.empty(shape)
        aux = {k: np.empty(shape + v.shape[len(shape) :]) for k, v in self.aux.items()}
        if not first:
            old, new = [], []
            for a in range(len(shape)):
                idx = np.arange(self.lo[a], self.hi[a] + 1) * 2 ** (level[a] - self.level[a])
                keep = (idx >= lo[a]) & (idx <= hi[a])
                old.append(np.flatnonzero(keep))
                new.append(idx[keep] - lo[a])
            new, old = np.ix_(*new), np.ix_(*old)
            known[new] = True
            log[new] = self.log[old]
            for k in aux:
                aux[k][new] = self.aux[k][old]
        self.lo, self.hi, self.level = lo.copy(), hi.copy(), level.copy()
        missing = np.argwhere(~known)
        if len(missing):
            t = (missing + lo) * self.step
            val, res = self.evaluate(self.smap.u(t))
            self.n_evaluations += len(t)
            idx = tuple(missing.T)
            log[idx] = np.where(np.isnan(val), -np.inf, val) + self.smap.log_jacobian(t)
            for k, v in res.items():
                if k not in aux:
                    aux[k] = np.full(shape + v.shape[1:], np.nan)
                aux[k][idx] = v
        self.log, self.aux = log, aux

    def box_values(self) -> np.ndarray:
        """The box criterion: log F plus 2 max(0, u - c) on the axes flagged in ``growth``."""
        out = self.log.copy()
        for a, t in enumerate(self.t_axes()):
            if self.growth[a]:
                shape = [1] * out.ndim
                shape[a] = -1
                out += 2.0 * np.maximum(self.smap.scale[a] * np.sinh(t), 0.0).reshape(shape)
        return out

    def _faces(self, vals: np.ndarray, a: int) -> tuple[np.ndarray, np.ndarray]:
        return np.take(vals, [0, 1], axis=a), np.take(vals, [-1, -2], axis=a)

    def extend(self) -> None:
        """Grow the box (same spacing) until no face has a node above the threshold."""
        while True:
            vals = self.box_values()
            top = vals.max()
            if not np.isfinite(top):
                raise refuse("the log posterior is -inf or nan on the whole quadrature box")
            lo, hi = self.lo.copy(), self.hi.copy()
            for a in range(vals.ndim):
                for side, face in enumerate(self._faces(vals, a)):
                    edge, inner = np.moveaxis(face, a, 0)
                    if (edge > top - DROP).any():
                        if side:  # one unit of t: a factor e further out in sinh t
                            hi[a] += 2 ** (self.level[a] + 1)
                        else:
                            lo[a] -= 2 ** (self.level[a] + 1)
                    elif not np.isfinite(edge).any() and (inner > top - DROP).any():
                        self._check_cliff(a, side, inner > top - DROP, top)
            if (lo == self.lo).all() and (hi == self.hi).all():
                return
            if (np.maximum(-lo, hi) * self.step).max() > T_MAX:
                raise refuse(
                    f"the posterior tails do not fall {DROP:g} log units below the mode within "
                    "sinh(14) Laplace sds"
                )
            self._resize(lo, hi, self.level)

    def _criterion_at(self, t: np.ndarray) -> np.ndarray:
        """The box criterion at arbitrary points t (n, d), not stored."""
        val, _ = self.evaluate(self.smap.u(t))
        self.n_evaluations += len(t)
        val = np.where(np.isnan(val), -np.inf, val) + self.smap.log_jacobian(t)
        return val + 2.0 * (np.maximum(self.smap.scale * np.sinh(t), 0.0) * self.growth).sum(1)

    def _check_cliff(self, a: int, side: int, lines: np.ndarray, top: float) -> None:
        """The density falls from above the threshold to -inf between the last two layers.

        That is a support edge (or a prior that cannot be evaluated near its edge, where its
        argument rounds onto the edge). Zoom in (16 points per round) on each line above the
        threshold to the last point with a finite density: if it is still within ``DROP`` of
        the maximum, mass would be lost and the quadrature refuses.
        """
        others = [t for b, t in enumerate(self.t_axes()) if b != a]
        starts = tensor(others)[lines.ravel()] if others else np.zeros((1, 0))
        t_axis = self.t_axes()[a]
        inside, outside = t_axis[-2 if side else 1], t_axis[-1 if side else 0]
        for _ in range(4):
            frac = np.linspace(0.0, 1.0, 18)[1:-1]
            along = inside + frac * (outside - inside)
            pts = np.insert(np.repeat(starts, len(frac), axis=0), a, np.tile(along, len(starts)), 1)
            vals = self._criterion_at(pts).reshape(len(starts), len(frac))
            finite = np.isfinite(vals)
            last = np.where(finite.any(axis=0))[0]
            if not len(last) or vals[finite].max(initial=-np.inf) < top - DROP:
                return
            j = last[-1]
            inside, outside = along[j], along[j + 1] if j + 1 < len(along) else outside
        raise refuse(
            f"the log posterior falls from within {DROP:g} of its maximum to -inf at a point on "
            f"the {self.names[a] if self.names else a} axis: a support edge that still has "
            "posterior mass, where the prior cannot be evaluated (its argument rounds onto the "
            "edge; for a Beta prior on rho use BetaPrior, which is evaluated on the logit scale)"
        )

    def trim(self) -> None:
        """Shrink the box to the threshold region plus one node per side."""
        vals = self.box_values()
        keep = vals > vals.max() - DROP
        lo, hi = self.lo.copy(), self.hi.copy()
        for a in range(keep.ndim):
            other = tuple(b for b in range(keep.ndim) if b != a)
            idx = np.flatnonzero(keep.any(axis=other)) if other else np.flatnonzero(keep)
            lo[a] = self.lo[a] + max(idx[0] - 1, 0)
            hi[a] = self.lo[a] + min(idx[-1] + 1, keep.shape[a] - 1)
        self._resize(lo, hi, self.level)

    def refine(self, axes: list[int]) -> None:
        """Halve the spacing of the given axes (the old nodes are kept)."""
        lo, hi, level = self.lo.copy(), self.hi.copy(), self.level.copy()
        for a in axes:
            lo[a], hi[a], level[a] = 2 * lo[a], 2 * hi[a], level[a] + 1
        self._resize(lo, hi, level)


@dataclass(frozen=True)
class Estimate:
    """Log integral, weights and the half-grid changes per axis."""

    log_integral: float
    weights: np.ndarray  # normalised, shape of the lattice
    error: np.ndarray  # |log I - log I_half| per axis
    moment_change: np.ndarray  # max relative change of means and sds per axis


def _moments(w: np.ndarray, aux: dict[str, np.ndarray], names: list[str]):
    """Means and sds under weights w of the named side results.

    ``aux[name + ":cov"]`` (per-node covariance matrices), if present, adds its diagonal to the
    second moment: the law of total variance for a mixture.
    """
    if not names:
        return np.zeros(0), np.zeros(0)
    flat, total = w.ravel(), w.sum()
    means, sds = [], []
    for name in names:
        x = aux[name].reshape(w.size, -1)
        second = x**2
        if name + ":cov" in aux:
            cov = aux[name + ":cov"].reshape(w.size, x.shape[1], x.shape[1])
            second = second + np.diagonal(cov, axis1=1, axis2=2)
        m1 = np.einsum("g,gj->j", flat, x) / total  # no BLAS: its threads cost ms here
        m2 = np.einsum("g,gj->j", flat, second) / total
        means.append(m1)
        sds.append(np.sqrt(np.maximum(m2 - m1**2, 0.0)))
    return np.concatenate(means), np.concatenate(sds)


def estimate(lattice: Lattice, moments: list[str]) -> Estimate:
    """The trapezoid sum, its half-grid changes and those of the moments, per axis."""
    top = lattice.log.max()
    w = np.exp(lattice.log - top)
    total = w.sum()
    log_i = math.log(total) + top + float(np.log(lattice.step).sum())
    mean, sd = _moments(w, lattice.aux, moments)
    scale = np.where(sd > 0, sd, 1.0)
    errors, changes = [], []
    for a in range(w.ndim):
        even = (np.arange(lattice.lo[a], lattice.hi[a] + 1) % 2 == 0).astype(float)
        shape = [1] * w.ndim
        shape[a] = -1
        wh = w * even.reshape(shape)
        errors.append(abs(math.log(wh.sum() * 2.0) - math.log(total)))
        mean_h, sd_h = _moments(wh, lattice.aux, moments)
        rel = np.concatenate([np.abs(mean_h - mean), np.abs(sd_h - sd)]) / np.tile(scale, 2)
        changes.append(float(rel.max()) if len(rel) else 0.0)
    return Estimate(log_i, w / total, np.array(errors), np.array(changes))


def integrate(
    evaluate: Evaluate,
    smap: SinhMap,
    growth: np.ndarray,
    moments: list[str],
    tol: float,
    moment_tol: float,
    names: tuple[str, ...] = (),
) -> tuple[Lattice, Estimate, bool]:
    """Box search, then refine the failing axes until every half-grid change is below tol.

    Returns the lattice, the final estimate and whether it converged (False only when the
    node caps were reached: the caller raises or warns).
    """
    lattice = Lattice(evaluate, smap, growth, names)
    lattice.extend()
    lattice.trim()
    d = len(smap.center)
    while True:
        est = estimate(lattice, moments)
        bad = [a for a in range(d) if est.error[a] > tol / d or est.moment_change[a] > moment_tol]
        if not bad:
            return lattice, est, True
        shape = np.array(lattice.log.shape)
        shape[bad] = 2 * shape[bad] - 1
        if lattice.level[bad].max() >= MAX_LEVEL or np.prod(shape) > MAX_NODES:
            return lattice, est, False
        lattice.refine(bad)
        lattice.extend()


def newton_quantiles(cdf_and_density, x0, probs, bracket, tol=1e-13, max_steps=200) -> np.ndarray:
    """Solve CDF(x) = p for each p: Newton steps, bisection when a step leaves the bracket.

    ``cdf_and_density(x)`` returns both at the points x; converged entries stay put.
    """
    x = np.asarray(x0, dtype=float).copy()
    lo, hi = np.full_like(x, bracket[0]), np.full_like(x, bracket[1])
    for _ in range(max_steps):
        cdf, dens = cdf_and_density(x)
        resid = cdf - probs
        active = np.abs(resid) >= tol
        if not active.any():
            break
        lo, hi = np.where(resid < 0, x, lo), np.where(resid > 0, x, hi)
        new = x - resid / np.maximum(dens, 1e-300)
        new = np.where((new >= lo) & (new <= hi), new, 0.5 * (lo + hi))
        x = np.where(active, new, x)
    return x


def sinc_cdf(f: np.ndarray, nodes: np.ndarray, t: np.ndarray) -> np.ndarray:
    """CDF at t of the sinc interpolant of node values ``f`` (sum f h = 1), and its density."""
    h = float(nodes[1] - nodes[0])
    x = (np.asarray(t, dtype=float)[:, None] - nodes[None, :]) / h
    cdf = np.einsum("ng,g->n", 0.5 + special.sici(np.pi * x)[0] / np.pi, f * h)
    return cdf, np.einsum("ng,g->n", np.sinc(x), f)


def sinc_quantiles(f: np.ndarray, nodes: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Quantiles in t of the density with node values ``f`` (sum f h = 1) on equispaced nodes.

    A trapezoid guess, then Newton on the sinc CDF (density: the sinc interpolant).
    """
    h = float(nodes[1] - nodes[0])
    cum = np.concatenate([[0.0], np.cumsum(0.5 * h * (f[1:] + f[:-1]))])
    cum /= cum[-1]
    i = np.clip(np.searchsorted(cum, probs) - 1, 0, len(nodes) - 2)
    frac = (probs - cum[i]) / np.maximum(cum[i + 1] - cum[i], 1e-300)
    x0 = nodes[i] + h * np.clip(frac, 0.0, 1.0)
    bracket = (nodes[0] - h, nodes[-1] + h)
    return newton_quantiles(lambda t: sinc_cdf(f, nodes, t), x0, probs, bracket)
