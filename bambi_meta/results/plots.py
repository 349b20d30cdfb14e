"""Figures for a fitted meta-analysis (matplotlib)."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pymc as pm
from scipy.stats import gaussian_kde, norm

from bambi_meta import _validate
from bambi_meta._datatree import posterior_of
from bambi_meta.bambi_ext.columns import MetaData
from bambi_meta.results.effects import true_effects
from bambi_meta.results.prediction import prediction_intervals

SUPPORTS = {"tau": (0.0, np.inf), "rho": (0.0, 1.0)}


def plot_posterior(model, idata, parameter: str, prior: bool = True, ax=None):
    """Posterior density of a parameter, with its analytic prior density overlaid.

    The horizontal axis follows the posterior (its 0.1% to 99.9% range, clipped to the
    parameter's support: tau >= 0, 0 <= rho <= 1), so a wide or heavy-tailed prior cannot squash
    the posterior. Densities near a bound are estimated with reflection at the bound.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    parameter : str
        ``"mu"`` (the intercept), ``"tau"``, ``"rho"`` or a moderator name as in the posterior.
    prior : bool, default True
        Overlay the prior density.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made otherwise.

    Returns
    -------
    matplotlib.axes.Axes
    """
    _validate.check_model(model)
    name = "Intercept" if parameter == "mu" else parameter
    posterior = posterior_of(idata)
    if name not in posterior:
        raise ValueError(
            f"'parameter' must be one of mu, {', '.join(map(str, posterior.data_vars))}; got "
            f"{parameter!r}."
        )
    draws = posterior[name].to_numpy().ravel()
    lower, upper = SUPPORTS.get(name, (-np.inf, np.inf))
    grid = _grid(draws, lower, upper)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(grid, _reflected_kde(draws, lower, upper)(grid), color="C0", label="posterior")
    if prior:
        density = prior_density(model, name, grid)
        ax.plot(grid, density, color="C1", linestyle="--", label="prior")
    ax.set_xlabel(parameter)
    ax.set_ylabel("density")
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False)
    return ax


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


def plot_funnel(model, idata, ax=None, level: float = 0.95):
    """Funnel plot: each estimate against its standard error, with the model-implied region.

    The dashed funnel is the classic pooled mean ± z·SE; the shaded funnel is the region where
    ``level`` of the estimates of a new study with that SE fall under the fitted model
    (pooled mean ± z·sqrt(SE² + tau²), posterior means plugged in), so a heterogeneous
    meta-analysis is not misread as asymmetric.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    ax : matplotlib.axes.Axes, optional
        Where to draw.
    level : float, default 0.95
        Probability of the region.

    Returns
    -------
    matplotlib.axes.Axes
    """
    _validate.check_model(model)
    level = _validate.check_open_unit_interval(level, "level")
    rows = model.meta_data()
    posterior = posterior_of(idata)
    draws = model.parameter_draws(posterior)
    mean = float(np.mean(draws["mu"]))
    tau2 = float(np.mean(np.square(draws["tau"])))
    standard_errors = np.sqrt(rows.variances)
    z = norm.ppf(1 - (1 - level) / 2)
    se_grid = np.linspace(0, standard_errors.max() * 1.05, 100)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.2))
    implied = z * np.sqrt(se_grid**2 + tau2)
    ax.fill_betweenx(
        se_grid,
        mean - implied,
        mean + implied,
        color="C0",
        alpha=0.15,
        label=f"model-implied {level:.0%} region",
    )
    ax.plot(mean - z * se_grid, se_grid, "k--", lw=0.8, label=f"mean ± {z:.2f}·SE")
    ax.plot(mean + z * se_grid, se_grid, "k--", lw=0.8)
    ax.axvline(mean, color="k", lw=0.8)
    ax.scatter(rows.effect_sizes, standard_errors, s=14, color="black", zorder=3)
    ax.set_ylim(se_grid.max(), 0)
    ax.set_xlabel(f"effect size ({model.meta_formula.response})")
    ax.set_ylabel("standard error")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2, frameon=False)
    return ax


def _shade_clusters(ax, clusters: np.ndarray, positions: np.ndarray) -> None:
    """Alternate light bands behind consecutive clusters."""
    boundaries = np.flatnonzero(np.r_[True, clusters[1:] != clusters[:-1], True])
    for index, (start, stop) in enumerate(zip(boundaries[:-1], boundaries[1:], strict=True)):
        if index % 2 == 0:
            ax.axhspan(positions[stop - 1] - 0.5, positions[start] + 0.5, color="0.93", zorder=0)


def prior_density(model, name: str, values: np.ndarray) -> np.ndarray:
    """Density of the prior of ``name`` (a Bambi prior) at ``values``, evaluated by PyMC."""
    component = model.parameters.get(name)
    if component is not None and name != "mu":
        prior_spec = component.prior
    else:
        prior_spec = model.parameters["mu"].terms[name].prior
    if isinstance(prior_spec, (int, float)):
        raise ValueError(f"'{name}' is fixed at {prior_spec}; it has no prior density.")
    distribution = getattr(pm, prior_spec.name).dist(**prior_spec.args)
    return np.exp(pm.logp(distribution, np.asarray(values, dtype=float)).eval())


def _grid(draws: np.ndarray, lower: float, upper: float, n: int = 400) -> np.ndarray:
    low, high = np.quantile(draws, [0.001, 0.999])
    pad = 0.15 * (high - low)
    return np.linspace(max(low - pad, lower), min(high + pad, upper), n)


def _reflected_kde(draws: np.ndarray, lower: float, upper: float):
    """Gaussian KDE with reflection at finite bounds (no density leaks outside the support)."""
    kde = gaussian_kde(draws)

    def density(x):
        total = kde(x)
        if np.isfinite(lower):
            total = total + kde(2 * lower - x)
        if np.isfinite(upper):
            total = total + kde(2 * upper - x)
        return total

    return density


BUBBLE_PREDICTIVE_DRAWS = 4


def plot_bubble(
    model,
    idata,
    moderator: str,
    level: float = 0.95,
    prediction_interval: bool = True,
    ax=None,
    random_seed=None,
):
    """Meta-analytic bubble plot: effect sizes against a moderator, with the fitted regression.

    Each estimate is a point at (moderator, yi) whose marker AREA is proportional to its
    precision 1/SE (the largest is 200 pt^2), so precise estimates stand out. The line is the
    posterior mean of the pooled effect, the band its credible interval and the dashed lines the
    prediction interval for the true effect of a new estimate in a new cluster (with a scale
    model ``tau ~ z`` it widens and narrows with tau). Other moderators are held at their mean
    (numeric) or most common level (categorical), as ``bambi.interpret`` does.

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

    Returns
    -------
    matplotlib.axes.Axes
    """
    _validate.check_model(model)
    level = _validate.check_open_unit_interval(level, "level")
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
        facecolor="none",
        edgecolor="0.25",
        linewidth=0.8,
        label="estimates (area ~ 1/SE)",
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
    ax.set_xlabel(moderator)
    ax.set_ylabel(model.meta_formula.response)
    ax.legend(frameon=False, fontsize="small")
    return ax
