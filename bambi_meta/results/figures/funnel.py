"""Funnel plot: estimates against their standard errors, contour-enhanced or model-implied."""

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch
from scipy.stats import norm

from bambi_meta import _validate
from bambi_meta._datatree import posterior_of
from bambi_meta.results.figures.legends import legend_below
from bambi_meta.results.figures.scales import effect_scale

DEFAULT_CONTOURS = (0.90, 0.95, 0.99)
# Fill of the significance regions, from the region of p above the largest alpha (white) to p
# below the smallest (darkest): more significant is darker, and black points stay readable.
LIGHTEST_SHADE, DARKEST_SHADE = 0.92, 0.76
PATCH_EDGE = {"edgecolor": "0.45", "linewidth": 0.6}
PAD = 0.05  # fraction of each axis range kept free around the points


def plot_funnel(
    model,
    idata,
    contours: Sequence[float] | bool | None = None,
    transform="auto",
    level: float = 0.95,
    ax=None,
    model_region: bool | None = None,
):
    r"""Funnel plot: each estimate against its standard error (0 at the top).

    Without ``contours`` the funnel is the fitted model's: the shaded region is where ``level``
    of the estimates of a new study with that standard error fall under the model, pooled mean
    :math:`\pm z\sqrt{SE^2 + \tau^2}` (posterior means plugged in), so that a heterogeneous
    meta-analysis is not misread as asymmetric; the dashed lines are the classic pooled mean
    :math:`\pm z\cdot SE`.

    With ``contours`` (contour-enhanced funnel, Peters et al. 2008; metafor's
    ``funnel(level = c(90, 95, 99), shade = ..., refline = 0)``) the background shows where an
    estimate's two-sided p-value against no effect (0) falls: the region
    :math:`|y| < z_{1-\alpha/2} SE` has :math:`p > \alpha`. Missing studies in the shaded
    (significant) regions point to publication bias; missing studies in the white region point
    to something else. As in metafor, the contours replace the model's funnel (both are
    funnels of different centre and width, and together they are hard to read); the pooled mean
    stays, and ``model_region=True`` adds the model-implied region as an outline.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    contours : sequence of float, True or None, default None
        Confidence levels of the significance contours, each in (0, 1), e.g.
        ``(0.90, 0.95, 0.99)`` (p = 0.10, 0.05, 0.01); True is that default; None draws none.
    transform : {"auto", None, "exp", "ztor", "ilogit", "iarcsin"} or callable, default "auto"
        What the x tick labels show (``bambi_meta.results.figures.scales.effect_scale``):
        ``"auto"`` labels a log ratio axis with ratios (``exp``), as metafor's ``atransf``.
    level : float, default 0.95
        Probability of the model-implied region and of the classic funnel.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made otherwise.
    model_region : bool, optional
        Draw the model-implied region; by default only without ``contours``.

    Returns
    -------
    matplotlib.axes.Axes
        The estimates are the scatter labelled ``"estimates"``; contour lines carry the gids
        ``"contour 0.95"`` (one line per side), the no-effect line ``"null"``.
    """
    _validate.check_model(model)
    level = _validate.check_open_unit_interval(level, "level")
    levels = _check_contours(contours)
    if model_region is None:
        model_region = not levels
    elif not isinstance(model_region, bool):
        raise TypeError(f"'model_region' must be True, False or None; got {model_region!r}.")
    scale = effect_scale(model, transform)
    rows = model.meta_data()
    draws = model.parameter_draws(posterior_of(idata))
    mean = float(np.mean(draws["mu"]))
    tau2 = float(np.mean(np.square(draws["tau"])))
    estimates = np.asarray(rows.effect_sizes, dtype=float)
    standard_errors = np.sqrt(np.asarray(rows.variances, dtype=float))
    z = norm.ppf(0.5 + level / 2)

    se_max = float(standard_errors.max())
    se_top, se_bottom = -PAD * se_max, (1 + PAD) * se_max
    se_grid = np.linspace(se_top, se_bottom, 200)
    se_positive = np.clip(se_grid, 0.0, None)
    implied = z * np.sqrt(se_positive**2 + tau2)
    # the points and the funnel drawn around them (the model-implied region of a heterogeneous
    # meta-analysis can be far wider: it is cut at the frame rather than squeeze the points)
    x_extremes = [estimates.min(), estimates.max(), mean, scale.null]
    if levels:
        reach = norm.ppf(0.5 + max(levels) / 2) * se_max
        x_extremes += [scale.null - reach, scale.null + reach]
    else:
        x_extremes += [mean - z * se_max, mean + z * se_max]
    x_low, x_high = min(x_extremes), max(x_extremes)
    x_pad = PAD * (x_high - x_low)
    x_low, x_high = x_low - x_pad, x_high + x_pad

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(se_bottom, se_top)  # standard error grows downwards
    regions = []
    if levels:
        regions = _draw_contours(ax, levels, scale.null, se_grid, se_positive, x_low, x_high)
    if levels and model_region:
        ax.plot(mean - implied, se_grid, color="C0", linewidth=1.0, linestyle="--")
        ax.plot(
            mean + implied,
            se_grid,
            color="C0",
            linewidth=1.0,
            linestyle="--",
            label=f"{level:.0%} model-implied region",
        )
    elif model_region:
        ax.fill_betweenx(
            se_grid,
            mean - implied,
            mean + implied,
            color="C0",
            alpha=0.15,
            linewidth=0,
            label=f"{level:.0%} model-implied region",
        )
    if not levels:
        ax.plot(mean - z * se_positive, se_grid, "k--", linewidth=0.8)
        ax.plot(mean + z * se_positive, se_grid, "k--", linewidth=0.8, label=f"mean ± {z:.2f}·SE")
    ax.axvline(mean, color="C0", linewidth=1.2, label="pooled mean")
    null = ax.axvline(scale.null, color="black", linestyle=":", linewidth=0.9)
    null.set_gid("null")
    ax.scatter(
        estimates,
        standard_errors,
        s=18,
        color="black",
        edgecolor="white",
        linewidth=0.4,
        zorder=3,
        label="estimates",
    )
    scale.apply(ax, "x")
    ax.set_ylabel("Standard error")
    ax.set_xlim(x_low, x_high)
    handles, labels = ax.get_legend_handles_labels()
    order = np.argsort([label != "estimates" for label in labels], kind="stable")
    handles = [handle for handle, _ in regions] + [handles[i] for i in order]
    labels = [label for _, label in regions] + [labels[i] for i in order]
    legend_below(ax, handles, labels)
    return ax


