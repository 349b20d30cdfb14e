r"""The posterior mode and Laplace scales that centre and scale the quadrature grid.

A coarse tensor scan over the real-line coordinates :math:`u` (``log tau`` over the data's
scales in steps of 0.5, logit-mapped axes over [-10, 10] in steps of 1.25; an axis whose best
point is at an end is extended) finds the highest point; damped modified Newton steps with
central differences then climb to the mode. The difference step follows the current estimate
of the posterior sd (1/10 of it), so a peak with sd 0.005 in :math:`\log\tau` (:math:`k = 10^6`)
is found from a scan point 50 sds away as reliably as a wide one: the log-density is smooth
and, for these models, unimodal along the Newton path; a second mode the scan sees outside
the final box is refused (:func:`check_scan_inside`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bambi_meta.engine.exact.quadrature import refuse, tensor

if TYPE_CHECKING:
    from bambi_meta.engine.exact.quadrature import Lattice

__all__ = ["Scan", "check_scan_inside", "find_mode", "scan"]


@dataclass(frozen=True)
class Scan:
    """A tensor scan of the log-density: its points (n, d), values (n,) and the best point."""

    points: np.ndarray
    values: np.ndarray
    best: np.ndarray


def scan(
    log_density: Callable[[np.ndarray], np.ndarray], axes: list[np.ndarray], step: np.ndarray
) -> Scan:
    """Tensor scan; an axis whose best value is at an end of its range is extended."""
    axes = [a.copy() for a in axes]
    for _ in range(8):
        points = tensor(axes)
        vals = log_density(points).reshape([len(a) for a in axes])
        if not np.isfinite(vals).any():
            raise refuse("the log posterior is -inf or nan at every point of the initial scan")
        best = np.unravel_index(int(np.argmax(vals)), vals.shape)
        grow = False
        for a, i in enumerate(best):
            n = len(axes[a])
            if i in (0, n - 1):
                extra = axes[a][-1] + step[a] * np.arange(1, n // 2 + 1)
                if i == 0:
                    extra = axes[a][0] - step[a] * np.arange(n // 2, 0, -1)
                axes[a] = np.sort(np.concatenate([axes[a], extra]))
                grow = True
        if not grow:
            top = np.array([axes[a][i] for a, i in enumerate(best)])
            return Scan(points, vals.ravel(), top)
    raise refuse("the scan for the posterior mode kept running off its range")


def check_scan_inside(lattice: Lattice, found: Scan, drop: float = 20.0) -> None:
    """No scan point outside the final box may come within ``drop`` of the grid's maximum.

    The grid is built around one mode; a second mode (or mass the box search missed) shows
    up at the coarse scan's points: refuse rather than return a wrong posterior.
    """
    t_axes = lattice.t_axes()
    c, scale = lattice.smap.center, lattice.smap.scale
    lo = c + scale * np.sinh([t[0] for t in t_axes])
    hi = c + scale * np.sinh([t[-1] for t in t_axes])
    outside = ((found.points < lo) | (found.points > hi)).any(axis=1)
    if not outside.any():
        return
    log_f = lattice.log.copy()  # density in u: the log-Jacobian of the sinh map is separable
    for a, t in enumerate(t_axes):
        shape = [1] * log_f.ndim
        shape[a] = -1
        log_f -= (np.log(scale[a]) + np.log(np.cosh(t))).reshape(shape)
    top = log_f.max()
    worst = found.values[outside].max()
    if worst > top - drop:
        where = found.points[outside][int(np.argmax(found.values[outside]))]
        raise refuse(
            f"the coarse scan has log density {worst - top:.1f} relative to the grid's maximum "
            f"at u = {np.round(where, 3).tolist()}, outside the quadrature box: a second mode "
            "(the posterior is multimodal)"
        )


def _derivatives(f0: float, fv: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian from a 3^d stencil of central differences (values ``fv``)."""
    d = len(h)
    fv = fv.reshape((3,) * d)
    g, H = np.empty(d), np.empty((d, d))
    for a in range(d):
        idx = [1] * d
        idx[a] = 2
        up = fv[tuple(idx)]
        idx[a] = 0
        down = fv[tuple(idx)]
        g[a] = (up - down) / (2 * h[a])
        H[a, a] = (up - 2 * f0 + down) / h[a] ** 2
    if d == 2:
        H[0, 1] = H[1, 0] = (fv[2, 2] - fv[2, 0] - fv[0, 2] + fv[0, 0]) / (4 * h[0] * h[1])
    return g, H


def _laplace_sd(H: np.ndarray) -> np.ndarray | None:
    try:
        np.linalg.cholesky(-H)
    except np.linalg.LinAlgError:
        return None
    return np.sqrt(np.diag(np.linalg.inv(-H)))


def find_mode(
    log_density: Callable[[np.ndarray], np.ndarray], start: np.ndarray, width: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mode (damped modified Newton, finite differences) and Laplace sds of a log-density.

    ``width`` is a first guess of the sds (the scan step). Each iteration evaluates, in one
    batch, the 3^d difference stencils around four damped Newton candidates (steps 1, 1/2,
    1/4, 1/8) and moves to the best candidate, whose stencil gives the next gradient and
    Hessian. The difference step is 1/10 of the current sd estimate, so a posterior with sd
    0.005 in log tau (k = 10^6) is resolved as well as one with sd 1. Returns the mode, the
    Laplace sds (at the mode, from a Hessian with a matched step) and the evaluation count.
    """
    d = len(start)
    offsets = tensor([np.array([-1.0, 0.0, 1.0])] * d)
    center = int(np.flatnonzero((offsets == 0).all(axis=1))[0])
    damping = 0.5 ** np.arange(4)
    x, sd, evals = start.astype(float), width.astype(float), 0
    h = np.clip(0.1 * sd, 1e-7, 0.1)
    fv = log_density(x + offsets * h)
    evals += len(fv)
    for _ in range(100):
        g, H = _derivatives(fv[center], fv, h)
        new_sd = _laplace_sd(H)
        if new_sd is not None:
            sd = new_sd
        lam, vec = np.linalg.eigh(-H)
        lam = np.maximum(np.abs(lam), 1e-8 * np.abs(lam).max() + 1e-300)
        step = vec @ ((vec.T @ g) / lam)  # Newton step, negative curvature flipped
        step *= min(1.0, 4.0 / max(np.abs(step).max(), 1e-300))  # at most 4 units of u
        h = np.clip(0.1 * sd, 1e-7, 0.1)
        candidates = x + damping[:, None] * step
        vals = log_density((candidates[:, None, :] + offsets * h).reshape(-1, d))
        vals = vals.reshape(len(damping), len(offsets))
        evals += vals.size
        best = int(np.argmax(vals[:, center]))
        moved = vals[best, center] > fv[center]
        if moved:
            x = candidates[best]
        fv = vals[best]  # the stencil at x (same point when not moved, new step h)
        if not moved or (np.abs(damping[best] * step) < 1e-4 * sd).all():
            break
    g, H = _derivatives(fv[center], fv, h)
    sd_mode = _laplace_sd(H)
    if sd_mode is None:  # not concave at the mode: the curvatures, else the last estimate
        curv = -np.diag(H)
        sd_mode = np.where(curv > 0, 1.0 / np.sqrt(np.maximum(curv, 1e-300)), sd)
    ok = np.isfinite(sd_mode) & (sd_mode > 0)
    return x, np.where(ok, sd_mode, width), evals
