r"""Priors on :math:`\tau` and :math:`\rho`: supports, maps to the real line, log-densities there.

A free parameter with support :math:`(a, b)` is integrated over :math:`u \in \mathbb R`:

.. math::

    x = a + e^u \ (b = \infty), \qquad x = a + (b - a)\,\mathrm{expit}(u) \ (b < \infty),

so :math:`u = \log\tau` for a prior on :math:`(0, \infty)`, :math:`u = \mathrm{logit}\,\rho` on
:math:`(0, 1)`, and a bounded support such as Uniform(0, 2) on :math:`\tau` is mapped whole:
the integrand stays smooth and decays at both ends instead of jumping to 0 at the edge, which
the trapezoid rule could not integrate to high accuracy. The support of a prior given as a
log-density callable is found by evaluating it (-inf or nan means outside) and bisecting its
edges to the last representable point inside.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = [
    "Axis",
    "BetaPrior",
    "HalfNormalPrior",
    "detect_support",
    "from_real_line",
    "log_expit_pair",
]

LogDensity = Callable[[np.ndarray], np.ndarray]


def log_expit_pair(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`\log\mathrm{expit}(u)` and :math:`\log\mathrm{expit}(-u)`, accurate for any u.

    :math:`\log\mathrm{expit}(\pm u) = \min(\pm u, 0) - \log(1 + e^{-|u|})` (one exp, one
    log1p for both).
    """
    common = np.log1p(np.exp(-np.abs(u)))
    return np.minimum(u, 0.0) - common, np.minimum(-u, 0.0) - common


@dataclass(frozen=True)
class HalfNormalPrior:
    r"""HalfNormal(:math:`\sigma`) on :math:`\tau`.

    .. math::

        \log p(\tau) = \tfrac12\log\tfrac2\pi - \log\sigma - \tfrac{\tau^2}{2\sigma^2},
        \quad \tau \ge 0.
    """

    sigma: float

    def __call__(self, tau: np.ndarray) -> np.ndarray:
        """Log-density at ``tau`` (-inf for tau < 0)."""
        tau = np.asarray(tau, dtype=float)
        val = 0.5 * math.log(2.0 / math.pi) - math.log(self.sigma) - 0.5 * (tau / self.sigma) ** 2
        return np.where(tau >= 0.0, val, -np.inf)


