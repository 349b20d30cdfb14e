r"""The exact posterior: quadrature summaries, the grid, CDFs and independent draws.

:class:`ExactPosterior` holds what :func:`bambi_meta.engine.exact.fit_exact` computed on its
grid (nodes :math:`g` with normalised weights :math:`\pi_g`) and draws from it:

.. math::

    E[\beta] = \sum_g \pi_g \mu_g,\qquad
    \mathrm{Var}[\beta] = \sum_g \pi_g \big(A_g^{-1} + \mu_g\mu_g^\top\big) - E[\beta]E[\beta]^\top,
    \qquad \mu_g = m + h_g,

quantiles of :math:`\tau` and :math:`\rho` from the sinc-interpolated marginal CDF
(:func:`.quadrature.sinc_quantiles`), quantiles of each coefficient from the normal mixture
:math:`\sum_g \pi_g N(\mu_{g,c}, (A_g^{-1})_{cc})`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

from bambi_meta.engine.exact import quadrature
from bambi_meta.engine.exact.gaussian import GaussianModel
from bambi_meta.engine.exact.inverse_cdf import GridSampler, fine_step
from bambi_meta.engine.exact.priors import from_real_line

__all__ = ["AxisGrid", "ExactPosterior", "QuadratureGrid", "Summary", "summarise"]


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


@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
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


@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
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
        Nodes, weights and the conditional moments of beta at each node.
    model : GaussianModel
        The validated, cluster-sorted data (the draws of beta evaluate it at each draw).
    fixed : Mapping[str, float]
        Parameters held fixed (``tau`` and/or ``rho``), if any.
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
        """The inverse-CDF sampler for ``n_draws`` draws (``inverse_cdf.fine_step``; cached).

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
        CDF integrates the sinc interpolant (``quadrature.sinc_cdf``), as accurate as
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
    if not len(probs):
        return np.empty(0)
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


def summarise(grid, model, fixed, log_ml, error, converged, probs, evals, start) -> ExactPosterior:
    """The result object: summaries of the grid (see the module docstring)."""
    w = grid.weights
    summaries: dict[str, Summary] = {}
    for a, ax in enumerate(grid.axes):
        marg = w.reshape(grid.shape).sum(axis=tuple(b for b in range(len(grid.shape)) if b != a))
        t = ax.nodes()
        x = (
            ax.value(quadrature.sinc_quantiles(marg / (t[1] - t[0]), t, np.array(probs)))
            if probs
            else []
        )
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
