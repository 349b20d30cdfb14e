"""Draws of the integrated-out effects and of new effect sizes, per posterior draw.

The cluster and estimate effects are never sampled with the parameters; for predictions and
the posterior predictive they are drawn afterwards from their exact conditional distributions
(:mod:`bambi_meta.stats.conditional`), in blocks of draws so that memory stays bounded.
"""

from dataclasses import dataclass

import numpy as np
import xarray as xr

from bambi_meta import _upstream, _validate
from bambi_meta._datatree import as_dataset, draw_blocks, posterior_of
from bambi_meta.bambi_ext.centring import to_sampled_scale
from bambi_meta.bambi_ext.columns import check_new_data
from bambi_meta.stats.conditional import ConditionalEffects, conditional_moments


def conditional_effects(model, posterior) -> ConditionalEffects:
    """Exact conditional moments of the integrated-out effects of the fitted rows, per draw."""
    rows = model.meta_data()
    draws = model.parameter_draws(posterior)
    clusters = rows.cluster_codes if model.family.has_clusters else None
    return conditional_moments(
        rows.effect_sizes,
        rows.variances,
        draws["mu"],
        draws["tau"],
        draws.get("rho"),
        clusters,
        model.family.n_clusters or 0,
    )


@dataclass(frozen=True)
class ClusterPosterior:
    """The standardised cluster effects z_j | y, theta ~ N(z_mean, z_sd^2), per draw.

    Arrays of shape (chain, draw, n_clusters); empty last axis without clusters.
    """

    z_mean: np.ndarray
    z_sd: np.ndarray


def cluster_posterior(model, posterior) -> ClusterPosterior:
    """Conditional posterior of every standardised cluster effect, computed in blocks of draws.

    Only (chain, draw, clusters) arrays are kept; the per-row work of
    :func:`conditional_effects` runs on blocks of draws (``_datatree.draw_blocks``).
    """
    posterior = as_dataset(posterior)
    shape = (posterior.sizes["chain"], posterior.sizes["draw"], model.family.n_clusters or 0)
    z_mean, z_sd = np.empty(shape), np.empty(shape)
    for (chain, draws), block in draw_blocks(posterior, model.n_estimates):
        conditional = conditional_effects(model, block)
        z_mean[chain, draws] = conditional.z_mean[0]
        z_sd[chain, draws] = conditional.z_sd[0]
    return ClusterPosterior(z_mean, z_sd)


def draw_replicates(model, posterior, rows, rng: np.random.Generator) -> np.ndarray:
    """Posterior predictive effect sizes for ``rows`` (the fitted rows or new data).

    For the fitted rows the true effects are drawn from their exact conditional posterior (as a
    latent-effects model replicates them); rows of a known cluster in new data share that
    cluster's effect and get a fresh estimate effect; rows of a new cluster get fresh effects.
    Each replicate adds sampling error with the row's own variance.

    Returns
    -------
    numpy.ndarray of shape (chain, draw, k)
    """
    posterior = as_dataset(posterior)
    if rows.frame is not None:
        true = draw_new_true_effects(
            model, posterior, cluster_posterior(model, posterior), rows, rng
        )
    else:
        k = len(rows.variances)
        true = np.empty((posterior.sizes["chain"], posterior.sizes["draw"], k))
        for (chain, draws), block in draw_blocks(posterior, k):
            conditional = conditional_effects(model, block)
            noise = rng.standard_normal(conditional.true_mean.shape)
            true[chain, draws] = (conditional.true_mean + conditional.true_sd * noise)[0]
    return true + np.sqrt(rows.variances) * rng.standard_normal(true.shape)


