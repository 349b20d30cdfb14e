"""Posterior densities with their priors (``plot_posterior``) for every row of the summaries."""

import matplotlib.pyplot as plt
import numpy as np

from bambi_meta import _validate
from bambi_meta._datatree import posterior_of
from bambi_meta.results.figures._kde import BoundedDensity
from bambi_meta.results.figures._prior import (
    PriorCurve,
    analytic_curve,
    coefficient_columns,
    coefficient_prior,
    heterogeneity_prior_draws,
    simulated_curve,
)

# Support and kernel scale (``_kde.BoundedDensity``) of each heterogeneity quantity: SDs are
# flat at 0, variance-like quantities grow like x^(-1/2) there, I2 lives on [0, 100] (smoothed on
# sqrt(I2) or sqrt(I2 / (100 - I2)), whichever makes its draws more symmetric: the second when
# they crowd near 100).
I2_SCALES = ("sqrt_odds", "sqrt")
HETEROGENEITY_SUPPORTS = {
    "tau": (0.0, np.inf, "identity"),
    "tau [within]": (0.0, np.inf, "identity"),
    "tau [between]": (0.0, np.inf, "identity"),
    "rho": (0.0, 1.0, "identity"),
    "tau2": (0.0, np.inf, "sqrt"),
    "tau2 [within]": (0.0, np.inf, "sqrt"),
    "tau2 [between]": (0.0, np.inf, "sqrt"),
    "I2": (0.0, 100.0, I2_SCALES),
    "I2 [within]": (0.0, 100.0, I2_SCALES),
    "I2 [between]": (0.0, 100.0, I2_SCALES),
    "H2": (1.0, np.inf, "sqrt"),
}
WITHOUT_CLUSTERS = ("tau", "tau2", "I2", "H2")
UNBOUNDED = (-np.inf, np.inf, "identity")
# The x range: the posterior's 0.1%-99.9% range, widened to show the prior's 1%-99% range by
# at most PRIOR_REACH posterior widths on each side (the posterior keeps >= 1/3 of the axis),
# and taken to a support bound that is within SNAP_TO_BOUND of the axis width from it.
POSTERIOR_RANGE = (0.001, 0.999)
PRIOR_RANGE = (0.01, 0.99)
PRIOR_REACH = 1.0
SNAP_TO_BOUND = 0.25
GRID_POINTS = 400
# Prior draws of a simulated prior: 400,000 (about 0.1 s; a relative error near 1% where the
# density is not tiny), fewer for a scale model, whose draws are per row: at most about
# PRIOR_VALUES (draw, row) values, and no fewer than MIN_PRIOR_DRAWS draws.
PRIOR_DRAWS = 400_000
PRIOR_VALUES = 20_000_000
MIN_PRIOR_DRAWS = 20_000


