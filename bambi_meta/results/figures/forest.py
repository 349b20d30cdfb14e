"""Forest plot: each estimate, its shrunken true effect, cluster and pooled effects, as a table.

The figure reads like metafor's ``forest()``: study labels on the left, one row per estimate
with its observed value and interval, a dotted line at no effect, the pooled effect's diamond
and the prediction interval at the bottom, and the numbers ``estimate [95% CI]`` on the right.
On top of that it shows what a Bayesian multilevel model adds: each estimate's shrunken true
effect (blue, below the observed one), a row per cluster with the cluster's shrunken effect, and,
in a meta-regression, each row's fitted value (grey diamonds, as metafor's polygons).
"""

from collections.abc import Sequence

import numpy as np
from matplotlib.collections import PolyCollection
from matplotlib.lines import Line2D
from scipy.stats import norm

from bambi_meta import _validate
from bambi_meta._datatree import posterior_of
from bambi_meta.results.effects import cluster_effects, true_effects
from bambi_meta.results.figures.columns import (
    axes_inches,
    draw_columns,
    figure_size,
    new_figure,
    rule,
    thin_ticks,
)
from bambi_meta.results.figures.forest_rows import (
    ESTIMATE_COLUMNS,
    Numbers,
    layout,
    order_key,
    row_labels,
    text_columns,
)
from bambi_meta.results.figures.legends import legend_above
from bambi_meta.results.figures.scales import effect_scale
from bambi_meta.results.prediction import prediction_intervals

WIDTH = 7.0  # inches: a journal's full text width (3.5 for one column works too)
ROW_HEIGHT = 0.16  # inches per row (0.13 beyond LARGE rows)
LARGE = 100
NARROW = 5.0  # inches: narrower figures get 6 pt text and no automatic data columns
MARGIN = 1.0  # inches above and below the rows: legend, header, axis and its label
SHRUNKEN_OFFSET = 0.3  # rows below the observed estimate
BLUE, GREY = "C0", "0.62"


