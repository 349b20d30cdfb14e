r"""The model given :math:`(\tau, \rho)`: validated data, rows sorted by cluster, Gaussian algebra.

Given :math:`(\tau, \rho)` the data are Gaussian with :math:`\beta` integrated out:
:math:`y \sim N(Xm,\ V + XSX^\top)`, and :math:`\beta \mid \tau, \rho, y \sim N(m + h, A^{-1})`
with :math:`A = S^{-1} + X^\top V^{-1}X`, :math:`h = A^{-1}X^\top V^{-1}(y - Xm)`
(:mod:`bambi_meta.engine.exact.kernel` has the algebra). A coefficient with
:math:`s_c = \infty` has a flat prior: its :math:`S^{-1}` entry is 0 and :math:`\log p(y)` is
then defined with the flat density 1 (Lebesgue measure), i.e. it drops
:math:`\log(s_c\sqrt{2\pi})`: improper, comparable only between models with the same flat
coefficients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from bambi_meta import _validate
from bambi_meta.engine.exact import kernel as exact_kernel

__all__ = ["ConditionalGaussian", "GaussianModel", "cluster_codes", "prepare"]

_CHUNK = 65536  # points per kernel call: memory ~ _CHUNK * (q^2 + p^2 + 4) doubles


@dataclass(frozen=True)
class ConditionalGaussian:
    r"""Per point: :math:`\log p(y \mid \tau, \rho)` and :math:`\beta \mid \tau, \rho, y`.

    Attributes
    ----------
    log_lik : numpy.ndarray, shape (n,)
        :math:`\log p(y \mid \tau, \rho)`, :math:`\beta` integrated out.
    mean : numpy.ndarray, shape (n, p)
        :math:`m + h`.
    factor : numpy.ndarray, shape (n, p, p)
        Lower Cholesky factor :math:`L` of the precision :math:`A = LL^\top`.
    """

    log_lik: np.ndarray
    mean: np.ndarray
    factor: np.ndarray

    def covariance(self) -> np.ndarray:
        r""":math:`A^{-1}` per point, shape (n, p, p)."""
        return exact_kernel.conditional_covariance(self.factor)


@dataclass(frozen=True, eq=False)
class GaussianModel:
    """Validated data with rows sorted by cluster (see :func:`prepare`)."""

    variances: np.ndarray  # (k,) sorted by cluster
    design: np.ndarray  # (k, q): [y - X m, X], sorted by cluster, C-contiguous
    starts: np.ndarray  # (n_clusters + 1,) row offsets
    prior_mean: np.ndarray  # (p,)
    precision: np.ndarray  # (p,) 1 / s^2, 0 for flat priors
    constant: float  # (k - p_flat) log 2 pi + sum log s^2 (finite s)
    n_clusters: int  # 0 without clusters
    improper: bool  # some coefficient has a flat prior

    @property
    def k(self) -> int:
        """Number of rows."""
        return self.variances.shape[0]

    @property
    def p(self) -> int:
        """Number of coefficients."""
        return self.prior_mean.shape[0]

    def conditional(self, tau: np.ndarray, rho: np.ndarray) -> ConditionalGaussian:
        r"""The Gaussian algebra at points :math:`(\tau_g, \rho_g)`, in chunks of 65,536.

        ``rho`` is ignored (0) without clusters. Points must have finite ``tau >= 0`` and
        ``0 <= rho <= 1``.
        """
        tau2 = np.square(np.asarray(tau, dtype=float))
        rho = np.asarray(rho, dtype=float)
        within, between = tau2 * (1.0 - rho), tau2 * rho
        parts = []
        for start in range(0, max(len(tau2), 1), _CHUNK):
            part = slice(start, start + _CHUNK)
            log_det, cross = exact_kernel.gaussian_sums(
                self.variances,
                self.design,
                self.starts,
                np.ascontiguousarray(within[part]),
                np.ascontiguousarray(between[part]),
                self.n_clusters > 0,
            )
            parts.append(
                exact_kernel.gaussian_conditional(log_det, cross, self.precision, self.constant)
            )
        if len(parts) > 1:
            parts = [tuple(np.concatenate(a) for a in zip(*parts, strict=True))]
        log_lik, shift, factor = parts[0]
        return ConditionalGaussian(log_lik, self.prior_mean + shift, factor)

    def draw_beta(self, tau, rho, normals: np.ndarray) -> np.ndarray:
        r"""Exact draws :math:`\beta_g \sim N(m + h_g, A_g^{-1})`, one per point (chunked)."""
        out = np.empty((len(tau), self.p))
        for start in range(0, len(tau), _CHUNK):
            part = slice(start, start + _CHUNK)
            cond = self.conditional(tau[part], rho[part])
            out[part] = exact_kernel.conditional_draws(cond.mean, cond.factor, normals[part])
        return out


def cluster_codes(cluster: Any, k: int) -> tuple[np.ndarray, int]:
    """Integer codes 0..n-1 of the labels (any hashable, sortable dtype)."""
    labels = np.asarray(cluster)
    if labels.ndim != 1 or labels.shape[0] != k:
        raise ValueError(f"'cluster' must be 1-D of length {k}; got shape {labels.shape}.")
    if labels.dtype.kind == "f":
        missing = np.isnan(labels)
    elif labels.dtype.kind == "O":
        missing = np.array([x is None or (isinstance(x, float) and math.isnan(x)) for x in labels])
    else:
        missing = np.zeros(k, dtype=bool)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise ValueError(f"'cluster' must not be missing; row {i + 1} has {labels[i]!r}.")
    try:
        uniques, codes = np.unique(labels, return_inverse=True)
    except TypeError:  # mixed types: compare as strings of type and value
        uniques, codes = np.unique(
            [f"{type(x).__name__}:{x!r}" for x in labels], return_inverse=True
        )
    return codes.astype(np.int64), len(uniques)


def check_arrays(yi, vi, X, beta_mean, beta_sd, flat_allowed: bool = True) -> tuple:
    """Validated ``(y, v, X, m, s)``: effect sizes, variances, design and coefficient priors.

    Errors name the argument and the first bad row (from 1). ``beta_sd = inf`` (a flat prior)
    is allowed unless ``flat_allowed`` is False (a marginal likelihood needs proper priors).
    """
    y = _validate.finite_vector(yi, "yi")
    k = y.shape[0]
    if k == 0:
        raise ValueError("'yi' must have at least one row; got 0.")
    v = _validate.finite_vector(vi, "vi", k, positive=True)
    Xa = np.ones((k, 1)) if X is None else np.asarray(X, dtype=float)
    Xa = Xa[:, None] if Xa.ndim == 1 else Xa
    if Xa.ndim != 2 or Xa.shape[0] != k:
        raise ValueError(f"'X' must have shape ({k}, p), one row per estimate; got {Xa.shape}.")
    bad = ~np.isfinite(Xa).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"'X' must be finite; row {i + 1} has {Xa[i].tolist()}.")
    p = Xa.shape[1]
    columns = "the columns of 'X'"
    m = _validate.finite_vector(_per_column(beta_mean, p), "beta_mean", p, length_of=columns)
    s = _validate.finite_vector(
        _per_column(beta_sd, p),
        "beta_sd",
        p,
        positive=True,
        infinite_allowed=flat_allowed,
        length_of=columns,
    )
    return y, v, Xa, m, s


def _per_column(value: Any, p: int):
    """A scalar repeated for each of the p columns; anything else as given (checked after)."""
    return np.full(p, value, dtype=object) if np.ndim(value) == 0 else value


def prepare(yi, vi, X, cluster, beta_mean, beta_sd) -> GaussianModel:
    """Validate the data and priors on the coefficients; sort rows by cluster once.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Effect sizes and their known sampling variances (> 0).
    X : array_like, shape (k, p), or None
        Design in the parametrisation the priors act on; None: intercept only; p may be 0.
    cluster : array_like, shape (k,), or None
        Cluster labels; None: no cluster level.
    beta_mean, beta_sd : float or array_like, shape (p,)
        Independent normal priors; ``beta_sd = inf`` is a flat prior on that coefficient.

    Returns
    -------
    GaussianModel
    """
    y, v, Xa, m, s = check_arrays(yi, vi, X, beta_mean, beta_sd)
    k = y.shape[0]
    if cluster is None:
        order, starts, n_clusters = np.arange(k), np.array([0, k], dtype=np.int64), 0
    else:
        codes, n_clusters = cluster_codes(cluster, k)
        order = np.argsort(codes, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=n_clusters))])
    flat = np.isinf(s)
    design = np.column_stack([y - Xa @ np.where(flat, 0.0, m), Xa])[order]
    constant = (k - flat.sum()) * exact_kernel.LOG_2PI + 2.0 * np.log(s[~flat]).sum()
    return GaussianModel(
        variances=np.ascontiguousarray(v[order]),
        design=np.ascontiguousarray(design),
        starts=starts.astype(np.int64),
        prior_mean=np.where(flat, 0.0, m),
        precision=np.where(flat, 0.0, 1.0 / np.square(s)),
        constant=float(constant),
        n_clusters=n_clusters,
        improper=bool(flat.any()),
    )
