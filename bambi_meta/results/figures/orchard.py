"""Orchard plot: every estimate by level of a categorical moderator, with the level's effect.

Nakagawa et al. (2021), "The orchard plot: cultivating a forest plot for use in ecology,
evolution, and beyond", Research Synthesis Methods 12(1), 4-12, https://doi.org/10.1002/jrsm.1424:
a forest plot stops being readable at a few hundred estimates, an orchard plot does not. Each
level of the moderator is a "trunk": its estimates as points spread sideways where they are
dense (point area proportional to the precision 1/SE), the level's pooled effect (a large
point), its credible interval (thick bar) and prediction interval (thin bar).
"""

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from scipy.stats import gaussian_kde

from bambi_meta import _validate
from bambi_meta.results.figures.columns import (
    TextColumn,
    axes_inches,
    draw_columns,
    figure_size,
    format_intervals,
    interval_header,
    measure_name,
    new_figure,
    plural,
    thin_ticks,
)
from bambi_meta.results.figures.legends import legend_above
from bambi_meta.results.figures.scales import effect_scale
from bambi_meta.results.prediction import prediction_intervals

WIDTH = 7.0  # inches (3.5 fits one journal column)
TRUNK_HEIGHT = 0.8  # inches per level
MARGIN = 1.3  # inches for the legend, the axis and its label
NARROW = 5.0  # inches: narrower figures get 6 pt text and smaller points
SPREAD = 0.34  # widest sideways spread of a trunk's points, in rows
LARGEST_POINT = 90.0  # pt^2: the area of the most precise estimate