def plot_posterior(
    model,
    idata,
    parameter: str,
    prior: bool = True,
    ax=None,
    *,
    prior_draws: int | None = None,
    random_seed=0,
):
    """Posterior density of a row of ``bmm.summary`` or ``summary_heterogeneity``, with its prior.

    Model parameters (the coefficients, tau, rho and scale-model coefficients) get their prior
    density in closed form. Derived quantities (tau2, I2, H2 and the ``[within]`` /
    ``[between]`` rows, and tau itself in a location-scale model) get the prior they inherit:
    tau and rho (or the scale-model coefficients) are drawn from their priors and summarised as
    the posterior draws are, with the same typical sampling variance; the density is a kernel
    estimate that respects the support (``bambi_meta.results.figures._kde``). The same
    estimator draws the posterior density.

    The horizontal axis shows the posterior's 0.1%-99.9% range, widened towards the prior's
    1%-99% range so that the prior's shape is visible but by no more than one posterior width on
    each side, so the posterior is never squashed; it starts at a support bound (0 for tau, tau2
    and I2, 1 for H2; rho and I2/100 end at 1) whenever the prior or the posterior comes close to
    it, so a HalfNormal prior's mode at 0 is in view. A density that is infinite at the bound
    (the prior of tau2 under a HalfNormal on tau) is cut at the top of the axes.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    parameter : str
        A row name of ``bmm.summary`` (``"mu"`` or ``"Intercept"``, a moderator such as
        ``"ablat"`` or ``"deltype[overt]"``, ``"tau"``, ``"rho"``, ``"tau_Intercept"``, ...) or of
        ``bmm.summary_heterogeneity`` (``"tau2"``, ``"I2"``, ``"H2"``, ``"tau [between]"``,
        ``"I2 [within]"``, ...). A parameter fixed by the model (``priors={"tau": 0}``) has no
        density: a ValueError says so.
    prior : bool, default True
        Overlay the prior density (dashed).
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure is made otherwise.
    prior_draws : int, optional
        Prior draws for a simulated prior: by default 400,000 (about 0.1 s; the kernel
        estimate's relative error is then about 1% where the density is not tiny), fewer in a
        location-scale model with many rows (about 20 million draw x row values, at least
        20,000 draws).
    random_seed : int or numpy.random.Generator, default 0
        Seed of the prior draws (a fixed default: the same figure every time).

    Returns
    -------
    matplotlib.axes.Axes
        With the lines ``"posterior"`` and ``"prior"`` (labels), the x label naming the row.

    Examples
    --------
    >>> import bambi_meta as bmm
    >>> data = bmm.load_dataset("dat.konstantopoulos2011")
    >>> model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", data, measure="SMD")
    >>> idata = model.fit(random_seed=1)
    >>> ax = bmm.plot_posterior(model, idata, "tau [between]")
    >>> float(ax.get_xlim()[0])
    0.0
    """
    _validate.check_model(model)
    posterior = posterior_of(idata)
    prior_draws = _prior_draws(model, prior_draws)
    rng = np.random.default_rng(_validate.check_random_seed(random_seed))
    quantity = _quantity(model, idata, posterior, parameter)
    lower, upper, scale = quantity["support"]
    posterior_density = BoundedDensity(quantity["draws"], lower, upper, scale)
    curve = _prior_curve(model, quantity, prior_draws, rng) if prior else None
    grid = _grid(quantity["draws"], curve, lower, upper)
    at = _evaluation_points(grid, lower, upper)

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    density = posterior_density(at)
    ax.fill_between(grid, density, color="C0", alpha=0.2, linewidth=0)
    ax.plot(grid, density, color="C0", linewidth=1.5, label="posterior")
    shown = [density]
    if curve is not None:
        prior_values = np.asarray(curve.density(at), dtype=float)
        ax.plot(grid, prior_values, color="C1", linestyle="--", linewidth=1.3, label="prior")
        shown.append(prior_values)
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(0, 1.08 * _visible_maximum(grid, shown, lower, upper))
    ax.set_xlabel(quantity["label"])
    ax.set_ylabel("Density")
    ax.legend(frameon=False, fontsize="small", loc="best")
    return ax


def prior_density(
    model, name: str, values, *, prior_draws: int | None = None, random_seed=0
) -> np.ndarray:
    """Prior density of a model parameter or a derived quantity at ``values``.

    Parameters
    ----------
    model : MetaModel
        The model (fitted or not).
    name : str
        A row name of ``bmm.summary`` or ``bmm.summary_heterogeneity`` (see
        :func:`plot_posterior`).
    values : array_like
        Where to evaluate it.
    prior_draws : int, optional
        Draws for a simulated prior (derived quantities, mixed raw-scale intercepts); the
        default is :func:`plot_posterior`'s.
    random_seed : int or numpy.random.Generator, default 0
        Seed of those draws.

    Returns
    -------
    numpy.ndarray
        The density, in the units of ``name`` (I2 in percent: per percentage point).
    """
    _validate.check_model(model)
    rng = np.random.default_rng(_validate.check_random_seed(random_seed))
    prior_draws = _prior_draws(model, prior_draws)
    quantity = _describe(model, _direct_names(model), name)
    return np.asarray(
        _prior_curve(model, quantity, prior_draws, rng).density(np.asarray(values, float))
    )


