r"""Shrunken cluster and study effects, by exact Gaussian conditioning per posterior draw.

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
import pandas as pd
import xarray as xr

from bambi_meta._datatree import as_dataset, draw_blocks, posterior_of
from bambi_meta.engine.likelihood import cluster_indicator, cluster_statistics

QUANTILES = (0.025, 0.5, 0.975)


@dataclass(frozen=True)
class Effects:
    """Posterior draws of effects and their summary table.

    Attributes
    ----------
    draws : xarray.DataArray
        Dimensions (chain, draw, <cluster or row>), labelled by cluster or row.
    table : pandas.DataFrame
        One row per cluster or estimate: ``Mean``, ``SD``, ``0.025``, ``0.5``, ``0.975`` (and
        the observed ``yi``, ``vi``, cluster and size columns that help to read it).
    """

    draws: xr.DataArray
    table: pd.DataFrame


@dataclass(frozen=True)
class ConditionalEffects:
    """Per-draw conditional moments of z_j and of every row's true effect (fitted rows)."""

    z_mean: np.ndarray  # (chain, draw, n_clusters)
    z_sd: np.ndarray  # (chain, draw, n_clusters)
    between: np.ndarray  # b_i, (chain, draw, k)
    true_mean: np.ndarray  # E[theta_i | y, params], (chain, draw, k)
    true_sd: np.ndarray  # SD[theta_i | y, params], (chain, draw, k)


def conditional_effects(model, posterior) -> ConditionalEffects:
    """Exact conditional moments of the integrated-out effects, for every posterior draw."""
    rows = model.meta_data()
    draws = model.parameter_draws(posterior)
    residual = rows.effect_sizes - draws["mu"]
    tau2 = np.square(draws["tau"])
    if not model.family.has_clusters:
        shrink = tau2 / (tau2 + rows.variances)
        zeros = np.zeros((*residual.shape[:-1], 0))
        return ConditionalEffects(
            z_mean=zeros,
            z_sd=zeros,
            between=np.zeros_like(residual),
            true_mean=draws["mu"] + shrink * residual,
            true_sd=np.broadcast_to(np.sqrt(shrink * rows.variances), residual.shape),
        )
    indicator = cluster_indicator(rows.cluster_codes, model.family.n_clusters)
    stats = cluster_statistics(residual, draws["tau"], draws["rho"], rows.variances, indicator)
    z_mean = stats.s_br / (1.0 + stats.s_bb)
    z_var = 1.0 / (1.0 + stats.s_bb)
    b = stats.between
    shrink = tau2 * (1.0 - draws["rho"]) / (stats.within)  # w / (w + v), since d = w + v
    m_rows = z_mean[..., rows.cluster_codes]
    true_mean = draws["mu"] + b * m_rows + shrink * (residual - b * m_rows)
    true_var = ((1.0 - shrink) * b) ** 2 * z_var[..., rows.cluster_codes] + shrink * rows.variances
    return ConditionalEffects(z_mean, np.sqrt(z_var), b, true_mean, np.sqrt(true_var))


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
    if not model.family.has_clusters:
        raise ValueError("cluster_effects needs a model with a cluster level, '(1|cluster)'.")
    posterior, rng = posterior_of(idata), np.random.default_rng(random_seed)
    rows = model.meta_data()
    indicator = cluster_indicator(rows.cluster_codes, model.family.n_clusters)
    sizes = np.asarray(indicator.sum(axis=0)).ravel()
    shape = (posterior.sizes["chain"], posterior.sizes["draw"], model.family.n_clusters)
    mean, sd = np.empty(shape), np.empty(shape)
    for (chain, draws), block in draw_blocks(posterior, model.n_estimates):
        conditional = conditional_effects(model, block)
        scale = _cluster_mean(conditional.between, indicator, sizes)[0]
        mean[chain, draws] = scale * conditional.z_mean[0]
        sd[chain, draws] = scale * conditional.z_sd[0]
        if not relative:
            location = model.parameter_draws(block, parameters=("mu",))["mu"]
            mean[chain, draws] += _cluster_mean(location, indicator, sizes)[0]
    sampled = mean + sd * rng.standard_normal(mean.shape)
    labels = model.cluster_levels
    draws = _as_dataarray(sampled, posterior, model.cluster, labels, "cluster_effect")
    summary = RaoBlackwellSummary(shape[-1])
    summary.add(mean, sd)
    table = summary.table(sampled, pd.Index(labels, name=model.cluster))
    table.insert(0, "n", sizes.astype(int))
    return Effects(draws, table)


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
    posterior, rng = posterior_of(idata), np.random.default_rng(random_seed)
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
    draws = _as_dataarray(sampled, posterior, "estimate", labels, "true_effect")
    table = summary.table(sampled, pd.Index(labels, name="estimate"))
    table.insert(0, "vi", rows.variances)
    table.insert(0, "yi", rows.effect_sizes)
    if model.cluster is not None:
        table.insert(0, model.cluster, rows.cluster_labels)
    return Effects(draws, table)


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


def _cluster_mean(values: np.ndarray, indicator, sizes: np.ndarray) -> np.ndarray:
    values = np.broadcast_to(values, (*values.shape[:-1], indicator.shape[0]))
    flat = values.reshape(-1, values.shape[-1])
    return (np.asarray(flat @ indicator) / sizes).reshape(*values.shape[:-1], indicator.shape[1])


class RaoBlackwellSummary:
    """Mean = E[E[x|theta]], SD^2 = E[Var(x|theta)] + Var(E[x|theta]), from running sums.

    Blocks of draws of the conditional means and SDs are added one at a time (O(columns)
    memory); quantiles come from the sampled draws.
    """

    def __init__(self, n_columns: int):
        self.count = 0
        self.sum_mean = np.zeros(n_columns)
        self.sum_mean_sq = np.zeros(n_columns)
        self.sum_var = np.zeros(n_columns)

    def add(self, mean: np.ndarray, sd: np.ndarray) -> None:
        """Add draws (..., columns) of the conditional mean and SD."""
        sd = np.broadcast_to(sd, mean.shape).reshape(-1, mean.shape[-1])
        mean = mean.reshape(-1, mean.shape[-1])
        self.count += len(mean)
        self.sum_mean += mean.sum(axis=0)
        self.sum_mean_sq += np.square(mean).sum(axis=0)
        self.sum_var += np.square(sd).sum(axis=0)

    def table(self, sampled: np.ndarray, index: pd.Index) -> pd.DataFrame:
        """Mean, SD and the quantiles of ``sampled`` (..., columns)."""
        mean = self.sum_mean / self.count
        variance_of_mean = (self.sum_mean_sq - self.count * mean**2) / (self.count - 1)
        total_sd = np.sqrt(self.sum_var / self.count + np.maximum(variance_of_mean, 0.0))
        quantiles = np.quantile(sampled.reshape(-1, sampled.shape[-1]), QUANTILES, axis=0)
        table = pd.DataFrame({"Mean": mean, "SD": total_sd}, index=index)
        for q, values in zip(QUANTILES, quantiles, strict=True):
            table[f"{q:g}"] = values
        return table


def _as_dataarray(values, posterior, dim: str, labels, name: str) -> xr.DataArray:
    return xr.DataArray(
        values,
        dims=("chain", "draw", dim),
        coords={"chain": posterior["chain"], "draw": posterior["draw"], dim: labels},
        name=name,
    )