def plot_forest(
    model,
    idata,
    *,
    labels: str | Sequence | None = None,
    transform="auto",
    order: str | None = None,
    level: float = 0.95,
    shrunken: bool = True,
    estimates: str | Sequence[str] = "observed",
    columns: str | Sequence[str] | None = "auto",
    clusters: bool = True,
    digits: int = 2,
    xlim: tuple[float, float] | None = None,
    figsize: tuple[float, float | None] | None = None,
    ax=None,
    random_seed=None,
):
    """Forest plot: estimates, shrunken effects, cluster and pooled effects, and their numbers.

    One row per estimate, with the observed ``yi`` and its ``level`` interval
    ``yi ± z sqrt(vi)`` (black square whose side grows linearly with the weight 1/vi, from 0.3
    to 0.8 of a row, as metafor's) and, below it, the
    posterior mean and credible interval of its true effect (blue; metafor's BLUPs). With a
    cluster level the rows are grouped by cluster and each group ends with the cluster's
    shrunken effect (blue diamond; :func:`bambi_meta.cluster_effects` with ``relative=False``).
    The bottom rows show the pooled effect (black diamond spanning its credible interval) and
    the prediction interval for the true effect of a new estimate (in a new cluster). In a
    meta-regression there is no single pooled effect: each row shows its fitted value
    ``X beta`` and credible interval as a grey diamond (metafor's grey polygons) instead.

    Text columns: labels on the left (and data columns, metafor's ``ilab``), ``estimate
    [95% CI]`` on the right; the summary rows print their value in the first of them. A dotted
    line marks no effect. Ratio measures are drawn on the log scale with ratio tick labels and
    numbers (metafor's ``atransf = exp``).

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    labels : str or sequence, optional
        A column of the data holding the row labels, or one label per estimate (a
        ``pandas.Series`` names the column header). Default: ``"<cluster> <label>, estimate <j>"``
        (``"<cluster> <label>, <id> <value>"`` with ``(1|cluster/id)``), or ``"estimate <i>"``.
    transform : {"auto", None, "exp", "ztor", "ilogit", "iarcsin"} or callable, default "auto"
        What the axis and the numbers show (see
        :func:`~bambi_meta.results.figures.scales.effect_scale`): ``"auto"`` is ``exp`` for OR,
        RR, HR, IRR, PETO and ROM.
    order : {None, "effect", "precision"} or str, optional
        Row order: the data's (None), by observed effect, by precision (most precise first),
        or by a column of the data; ascending from the top. With clusters the rows stay grouped:
        clusters are ordered by their shrunken effect (``"effect"``) or by the average rank of
        their rows, and rows within each cluster by the key.
    level : float, default 0.95
        Probability of every interval.
    shrunken : bool, default True
        Draw each estimate's shrunken true effect.
    estimates : str or sequence of str, default "observed"
        Which numbers to print, one column each: ``"observed"``, ``"shrunken"`` (posterior true
        effects), ``"fitted"`` (``X beta``).
    columns : "auto", str, sequence of str or None, default "auto"
        Data columns to print between the labels and the plot (metafor's ``ilab``); ``"auto"``
        prints the moderators of a meta-regression (in figures at least 5 inches wide) and
        nothing otherwise.
    clusters : bool, default True
        With a cluster level: group rows by cluster, with a row per cluster for its effect.
        ``False``: one flat list of estimates.
    digits : int, default 2
        Decimals of the printed numbers.
    xlim : (float, float), optional
        Limits of the effect axis on the model's scale (log ratios for ratio measures);
        intervals reaching beyond end in an arrow. Default: everything drawn, and no effect.
    figsize : (float, float or None), optional
        Size of a new figure in inches; a height of None fits the rows. Default: 7 inches wide
        (a page's width; 3.5 fits one column), 0.16 inches per row (0.13 beyond 100 estimates).
        Text is 7 pt, 6 pt in figures narrower than 5 inches (half a point less beyond 100
        estimates), the sizes a journal prints.
    ax : matplotlib.axes.Axes, optional
        Where to draw the plot; the text columns go beside it, so leave room (e.g. a figure
        made with ``layout="constrained"``, as the default figure is).
    random_seed : int, optional
        Seed for the conditional draws of the effects and of the prediction interval.

    Returns
    -------
    matplotlib.axes.Axes
        The plot; the texts of the columns are in ``ax.texts`` with ``gid`` ``"column:label"``,
        ``"column:<data column>"`` and ``"column:<estimates>"``.

    Notes
    -----
    In a location-scale model (``tau ~ z``) the prediction interval differs from row to row, so
    the bottom rows show the pooled effect without one.

    Examples
    --------
    >>> import bambi_meta as bmm
    >>> bcg = bmm.load_dataset("dat.bcg")
    >>> model = bmm.MetaModel("yi | se(vi) ~ 1", bcg, measure="RR")
    >>> idata = model.fit(random_seed=1)
    >>> study = bcg["author"] + ", " + bcg["year"].astype(str)
    >>> ax = bmm.plot_forest(model, idata, labels=study.rename("Author(s), year"))
    """
    _validate.check_model(model)
    level = _validate.check_open_unit_interval(level, "level")
    scale = effect_scale(model, transform)
    labels = row_labels(model, labels)
    key = order_key(model, order)
    shown = _estimate_columns(estimates)
    data_columns = _data_columns(model, columns, ax, figsize)
    digits = _validate.check_integer(digits, "digits", 0, 6)
    xlim = _limits(xlim)
    size = figure_size(figsize, WIDTH)
    regression = bool(model.parameters["mu"].common_terms)
    grouped = bool(clusters) and model.cluster is not None
    numbers = _numbers(model, idata, level, grouped, regression, random_seed)
    by_effect = isinstance(order, str) and order == "effect"
    rows = layout(model, key, by_effect, grouped, numbers)

    created = ax is None
    large = model.n_estimates > LARGE
    if created:
        width, height = size
        if height is None:
            height = MARGIN + (0.13 if large else ROW_HEIGHT) * (-rows.y.min() + 2.5)
        _, ax = new_figure(width, height)
    narrow = ax.figure.get_figwidth() < NARROW
    fontsize = 7.0 - narrow - 0.5 * large
    top = 1.3  # the header row
    ax.set_ylim(rows.y.min() - 0.8, top + 0.6)
    limits = xlim or _padded(numbers, scale.null, shrunken, regression)
    ax.set_xlim(*limits)

    _draw_rows(ax, rows, numbers, model, shrunken, regression, limits, _row_points(ax, created))
    ax.vlines(scale.null, rows.y.min() - 0.8, 0.5, colors="black", linestyles=":", lw=0.8,
              gid="null")  # fmt: skip
    left, right = text_columns(model, rows, labels, data_columns, shown, numbers, scale, level,
                               digits)  # fmt: skip
    reach = draw_columns(ax, rows.y, top, left, right, fontsize, gap=6.0 if narrow else 10.0)
    rule(ax, top - 0.6, *reach)  # rules across the columns, as metafor's
    if numbers.pooled is not None:
        rule(ax, rows.where("pooled")[1][0] + 0.75, *reach)

    _style_axes(ax, scale, fontsize)
    thin_ticks(ax, axes_inches(ax, created, reach)[0], scale.null, fontsize)
    handles = _legend_handles(model, shrunken, grouped, regression, numbers.pooled)
    legend_above(ax, handles, fontsize, len(handles) if not narrow else 2)
    return ax


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
def _estimate_columns(estimates) -> list[str]:
    try:
        chosen = [estimates] if isinstance(estimates, str) else list(estimates)
    except TypeError:
        chosen = [estimates]
    unknown = [name for name in chosen if name not in ESTIMATE_COLUMNS]
    if not chosen or unknown or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"'estimates' must be one or more of {', '.join(ESTIMATE_COLUMNS)} (each once); "
            f"got {estimates!r}."
        )
    return chosen


