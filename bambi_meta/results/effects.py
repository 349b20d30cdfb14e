"""Shrunken cluster and study effects: draws and tables (Rao-Blackwellised means and SDs).

Computed by exact Gaussian conditioning per posterior draw (:mod:`bambi_meta.stats.conditional`),
in blocks of draws: memory is that of the (chain, draw, cluster or estimate) draws returned.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from bambi_meta import _validate
from bambi_meta._datatree import draw_blocks, draws_dataarray, posterior_of
from bambi_meta.engine.predictive import conditional_effects
from bambi_meta.results.printing import ResultTable
from bambi_meta.stats.clusters import cluster_indicator, cluster_mean
from bambi_meta.stats.tables import RaoBlackwellSummary

RAO_BLACKWELL = "Mean and SD: averages of the exact conditional moments; quantiles: from the draws"


@dataclass(frozen=True, repr=False)
class Effects:
    """Posterior draws of effects and their summary table.

    Prints as its table: under a header saying which effects these are, rounded like
    :func:`~bambi_meta.summary` and never truncated (every row).

    Attributes
    ----------
    draws : xarray.DataArray
        Dimensions (chain, draw, <cluster or row>), labelled by cluster or row.
    table : ResultTable
        A pandas DataFrame with one row per cluster or estimate: ``Mean``, ``SD``, ``0.025``,
        ``0.5``, ``0.975`` (and the observed ``yi``, ``vi``, cluster and size columns that help
        to read it); full precision, rounded only when printed.
    """

    draws: xr.DataArray
    table: pd.DataFrame

    def __str__(self) -> str:
        return str(self.table)

    def __repr__(self) -> str:
        return str(self.table)

    def _repr_html_(self) -> str:
        return self.table._repr_html_()


def cluster_effects(model, idata, random_seed=None, relative: bool = True) -> Effects:
    """Shrunken cluster effects: the deviations u_j, or the cluster means mu + u_j.

    Parameters
    ----------
    model : MetaModel
        A fitted model with a cluster level.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    random_seed : int, optional
        Seed for the one conditional draw of each effect per posterior draw.
    relative : bool, default True
        ``True``: the deviation u_j from the pooled effect; ``False``: the cluster mean
        mu + u_j (at the cluster's average moderator values in a meta-regression).

    Returns
    -------
    Effects
        ``draws`` with dims (chain, draw, <cluster column>); ``table`` indexed by cluster with
        ``n`` (estimates in the cluster), ``Mean``, ``SD`` and quantiles. Means and SDs are
        Rao-Blackwellised (averages of the exact conditional moments), which removes most of the
        Monte Carlo error; quantiles come from the draws.

    Notes
    -----
    With a scale model (tau ~ z) the rows of a cluster have different b_i; the reported cluster
    effect uses the cluster's mean b_i. Memory: (chain, draw, clusters) arrays; the per-row work
    runs in blocks of draws.
    """
    _validate.check_model(model)
    if not model.family.has_clusters:
        raise ValueError("cluster_effects needs a model with a cluster level, '(1|cluster)'.")
    posterior, rng = (
        posterior_of(idata),
        np.random.default_rng(_validate.check_random_seed(random_seed)),
    )
    rows = model.meta_data()
    indicator = cluster_indicator(rows.cluster_codes, model.family.n_clusters)
    sizes = np.asarray(indicator.sum(axis=0)).ravel()
    shape = (posterior.sizes["chain"], posterior.sizes["draw"], model.family.n_clusters)
    mean, sd = np.empty(shape), np.empty(shape)
    for (chain, draws), block in draw_blocks(posterior, model.n_estimates):
        conditional = conditional_effects(model, block)
        scale = cluster_mean(conditional.between, indicator, sizes)[0]
        mean[chain, draws] = scale * conditional.z_mean[0]
        sd[chain, draws] = scale * conditional.z_sd[0]
        if not relative:
            location = model.parameter_draws(block, parameters=("mu",))["mu"]
            mean[chain, draws] += cluster_mean(location, indicator, sizes)[0]
    sampled = mean + sd * rng.standard_normal(mean.shape)
    labels = model.cluster_levels
    draws = draws_dataarray(sampled, posterior, model.cluster, labels, "cluster_effect")
    summary = RaoBlackwellSummary(shape[-1])
    summary.add(mean, sd)
    table = summary.table(sampled, pd.Index(labels, name=model.cluster))
    table.insert(0, "n", sizes.astype(int))
    what = (
        "u_j, the deviation from the pooled effect"
        if relative
        else "mu + u_j, the cluster mean (at the cluster's average moderator values)"
    )
    header = (
        f"{model.header}\nShrunken {model.cluster} effects: {what}; n: estimates in the "
        f"{model.cluster}\n{RAO_BLACKWELL}"
    )
    return Effects(draws, ResultTable.with_header(table, header))


def true_effects(model, idata, random_seed=None) -> Effects:
    """Shrunken (study-specific) true effects theta_i = mu_i + u_j + e_i of the fitted rows.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    random_seed : int, optional
        Seed for the one conditional draw per posterior draw.

    Returns
    -------
    Effects
        ``draws`` with dims (chain, draw, estimate); ``table`` with the observed ``yi`` and ``vi``
        (and cluster), the Rao-Blackwellised ``Mean`` and ``SD``, and quantiles from the draws.
        Memory: the (chain, draw, estimate) draws asked for, plus per-row work in blocks.
    """
    _validate.check_model(model)
    posterior, rng = (
        posterior_of(idata),
        np.random.default_rng(_validate.check_random_seed(random_seed)),
    )
    rows = model.meta_data()
    k = len(rows.variances)
    sampled = np.empty((posterior.sizes["chain"], posterior.sizes["draw"], k))
    summary = RaoBlackwellSummary(k)
    for (chain, draws), block in draw_blocks(posterior, k):
        conditional = conditional_effects(model, block)
        mean = conditional.true_mean
        sd = np.broadcast_to(conditional.true_sd, mean.shape)
        summary.add(mean, sd)
        sampled[chain, draws] = (mean + sd * rng.standard_normal(mean.shape))[0]
    labels = np.arange(1, k + 1)
    draws = draws_dataarray(sampled, posterior, "estimate", labels, "true_effect")
    table = summary.table(sampled, pd.Index(labels, name="estimate"))
    table.insert(0, "vi", rows.variances)
    table.insert(0, "yi", rows.effect_sizes)
    if model.cluster is not None:
        table.insert(0, model.cluster, rows.cluster_labels)
    header = (
        f"{model.header}\nShrunken true effects theta_i of the fitted estimates, beside the "
        f"observed yi and vi\n{RAO_BLACKWELL}"
    )
    return Effects(draws, ResultTable.with_header(table, header))
