r"""Gaussian algebra of the three-level model at many :math:`(\tau, \rho)` points (numba).

Row :math:`i` of cluster :math:`j`: :math:`y_i = X_i\beta + u_j + e_i + \varepsilon_i` with
:math:`u_j \sim N(0, \tau^2\rho)`, :math:`e_i \sim N(0, \tau^2(1-\rho))`,
:math:`\varepsilon_i \sim N(0, v_i)`, and :math:`\beta \sim N(m, \mathrm{diag}(s^2))`. Given a
point :math:`(\tau^2(1-\rho), \tau^2\rho) = (\omega, \gamma)` the rows of cluster :math:`j` have
covariance :math:`V_j = D_j + \gamma\,\mathbf 1\mathbf 1^\top`, :math:`d_i = v_i + \omega`.
With :math:`Z = [y - Xm,\ X]` (:math:`q = p + 1` columns), one pass over the rows sorted by
cluster gives, for every point at once,

.. math::

    \log|V| = \sum_i \log d_i + \sum_j \log(1 + \gamma W_j),\qquad
    M = Z^\top V^{-1} Z = \sum_j \Big[\sum_{i \in j} w_i z_i z_i^\top
        - \frac{\gamma}{1 + \gamma W_j} C_j C_j^\top\Big],

:math:`w_i = 1/d_i`, :math:`W_j = \sum_{i\in j} w_i`, :math:`C_j = \sum_{i \in j} w_i z_i`
(Sherman-Morrison per cluster). The cluster term is accumulated in the cancellation-free form
:math:`S_j + W_j \bar z_j \bar z_j^\top / (1 + \gamma W_j)` with the within-cluster scatter
:math:`S_j` taken about the cluster's first row, so a column that is constant in a cluster (the
intercept) contributes exactly :math:`W_j/(1 + \gamma W_j)` however large :math:`\gamma W_j`.
Then, per point, with :math:`A = S^{-1} + M_{xx}` (Woodbury),

.. math::

    \log p(y \mid \tau, \rho) = -\tfrac12\big[(k - p_\infty)\log 2\pi + \textstyle\sum_{s_c<\infty}
    \log s_c^2 + \log|V| + \log|A| + M_{00} - M_{0x} A^{-1} M_{x0}\big],

and :math:`\beta \mid \tau, \rho, y \sim N(m + A^{-1}M_{x0},\ A^{-1})`. The work is
:math:`O(k q^2)` per point and the memory :math:`O(\text{points}\cdot q^2 + k)`: points are
processed in blocks of :data:`BLOCK`, whose accumulators stay in the L1/L2 cache, and the loop
over a block's points is the innermost (SIMD) loop. Each point's arithmetic is the same in any
block, so results do not depend on how points are batched.
"""

import math

import numpy as np

from bambi_meta.engine._numba import njit as _njit

__all__ = [
    "BLOCK",
    "LOG_2PI",
    "conditional_covariance",
    "conditional_draws",
    "gaussian_conditional",
    "gaussian_sums",
]

LOG_2PI = math.log(2.0 * math.pi)
BLOCK = 128  # points per pass over the rows: 128 x (q(q+1)/2 + q + 6) doubles stay in L1/L2
_MAX_PRODUCT_RUN = 256  # factors per running product before its log is taken


@_njit
def gaussian_sums(variances, design, starts, within, between, clustered):
    r""":math:`\log|V|` and :math:`M = Z^\top V^{-1} Z` at many points, one pass per block.

    Parameters
    ----------
    variances : numpy.ndarray, shape (k,)
        Known sampling variances :math:`v_i`, rows sorted by cluster.
    design : numpy.ndarray, shape (k, q), C-contiguous
        :math:`Z = [y - Xm,\ X]`, rows sorted by cluster.
    starts : numpy.ndarray of int64, shape (n_clusters + 1,)
        Row offsets of the clusters (``[0, k]`` without clusters).
    within, between : numpy.ndarray, shape (n_points,)
        :math:`\omega = \tau^2(1-\rho) \ge 0` and :math:`\gamma = \tau^2\rho \ge 0`, finite.
    clustered : bool
        False: every :math:`\gamma` is ignored (treated as 0) and no cluster sums are formed.

    Returns
    -------
    log_det : numpy.ndarray, shape (n_points,)
    cross : numpy.ndarray, shape (n_points, q, q)
    """
    q = design.shape[1]
    n_points = within.shape[0]
    n_pairs = q * (q + 1) // 2
    first = np.empty(n_pairs, np.int64)
    second = np.empty(n_pairs, np.int64)
    pair = 0
    for a in range(q):
        for b in range(a, q):
            first[pair] = a
            second[pair] = b
            pair += 1
    largest = 1
    for j in range(starts.shape[0] - 1):
        largest = max(largest, starts[j + 1] - starts[j])
    log_det = np.empty(n_points)
    cross = np.empty((n_points, q, q))
    for start in range(0, n_points, BLOCK):
        stop = min(start + BLOCK, n_points)
        _block_sums(
            variances,
            design,
            starts,
            within[start:stop],
            between[start:stop],
            clustered,
            first,
            second,
            largest,
            log_det[start:stop],
            cross[start:stop],
        )
    return log_det, cross