def _data_columns(model, columns, ax, figsize) -> list[str]:
    if isinstance(columns, str) and columns == "auto":
        width = ax.figure.get_figwidth() if ax is not None else figure_size(figsize, WIDTH)[0]
        return list(model.moderators["mu"]) if width >= NARROW else []
    chosen = [] if columns is None else [columns] if isinstance(columns, str) else list(columns)
    missing = [name for name in chosen if name not in model.data.columns]
    if missing:
        raise ValueError(
            f"'columns' must be 'auto', None or columns of the data "
            f"({', '.join(map(str, model.data.columns))}); {missing[0]!r} is not one."
        )
    return chosen


def _limits(xlim):
    if xlim is None:
        return None
    try:
        low, high = (float(value) for value in xlim)
    except (TypeError, ValueError):
        raise ValueError(f"'xlim' must be two numbers (low, high); got {xlim!r}.") from None
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"'xlim' must be two finite numbers with low < high; got {xlim!r}.")
    return low, high


# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------
def _numbers(model, idata, level, grouped, regression, random_seed) -> Numbers:
    """Observed, shrunken and fitted (mean, lower, upper) per estimate; cluster and pooled."""
    tail = (1 - level) / 2
    effects = true_effects(model, idata, random_seed=random_seed)
    yi, vi = effects.table["yi"].to_numpy(), effects.table["vi"].to_numpy()
    half = norm.ppf(1 - tail) * np.sqrt(vi)
    fitted = model.parameter_draws(posterior_of(idata), parameters=("mu",))["mu"]
    estimates = {
        "observed": (yi, yi - half, yi + half),
        "shrunken": _interval(effects.draws.to_numpy(), tail, effects.table["Mean"]),
        "fitted": _interval(np.broadcast_to(fitted, (*fitted.shape[:-1], len(yi))), tail),
    }
    cluster = None
    if grouped:
        table = cluster_effects(model, idata, random_seed=random_seed, relative=False)
        cluster = _interval(table.draws.to_numpy(), tail, table.table["Mean"])
    pooled = None if regression else _pooled(model, idata, level, tail, random_seed)
    return Numbers(estimates, cluster, pooled)