def _check_contours(contours) -> tuple[float, ...]:
    """The contour levels, sorted; () for none."""
    if contours is None or contours is False:
        return ()
    if contours is True:
        return DEFAULT_CONTOURS
    values = np.atleast_1d(np.asarray(contours, dtype=object))
    try:
        numbers = None if isinstance(contours, str) else np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        numbers = None
    if (
        numbers is None
        or numbers.ndim != 1
        or not numbers.size
        or any(isinstance(value, bool) for value in values)
        or not np.all((numbers > 0) & (numbers < 1))
        or np.unique(numbers).size != numbers.size
    ):
        raise ValueError(
            "'contours' must be None, True or distinct confidence levels in (0, 1) (strictly "
            f"between 0 and 1), e.g. (0.90, 0.95, 0.99); got {contours!r}."
        )
    return tuple(np.sort(numbers))


def _draw_contours(ax, levels, null, se_grid, se_positive, x_low, x_high) -> list:
    """Shade the significance regions around ``null`` and draw their boundaries.

    Returns the legend entries of the regions, (Patch, label), from p above the largest alpha
    to p below the smallest (outlined patches, so the white one shows).
    """
    alphas = [1 - value for value in levels]  # descending: 0.10, 0.05, 0.01
    bounds = [norm.ppf(1 - alpha / 2) * se_positive for alpha in alphas]
    shades = np.linspace(LIGHTEST_SHADE, DARKEST_SHADE, len(levels))
    ax.fill_betweenx(se_grid, null - bounds[0], null + bounds[0], color="white", linewidth=0)
    entries = [(Patch(facecolor="white", **PATCH_EDGE), f"p > {_p(alphas[0])}")]
    for index, alpha in enumerate(alphas):
        inner = bounds[index]
        outer = bounds[index + 1] if index + 1 < len(bounds) else None
        color = str(shades[index])
        if outer is None:
            label = f"p ≤ {_p(alpha)}"
            left, right = (x_low, null - inner), (null + inner, x_high)
        else:
            label = f"{_p(alphas[index + 1])} < p ≤ {_p(alpha)}"
            left, right = (null - outer, null - inner), (null + inner, null + outer)
        ax.fill_betweenx(se_grid, *left, color=color, linewidth=0)
        ax.fill_betweenx(se_grid, *right, color=color, linewidth=0)
        entries.append((Patch(facecolor=color, **PATCH_EDGE), label))
        for side in (-1, 1):
            (line,) = ax.plot(null + side * inner, se_grid, color="0.45", linewidth=0.6)
            line.set_gid(f"contour {levels[index]:g}")
    return entries


def _p(alpha: float) -> str:
    """A p-value threshold as printed (0.10, 0.05, 0.01, 0.001)."""
    return f"{alpha:.2f}" if round(alpha, 2) == round(alpha, 10) else f"{alpha:.3g}"
