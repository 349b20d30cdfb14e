"""Funnel plot: estimates against their standard errors, with the model-implied region."""

import matplotlib.pyplot as plt
import numpy as np
from scipy.stats import norm

from bambi_meta import _validate
from bambi_meta._datatree import posterior_of


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
