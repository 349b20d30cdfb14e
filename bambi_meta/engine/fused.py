r"""The clustered marginal log-density and its gradient as one fused PyTensor Op.

:func:`bambi_meta.engine.likelihood.clustered_logp` states the algebra in PyTensor; differentiating
it symbolically gives a gradient graph with about ten temporaries of length k and two scatter-adds.
This module computes the same numbers in two passes over the rows in one compiled loop (numba,
cached on disk) and hands PyTensor the gradient it already computed (2.8x faster per gradient at
k = 20,000; benchmarks/README.md):

With :math:`A_j = 1 + S_{bb,j}` and :math:`m_j = S_{br,j}/A_j` (the posterior mean of the
standardised cluster effect), :math:`e_i = y_i - \mu_i - m_j b_i` and row weight :math:`w_i`,

.. math::

    \frac{\partial \log p}{\partial \mu_i} = \frac{w_i e_i}{d_i}, \qquad
    \frac{\partial \log p}{\partial d_i} =
        \frac{w_i}{2}\left[\frac{e_i^2 + b_i^2/A_j}{d_i^2} - \frac{1}{d_i}\right], \qquad
    \frac{\partial \log p}{\partial b_i} = \frac{w_i}{d_i}\left[m_j e_i - \frac{b_i}{A_j}\right],

and the chain rule through :math:`d_i = v_i + \tau_i^2(1-\rho_i)`, :math:`b_i = \tau_i\sqrt{\rho_i}`
gives the derivatives in tau and rho (summed over rows when tau or rho is a scalar).
PyTensor's numba backend (its default, used by ``bambi_meta.engine.compile`` and by PyMC)
compiles the kernel into the model's function; other backends call it from ``perform``.
"""

import functools
import hashlib
import math
from importlib.metadata import version
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented, grad_undefined
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from bambi_meta import _upstream
from bambi_meta.engine._numba import njit
from bambi_meta.stats.clusters import LOG_2PI


@njit(error_model="python")
def clustered_logp_and_grad(value, mu, tau, rho, variances, clusters, n_clusters, weights):
    """Log-density of the rows with nonzero weight and its gradient (the numba kernel).

    Parameters
    ----------
    value, variances, weights : numpy.ndarray of shape (k,)
        Effect sizes, known sampling variances and row weights (1 in the fit, 0 left out).
    mu, tau, rho : numpy.ndarray of shape (1,) or (k,)
        Location, total heterogeneity SD and cluster share of tau^2: shared by all rows
        (length 1) or per row.
    clusters : numpy.ndarray of int64, shape (k,)
        Cluster code of every row, 0 .. n_clusters - 1.
    n_clusters : int
        Number of clusters.

    Returns
    -------
    logp : float
    grad_mu, grad_tau, grad_rho : numpy.ndarray, shaped like ``mu``, ``tau`` and ``rho``
    """
    k = value.shape[0]
    for parameter in (mu, tau, rho):
        if parameter.shape[0] != 1 and parameter.shape[0] != k:
            raise ValueError("mu, tau and rho must have length 1 or k (the number of rows)")
    between = tau * np.sqrt(rho)  # b, length 1 (shared tau and rho) or k
    excess = tau * tau * (1.0 - rho)  # d - v
    logp, inverse_d, inverse_a, effect_mean = _cluster_pass(
        value, mu, between, excess, variances, clusters, n_clusters, weights
    )
    if tau.shape[0] == 1 and rho.shape[0] == 1:
        return (logp, *_shared_gradient_pass(
            value, mu, tau, rho, clusters, weights, inverse_d, inverse_a, effect_mean
        ))  # fmt: skip
    return (logp, *_row_gradient_pass(
        value, mu, tau, rho, clusters, weights, inverse_d, inverse_a, effect_mean
    ))  # fmt: skip


@njit(error_model="python")
def _cluster_pass(value, mu, between, excess, variances, clusters, n_clusters, weights):
    """First pass: the log-density, 1/d per row and 1/A, m per cluster."""
    k = value.shape[0]
    mu_step = 1 if mu.shape[0] > 1 else 0
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
        r, b = value[i] - mu[i * mu_step], between[i * step]
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


