r"""The clustered marginal log-density and its gradient as one fused PyTensor Op.

:func:`bambi_meta.likelihood.clustered_logp` states the algebra in PyTensor; differentiating it
symbolically gives a gradient graph with about ten temporaries of length k, two scatter-adds and
a large expression that numba has to optimise again whenever nutpie wraps the model (11-14 s per
process). This module computes the same numbers in two passes over the rows, in one compiled
loop (numba, cached on disk), and hands PyTensor the gradient it already computed:

With :math:`A_j = 1 + S_{bb,j}` and :math:`m_j = S_{br,j}/A_j` (the posterior mean of the
standardised cluster effect), :math:`e_i = r_i - m_j b_i` and row weight :math:`w_i`,

.. math::

    \frac{\partial \log p}{\partial r_i} = -\frac{w_i e_i}{d_i}, \qquad
    \frac{\partial \log p}{\partial d_i} =
        \frac{w_i}{2}\left[\frac{e_i^2 + b_i^2/A_j}{d_i^2} - \frac{1}{d_i}\right], \qquad
    \frac{\partial \log p}{\partial b_i} = \frac{w_i}{d_i}\left[m_j e_i - \frac{b_i}{A_j}\right],

and the chain rule through :math:`d_i = v_i + \tau_i^2(1-\rho_i)`, :math:`b_i = \tau_i\sqrt{\rho_i}`
gives the derivatives in tau and rho (summed over rows when tau or rho is a scalar).
The Op runs the kernel from Python in PyTensor's C backend (PyMC's NUTS) and is compiled into
the model's own numba function in the numba backend (nutpie).
"""

import math

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented, grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

LOG_2PI = math.log(2.0 * math.pi)


@numba.njit(cache=True, nogil=True)
def clustered_logp_and_grad(residual, tau, rho, variances, clusters, n_clusters, weights):
    """Log-density of the rows with nonzero weight and its gradient (the numba kernel).

    Parameters
    ----------
    residual, variances, weights : numpy.ndarray of shape (k,)
        y - mu, known sampling variances and row weights (1 in the fit, 0 left out).
    tau, rho : numpy.ndarray of shape (1,) or (k,)
        Total heterogeneity SD and cluster share of tau^2, shared by all rows or per row.
    clusters : numpy.ndarray of int64, shape (k,)
        Cluster code of every row, 0 .. n_clusters - 1.
    n_clusters : int
        Number of clusters.

    Returns
    -------
    logp : float
    grad_residual : numpy.ndarray of shape (k,)
    grad_tau, grad_rho : numpy.ndarray, shaped like ``tau`` and ``rho``
    """
    shared = tau.shape[0] == 1 and rho.shape[0] == 1
    between = tau * np.sqrt(rho)  # b, length 1 (shared tau and rho) or k
    excess = tau * tau * (1.0 - rho)  # d - v
    logp, inverse_d, inverse_a, effect_mean = _cluster_pass(
        residual, between, excess, variances, clusters, n_clusters, weights
    )
    grad_residual = np.zeros(residual.shape[0])
    if shared:
        grad_tau, grad_rho = _shared_gradient_pass(
            residual, tau, rho, clusters, weights, inverse_d, inverse_a, effect_mean,
            grad_residual,
        )  # fmt: skip
    else:
        grad_tau, grad_rho = _row_gradient_pass(
            residual, tau, rho, clusters, weights, inverse_d, inverse_a, effect_mean,
            grad_residual,
        )  # fmt: skip
    return logp, grad_residual, grad_tau, grad_rho