def _interval(draws: np.ndarray, tail: float, mean=None) -> tuple[np.ndarray, ...]:
    """Mean (or the given Rao-Blackwellised one) and the central interval of (..., n) draws."""
    flat = draws.reshape(-1, draws.shape[-1])
    center = flat.mean(axis=0) if mean is None else np.asarray(mean, dtype=float)
    low, high = np.quantile(flat, [tail, 1 - tail], axis=0)
    return center, low, high


def _pooled(model, idata, level, tail, random_seed) -> tuple[float, ...]:
    """(mean, CI lower, CI upper, PI lower, PI upper) of the pooled effect; PI NaN if it varies."""
    if any(model.moderators.get(name) for name in ("tau", "rho")):
        draws = model.parameter_draws(posterior_of(idata), parameters=("mu",))["mu"][..., 0]
        mean, low, high = _interval(draws[..., np.newaxis], tail)
        return float(mean[0]), float(low[0]), float(high[0]), np.nan, np.nan
    row = prediction_intervals(model, idata, level=level, random_seed=random_seed).iloc[0]
    names = ("Mean", "CI lower", "CI upper", "PI lower", "PI upper")
    return tuple(float(row[name]) for name in names)


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------
def _padded(numbers: Numbers, null: float, shrunken: bool, regression: bool):
    """Axis limits: every interval drawn and the null, with a margin."""
    drawn = [numbers.estimates["observed"][1:], ([null], [null])]
    if shrunken:
        drawn.append(numbers.estimates["shrunken"][1:])
    if regression:
        drawn.append(numbers.estimates["fitted"][1:])
    if numbers.cluster is not None:
        drawn.append(numbers.cluster[1:])
    pooled = numbers.pooled
    if pooled is not None:
        drawn.append(([pooled[1], pooled[3]], [pooled[2], pooled[4]]))
    low = min(np.nanmin(np.asarray(part[0], dtype=float)) for part in drawn)
    high = max(np.nanmax(np.asarray(part[1], dtype=float)) for part in drawn)
    pad = 0.04 * (high - low)
    return low - pad, high + pad


def _draw_rows(ax, rows, numbers, model, shrunken, regression, limits, row_points) -> None:
    """Estimates (observed, shrunken, fitted), cluster effects, the pooled effect and its PI."""
    index, y = rows.where("estimate")
    if regression:  # metafor's grey polygons, under the estimates
        fitted = [values[index] for values in numbers.estimates["fitted"]]
        _diamonds(ax, fitted, y, 0.35, GREY, "fitted", zorder=1)
    observed = [values[index] for values in numbers.estimates["observed"]]
    _intervals(ax, y, observed[1], observed[2], limits, "black", "observed", 0.8)
    weights = 1 / model.meta_data().variances[index]  # sides 0.3 to 0.8 rows, linear in weight
    spread = np.ptp(weights)
    relative = (weights - weights.min()) / spread if spread > 0 else np.ones_like(weights)
    sides = row_points * (0.3 + 0.5 * relative)
    ax.scatter(observed[0], y, s=sides**2, marker="s", color="black", linewidths=0, zorder=3,
               gid="observed")  # fmt: skip
    if shrunken:
        true = [values[index] for values in numbers.estimates["shrunken"]]
        below = y - SHRUNKEN_OFFSET
        _intervals(ax, below, true[1], true[2], limits, BLUE, "shrunken", 0.7)
        ax.scatter(true[0], below, s=9, color=BLUE, linewidths=0, zorder=3, gid="shrunken")
    if numbers.cluster is not None:
        index, y = rows.where("cluster")
        cluster = [values[index] for values in numbers.cluster]
        _diamonds(ax, cluster, y, 0.32, BLUE, "cluster", zorder=3)
    if numbers.pooled is not None:
        pooled = numbers.pooled
        _diamonds(ax, [[v] for v in pooled[:3]], rows.where("pooled")[1], 0.4, "black",
                  "pooled", zorder=3)  # fmt: skip
        if np.isfinite(pooled[3]):
            y = rows.where("prediction")[1]
            _intervals(ax, y, [pooled[3]], [pooled[4]], limits, "black", "prediction", 1.0)


