"""Posterior densities with their priors (``plot_posterior``)."""

import matplotlib.pyplot as plt
import numpy as np
import pymc as pm
from scipy.stats import gaussian_kde

from bambi_meta import _validate
from bambi_meta._datatree import posterior_of

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