@numba.njit(cache=True, nogil=True)
def _cluster_pass(residual, between, excess, variances, clusters, n_clusters, weights):
    """First pass: the log-density, 1/d per row and 1/A, m per cluster."""
    k = residual.shape[0]
    step = 1 if between.shape[0] > 1 else 0
    s_bb = np.zeros(n_clusters)
    s_br = np.zeros(n_clusters)
    inverse_d = np.zeros(k)
    quadratic = 0.0
    n_used = 0.0
    log_det = 0.0
    # sum(log d) as the log of a running product: one log per ~hundreds of rows instead of one
    # per row (the costliest instruction of the loop); flushed before it can over/underflow.
    product = 1.0
    for i in range(k):
        w = weights[i]
        if w == 0.0:
            continue
        r, b = residual[i], between[i * step]
        d = variances[i] + excess[i * step]
        inv_d = 1.0 / d
        inverse_d[i] = inv_d
        wb = w * b * inv_d
        s_bb[clusters[i]] += wb * b
        s_br[clusters[i]] += wb * r
        quadratic += w * r * r * inv_d
        n_used += w
        if w == 1.0:
            product *= d
            if not (1e-150 < product < 1e150):
                log_det += math.log(product)
                product = 1.0
        else:
            log_det += w * math.log(d)
    log_det += math.log(product)

    correction = 0.0
    inverse_a = np.empty(n_clusters)
    effect_mean = np.empty(n_clusters)
    for j in range(n_clusters):
        inverse_a[j] = 1.0 / (1.0 + s_bb[j])
        effect_mean[j] = s_br[j] * inverse_a[j]
        correction += math.log1p(s_bb[j]) - s_br[j] * effect_mean[j]
    logp = -0.5 * (n_used * LOG_2PI + log_det + quadratic + correction)
    return logp, inverse_d, inverse_a, effect_mean


@numba.njit(cache=True, nogil=True)
def _shared_gradient_pass(
    residual, tau, rho, clusters, weights, inverse_d, inverse_a, effect_mean, grad_residual
):
    """Second pass for scalar tau and rho: sums of dlogp/dd and dlogp/db, then the chain rule."""
    t, p = tau[0], rho[0]
    sqrt_p = math.sqrt(p)
    b = t * sqrt_p
    sum_grad_d = 0.0
    sum_grad_b = 0.0
    for i in range(residual.shape[0]):
        w_inv_d = weights[i] * inverse_d[i]
        m, inv_a = effect_mean[clusters[i]], inverse_a[clusters[i]]
        e = residual[i] - m * b
        grad_residual[i] = -e * w_inv_d
        sum_grad_d += 0.5 * w_inv_d * ((e * e + b * b * inv_a) * inverse_d[i] - 1.0)
        sum_grad_b += w_inv_d * (m * e - b * inv_a)
    grad_tau = np.array([sum_grad_d * 2.0 * t * (1.0 - p) + sum_grad_b * sqrt_p])
    grad_rho = np.array([-sum_grad_d * t * t + _over_sqrt(sum_grad_b * 0.5 * t, sqrt_p)])
    return grad_tau, grad_rho


@numba.njit(cache=True, nogil=True)
def _row_gradient_pass(
    residual, tau, rho, clusters, weights, inverse_d, inverse_a, effect_mean, grad_residual
):
    """Second pass when tau or rho varies by row (scale formulas): chain rule per row."""
    tau_step = 1 if tau.shape[0] > 1 else 0
    rho_step = 1 if rho.shape[0] > 1 else 0
    grad_tau = np.zeros(tau.shape[0])
    grad_rho = np.zeros(rho.shape[0])
    for i in range(residual.shape[0]):
        w_inv_d = weights[i] * inverse_d[i]
        if w_inv_d == 0.0:
            continue
        t, p = tau[i * tau_step], rho[i * rho_step]
        sqrt_p = math.sqrt(p)
        b = t * sqrt_p
        m, inv_a = effect_mean[clusters[i]], inverse_a[clusters[i]]
        e = residual[i] - m * b
        grad_residual[i] = -e * w_inv_d
        grad_d = 0.5 * w_inv_d * ((e * e + b * b * inv_a) * inverse_d[i] - 1.0)
        grad_b = w_inv_d * (m * e - b * inv_a)
        grad_tau[i * tau_step] += grad_d * 2.0 * t * (1.0 - p) + grad_b * sqrt_p
        grad_rho[i * rho_step] += -grad_d * t * t + _over_sqrt(grad_b * 0.5 * t, sqrt_p)
    return grad_tau, grad_rho


