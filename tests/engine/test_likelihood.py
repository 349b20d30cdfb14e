"""The closed-form marginal likelihood vs dense per-cluster multivariate normal densities (scipy).

Sherman-Morrison is exact algebra, so agreement is to floating-point precision (1e-9 relative).
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import CLUSTERS, MU, POINTS, VARIANCES, K, Y, dense_cluster_logps

import bambi_meta as bmm
from bambi_meta.engine.likelihood import marginal_logp
from bambi_meta.stats.clusters import (
    cluster_indicator,
    cluster_loglik,
    cluster_statistics,
    estimate_loglik,
)


@pytest.fixture(scope="module")
def compiled_logp():
    value, mu, tau, rho, variances = (pt.dvector(name) for name in "y mu tau rho v".split())
    clusters = pt.lvector("clusters")
    sizes = pt.dvector("sizes")
    out = marginal_logp(value, mu, tau, rho, variances, clusters, sizes).sum()
    return pytensor.function([value, mu, tau, rho, variances, clusters, sizes], out)


@pytest.mark.parametrize(("tau", "rho"), POINTS)
def test_pytensor_logp_equals_dense_mvn(compiled_logp, tau, rho):
    sizes = np.bincount(CLUSTERS).astype(float)
    tau_rows, rho_rows = np.broadcast_to(tau, K).copy(), np.broadcast_to(rho, K).copy()
    value = compiled_logp(Y, MU, tau_rows, rho_rows, VARIANCES, CLUSTERS, sizes)
    expected = dense_cluster_logps(Y, MU, tau, rho, VARIANCES, CLUSTERS).sum()
    np.testing.assert_allclose(value, expected, rtol=1e-10)


@pytest.mark.parametrize(("tau", "rho"), POINTS)
def test_numpy_cluster_loglik_equals_dense_mvn(tau, rho):
    indicator = cluster_indicator(CLUSTERS, 7)
    stats = cluster_statistics(Y - MU, tau, rho, VARIANCES, indicator)
    np.testing.assert_allclose(
        cluster_loglik(stats, indicator),
        dense_cluster_logps(Y, MU, tau, rho, VARIANCES, CLUSTERS),
        rtol=1e-10,
    )


@pytest.mark.parametrize(("tau", "rho"), POINTS[:3] + POINTS[4:])
def test_estimate_loglik_is_the_conditional_density_given_the_cluster(tau, rho):
    """log p(y_i | y_rest of cluster) = log p(cluster) - log p(cluster without row i)."""
    indicator = cluster_indicator(CLUSTERS, 7)
    residual = Y - MU
    stats = cluster_statistics(residual, tau, rho, VARIANCES, indicator)
    values = estimate_loglik(residual, stats, CLUSTERS)
    tau_rows, rho_rows = np.broadcast_to(tau, K), np.broadcast_to(rho, K)
    full = dense_cluster_logps(Y, MU, tau, rho, VARIANCES, CLUSTERS)
    for row in [0, 5, 11, 22]:
        keep = np.arange(K) != row
        codes = np.unique(CLUSTERS[keep], return_inverse=True)[1]
        without = dense_cluster_logps(
            Y[keep], MU[keep], tau_rows[keep], rho_rows[keep], VARIANCES[keep], codes
        )
        cluster = CLUSTERS[row]
        rest = (
            without[codes[CLUSTERS[keep] == cluster][0]] if (CLUSTERS[keep] == cluster).any() else 0
        )
        np.testing.assert_allclose(values[row], full[cluster] - rest, rtol=1e-9)


def test_model_logp_equals_dense_mvn_on_the_school_data(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", konstantopoulos, measure="SMD")
    model.build()
    pymc_model = model.backend.model
    logp = pymc_model.compile_logp(vars=[pymc_model["yi"]])
    codes = np.unique(konstantopoulos["district"], return_inverse=True)[1]
    y, v = konstantopoulos["yi"].to_numpy(), konstantopoulos["vi"].to_numpy()
    for mu, tau, rho in [(0.18, 0.32, 0.63), (-0.2, 0.05, 0.1), (0.5, 1.0, 0.95)]:
        point = {
            "Intercept": mu,
            "tau_log__": np.log(tau),
            "rho_logodds__": np.log(rho / (1 - rho)),
        }
        expected = dense_cluster_logps(y, np.full(len(y), mu), tau, rho, v, codes).sum()
        np.testing.assert_allclose(logp(point), expected, rtol=1e-10)