def plot_orchard(
    model,
    idata,
    moderator: str | None = None,
    *,
    level: float = 0.95,
    transform="auto",
    figsize: tuple[float, float] | None = None,
    ax=None,
    random_seed=None,
):
    """Orchard plot: estimates by level of a categorical moderator, with each level's effect.

    One trunk per level of ``moderator`` (one for all estimates without it), top to bottom in
    the order of the levels. Each estimate is a point at its observed ``yi``, spread sideways
    where estimates are dense (a deterministic quasi-random spread scaled by their density, so
    the same data give the same figure), with area proportional to its precision 1/SE. Over them:
    the level's pooled effect (posterior mean, large point), its credible interval (thick bar)
    and the prediction interval for the true effect of a new estimate (in a new cluster) at that
    level (thin bar), all from :func:`bambi_meta.prediction_intervals`. Other moderators are held
    at their mean (numeric) or most common level (categorical), as noted under the axis. On the
    right: k (and the number of clusters) per level and the level's effect with its interval.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    moderator : str, optional
        A categorical moderator of the location formula; needed in a meta-regression. For a
        numeric moderator use :func:`bambi_meta.plot_bubble`.
    level : float, default 0.95
        Probability of the credible and prediction intervals.
    transform : {"auto", None, "exp", "ztor", "ilogit", "iarcsin"} or callable, default "auto"
        What the axis and the numbers show; ``"auto"`` is ``exp`` for ratio measures.
    figsize : (float, float or None), optional
        Size of a new figure in inches; a height of None fits the levels. Default: 7 inches
        wide, 0.8 inches per level (text of 7 pt; 6 pt below 5 inches wide).
    ax : matplotlib.axes.Axes, optional
        Where to draw; the text column goes to its right, so leave room (e.g. a figure made
        with ``layout="constrained"``, as the default figure is).
    random_seed : int, optional
        Seed for the draws of new true effects (prediction intervals).

    Returns
    -------
    matplotlib.axes.Axes
        The trunks are ``ax.collections`` with ``gid`` ``"estimates:<level>"``; the texts of
        the column are in ``ax.texts`` with ``gid`` ``"column:k"`` and ``"column:estimate"``.

    Examples
    --------
    >>> import bambi_meta as bmm
    >>> assink = bmm.load_dataset("dat.assink2016")
    >>> model = bmm.MetaModel("yi | se(vi) ~ 1 + deltype + (1|study)", assink, measure="SMD")
    >>> idata = model.fit(random_seed=1)
    >>> ax = bmm.plot_orchard(model, idata, "deltype", random_seed=1)
    """
    _validate.check_model(model)
    level = _validate.check_open_unit_interval(level, "level")
    scale = effect_scale(model, transform)
    width, height = figure_size(figsize, WIDTH)
    levels, groups, grid, note = _trunks(model, moderator)
    table = prediction_intervals(
        model, idata, grid, level=level, random_seed=random_seed
    ).reset_index(drop=True)
    rows = model.meta_data()
    yi, precision = rows.effect_sizes, 1 / np.sqrt(rows.variances)

    created = ax is None
    if created:
        _, ax = new_figure(width, height or MARGIN + TRUNK_HEIGHT * len(levels))
    narrow = ax.figure.get_figwidth() < NARROW
    fontsize = 6.0 if narrow else 7.0
    largest = LARGEST_POINT * (0.6 if narrow else 1.0)
    positions = np.arange(len(levels))[::-1].astype(float)
    for index, (name, members, y) in enumerate(zip(levels, groups, positions, strict=True)):
        color = f"C{index % 10}"
        offsets = _spread(yi[members], SPREAD)
        ax.scatter(yi[members], y + offsets, s=largest * precision[members] / precision.max(),
                   facecolor=color, edgecolor=color, alpha=0.45, linewidths=0.5, zorder=2,
                   gid=f"estimates:{name}")  # fmt: skip
        estimate = table.iloc[index]
        ax.hlines(y, estimate["PI lower"], estimate["PI upper"], colors="black", lw=1.2,
                  zorder=3, gid="prediction")  # fmt: skip
        ax.hlines(y, estimate["CI lower"], estimate["CI upper"], colors="black", lw=5,
                  zorder=4, gid="credible")  # fmt: skip
        ax.scatter([estimate["Mean"]], [y], s=70, facecolor=color, edgecolor="black",
                   linewidths=1.2, zorder=5, gid="mean")  # fmt: skip
    ax.axvline(scale.null, color="0.25", linestyle="--", lw=0.8, zorder=1, gid="null")
    ax.set_ylim(-0.6, len(levels) - 1 + 0.65)
    low = min(yi.min(), table["PI lower"].min(), scale.null)
    high = max(yi.max(), table["PI upper"].max(), scale.null)
    ax.set_xlim(low - 0.05 * (high - low), high + 0.05 * (high - low))

    counts = []
    for members in groups:
        text = f"k = {members.sum()}"
        if model.cluster is not None:
            text += f" ({plural(model.cluster, len(np.unique(rows.cluster_labels[members])))})"
        counts.append(text)
    values = [scale.values(table[name].to_numpy()) for name in ("Mean", "CI lower", "CI upper")]
    cells = format_intervals(values[0], np.fmin(*values[1:]), np.fmax(*values[1:]), 2)
    header = interval_header(measure_name(model, scale), level, credible=True)
    right = [
        TextColumn("", counts, "left", "column:k"),
        TextColumn(header, cells, "right", "column:estimate"),
    ]
    reach = draw_columns(ax, positions, len(levels) - 1 + 0.5, [], right, fontsize)

    ax.set_yticks(positions, [str(name) for name in levels], fontsize=fontsize + 0.5)
    ax.tick_params(axis="y", length=0)
    ax.tick_params(axis="x", labelsize=fontsize)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    scale.apply(ax, "x")
    ax.set_xlabel(scale.label + note, fontsize=fontsize + 0.5)
    ax.set_ylabel(moderator or "", fontsize=fontsize + 0.5)
    thin_ticks(ax, axes_inches(ax, created, reach)[0], scale.null, fontsize)
    handles = _legend_handles(level, precision, largest)
    legend_above(ax, handles, fontsize, columns=2)  # intervals, then point sizes
    return ax