@_njit
def _runs(variances, within, between, largest):
    r"""Factors per running product such that it stays within exp(+-600).

    Rows: :math:`d_i \in [\min v + \min\omega, \max v + \max\omega]`; clusters:
    :math:`1 \le 1 + \gamma W_j \le 1 + \max\gamma \cdot n_j / \min d`.
    """
    d_lo = variances.min() + within.min()
    d_hi = variances.max() + within.max()
    span = max(abs(math.log(d_lo)), abs(math.log(d_hi)), 1.0)
    rows = max(1, min(_MAX_PRODUCT_RUN, int(600.0 / span)))
    factor = max(math.log1p(between.max() * largest / d_lo), 1.0)
    clusters = max(1, min(_MAX_PRODUCT_RUN, int(600.0 / factor)))
    return rows, clusters


@_njit
def _block_sums(
    variances, design, starts, within, between, clustered, first, second, largest, log_det, cross
):
    """One pass over the rows for one block of points (see :func:`gaussian_sums`)."""
    n = within.shape[0]
    q = design.shape[1]
    n_pairs = first.shape[0]
    sums = np.zeros((n_pairs, n))  # sum_i w_i z~_i z~_i' (+ cluster terms), packed upper
    weight_sum = np.zeros(n)  # W_j
    weighted = np.zeros((q, n))  # C~_j = sum_i w_i z~_i
    weights = np.empty(n)
    inv_w = np.empty(n)
    inv_wf = np.empty(n)
    row_product = np.ones(n)  # running product of d_i (sum log d_i, one log per run)
    cluster_product = np.ones(n)  # running product of 1 + gamma W_j
    logs = np.zeros(n)
    ref = np.zeros(q)
    row = np.empty(q)
    rows_per_log, clusters_per_log = _runs(variances, within, between, largest)
    row_count = 0
    cluster_count = 0
    for j in range(starts.shape[0] - 1):
        lo, hi = starts[j], starts[j + 1]
        if clustered:
            for a in range(q):
                ref[a] = design[lo, a]
        for i in range(lo, hi):
            v = variances[i]
            for g in range(n):
                d = v + within[g]
                row_product[g] *= d
                weights[g] = 1.0 / d
            for a in range(q):
                row[a] = design[i, a] - ref[a]
            for pair in range(n_pairs):
                c = row[first[pair]] * row[second[pair]]
                target = sums[pair]
                for g in range(n):
                    target[g] += c * weights[g]
            if clustered:
                for g in range(n):
                    weight_sum[g] += weights[g]
                for a in range(q):
                    c = row[a]
                    target = weighted[a]
                    for g in range(n):
                        target[g] += c * weights[g]
            row_count += 1
            if row_count == rows_per_log:
                for g in range(n):
                    logs[g] += math.log(row_product[g])
                    row_product[g] = 1.0
                row_count = 0
        if clustered:
            for g in range(n):
                total = weight_sum[g]
                factor = 1.0 + between[g] * total
                cluster_product[g] *= factor
                inv_w[g] = 1.0 / total
                inv_wf[g] = 1.0 / (total * factor)
            for pair in range(n_pairs):
                a, b = first[pair], second[pair]
                ra, rb = ref[a], ref[b]
                target = sums[pair]
                for g in range(n):
                    ca, cb, total = weighted[a, g], weighted[b, g], weight_sum[g]
                    full = (ca + total * ra) * (cb + total * rb)
                    target[g] += full * inv_wf[g] - ca * cb * inv_w[g]
            weight_sum[:] = 0.0
            weighted[:, :] = 0.0
            cluster_count += 1
            if cluster_count == clusters_per_log:
                for g in range(n):
                    logs[g] += math.log(cluster_product[g])
                    cluster_product[g] = 1.0
                cluster_count = 0
    for g in range(n):
        log_det[g] = logs[g] + math.log(row_product[g]) + math.log(cluster_product[g])
        for pair in range(n_pairs):
            a, b = first[pair], second[pair]
            cross[g, a, b] = sums[pair, g]
            cross[g, b, a] = sums[pair, g]


