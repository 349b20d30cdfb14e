"""Bubble plot: effect sizes against a moderator, with the fitted meta-regression."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from bambi_meta import _validate
from bambi_meta._datatree import posterior_of
from bambi_meta.bambi_ext.columns import MetaData
from bambi_meta.results.figures.legends import legend_below
from bambi_meta.results.figures.scales import effect_scale

BUBBLE_PREDICTIVE_DRAWS = 4
MARGIN = 0.07


def plot_bubble(
    model,
    idata,
    moderator: str,
    level: float = 0.95,
    prediction_interval: bool = True,
    ax=None,
    random_seed=None,
    transform="auto",
):
    """Meta-analytic bubble plot: effect sizes against a moderator, with the fitted regression.

    Each estimate is a point at (moderator, yi) whose marker AREA is proportional to its
    precision 1/SE (the largest is 200 pt^2), so precise estimates stand out. The line is the
    posterior mean of the pooled effect, the band its credible interval and the dashed lines the
    prediction interval for the true effect of a new estimate in a new cluster (with a scale
    model ``tau ~ z`` it widens and narrows with tau). Other moderators are held at their mean
    (numeric) or most common level (categorical), as ``bambi.interpret`` does.

    The vertical axis is named by the measure and, for ratio measures, labelled with ratios at
    round values on the log scale (as metafor's ``regplot(..., transf = exp)``, which draws on
    the ratio scale); the dotted horizontal line is no effect (0, a ratio of 1). The legend sits
    under the axes, never over the points.

    Parameters
    ----------
    model : MetaModel
        A fitted meta-regression.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    moderator : str
        A numeric column used in the location formula (for a categorical moderator use
        ``bmb.interpret.plot_predictions(model, idata, "<moderator>")``).
    level : float, default 0.95
        Probability of the credible and prediction intervals.
    prediction_interval : bool, default True
        Draw the prediction interval.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made otherwise.
    random_seed : int, optional
        Seed for the draws of new true effects (prediction interval; the credible band and the
        line are exact functions of the posterior draws).
    transform : {"auto", None, "exp", "ztor", "ilogit", "iarcsin"} or callable, default "auto"
        What the y tick labels show (``bambi_meta.results.figures.scales.effect_scale``):
        ``"auto"`` labels a log ratio axis with ratios.

    Returns
    -------
    matplotlib.axes.Axes
    """
    _validate.check_model(model)
    level = _validate.check_open_unit_interval(level, "level")
    scale = effect_scale(model, transform)
    used = model.moderators
    numeric = [name for name in used["mu"] if pd.api.types.is_numeric_dtype(model.data[name])]
    if moderator not in numeric:
        kind = (
            "a categorical moderator; use bmb.interpret.plot_predictions(model, idata, "
            f"{moderator!r}) for it"
            if moderator in used["mu"]
            else "not a moderator of the location formula"
        )
        raise ValueError(
            f"'moderator' must be a numeric moderator of the location formula "
            f"({', '.join(numeric) or 'there is none'}); {moderator!r} is {kind}."
        )
    data = model.data
    values = data[moderator].to_numpy(dtype=float)
    grid = pd.DataFrame({moderator: np.linspace(values.min(), values.max(), 100)})
    for name in sorted(set().union(*used.values()) - {moderator}):
        column = data[name]
        typical = column.mean() if pd.api.types.is_numeric_dtype(column) else column.mode()[0]
        grid[name] = typical
    posterior = posterior_of(idata)
    draws = model.parameter_draws(posterior, MetaData(grid, None, None, None, None))
    shape = (posterior.sizes["chain"] * posterior.sizes["draw"], len(grid))
    pooled = np.broadcast_to(draws["mu"], (*draws["mu"].shape[:-1], len(grid))).reshape(shape)
    tau = np.broadcast_to(draws["tau"], (*draws["tau"].shape[:-1], len(grid))).reshape(shape)
    # True effect of a new estimate in a new cluster: mu + tau * N(0, 1) (between + within).
    # The same standard normals at every grid point (common random numbers) keep the interval
    # lines smooth; BUBBLE_PREDICTIVE_DRAWS of them per posterior draw cut their Monte Carlo error.
    normals = np.random.default_rng(_validate.check_random_seed(random_seed)).standard_normal(
        (BUBBLE_PREDICTIVE_DRAWS, 1, 1)
    )
    new_effects = (pooled + tau * normals).reshape(-1, len(grid))
    tail = (1 - level) / 2

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    rows = model.meta_data()
    precision = 1.0 / np.sqrt(rows.variances)
    ax.scatter(
        values,
        rows.effect_sizes,
        s=200.0 * precision / precision.max(),
        facecolor="0.75",
        edgecolor="0.2",
        linewidth=0.7,
        alpha=0.85,
        zorder=3,
        label="estimates (area ∝ 1/SE)",
    )
    x = grid[moderator].to_numpy()
    ax.fill_between(
        x,
        np.quantile(pooled, tail, axis=0),
        np.quantile(pooled, 1 - tail, axis=0),
        color="C0",
        alpha=0.25,
        label=f"{level:.0%} credible interval",
    )
    ax.plot(x, pooled.mean(axis=0), color="C0", label="pooled effect")
    if prediction_interval:
        lower, upper = np.quantile(new_effects, [tail, 1 - tail], axis=0)
        ax.plot(x, lower, color="C0", linestyle="--", linewidth=1)
        ax.plot(
            x,
            upper,
            color="C0",
            linestyle="--",
            linewidth=1,
            label=f"{level:.0%} prediction interval",
        )
    ax.margins(x=MARGIN, y=MARGIN)  # the largest bubbles keep clear of the frame
    null = ax.axhline(scale.null, color="black", linestyle=":", linewidth=0.9, zorder=1)
    null.set_gid("null")
    ax.set_xlabel(moderator)
    scale.apply(ax, "y")
    legend_below(ax)
    return ax