def _prior_draws(model, prior_draws: int | None) -> int:
    """The number of prior draws: the argument (checked) or the default for ``model``."""
    if prior_draws is not None:
        return _validate.check_integer(prior_draws, "prior_draws", 1_000)
    if not model.scale_formulas:
        return PRIOR_DRAWS
    return int(np.clip(PRIOR_VALUES // model.n_estimates, MIN_PRIOR_DRAWS, PRIOR_DRAWS))


# ---------------------------------------------------------------------------------------------
# What a row name is
# ---------------------------------------------------------------------------------------------
def _direct_names(model) -> dict[str, tuple[str, str]]:
    """Row names of ``bmm.summary`` -> (formula parameter, coefficient label) or (name, "")."""
    names: dict[str, tuple[str, str]] = {}
    for parameter in model.conditional_parameters:
        for label, *_ in coefficient_columns(model.parameters[parameter]):
            names[label] = (parameter, label)
    location = model.parameters["mu"]
    if location.intercept_term is not None and not location.common_terms:
        names = {("mu" if key == "Intercept" else key): value for key, value in names.items()}
    for name in model.family.likelihood.params:
        if name != "mu" and name not in model.conditional_parameters:
            names[name] = (name, "")
    return names


def _heterogeneity_names(model) -> list[str]:
    return list(HETEROGENEITY_SUPPORTS) if model.family.has_clusters else list(WITHOUT_CLUSTERS)


def _describe(model, direct: dict, parameter: str) -> dict:
    """What ``parameter`` is: its kind, support and (for priors) where its prior comes from."""
    aliases = {"mu": "Intercept", "Intercept": "mu"}
    if parameter not in direct and aliases.get(parameter) in direct:
        parameter = aliases[parameter]
    heterogeneity = _heterogeneity_names(model)
    if parameter in direct:
        formula_parameter, coefficient = direct[parameter]
        if not coefficient:  # tau or rho, the same for every row
            fixed = model.parameters[formula_parameter].prior
            if isinstance(fixed, (int, float, np.number)):
                raise ValueError(
                    f"'parameter' {parameter!r} is fixed at {float(fixed):g} in this model "
                    f"(priors={{{parameter!r}: {fixed!r}}}): it has no prior or posterior "
                    "density to draw."
                )
            support = HETEROGENEITY_SUPPORTS[formula_parameter]
        else:
            support = UNBOUNDED
        kind = "direct"
    elif parameter in heterogeneity:
        formula_parameter, coefficient, kind = parameter, "", "derived"
        support = HETEROGENEITY_SUPPORTS[parameter]
    else:
        allowed = list(dict.fromkeys([*direct, *heterogeneity]))
        raise ValueError(
            f"'parameter' must be one of {', '.join(map(repr, allowed))} (the rows of "
            f"bmm.summary and bmm.summary_heterogeneity; 'mu' and 'Intercept' name the same "
            f"coefficient); got {parameter!r}."
        )
    unit = " (%)" if parameter.startswith("I2") else ""
    return {
        "name": parameter,
        "kind": kind,
        "parameter": formula_parameter,
        "coefficient": coefficient,
        "support": support,
        "label": f"{parameter}{unit}",
    }


def _quantity(model, idata, posterior, parameter: str) -> dict:
    """:func:`_describe` plus the posterior draws of ``parameter``."""
    if not isinstance(parameter, str):
        raise TypeError(f"'parameter' must be a row name (a string); got {parameter!r}.")
    quantity = _describe(model, _direct_names(model), parameter)
    name = quantity["name"]
    if quantity["kind"] == "direct":
        draws = _posterior_draws(model, posterior, quantity)
    else:
        from bambi_meta.results.summary import heterogeneity_posterior

        draws = heterogeneity_posterior(model, idata)[name]
    draws = np.asarray(draws, dtype=float).ravel()
    if np.ptp(draws[np.isfinite(draws)]) == 0:
        fixed = {
            key: model.parameters[key].prior
            for key in ("tau", "rho")
            if key in model.parameters
            and isinstance(model.parameters[key].prior, (int, float, np.number))
        }
        why = ", ".join(f"{key} is fixed at {value:g}" for key, value in fixed.items())
        raise ValueError(
            f"'parameter' {name!r} is constant ({draws[0]:g}) in this model"
            f"{f' ({why})' if why else ''}: it has no density to draw."
        )
    quantity["draws"] = draws
    return quantity


def _posterior_draws(model, posterior, quantity) -> np.ndarray:
    if not quantity["coefficient"]:
        return posterior[quantity["parameter"]].to_numpy()
    variable, _, level = quantity["coefficient"].partition("[")
    if variable not in posterior:
        raise ValueError(f"the posterior has no variable {variable!r} (for {quantity['name']!r}).")
    values = posterior[variable]
    extra = [dim for dim in values.dims if dim not in ("chain", "draw")]
    if not extra:
        return values.to_numpy()
    stacked = values.stack(__level__=extra)
    labels = [
        ", ".join(map(str, entry)) if isinstance(entry, tuple) else str(entry)
        for entry in stacked["__level__"].to_numpy()
    ]
    return stacked.isel(__level__=labels.index(level.rstrip("]"))).to_numpy()


def _prior_curve(model, quantity: dict, n: int, rng: np.random.Generator) -> PriorCurve:
    lower, upper, scale = quantity["support"]
    if quantity["kind"] == "derived":
        draws = heterogeneity_prior_draws(model, n, rng)[quantity["name"]]
        return simulated_curve(draws, lower, upper, scale)
    if not quantity["coefficient"]:
        return analytic_curve(model.parameters[quantity["parameter"]].prior)
    return coefficient_prior(model, quantity["parameter"], quantity["coefficient"], n, rng)


# ---------------------------------------------------------------------------------------------
# The axes
# ---------------------------------------------------------------------------------------------
def _grid(draws: np.ndarray, curve: PriorCurve | None, lower: float, upper: float) -> np.ndarray:
    """The x values: the posterior's range, widened towards the prior's, snapped to bounds."""
    post_low, post_high = np.quantile(draws, POSTERIOR_RANGE)
    width = post_high - post_low
    low, high = post_low - 0.1 * width, post_high + 0.1 * width
    if curve is not None:
        with np.errstate(all="ignore"):
            prior_low, prior_high = np.asarray(curve.quantile(np.array(PRIOR_RANGE)), float)
        if np.isfinite(prior_low):
            low = min(low, max(prior_low, post_low - PRIOR_REACH * width))
        if np.isfinite(prior_high):
            high = max(high, min(prior_high, post_high + PRIOR_REACH * width))
    low, high = max(low, lower), min(high, upper)
    if np.isfinite(lower) and low - lower < SNAP_TO_BOUND * (high - low):
        low = lower
    if np.isfinite(upper) and upper - high < SNAP_TO_BOUND * (high - low):
        high = upper
    return np.linspace(low, high, GRID_POINTS)


def _evaluation_points(grid: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """The grid, with points on a support bound moved half a step inside.

    A density may be infinite at the bound; the curve then shows its value just inside.
    """
    at = grid.copy()
    step = grid[1] - grid[0]
    at[at <= lower] = lower + 0.5 * step
    at[at >= upper] = upper - 0.5 * step
    return at


def _visible_maximum(grid, curves, lower: float, upper: float) -> float:
    """The largest density away from the support's bounds (a spike at a bound is cut)."""
    margin = 0.02 * (grid[-1] - grid[0])
    away = (grid > lower + margin) & (grid < upper - margin)
    peaks = [np.max(np.where(away, values, 0.0)) for values in curves]
    finite = [peak for peak in peaks if np.isfinite(peak) and peak > 0]
    return max(finite) if finite else 1.0
