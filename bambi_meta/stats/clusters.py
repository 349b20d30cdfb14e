r"""The compound-symmetric algebra on NumPy arrays of posterior draws.

Leading axes are draws, the last axis the rows (estimates). With :math:`d_i = v_i +
\tau_i^2(1-\rho_i)`, :math:`b_i = \tau_i\sqrt{\rho_i}` and :math:`r = y - \mu`, the rows of
cluster :math:`j` are jointly normal with covariance :math:`D_j + bb^\top`; with the cluster sums
:math:`S_{bb} = \sum b_i^2/d_i`, :math:`S_{br} = \sum b_i r_i/d_i`, :math:`S_{rr} = \sum r_i^2/d_i`,

.. math::

    \log p(y_j) = -\tfrac12\left[n_j\log 2\pi + \sum\log d_i + \log(1+S_{bb}) + S_{rr}
    - \frac{S_{br}^2}{1+S_{bb}}\right].

These give pointwise log-likelihoods and the exact conditional distributions of the effects
(:mod:`bambi_meta.stats.conditional`). Segment sums over clusters are one sparse product.
"""

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class ClusterStatistics:
    """Sherman-Morrison sums of every cluster, per draw.

    Attributes
    ----------
    within : numpy.ndarray (..., k)
        d_i = v_i + tau_i^2 (1 - rho_i).
    between : numpy.ndarray (..., k)
        b_i = tau_i sqrt(rho_i).
    s_bb, s_br, s_rr : numpy.ndarray (..., n_clusters)
        Cluster sums of b^2/d, b r/d and r^2/d.
    """

    within: np.ndarray
    between: np.ndarray
    s_bb: np.ndarray
    s_br: np.ndarray
    s_rr: np.ndarray


def cluster_indicator(clusters: np.ndarray, n_clusters: int) -> sp.csr_matrix:
    """Sparse (k, n_clusters) membership matrix: segment sums as one sparse product."""
    clusters = np.asarray(clusters)
    rows = np.arange(clusters.size)
    return sp.csr_matrix(
        (np.ones(clusters.size), (rows, clusters)), shape=(clusters.size, n_clusters)
    )


def segment_sum(values: np.ndarray, indicator: sp.csr_matrix) -> np.ndarray:
    """Sum the last axis of ``values`` within clusters."""
    flat = values.reshape(-1, values.shape[-1])
    return np.asarray(flat @ indicator).reshape(*values.shape[:-1], indicator.shape[1])


def cluster_mean(values: np.ndarray, indicator, sizes: np.ndarray) -> np.ndarray:
    """Mean of the last axis of ``values`` within clusters (``sizes``: rows per cluster)."""
    values = np.broadcast_to(values, (*values.shape[:-1], indicator.shape[0]))
    flat = values.reshape(-1, values.shape[-1])
    return (np.asarray(flat @ indicator) / sizes).reshape(*values.shape[:-1], indicator.shape[1])


def cluster_statistics(residual, tau, rho, variances, indicator) -> ClusterStatistics:
    """Compute :class:`ClusterStatistics` for residuals ``y - mu`` (arrays broadcast)."""
    residual = np.asarray(residual, dtype=float)
    tau2 = np.square(tau)
    within = variances + tau2 * (1.0 - rho)
    between = np.broadcast_to(np.sqrt(tau2 * rho), residual.shape)
    within = np.broadcast_to(within, residual.shape)
    return ClusterStatistics(
        within=within,
        between=between,
        s_bb=segment_sum(between**2 / within, indicator),
        s_br=segment_sum(between * residual / within, indicator),
        s_rr=segment_sum(residual**2 / within, indicator),
    )


def cluster_loglik(stats: ClusterStatistics, indicator: sp.csr_matrix) -> np.ndarray:
    """Exact joint log-density of each cluster's rows, shape (..., n_clusters)."""
    sizes = np.asarray(indicator.sum(axis=0)).ravel()
    log_det = segment_sum(np.log(stats.within), indicator) + np.log1p(stats.s_bb)
    quadratic = stats.s_rr - stats.s_br**2 / (1.0 + stats.s_bb)
    return -0.5 * (sizes * LOG_2PI + log_det + quadratic)