@njit(error_model="python")
def _shared_gradient_pass(
    value, mu, tau, rho, clusters, weights, inverse_d, inverse_a, effect_mean
):
    """Second pass for scalar tau and rho: sums of dlogp/dd and dlogp/db, then the chain rule."""
    shared_mu = mu.shape[0] == 1
    grad_mu = np.zeros(mu.shape[0])
    t, p = tau[0], rho[0]
    sqrt_p = math.sqrt(p)
    b = t * sqrt_p
    sum_grad_mu = 0.0
    sum_grad_d = 0.0
    sum_grad_b = 0.0
    for i in range(value.shape[0]):
        w_inv_d = weights[i] * inverse_d[i]
        m, inv_a = effect_mean[clusters[i]], inverse_a[clusters[i]]
        e = value[i] - mu[0 if shared_mu else i] - m * b
        if shared_mu:
            sum_grad_mu += e * w_inv_d
        else:
            grad_mu[i] = e * w_inv_d
        sum_grad_d += 0.5 * w_inv_d * ((e * e + b * b * inv_a) * inverse_d[i] - 1.0)
        sum_grad_b += w_inv_d * (m * e - b * inv_a)
    if shared_mu:
        grad_mu[0] = sum_grad_mu
    grad_tau = np.array([sum_grad_d * 2.0 * t * (1.0 - p) + sum_grad_b * sqrt_p])
    grad_rho = np.array([-sum_grad_d * t * t + _over_sqrt(sum_grad_b * 0.5 * t, sqrt_p)])
    return grad_mu, grad_tau, grad_rho


@njit(error_model="python")
def _row_gradient_pass(value, mu, tau, rho, clusters, weights, inverse_d, inverse_a, effect_mean):
    """Second pass when tau or rho varies by row (scale formulas): chain rule per row."""
    mu_step = 1 if mu.shape[0] > 1 else 0
    tau_step = 1 if tau.shape[0] > 1 else 0
    rho_step = 1 if rho.shape[0] > 1 else 0
    grad_mu = np.zeros(mu.shape[0])
    grad_tau = np.zeros(tau.shape[0])
    grad_rho = np.zeros(rho.shape[0])
    for i in range(value.shape[0]):
        w_inv_d = weights[i] * inverse_d[i]
        if w_inv_d == 0.0:
            continue
        t, p = tau[i * tau_step], rho[i * rho_step]
        sqrt_p = math.sqrt(p)
        b = t * sqrt_p
        m, inv_a = effect_mean[clusters[i]], inverse_a[clusters[i]]
        e = value[i] - mu[i * mu_step] - m * b
        grad_mu[i * mu_step] += e * w_inv_d
        grad_d = 0.5 * w_inv_d * ((e * e + b * b * inv_a) * inverse_d[i] - 1.0)
        grad_b = w_inv_d * (m * e - b * inv_a)
        grad_tau[i * tau_step] += grad_d * 2.0 * t * (1.0 - p) + grad_b * sqrt_p
        grad_rho[i * rho_step] += -grad_d * t * t + _over_sqrt(grad_b * 0.5 * t, sqrt_p)
    return grad_mu, grad_tau, grad_rho


@njit(error_model="python", inline="always")
def _over_sqrt(numerator, sqrt_rho):
    """Divide by sqrt(rho) in the rho-derivative of b = tau sqrt(rho).

    The slope is infinite at rho = 0, but there b = 0 and so dlogp/db = 0 (numerator 0): the
    term is 0 at the boundary.
    """
    return numerator / sqrt_rho if sqrt_rho > 0.0 else 0.0