def draw_new_true_effects(model, posterior, clusters: ClusterPosterior, rows, rng) -> np.ndarray:
    """True effects of new rows: known clusters keep their (conditional) effect."""
    draws = model.parameter_draws(posterior, rows)
    tau2 = np.square(draws["tau"])
    shape = (*draws["mu"].shape[:-1], len(rows.frame))
    if not model.family.has_clusters:
        return draws["mu"] + np.sqrt(tau2) * rng.standard_normal(shape)
    z_known = clusters.z_mean + clusters.z_sd * rng.standard_normal(clusters.z_mean.shape)
    z = _cluster_z_for_rows(z_known, rows, rng)
    between = np.sqrt(tau2 * draws["rho"]) * z
    within = np.sqrt(tau2 * (1.0 - draws["rho"])) * rng.standard_normal(shape)
    return draws["mu"] + between + within


def known_cluster_shift(model, posterior, rows, rng: np.random.Generator) -> np.ndarray:
    """The cluster effect u_j of each row of a fitted cluster (0 for new clusters), per draw.

    u_j = b_i z_j with b_i = tau_i sqrt(rho_i) at the row's scale moderators and z_j drawn from
    its exact conditional posterior given the fitted data, one draw per posterior draw.

    Returns
    -------
    numpy.ndarray of shape (chain, draw, n_rows)
    """
    clusters = cluster_posterior(model, posterior)
    z = clusters.z_mean + clusters.z_sd * rng.standard_normal(clusters.z_mean.shape)
    codes = np.asarray(rows.cluster_codes)
    draws = model.parameter_draws(posterior, rows, parameters=("tau", "rho"))
    between = np.sqrt(np.square(draws["tau"]) * draws["rho"])
    shift = np.where(codes >= 0, np.take(z, np.maximum(codes, 0), axis=-1), 0.0)
    return np.broadcast_to(between * shift, (*z.shape[:-1], len(codes)))


def _cluster_z_for_rows(z_known: np.ndarray, rows, rng: np.random.Generator) -> np.ndarray:
    """Standardised effect z of each row: its known cluster's draw, or fresh per new cluster."""
    codes = rows.cluster_codes
    z = np.take(z_known, np.maximum(codes, 0), axis=-1)
    is_new = codes < 0
    if is_new.any():
        labels = np.asarray(rows.cluster_labels)[is_new]
        new_labels, new_index = np.unique(labels.astype(str), return_inverse=True)
        fresh = rng.standard_normal((*z_known.shape[:-1], len(new_labels)))
        z[..., is_new] = fresh[..., new_index]
    return z


def predict(
    model,
    bambi_predict,
    idata,
    *,
    kind: str,
    data,
    inplace: bool,
    include_group_specific: bool,
    sample_new_groups,
    random_seed,
):
    """:meth:`bambi_meta.MetaModel.predict`; ``bambi_predict`` is Bambi's own ``predict``.

    Bambi computes the linear predictors from the coefficients on the sampled (centred) scale;
    the mean of a row of a fitted cluster then gets that cluster's effect, drawn from its exact
    conditional posterior (:func:`known_cluster_shift`).
    """
    if data is not None:
        data = check_new_data(model, data, "data", model.conditional_parameters)
    rows = model.meta_data(data, require_response=False, require_variances=False)
    sampled = idata.copy()
    sampled["posterior"] = to_sampled_scale(model, idata["posterior"])
    predicted = _upstream.without_predictive_noise(bambi_predict)(
        sampled,
        kind=kind,
        data=data,
        inplace=False,
        include_group_specific=include_group_specific,
        sample_new_groups=sample_new_groups,
        random_seed=random_seed,
    )
    posterior = posterior_of(idata)
    new_variables = {
        name: values
        for name, values in as_dataset(predicted["posterior"]).data_vars.items()
        if name not in posterior
    }
    if include_group_specific and model.family.has_clusters:
        rng = np.random.default_rng(_validate.check_random_seed(random_seed))
        shift = known_cluster_shift(model, posterior, rows, rng)
        new_variables["mu"] = new_variables["mu"] + xr.DataArray(
            shift, dims=("chain", "draw", "__obs__")
        ).transpose(*new_variables["mu"].dims)
    target = idata if inplace else idata.copy()
    target["posterior"] = posterior.assign(new_variables)
    if "posterior_predictive" in predicted.children:
        target["posterior_predictive"] = predicted["posterior_predictive"]
    return None if inplace else target
