"""The fused likelihood Op against two outside references.

1. Dense per-cluster multivariate normal densities (scipy) and their central finite differences:
   the log-density must match to float precision, the gradient to the finite-difference error.
2. PyTensor's symbolic gradient of ``clustered_logp`` (the same model written as a plain graph):
   identical algebra, so the two agree to float rounding.

Both where the kernel runs inside PyTensor's numba function (the default backend, used to sample)
and where PyTensor calls it from Python (``perform``, other backends), with zero-weight rows,
clusters of size 1 and unsorted rows.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import CLUSTERS, MU, VARIANCES, K, Y, dense_cluster_logps

from bambi_meta.engine.fused import clustered_logp_op
from bambi_meta.engine.likelihood import clustered_logp

pytestmark = pytest.mark.slow  # compiles the numba kernel and PyTensor graphs

SIZES = np.bincount(CLUSTERS).astype(float)
WEIGHTS = np.ones(K)
WEIGHTS[[2, 11]] = 0.0  # two rows left out (as a leave-one-out refit does)
ROW_TAU = np.random.default_rng(11).uniform(0.1, 0.6, K)
ROW_RHO = np.random.default_rng(12).uniform(0.05, 0.95, K)
POINTS = [
    (0.3, 0.5),
    (0.05, 0.01),
    (1.2, 0.99),
    (ROW_TAU, 0.3),  # tau ~ z
    (0.4, ROW_RHO),  # rho ~ w
    (ROW_TAU, ROW_RHO),
]


def _functions(tau_is_vector: bool, rho_is_vector: bool, mode: str):
    """(fused, reference) functions of (mu, tau, rho) -> [logp, dlogp/dmu, dlogp/dtau, ...]."""
    mu = pt.dvector("mu")
    tau = pt.dvector("tau") if tau_is_vector else pt.dscalar("tau")
    rho = pt.dvector("rho") if rho_is_vector else pt.dscalar("rho")
    data = (VARIANCES, CLUSTERS, SIZES, WEIGHTS)
    fused = clustered_logp_op(Y, mu, tau, rho, *data)[0]
    reference = clustered_logp(Y, mu, tau, rho, *data)
    return [
        pytensor.function([mu, tau, rho], [out, *pytensor.grad(out, [mu, tau, rho])], mode=mode)
        for out in (fused, reference)
    ]


def _dense_logp(mu, tau, rho) -> float:
    """Joint density of the rows with weight 1, from dense covariance matrices."""
    rows = WEIGHTS == 1
    clusters = np.unique(CLUSTERS[rows], return_inverse=True)[1]
    tau, rho = (np.broadcast_to(x, K)[rows] for x in (tau, rho))
    return dense_cluster_logps(Y[rows], mu[rows], tau, rho, VARIANCES[rows], clusters).sum()


def _finite_differences(mu, tau, rho, step=1e-6):
    """Central differences of the dense density in mu, tau and rho (same shapes as the inputs)."""
    out = []
    for position in range(3):
        args = [np.array(mu, float), np.array(tau, float), np.array(rho, float)]
        grad = np.zeros_like(args[position])
        for index in np.ndindex(grad.shape):
            up = [a.copy() for a in args]
            down = [a.copy() for a in args]
            up[position][index] += step
            down[position][index] -= step
            grad[index] = (_dense_logp(*up) - _dense_logp(*down)) / (2 * step)
        out.append(grad)
    return out


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "NUMBA"])
@pytest.mark.parametrize(("tau", "rho"), POINTS)
def test_fused_logp_and_gradient_equal_the_dense_mvn(tau, rho, mode):
    fused, _ = _functions(np.ndim(tau) == 1, np.ndim(rho) == 1, mode)
    logp, *grads = fused(MU, tau, rho)
    # Sherman-Morrison is exact: only float rounding separates it from the dense density.
    np.testing.assert_allclose(logp, _dense_logp(MU, tau, rho), rtol=1e-10)
    # Central differences with step 1e-6 have truncation error ~1e-12 * third derivative and
    # rounding error ~1e-16 * |logp| / 1e-6 ~ 1e-9: 1e-6 absolute leaves room for both.
    for grad, expected in zip(grads, _finite_differences(MU, tau, rho), strict=True):
        np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-6)
    # rows left out have no gradient
    np.testing.assert_array_equal(grads[0][WEIGHTS == 0], 0.0)


@pytest.mark.parametrize("mode", ["FAST_COMPILE", "NUMBA"])
@pytest.mark.parametrize(("tau", "rho"), POINTS)
def test_fused_op_equals_the_symbolic_gradient_of_the_plain_graph(tau, rho, mode):
    fused, reference = _functions(np.ndim(tau) == 1, np.ndim(rho) == 1, mode)
    # Identical algebra evaluated in a different order: float rounding only (relative ~1e-14
    # observed). atol=1e-12 is for entries that are exactly 0 on one side, where rtol is void.
    for ours, theirs in zip(fused(MU, tau, rho), reference(MU, tau, rho), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_common_effect_boundary_tau_zero():
    """tau = 0 (priors={"tau": 0}): the density is that of N(mu, v); the rho slope is 0."""
    fused, _ = _functions(False, False, "NUMBA")
    logp, grad_mu, _, grad_rho = fused(MU, 0.0, 0.4)
    rows = WEIGHTS == 1
    residual = (Y - MU)[rows]
    expected = -0.5 * np.sum(np.log(2 * np.pi * VARIANCES[rows]) + residual**2 / VARIANCES[rows])
    np.testing.assert_allclose(logp, expected, rtol=1e-12)  # the same sum, rounding only
    np.testing.assert_allclose(grad_mu[rows], residual / VARIANCES[rows], rtol=1e-12)
    assert grad_rho == 0.0


def test_second_derivatives_say_they_are_not_implemented():
    mu, tau, rho = pt.dvector("mu"), pt.dscalar("tau"), pt.dscalar("rho")
    logp = clustered_logp_op(Y, mu, tau, rho, VARIANCES, CLUSTERS, SIZES, WEIGHTS)[0]
    grad_tau = pytensor.grad(logp, tau)
    with pytest.raises(Exception, match="second derivatives of the fused likelihood"):
        pytensor.grad(grad_tau, tau)
