r"""Exact conditional draws of the integrated-out effects, per posterior draw.

The likelihood integrates the cluster effects :math:`u_j = b z_j` and estimate effects
:math:`e_i` out; given the parameters they follow by Gaussian conditioning:

.. math::

    z_j \mid y, \theta \sim N\!\left(\frac{S_{br}}{1+S_{bb}}, \frac{1}{1+S_{bb}}\right), \qquad
    e_i \mid y, u_j, \theta \sim N\!\left(\frac{w_i (r_i - u_j)}{w_i + v_i},
    \frac{w_i v_i}{w_i + v_i}\right),

with :math:`w_i = \tau_i^2 (1-\rho_i)` and :math:`r = y - \mu`. These give shrunken cluster and
study estimates and the posterior predictive distribution without sampling latent variables.
"""

import numpy as np

from bambi_meta.likelihood import cluster_indicator, cluster_statistics


def draw_standardized_cluster_effects(stats, rng: np.random.Generator) -> np.ndarray:
    """One draw of z_j (cluster effect / (tau sqrt(rho))) per posterior draw and cluster."""
    mean = stats.s_br / (1.0 + stats.s_bb)
    sd = 1.0 / np.sqrt(1.0 + stats.s_bb)
    return mean + sd * rng.standard_normal(mean.shape)


def draw_replicates(model, posterior, rows, rng: np.random.Generator) -> np.ndarray:
    """Posterior predictive effect sizes for ``rows`` (training rows or new data).

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    posterior : xarray.Dataset
        Posterior draws of the model's parameters.
    rows : MetaData
        The rows to replicate: their sampling variances and cluster labels.
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray of shape (chain, draw, k)
    """
    training = model.meta_data(None, require_response=True)
    training_draws = model.parameter_draws(posterior)
    draws = model.parameter_draws(posterior, rows)
    residual = training.effect_sizes - training_draws["mu"]
    is_training = rows.frame is None
    tau2 = np.square(draws["tau"])
    shape = np.broadcast_shapes(draws["mu"].shape, rows.variances.shape)

    if not model.family.has_clusters:
        if is_training:
            shrink = tau2 / (tau2 + rows.variances)
            true = draws["mu"] + shrink * residual
            true = true + np.sqrt(shrink * rows.variances) * rng.standard_normal(shape)
        else:
            true = draws["mu"] + np.sqrt(tau2) * rng.standard_normal(shape)
        return true + np.sqrt(rows.variances) * rng.standard_normal(shape)

    indicator = cluster_indicator(training.cluster_codes, model.family.n_clusters)
    stats = cluster_statistics(
        residual, training_draws["tau"], training_draws["rho"], training.variances, indicator
    )
    z_known = draw_standardized_cluster_effects(stats, rng)
    z = _cluster_effects_for_rows(z_known, rows, rng)
    between = np.sqrt(tau2 * draws["rho"]) * z
    within = tau2 * (1.0 - draws["rho"])
    if is_training:
        remaining = residual - between
        shrink = within / (within + rows.variances)
        estimate = shrink * remaining + np.sqrt(shrink * rows.variances) * rng.standard_normal(
            shape
        )
    else:
        estimate = np.sqrt(within) * rng.standard_normal(shape)
    true = draws["mu"] + between + estimate
    return true + np.sqrt(rows.variances) * rng.standard_normal(shape)


def _cluster_effects_for_rows(z_known: np.ndarray, rows, rng: np.random.Generator) -> np.ndarray:
    """Z for every row: the known cluster's draw, or a fresh N(0, 1) per new cluster label."""
    codes = rows.cluster_codes
    z = np.take(z_known, np.maximum(codes, 0), axis=-1)
    is_new = codes < 0
    if is_new.any():
        new_labels, new_index = np.unique(
            np.asarray(rows.cluster_labels)[is_new], return_inverse=True
        )
        fresh = rng.standard_normal((*z_known.shape[:-1], len(new_labels)))
        z[..., is_new] = fresh[..., new_index]
    return z


def conditional_cluster_moments(model, posterior):
    """Mean and SD of every cluster's standardised effect z_j, per draw (training data)."""
    training = model.meta_data(None, require_response=True)
    draws = model.parameter_draws(posterior)
    indicator = cluster_indicator(training.cluster_codes, model.family.n_clusters)
    stats = cluster_statistics(
        training.effect_sizes - draws["mu"],
        draws["tau"],
        draws["rho"],
        training.variances,
        indicator,
    )
    return stats.s_br / (1.0 + stats.s_bb), 1.0 / np.sqrt(1.0 + stats.s_bb)
