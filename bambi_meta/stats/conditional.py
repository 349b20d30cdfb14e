r"""The integrated-out effects given the parameters, by Gaussian conditioning (NumPy arrays).

The likelihood integrates the cluster effects :math:`u_j = b z_j` and estimate effects
:math:`e_i` out; given the parameters :math:`\theta` they follow by Gaussian conditioning:

.. math::

    z_j \mid y, \theta \sim N\!\left(\frac{S_{br}}{1+S_{bb}}, \frac{1}{1+S_{bb}}\right), \qquad
    e_i \mid y, z_j, \theta \sim N\!\left(\frac{w_i (r_i - b_i z_j)}{w_i + v_i},
    \frac{w_i v_i}{w_i + v_i}\right),

with :math:`b_i = \tau_i\sqrt{\rho_i}`, :math:`w_i = \tau_i^2 (1-\rho_i)` and
:math:`r = y - \mu`. So each row's true effect :math:`\vartheta_i = \mu_i + b_i z_j + e_i` has,
per draw, mean :math:`\mu_i + b_i m_j + k_i (r_i - b_i m_j)` and variance
:math:`(1-k_i)^2 b_i^2 / (1+S_{bb}) + k_i v_i` with :math:`k_i = w_i/(w_i+v_i)`,
:math:`m_j = S_{br}/(1+S_{bb})`. These are the Bayesian BLUPs: no latent variable is sampled.
"""

from dataclasses import dataclass

import numpy as np

from bambi_meta.stats.clusters import cluster_indicator, cluster_statistics


@dataclass(frozen=True)
class ConditionalEffects:
    """Per-draw conditional moments of z_j and of every row's true effect.

    Attributes
    ----------
    z_mean, z_sd : numpy.ndarray (..., n_clusters)
        z_j | y, theta (empty last axis without clusters).
    between : numpy.ndarray (..., k)
        b_i = tau_i sqrt(rho_i).
    true_mean, true_sd : numpy.ndarray (..., k)
        E and SD of theta_i | y, theta.
    """

    z_mean: np.ndarray
    z_sd: np.ndarray
    between: np.ndarray
    true_mean: np.ndarray
    true_sd: np.ndarray


def conditional_moments(
    effect_sizes, variances, mu, tau, rho, clusters: np.ndarray | None, n_clusters: int
) -> ConditionalEffects:
    """Exact conditional moments of the integrated-out effects, for every draw.

    Parameters
    ----------
    effect_sizes, variances : numpy.ndarray (k,)
        Observed effect sizes and their known sampling variances.
    mu, tau, rho : numpy.ndarray, broadcastable to (..., k)
        Location, heterogeneity SD and cluster share per draw (``rho`` None without clusters).
    clusters : numpy.ndarray of int (k,) or None
        Cluster codes 0..n_clusters-1.
    n_clusters : int
        Number of clusters.

    Returns
    -------
    ConditionalEffects
    """
    residual = effect_sizes - mu
    tau2 = np.square(tau)
    if clusters is None:
        shrink = tau2 / (tau2 + variances)
        zeros = np.zeros((*residual.shape[:-1], 0))
        return ConditionalEffects(
            z_mean=zeros,
            z_sd=zeros,
            between=np.zeros_like(residual),
            true_mean=mu + shrink * residual,
            true_sd=np.broadcast_to(np.sqrt(shrink * variances), residual.shape),
        )
    indicator = cluster_indicator(clusters, n_clusters)
    stats = cluster_statistics(residual, tau, rho, variances, indicator)
    z_mean = stats.s_br / (1.0 + stats.s_bb)
    z_var = 1.0 / (1.0 + stats.s_bb)
    b = stats.between
    shrink = tau2 * (1.0 - rho) / stats.within  # w / (w + v), since d = w + v
    m_rows = z_mean[..., clusters]
    true_mean = mu + b * m_rows + shrink * (residual - b * m_rows)
    true_var = ((1.0 - shrink) * b) ** 2 * z_var[..., clusters] + shrink * variances
    return ConditionalEffects(z_mean, np.sqrt(z_var), b, true_mean, np.sqrt(true_var))