def _trunks(model, moderator):
    """Levels, the rows of each (boolean masks), the rows to predict at, and a note on them."""
    data = model.data
    used = model.moderators
    categorical = _categorical_moderators(model)
    if moderator is None and used["mu"]:
        raise ValueError(
            "'moderator' is needed for a meta-regression: one of the categorical moderators "
            f"of the location formula ({', '.join(categorical) or 'there is none'})."
        )
    if moderator is None:
        levels, groups = ["all estimates"], [np.ones(model.n_estimates, dtype=bool)]
        grid = pd.DataFrame(index=[0])
    elif moderator in categorical:
        column = data[moderator]
        levels = [name for name in pd.Categorical(column).categories if (column == name).any()]
        groups = [(column == name).to_numpy() for name in levels]
        grid = pd.DataFrame({moderator: pd.Series(levels, dtype=column.dtype)})
    else:
        if moderator in used["mu"]:
            kind = f"numeric: draw it with plot_bubble(model, idata, {moderator!r})"
        else:
            kind = "not a moderator of the location formula"
        raise ValueError(
            f"'moderator' must be a categorical moderator of the location formula "
            f"({', '.join(categorical) or 'there is none'}); {moderator!r} is {kind}."
        )
    held = []  # other moderators (of tau and rho too): at their mean or most common level
    for name in sorted(set().union(*used.values()) - {moderator}):
        if name in categorical or not pd.api.types.is_numeric_dtype(data[name]):
            grid[name] = data[name].mode()[0]
            held.append(f"{name} = {grid[name].iloc[0]} (most common)")
        else:
            grid[name] = data[name].mean()
            held.append(f"{name} = {grid[name].iloc[0]:.3g} (mean)")
    note = f"\nother moderators at {', '.join(held)}" if held else ""
    return levels, groups, (grid if len(grid.columns) else None), note


def _categorical_moderators(model) -> list[str]:
    """Data columns that enter the location formula as a categorical main effect."""
    names = set()
    for term in model.parameters["mu"].common_terms.values():
        variables = set(getattr(term.term, "var_names", ()))
        if term.categorical and len(variables) == 1:
            names |= variables
    return sorted(names & set(model.data.columns))


def _spread(values: np.ndarray, half_width: float) -> np.ndarray:
    """Sideways offsets: quasi-random in [-1, 1] (van der Corput), scaled by the density."""
    n = len(values)
    if n < 2:
        return np.zeros(n)
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    sequence = np.array([_van_der_corput(rank + 1) for rank in ranks])
    density = np.ones(n)
    if n > 2 and np.ptp(values) > 0:
        density = gaussian_kde(values)(values)
        density = density / density.max()
    return half_width * density * (2 * sequence - 1)


def _van_der_corput(index: int) -> float:
    """The ``index``-th point of the base-2 van der Corput sequence in (0, 1)."""
    value, denominator = 0.0, 1.0
    while index:
        index, digit = divmod(index, 2)
        denominator *= 2
        value += digit / denominator
    return value


def _legend_handles(level: float, precision: np.ndarray, largest: float) -> list[Line2D]:
    percent = f"{100 * level:g}%"
    handles = [
        Line2D([], [], marker="o", color="black", markerfacecolor="0.6", lw=0, ms=7,
               label="pooled effect (posterior mean)"),
        Line2D([], [], color="black", lw=5, label=f"{percent} credible interval"),
        Line2D([], [], color="black", lw=1.2, label=f"{percent} prediction interval"),
    ]  # fmt: skip
    for value in _round_precisions(precision):
        size = np.sqrt(largest * value / precision.max())
        handles.append(
            Line2D(
                [], [], marker="o", color="0.5", alpha=0.6, lw=0, ms=size, label=f"1/SE = {value:g}"
            )  # fmt: skip
        )
    return handles


def _round_precisions(precision: np.ndarray) -> list[float]:
    """Two or three round values of 1/SE spanning the data, for the size legend."""
    low, high = float(precision.min()), float(precision.max())
    values = []
    for value in (low, np.sqrt(low * high), high):
        rounded = float(f"{value:.1g}")
        if low * 0.5 <= rounded <= high * 1.05 and rounded not in values:
            values.append(rounded)
    return values