@dataclass(frozen=True)
class BetaPrior:
    r"""Beta(:math:`a, b`) on :math:`\rho`, also evaluated in :math:`u = \mathrm{logit}\,\rho`.

    On :math:`u` the log-density of :math:`\rho` plus the log-Jacobian is
    :math:`a\log\mathrm{expit}(u) + b\log\mathrm{expit}(-u) - \log B(a, b)`, accurate for any
    :math:`u`; a callable of :math:`\rho` cannot be, because :math:`1 - \rho` is lost to
    rounding once :math:`u > 37`, where Beta(0.3, 0.3) still has :math:`e^{-11}` of its density.
    """

    a: float
    b: float

    def __call__(self, rho: np.ndarray) -> np.ndarray:
        """Log-density at ``rho`` (-inf outside [0, 1])."""
        rho = np.asarray(rho, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            val = special.xlogy(self.a - 1, rho) + special.xlog1py(self.b - 1, -rho)
        inside = (rho >= 0.0) & (rho <= 1.0)
        return np.where(inside, val - special.betaln(self.a, self.b), -np.inf)

    def logit_log_density(self, u: np.ndarray) -> np.ndarray:
        """Log-density of ``u = logit(rho)`` (prior times Jacobian rho (1 - rho))."""
        log_r, log_1m = log_expit_pair(u)
        return self.a * log_r + self.b * log_1m - special.betaln(self.a, self.b)


def _inside(log_prior: LogDensity, x: np.ndarray, name: str) -> np.ndarray:
    """Where the prior's log-density is finite; checks the callable's output."""
    out = np.asarray(log_prior(x), dtype=float)
    if out.shape != x.shape:
        raise ValueError(
            f"the prior on '{name}' must be a vectorised log-density: an array of shape "
            f"{x.shape} in, the same shape out; got shape {out.shape}."
        )
    return np.isfinite(out)


def _edge(log_prior: LogDensity, inside: float, outside: float, name: str) -> float:
    """Last point inside the support between ``inside`` and ``outside`` (bisection, 32-way)."""
    while True:
        pts = np.linspace(inside, outside, 34)[1:-1]
        ok = _inside(log_prior, pts, name)
        if ok.all():
            new_inside, new_outside = pts[-1], outside
        else:
            j = int(np.argmin(ok))
            new_inside, new_outside = (pts[j - 1] if j else inside), pts[j]
        if (new_inside, new_outside) == (inside, outside):
            return inside
        inside, outside = new_inside, new_outside


def detect_support(
    log_prior: LogDensity, name: str, probe: np.ndarray, domain: tuple[float, float]
) -> tuple[float, float]:
    """Support of a prior within ``domain`` from its values at increasing ``probe`` points.

    Ends of the probe with a finite log-density count as reaching the domain's end; otherwise
    the edge is bisected to the last representable point inside. The finite points must form
    one run (the engine integrates over one interval).
    """
    ok = _inside(log_prior, probe, name)
    if not ok.any():
        raise ValueError(
            f"the prior on '{name}' has no finite log-density at {probe.min():.3g} ... "
            f"{probe.max():.3g}; it must be a proper density on {domain}."
        )
    run = np.flatnonzero(ok)
    if run[-1] - run[0] + 1 != len(run):
        gap = probe[run[0] + int(np.argmin(ok[run[0] :]))]
        raise ValueError(
            f"the prior on '{name}' must be positive on one interval; its log-density is not "
            f"finite at {gap:.6g}, between points where it is."
        )
    lower = domain[0] if run[0] == 0 else _edge(log_prior, probe[run[0]], probe[run[0] - 1], name)
    last = len(probe) - 1
    upper = (
        domain[1] if run[-1] == last else _edge(log_prior, probe[run[-1]], probe[run[-1] + 1], name)
    )
    return float(lower), float(upper)


def from_real_line(u: np.ndarray, lower: float, upper: float) -> np.ndarray:
    r"""The map from :math:`u \in \mathbb R` onto the support ``(lower, upper)``."""
    if math.isinf(upper):
        return lower + np.exp(np.minimum(u, 709.0))  # e^709 ~ 8e307: no overflow warning
    return lower + (upper - lower) * special.expit(u)


@dataclass(frozen=True)
class Axis:
    r"""A free parameter on its support ``(lower, upper)``, integrated over :math:`u \in \mathbb R`.

    Attributes
    ----------
    name : str
        ``"tau"`` or ``"rho"``.
    lower, upper : float
        Support of the prior (``upper = inf``: the log map, else the scaled logit map).
    log_prior : callable or BetaPrior
        Vectorised log-density on the natural scale.
    """

    name: str
    lower: float
    upper: float
    log_prior: LogDensity

    @property
    def kind(self) -> str:
        """``"log"`` (upper = inf) or ``"logit"``."""
        return "log" if math.isinf(self.upper) else "logit"

    def value(self, u: np.ndarray) -> np.ndarray:
        """The parameter at ``u``."""
        return from_real_line(u, self.lower, self.upper)

    def to_u(self, x: np.ndarray) -> np.ndarray:
        """The inverse map (x strictly inside the support)."""
        if self.kind == "log":
            return np.log(x - self.lower)
        return special.logit((x - self.lower) / (self.upper - self.lower))

    def log_density(self, u: np.ndarray) -> np.ndarray:
        r"""Log prior density of :math:`u`: :math:`\log p(x(u)) + \log|dx/du|`.

        The Jacobian is exact for any :math:`u`; the callable gets :math:`x(u)`, which rounds
        onto an end of the support once :math:`|u| > 37` (logit) and is evaluated there: fine
        for a density that is finite at its edge (Uniform), -inf for one that is not (Beta
        with a shape below 1): the quadrature's box search then checks that no mass is lost.
        """
        u = np.asarray(u, dtype=float)
        if isinstance(self.log_prior, BetaPrior) and (self.lower, self.upper) == (0.0, 1.0):
            return self.log_prior.logit_log_density(u)
        x = self.value(u)
        if self.kind == "log":
            log_jac = u
        else:
            log_r, log_1m = log_expit_pair(u)
            log_jac = math.log(self.upper - self.lower) + log_r + log_1m
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            val = np.asarray(self.log_prior(x), dtype=float) + log_jac
        return np.where(np.isfinite(val), val, -np.inf)
