"""Forest plot: each estimate, its shrunken true effect and the pooled effect."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import norm

from bambi_meta import _validate
from bambi_meta.results.effects import true_effects
from bambi_meta.results.prediction import prediction_intervals


def plot_forest(model, idata, ax=None, level: float = 0.95, random_seed=None):
    """Forest plot: observed estimates, their shrunken true effects, and the pooled estimate.

    Each estimate is drawn twice, as in metafor's ``forest()`` next to its BLUPs: the observed
    ``yi`` with its ``level`` interval from ``vi`` (black square sized by precision), and the
    posterior mean and interval of its true effect (blue). Rows are grouped by cluster. The
    bottom row shows the pooled effect (diamond, credible interval) and the prediction interval
    for the true effect of a new estimate in a new cluster.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure sized to the number of rows is made otherwise.
    level : float, default 0.95
        Interval probability.
    random_seed : int, optional
        Seed for the conditional draws of the effects.

    Returns
    -------
    matplotlib.axes.Axes
    """
    _validate.check_model(model)
    tail = (1 - _validate.check_open_unit_interval(level, "level")) / 2
    effects = true_effects(model, idata, random_seed=random_seed)
    table, draws = effects.table, effects.draws
    lower, upper = np.quantile(draws.to_numpy().reshape(-1, len(table)), [tail, 1 - tail], axis=0)
    z = norm.ppf(1 - tail)
    order = np.arange(len(table))
    if model.cluster is not None:
        order = np.argsort(pd.Categorical(table[model.cluster]).codes, kind="stable")
    n_rows = len(table) + 2
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 1.5 + 0.19 * n_rows))
    positions = n_rows - 1 - np.arange(len(table))
    observed = table["yi"].to_numpy()[order]
    half = z * np.sqrt(table["vi"].to_numpy()[order])
    weights = 1 / table["vi"].to_numpy()[order]
    ax.errorbar(observed, positions + 0.15, xerr=half, fmt="none", ecolor="black", lw=0.8)
    ax.scatter(
        observed,
        positions + 0.15,
        s=12 + 60 * weights / weights.max(),
        marker="s",
        color="black",
        label="observed (yi ± z·sqrt(vi))",
        zorder=3,
    )
    shrunk = table["Mean"].to_numpy()[order]
    ax.errorbar(
        shrunk,
        positions - 0.15,
        xerr=[shrunk - lower[order], upper[order] - shrunk],
        fmt="o",
        ms=3,
        color="C0",
        lw=0.8,
        label="true effect (posterior)",
    )
    labels = [str(i) for i in table.index.to_numpy()[order]]
    if model.cluster is not None:
        labels = [
            f"{c} / {i}"
            for c, i in zip(
                table[model.cluster].to_numpy()[order], table.index.to_numpy()[order], strict=True
            )
        ]
        _shade_clusters(ax, table[model.cluster].to_numpy()[order], positions)
    pooled = prediction_intervals(model, idata, level=level, random_seed=random_seed).iloc[0]
    mean, ci_low, ci_high = pooled["Mean"], pooled["CI lower"], pooled["CI upper"]
    ax.fill([ci_low, mean, ci_high, mean], [0, 0.3, 0, -0.3], color="C3", label="pooled effect")
    ax.hlines(
        0,
        pooled["PI lower"],
        pooled["PI upper"],
        color="C3",
        lw=1,
        label="prediction interval (new cluster)",
    )
    ax.axvline(mean, color="C3", lw=0.6, ls=":")
    ax.set_yticks([*positions, 0], [*labels, "pooled"], fontsize=7)
    ax.set_ylim(-1, n_rows)
    ax.set_xlabel(f"effect size ({model.meta_formula.response})")
    ax.legend(
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.5 / n_rows - 0.04),
        ncol=2,
        frameon=False,
    )
    return ax


def _shade_clusters(ax, clusters: np.ndarray, positions: np.ndarray) -> None:
    """Alternate light bands behind consecutive clusters."""
    boundaries = np.flatnonzero(np.r_[True, clusters[1:] != clusters[:-1], True])
    for index, (start, stop) in enumerate(zip(boundaries[:-1], boundaries[1:], strict=True)):
        if index % 2 == 0:
            ax.axhspan(positions[stop - 1] - 0.5, positions[start] + 0.5, color="0.93", zorder=0)