@numba.njit(cache=True, inline="always")
def _over_sqrt(numerator, sqrt_rho):
    """Divide by sqrt(rho) in the rho-derivative of b = tau sqrt(rho).

    The slope is infinite at rho = 0, but there b = 0 and so dlogp/db = 0 (numerator 0): the
    term is 0 at the boundary.
    """
    return numerator / sqrt_rho if sqrt_rho > 0.0 else 0.0


class ClusteredLogp(Op):
    """Total marginal log-density of clustered rows, with its gradient as extra outputs.

    Inputs: ``residual, tau, rho, variances, clusters, cluster_sizes, weights`` as in
    :func:`bambi_meta.likelihood.clustered_logp` (``tau`` and ``rho`` scalars or length k).
    Outputs: the log-density (scalar) and its gradient in ``residual``, ``tau`` and ``rho``;
    PyTensor's gradient of the first output reuses the other three, so logp and gradient come
    from one call of the kernel. Second derivatives are not implemented.
    """

    __props__ = ()

    def make_node(self, residual, tau, rho, variances, clusters, cluster_sizes, weights):
        """Build the Apply node (float64 inputs, int64 cluster codes)."""
        floats = [
            pt.as_tensor_variable(x).astype("float64")
            for x in (residual, tau, rho, variances, cluster_sizes, weights)
        ]
        residual, tau, rho, variances, cluster_sizes, weights = floats
        clusters = pt.as_tensor_variable(clusters).astype("int64")
        for name, x in (("tau", tau), ("rho", rho)):
            if x.ndim > 1:
                raise ValueError(f"{name} must be a scalar or a vector over the rows")
        inputs = [residual, tau, rho, variances, clusters, cluster_sizes, weights]
        outputs = [pt.dscalar(), residual.type(), tau.type(), rho.type()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        """Run the kernel (PyTensor's Python/C backends)."""
        residual, tau, rho, variances, clusters, cluster_sizes, weights = inputs
        logp, grad_residual, grad_tau, grad_rho = clustered_logp_and_grad(
            residual,
            np.atleast_1d(tau),
            np.atleast_1d(rho),
            variances,
            clusters,
            cluster_sizes.shape[0],
            weights,
        )
        output_storage[0][0] = np.asarray(logp)
        output_storage[1][0] = grad_residual
        output_storage[2][0] = grad_tau.reshape(tau.shape)
        output_storage[3][0] = grad_rho.reshape(rho.shape)

    def infer_shape(self, node, input_shapes):
        """Shapes of the outputs: scalar, then those of residual, tau and rho."""
        return [(), input_shapes[0], input_shapes[1], input_shapes[2]]

    def pullback(self, inputs, outputs, cotangents):
        """Gradient of the log-density output (the extra outputs are not differentiable)."""
        if any(not isinstance(g.type, DisconnectedType) for g in cotangents[1:]):
            return [
                grad_not_implemented(self, i, x, "second derivatives of the fused likelihood")
                for i, x in enumerate(inputs)
            ]
        grad_logp = cotangents[0]
        data_grads = [
            grad_not_implemented(self, 3, inputs[3], "variances are data"),
            grad_undefined(self, 4, inputs[4], "cluster codes are integers"),
            grad_undefined(self, 5, inputs[5], "cluster sizes are counts"),
            grad_not_implemented(self, 6, inputs[6], "row weights are data"),
        ]
        return [grad_logp * outputs[1], grad_logp * outputs[2], grad_logp * outputs[3], *data_grads]


clustered_logp_op = ClusteredLogp()


@register_funcify_default_op_cache_key(ClusteredLogp)
def _numba_clustered_logp(op, node, **kwargs):
    """The Op inside a numba-compiled PyTensor function: a call of the same kernel."""

    @numba.njit
    def clustered_logp(residual, tau, rho, variances, clusters, cluster_sizes, weights):
        logp, grad_residual, grad_tau, grad_rho = clustered_logp_and_grad(
            residual,
            np.atleast_1d(tau),
            np.atleast_1d(rho),
            variances,
            clusters,
            cluster_sizes.shape[0],
            weights,
        )
        return (
            np.asarray(logp),
            grad_residual,
            grad_tau.reshape(tau.shape),
            grad_rho.reshape(rho.shape),
        )

    return clustered_logp