def _row_points(ax, created: bool) -> float:
    """Height of one row in points, for marker sizes."""
    low, high = ax.get_ylim()
    return axes_inches(ax, created)[1] * 72 / (high - low)


def _intervals(ax, y, low, high, limits, color, gid, width) -> None:
    """Horizontal intervals with end ticks; ends beyond ``limits`` become arrows."""
    y, low, high = (np.asarray(v, dtype=float) for v in (y, low, high))
    start, stop = np.clip(low, *limits), np.clip(high, *limits)
    ax.hlines(y, start, stop, colors=color, lw=width, gid=f"{gid}:interval", zorder=2)
    for ends, clipped, arrow in ((low, low < limits[0], "<"), (high, high > limits[1], ">")):
        edge = limits[0] if arrow == "<" else limits[1]
        if clipped.any():
            ax.scatter(np.full(clipped.sum(), edge), y[clipped], marker=arrow, s=14,
                       color=color, linewidths=0, zorder=2, clip_on=False,
                       gid=f"{gid}:arrow")  # fmt: skip
        if (~clipped).any():
            ax.scatter(ends[~clipped], y[~clipped], marker="|", s=12, color=color,
                       linewidths=width, zorder=2, gid=f"{gid}:end")  # fmt: skip


def _diamonds(ax, values, y, half_height, color, gid, zorder) -> PolyCollection:
    """Diamonds from the lower to the upper bound, widest at the mean."""
    center, low, high = (np.asarray(v, dtype=float) for v in values)
    y = np.asarray(y, dtype=float)
    polygons = [
        [(lo, row), (mid, row + half_height), (hi, row), (mid, row - half_height)]
        for mid, lo, hi, row in zip(center, low, high, y, strict=True)
    ]
    collection = PolyCollection(polygons, facecolors=color, edgecolors=color, linewidths=0.4,
                                zorder=zorder, gid=gid)  # fmt: skip
    ax.add_collection(collection, autolim=False)
    return collection


def _style_axes(ax, scale, fontsize) -> None:
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    ax.set_yticks([])
    scale.apply(ax, "x")
    ax.tick_params(axis="x", labelsize=fontsize, length=3, width=0.6)
    ax.spines["bottom"].set_linewidth(0.6)
    ax.xaxis.label.set_fontsize(fontsize + 0.5)


def _legend_handles(model, shrunken, cluster, regression, pooled) -> list[Line2D]:
    def handle(label, **style):
        return Line2D([], [], label=label, **{"color": "black", "lw": 0.8, **style})

    handles = [handle("observed", marker="s", ms=4)]
    if shrunken:
        handles.append(handle("shrunken estimate", color=BLUE, marker="o", ms=3, lw=0.7))
    if cluster:
        handles.append(handle(f"{model.cluster} effect (shrunken)", color=BLUE, marker="D",
                              ms=4, lw=0))  # fmt: skip
    if regression:
        handles.append(handle("fitted value", color=GREY, marker="D", ms=5, lw=0))
    if pooled is not None:
        handles.append(handle("pooled effect", marker="D", ms=5, lw=0))
        if np.isfinite(pooled[3]):
            handles.append(handle("prediction interval", lw=1.0))
    return handles