def grouped_loglik(
    residual, tau, rho, variances, clusters: np.ndarray | None, groups: np.ndarray, n_groups: int
) -> np.ndarray:
    r"""Log-density of each group of rows given all the other rows, shape (..., n_groups).

    Rows of different clusters are independent given the parameters, so for a group :math:`g`

    .. math::

        \log p(y_g \mid y_{-g}) = \sum_j \left[\log p(y_{C_j}) - \log p(y_{C_j \setminus g})\right],

    the sum over the clusters :math:`C_j` that ``g`` touches. Each term is the closed form of
    :func:`cluster_loglik` on a subset of a cluster (the marginal of a subset of a
    compound-symmetric block has the same form), from additive sums over its rows. A group
    made of whole clusters gives their joint density (leave-one-cluster-out); one row per
    group gives each row's density given the rest of its cluster (leave-one-out).

    Parameters
    ----------
    residual : numpy.ndarray (..., k)
        y - mu per draw.
    tau, rho : numpy.ndarray, broadcastable to ``residual``
        Heterogeneity SD and cluster share (``rho`` unused without clusters).
    variances : numpy.ndarray (k,)
        Known sampling variances.
    clusters : numpy.ndarray of int (k,) or None
        Cluster codes 0..J-1; ``None`` without a cluster level (rows independent).
    groups : numpy.ndarray of int (k,)
        Group codes 0..n_groups-1.
    n_groups : int
        Number of groups.

    Returns
    -------
    numpy.ndarray (..., n_groups)
    """
    residual = np.asarray(residual, dtype=float)
    group_indicator = cluster_indicator(groups, n_groups)
    tau2 = np.square(tau)
    if clusters is None:
        total = variances + tau2
        rows = -0.5 * (LOG_2PI + np.log(total) + residual**2 / total)
        return segment_sum(np.broadcast_to(rows, residual.shape), group_indicator)
    within = np.broadcast_to(variances + tau2 * (1.0 - rho), residual.shape)
    between = np.broadcast_to(np.sqrt(tau2 * rho), residual.shape)
    per_row = np.stack(
        [
            np.broadcast_to(1.0, residual.shape),
            np.log(within),
            between**2 / within,
            between * residual / within,
            residual**2 / within,
        ]
    )
    pairs, pair_codes = np.unique(
        np.asarray(clusters, dtype=np.int64) * n_groups + groups, return_inverse=True
    )
    pair_cluster, pair_group = np.divmod(pairs, n_groups)
    pair_sums = segment_sum(per_row, cluster_indicator(pair_codes, len(pairs)))
    cluster_sums = segment_sum(per_row, cluster_indicator(clusters, int(clusters.max()) + 1))
    whole = _subset_loglik(cluster_sums[..., pair_cluster])
    rest = _subset_loglik(cluster_sums[..., pair_cluster] - pair_sums)
    return segment_sum(whole - rest, cluster_indicator(pair_group, n_groups))


def _subset_loglik(sums: np.ndarray) -> np.ndarray:
    """Joint log-density of a set of rows of one cluster from its sums (n, log d, bb, br, rr)."""
    n, log_d, s_bb, s_br, s_rr = sums
    return -0.5 * (n * LOG_2PI + log_d + np.log1p(s_bb) + s_rr - s_br**2 / (1.0 + s_bb))


def estimate_loglik(residual, stats: ClusterStatistics, clusters: np.ndarray) -> np.ndarray:
    """Log-density of each row given the other rows of its cluster, shape (..., k).

    With the row removed, the standardised cluster effect z_j has the conditional distribution
    N(S'_br / (1 + S'_bb), 1 / (1 + S'_bb)); then y_i ~ N(mu_i + b_i E[z], d_i + b_i^2 Var[z]).
    """
    b, d = stats.between, stats.within
    s_bb_rest = stats.s_bb[..., clusters] - b**2 / d
    s_br_rest = stats.s_br[..., clusters] - b * residual / d
    mean = b * s_br_rest / (1.0 + s_bb_rest)
    variance = d + b**2 / (1.0 + s_bb_rest)
    return -0.5 * (LOG_2PI + np.log(variance) + (residual - mean) ** 2 / variance)