class ClusteredLogp(Op):
    """Total marginal log-density of clustered rows, with its gradient as extra outputs.

    Inputs: ``value, mu, tau, rho, variances, clusters, cluster_sizes, weights`` as in
    :func:`bambi_meta.engine.likelihood.clustered_logp`; ``mu``, ``tau`` and ``rho`` are scalars,
    length-1 vectors (shared by all rows) or length-k vectors.
    Outputs: the log-density (scalar) and its gradient in ``mu``, ``tau`` and ``rho``;
    PyTensor's gradient of the first output reuses the other three, so logp and gradient come
    from one call of the kernel. Second derivatives are not implemented.
    """

    __props__ = ()

    def make_node(self, value, mu, tau, rho, variances, clusters, cluster_sizes, weights):
        """Build the Apply node (float64 inputs, int64 cluster codes)."""
        # Before any graph with this Op can be compiled, PyTensor's numba backend must know the
        # kernel (registered here, lazily, so that importing bambi_meta touches no compile cache).
        _upstream.register_numba_implementation(
            ClusteredLogp, _numba_clustered_logp, kernel_cache_version()
        )
        value, mu, tau, rho, variances, cluster_sizes, weights = (
            pt.as_tensor_variable(x).astype("float64")
            for x in (value, mu, tau, rho, variances, cluster_sizes, weights)
        )
        clusters = pt.as_tensor_variable(clusters).astype("int64")
        for name, x in (("mu", mu), ("tau", tau), ("rho", rho)):
            if x.ndim > 1:
                raise ValueError(f"{name} must be a scalar or a vector over the rows")
        inputs = [value, mu, tau, rho, variances, clusters, cluster_sizes, weights]
        outputs = [pt.dscalar(), mu.type(), tau.type(), rho.type()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        """Run the kernel (backends other than numba call it from Python)."""
        value, mu, tau, rho, variances, clusters, cluster_sizes, weights = inputs
        logp, *grads = clustered_logp_and_grad(
            value,
            np.atleast_1d(mu),
            np.atleast_1d(tau),
            np.atleast_1d(rho),
            variances,
            clusters,
            cluster_sizes.shape[0],
            weights,
        )
        output_storage[0][0] = np.asarray(logp)
        for storage, grad, parameter in zip(output_storage[1:], grads, (mu, tau, rho), strict=True):
            storage[0] = grad.reshape(parameter.shape)

    def infer_shape(self, node, input_shapes):
        """Shapes of the outputs: scalar, then those of mu, tau and rho."""
        return [(), *input_shapes[1:4]]

    def pullback(self, inputs, outputs, cotangents):
        """Gradient of the log-density output (the extra outputs are not differentiable)."""
        if any(not isinstance(g.type, DisconnectedType) for g in cotangents[1:]):
            return [
                grad_not_implemented(self, i, x, "second derivatives of the fused likelihood")
                for i, x in enumerate(inputs)
            ]
        grad_logp = cotangents[0]
        return [
            grad_not_implemented(self, 0, inputs[0], "effect sizes are data"),
            *(grad_logp * grad for grad in outputs[1:]),
            grad_not_implemented(self, 4, inputs[4], "variances are data"),
            grad_undefined(self, 5, inputs[5], "cluster codes are integers"),
            grad_undefined(self, 6, inputs[6], "cluster sizes are counts"),
            grad_not_implemented(self, 7, inputs[7], "row weights are data"),
        ]


clustered_logp_op = ClusteredLogp()


def kernel_cache_version(source: bytes | None = None) -> int:
    """A number that changes whenever the kernel's source or the package version changes.

    PyTensor caches the compiled log-density of a model on disk under a key of the Op's type and
    properties, which say nothing about the kernel's code; this number is added to that key, so an
    edited kernel or a new release never runs a stale compiled function.

    Parameters
    ----------
    source : bytes, optional
        The kernel module's source (this file by default).

    Returns
    -------
    int
        63 bits of the SHA-256 of the source and the bambi_meta version.
    """
    if source is None:
        return _this_kernel_version()
    digest = hashlib.sha256(source + version("bambi_meta").encode()).hexdigest()
    return int(digest[:15], 16)


@functools.cache
def _this_kernel_version() -> int:
    return kernel_cache_version(Path(__file__).read_bytes())


def _numba_clustered_logp(op, node, **kwargs):
    """The Op inside a numba-compiled PyTensor function: a call of the same kernel.

    PyTensor's numba functions may type arrays with any layout; ``np.ascontiguousarray`` (no
    copy for contiguous data) lets the kernel run its C-contiguous specialisation, which is
    about 1.6x faster at k = 20,000.
    """

    @numba.njit
    def clustered_logp(value, mu, tau, rho, variances, clusters, cluster_sizes, weights):
        logp, grad_mu, grad_tau, grad_rho = clustered_logp_and_grad(
            np.ascontiguousarray(value),
            np.ascontiguousarray(np.atleast_1d(mu)),
            np.ascontiguousarray(np.atleast_1d(tau)),
            np.ascontiguousarray(np.atleast_1d(rho)),
            np.ascontiguousarray(variances),
            np.ascontiguousarray(clusters),
            cluster_sizes.shape[0],
            np.ascontiguousarray(weights),
        )
        return (
            np.asarray(logp),
            grad_mu.reshape(mu.shape),
            grad_tau.reshape(tau.shape),
            grad_rho.reshape(rho.shape),
        )

    return clustered_logp
