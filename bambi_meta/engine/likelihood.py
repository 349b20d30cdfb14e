r"""The closed-form marginal likelihood of the compound-symmetric meta-analytic model.

Row :math:`i` of cluster :math:`j` with known sampling variance :math:`v_i`:

.. math::

    y_i = \mu_i + u_j + e_i + \varepsilon_i, \quad
    u_j \sim N(0, \tau^2\rho), \quad e_i \sim N(0, \tau^2(1-\rho)), \quad
    \varepsilon_i \sim N(0, v_i).

Integrating :math:`u_j` and :math:`e_i` out, the rows of cluster :math:`j` are jointly normal
with covariance :math:`D_j + b b^\top`, :math:`d_i = v_i + \tau_i^2(1-\rho_i)`,
:math:`b_i = \tau_i\sqrt{\rho_i}`. With :math:`r = y - \mu` and sums over the cluster's rows,
:math:`S_{bb} = \sum b_i^2/d_i`, :math:`S_{br} = \sum b_i r_i/d_i`,
:math:`S_{rr} = \sum r_i^2/d_i`, Sherman-Morrison and the matrix determinant lemma give

.. math::

    \log p(y_j) = -\tfrac12\left[n_j\log 2\pi + \sum\log d_i + \log(1+S_{bb}) + S_{rr}
    - \frac{S_{br}^2}{1+S_{bb}}\right],

O(k) work in total. This PyTensor version feeds PyMC; :mod:`bambi_meta.stats.clusters` has the
same algebra on NumPy arrays of posterior draws.
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from bambi_meta import _upstream
from bambi_meta.engine.fused import clustered_logp_op
from bambi_meta.stats.clusters import LOG_2PI


# --------------------------------------------------------------------------------------------
# PyTensor: the log-density PyMC samples from
# --------------------------------------------------------------------------------------------
def marginal_logp(value, mu, tau, rho, variances, clusters, cluster_sizes):
    """Row-wise split of the marginal log-density (PyTensor).

    Each row gets its own Gaussian term plus an equal share of its cluster's Sherman-Morrison
    correction, so the terms add up to the exact joint log-density of every cluster. Use
    :func:`~bambi_meta.stats.clusters.cluster_loglik` or
    :func:`~bambi_meta.stats.clusters.estimate_loglik` for meaningful pointwise values.

    Parameters
    ----------
    value, mu : tensor of shape (k,)
        Observed effect sizes and their location (linear predictor).
    tau, rho : tensor, scalar or shape (k,)
        Total heterogeneity SD and cluster share of tau^2. ``rho`` is ``None`` for a model
        without clusters (then every row is its own cluster and the density is N(mu, v + tau^2)).
    variances : tensor of shape (k,)
        Known sampling variances.
    clusters : integer tensor of shape (k,)
        Cluster code of every row, 0 .. n_clusters - 1.
    cluster_sizes : tensor of shape (n_clusters,)
        Number of rows of each cluster.

    Returns
    -------
    tensor of shape (k,)
    """
    residual = value - mu
    tau2 = pt.square(tau)
    if rho is None:
        total = variances + tau2
        return -0.5 * (LOG_2PI + pt.log(total) + pt.square(residual) / total)
    within = variances + tau2 * (1.0 - rho)
    between_over_within = tau * pt.sqrt(rho) / within
    row_terms = -0.5 * (LOG_2PI + pt.log(within) + pt.square(residual) / within)
    s_bb = _segment_sum(pt.square(tau * pt.sqrt(rho)) / within, clusters, cluster_sizes)
    s_br = _segment_sum(between_over_within * residual, clusters, cluster_sizes)
    correction = -0.5 * (pt.log1p(s_bb) - pt.square(s_br) / (1.0 + s_bb))
    return row_terms + (correction / cluster_sizes)[clusters]


def clustered_logp(value, mu, tau, rho, variances, clusters, cluster_sizes, weights):
    """Total marginal log-density of the rows with weight 1 (PyTensor, a scalar).

    The same algebra as :func:`marginal_logp`, summed: each cluster's Sherman-Morrison correction
    enters once, so no per-row share (and no gather back to the rows) is needed. A row with
    weight 0 drops out of every sum, which is exactly the model fitted without that row; a
    cluster without rows contributes ``log1p(0) - 0 = 0``. This is how a compiled model is
    refitted to a subset of its rows (leave-one-cluster-out) without recompiling.

    Parameters
    ----------
    value, mu, tau, rho, variances, clusters, cluster_sizes
        As in :func:`marginal_logp` (``rho`` not ``None``).
    weights : tensor of shape (k,)
        1 for rows in the fit, 0 for rows left out.

    Returns
    -------
    scalar tensor
    """
    residual = value - mu
    within = variances + pt.square(tau) * (1.0 - rho)
    between = tau * pt.sqrt(rho)
    weighted_precision = weights / within
    row_terms = (LOG_2PI + pt.log(within)) * weights + pt.square(residual) * weighted_precision
    s_bb = _segment_sum(pt.square(between) * weighted_precision, clusters, cluster_sizes)
    s_br = _segment_sum(between * residual * weighted_precision, clusters, cluster_sizes)
    correction = pt.log1p(s_bb) - pt.square(s_br) / (1.0 + s_bb)
    return -0.5 * (row_terms.sum(axis=-1) + correction.sum(axis=-1))


def _segment_sum(values, clusters, cluster_sizes):
    """Sum ``values`` (broadcast to the rows) within each cluster."""
    values = pt.broadcast_to(values, clusters.shape)
    return pt.inc_subtensor(pt.zeros(cluster_sizes.shape, dtype=values.dtype)[clusters], values)


def marginal_random(mu, tau, rho, variances, clusters, cluster_sizes, rng=None, size=None):
    """Draw effect sizes from the marginal model (NumPy; PyMC's ``random`` for CustomDist)."""
    rng = np.random.default_rng(rng)
    mu, tau, variances = (np.asarray(x, dtype=float) for x in (mu, tau, variances))
    shape = tuple(size) if size is not None else np.broadcast_shapes(mu.shape, variances.shape)
    if rho is None:
        return mu + np.sqrt(variances + tau**2) * rng.standard_normal(shape)
    rho = np.asarray(rho, dtype=float)
    n_clusters = np.asarray(cluster_sizes).shape[-1]
    cluster_z = rng.standard_normal((*shape[:-1], n_clusters))
    between = tau * np.sqrt(rho) * cluster_z[..., np.asarray(clusters)]
    within_sd = np.sqrt(variances + tau**2 * (1.0 - rho))
    return mu + between + within_sd * rng.standard_normal(shape)


def meta_analytic_dist(
    name, mu, tau, rho=None, *, variances, clusters, n_clusters, observed=None, dims=None
):
    """The known-variance compound-symmetric likelihood as a PyMC ``CustomDist``.

    Without clusters (``rho=None``) the rows are independent, N(mu, v + tau^2), and the
    distribution is elementwise. With clusters the rows of a cluster are dependent, so the
    distribution is one vector-valued variable over all k rows (its log-density is a single
    number per draw); pointwise values for LOO come from ``MetaAnalyticFamily.log_likelihood``.

    The data enter as PyTensor shared variables named in ``DATA_NAMES`` (effect sizes,
    variances, cluster codes and sizes, row weights), so a compiled logp can be refitted to new
    data by swapping their values (see ``bambi_meta.engine.refit``) instead of recompiling.
    """
    _upstream.prepare_compile_cache()
    data = meta_shared_data(observed, variances, clusters, n_clusters)
    if rho is None:

        def logp(value, mu, tau, variances, weights):
            return marginal_logp(value, mu, tau, None, variances, None, None) * weights

        def random(mu, tau, variances, weights, rng=None, size=None):
            return marginal_random(mu, tau, None, variances, None, None, rng, size)

        return pm.CustomDist(
            name,
            mu,
            tau,
            data["variances"],
            data["weights"],
            logp=logp,
            random=random,
            observed=data["effect_sizes"],
            dims=dims,
            signature="(),(),(),()->()",
        )

    rows = data["variances"].shape[-1]
    # mu, tau and rho shared by all rows (scalars, or Bambi's length-1 mu of an intercept-only
    # model) enter the fused Op as scalars: broadcasting them to k-vectors would add k-length
    # temporaries to every gradient.
    mu, tau, rho = (_scalar_or_rows(param, rows) for param in (mu, tau, rho))
    core = "{},{},{},(k),(k),(j),(k)->(k)".format(
        *("()" if param.ndim == 0 else "(k)" for param in (mu, tau, rho))
    )

    def logp(value, mu, tau, rho, variances, clusters, sizes, weights):
        # The fused Op computes clustered_logp and its gradient in one compiled two-pass loop.
        return clustered_logp_op(value, mu, tau, rho, variances, clusters, sizes, weights)[0]

    def random(mu, tau, rho, variances, clusters, sizes, weights, rng=None, size=None):
        shape = (*(size or ()), np.shape(variances)[-1])
        return marginal_random(mu, tau, rho, variances, clusters, sizes, rng, shape)

    return pm.CustomDist(
        name,
        mu,
        tau,
        rho,
        data["variances"],
        data["clusters"],
        data["cluster_sizes"],
        data["weights"],
        logp=logp,
        random=random,
        observed=data["effect_sizes"],
        dims=dims,
        signature=core,
    )


def _scalar_or_rows(param, rows):
    """A scalar if ``param`` is shared by all rows, otherwise ``param`` broadcast to the rows."""
    param = pt.as_tensor_variable(param)
    if param.type.shape == (1,):
        return param[0]
    return param if param.ndim == 0 else pt.broadcast_to(param, (rows,))


# Names of the shared variables that hold a model's data (unique, so that nutpie's
# ``with_data`` and ``bambi_meta.engine.refit`` can find them).
DATA_NAMES = {
    "effect_sizes": "meta_effect_sizes",
    "variances": "meta_variances",
    "clusters": "meta_cluster_codes",
    "cluster_sizes": "meta_cluster_sizes",
    "weights": "meta_row_weights",
}


def meta_shared_data(observed, variances, clusters, n_clusters) -> dict:
    """The likelihood's data as named PyTensor shared variables (see ``DATA_NAMES``).

    ``observed`` may be ``None`` (a prior-predictive model); it is then left as ``None``.
    Without clusters only effect sizes, variances and weights are created.
    """
    variances = np.asarray(variances, dtype=float)
    values = {"variances": variances, "weights": np.ones_like(variances)}
    if observed is not None:
        values["effect_sizes"] = np.asarray(observed, dtype=float)
    if n_clusters is not None:
        codes = np.asarray(clusters, dtype="int64")
        values["clusters"] = codes
        values["cluster_sizes"] = np.bincount(codes, minlength=n_clusters).astype(float)
    shared = {key: pytensor.shared(value, name=DATA_NAMES[key]) for key, value in values.items()}
    shared.setdefault("effect_sizes", None)
    return shared