@_njit
def _cholesky(matrix, out):
    """Lower Cholesky factor of a small SPD matrix into ``out``; False if not positive."""
    p = matrix.shape[0]
    for a in range(p):
        for b in range(a + 1):
            total = matrix[a, b]
            for c in range(b):
                total -= out[a, c] * out[b, c]
            if a == b:
                if not total > 0.0:
                    return False
                out[a, a] = math.sqrt(total)
            else:
                out[a, b] = total / out[b, b]
    return True


@_njit
def gaussian_conditional(log_det, cross, precision, constant):
    r"""Per point: :math:`\log p(y \mid \tau, \rho)`, :math:`h = A^{-1}M_{x0}`, :math:`L`.

    Parameters
    ----------
    log_det, cross : numpy.ndarray
        Output of :func:`gaussian_sums`.
    precision : numpy.ndarray, shape (p,)
        Prior precisions :math:`1/s_c^2` (0 for a flat prior).
    constant : float
        :math:`(k - p_\infty)\log 2\pi + \sum_{s_c < \infty} \log s_c^2`.

    Returns
    -------
    log_lik : numpy.ndarray, shape (n_points,)
        NaN where :math:`A` is not numerically positive definite.
    shift : numpy.ndarray, shape (n_points, p)
        :math:`h = A^{-1}M_{x0}`; the conditional mean of :math:`\beta` is :math:`m + h`.
    factor : numpy.ndarray, shape (n_points, p, p)
        Lower Cholesky factor :math:`L` of :math:`A = LL^\top`.
    """
    n_points, q = cross.shape[0], cross.shape[1]
    p = q - 1
    log_lik = np.empty(n_points)
    shift = np.zeros((n_points, p))
    factor = np.zeros((n_points, p, p))
    matrix = np.empty((p, p))
    temp = np.empty(p)
    for g in range(n_points):
        for a in range(p):
            for b in range(p):
                matrix[a, b] = cross[g, a + 1, b + 1]
            matrix[a, a] += precision[a]
        chol = factor[g]
        if not _cholesky(matrix, chol):
            log_lik[g] = np.nan
            continue
        log_det_a = 0.0
        for a in range(p):  # forward: L temp = M_x0
            total = cross[g, a + 1, 0]
            for c in range(a):
                total -= chol[a, c] * temp[c]
            temp[a] = total / chol[a, a]
            log_det_a += 2.0 * math.log(chol[a, a])
        quadratic = cross[g, 0, 0]
        for a in range(p):
            quadratic -= temp[a] * temp[a]  # M_0x A^-1 M_x0 = |L^-1 M_x0|^2
        for a in range(p - 1, -1, -1):  # backward: L' h = temp
            total = temp[a]
            for c in range(a + 1, p):
                total -= chol[c, a] * shift[g, c]
            shift[g, a] = total / chol[a, a]
        log_lik[g] = -0.5 * (constant + log_det[g] + log_det_a + quadratic)
    return log_lik, shift, factor


@_njit
def conditional_covariance(factor):
    r""":math:`A^{-1} = L^{-\top}L^{-1}` per point from the Cholesky factors, shape (n, p, p)."""
    n_points, p = factor.shape[0], factor.shape[1]
    out = np.empty((n_points, p, p))
    inverse = np.empty((p, p))
    for g in range(n_points):
        chol = factor[g]
        for b in range(p):  # columns of L^-1 (lower triangular)
            for a in range(p):
                if a < b:
                    inverse[a, b] = 0.0
                    continue
                total = 1.0 if a == b else 0.0
                for c in range(b, a):
                    total -= chol[a, c] * inverse[c, b]
                inverse[a, b] = total / chol[a, a]
        for a in range(p):
            for b in range(a + 1):
                total = 0.0
                for c in range(a, p):
                    total += inverse[c, a] * inverse[c, b]
                out[g, a, b] = total
                out[g, b, a] = total
    return out


@_njit
def conditional_draws(mean, factor, normals):
    r""":math:`\beta = \mu + L^{-\top}z` per point (:math:`\mathrm{Cov} = (LL^\top)^{-1}`)."""
    n_points, p = mean.shape
    out = np.empty((n_points, p))
    for g in range(n_points):
        chol = factor[g]
        for a in range(p - 1, -1, -1):
            total = normals[g, a]
            for c in range(a + 1, p):
                total -= chol[c, a] * (out[g, c] - mean[g, c])
            out[g, a] = mean[g, a] + total / chol[a, a]
    return out
