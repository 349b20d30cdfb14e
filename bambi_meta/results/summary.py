"""Tables a meta-analyst reports, from a fitted ``MetaModel`` and its posterior (pandas)."""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bambi_meta import _validate
from bambi_meta._datatree import draw_blocks, engine_of, posterior_of
from bambi_meta.results.printing import DEFAULT_DIGITS, ResultTable, check_digits
from bambi_meta.stats.heterogeneity import heterogeneity_draws, typical_sampling_variance
from bambi_meta.stats.tables import QUANTILES, describe

RHAT_LIMIT = 1.01
ESS_LIMIT = 400


class ConvergenceWarning(UserWarning):
    """The sampler's output does not support reliable estimates yet."""


def summary(
    model, idata, include_mcmc_diagnostics: bool = True, digits: int = DEFAULT_DIGITS
) -> ResultTable:
    """Posterior summary of the pooled effect / moderators, tau and rho.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    include_mcmc_diagnostics : bool, default True
        Add the Monte Carlo standard error of the mean, bulk ESS and R-hat, and warn when R-hat
        exceeds 1.01, bulk ESS is below 400 or there were divergent transitions. For the exact
        engine's independent draws ESS is the number of draws N and MCSE = SD / sqrt(N).
    digits : int, default 3
        Decimal places of the printed estimates (printing only: the table keeps full
        precision). Decimal places, not significant figures, as ``digits`` in RoBMA and
        metafor: a column's numbers line up and read at one precision. A row whose SD would
        show fewer than two significant digits gets more decimals (a slope of 0.0048 per year
        with SD 0.0093 prints as such, not as 0.005 and 0.009); MCSE prints with two
        significant digits, ESS as an integer, R-hat with 3 decimals
        (``bambi_meta.results.printing``).

    Returns
    -------
    ResultTable
        A pandas DataFrame that prints, never truncated, under the model's header
        (``model.header``: which model, k, clusters) and a line saying how the draws were made.
        Rows ``mu`` (the intercept of an intercept-only model; ``Intercept`` and one row per
        moderator column otherwise), ``tau``, ``rho`` and any scale-model coefficients
        (``tau_Intercept``, ``tau_z``); columns ``Mean``, ``SD``, ``0.025``, ``0.5``,
        ``0.975`` and ``MCSE``, ``ESS``, ``R-hat``. Coefficients are on the raw scale of the
        moderators (intercept at x = 0), as metafor and RoBMA report them, though the model
        samples them with continuous moderators centred (``bambi_meta.results.coefficients``).
    """
    _validate.check_model(model)
    digits = check_digits(digits)
    posterior = posterior_of(idata)
    names = _parameter_names(model, posterior)
    draws = _flatten(posterior[names])
    if (
        model.parameters["mu"].intercept_term is not None
        and not model.parameters["mu"].common_terms
    ):
        draws = {("mu" if name == "Intercept" else name): values for name, values in draws.items()}
    table = _table(draws, include_mcmc_diagnostics, exact=engine_of(idata) == "exact")
    if include_mcmc_diagnostics and engine_of(idata) != "exact":
        warn_about_convergence(idata, table)  # independent draws: nothing to converge
    return ResultTable.with_header(table, f"{model.header}\n{engine_line(idata)}", digits)


def engine_line(idata) -> str:
    """One line saying how the draws were made (for the head of a table)."""
    posterior = posterior_of(idata)
    chains, draws = posterior.sizes.get("chain", 0), posterior.sizes.get("draw", 0)
    attrs = posterior.attrs
    if engine_of(idata) == "exact":
        axes = " and ".join(attrs.get("quadrature_axes", [])) or "nothing"
        return (
            f"Exact posterior: {chains} x {draws} independent draws (quadrature over {axes}; "
            f"log p(y) = {attrs['log_marginal_likelihood']:.4f} +/- "
            f"{attrs['log_marginal_likelihood_error']:.1g})"
        )
    library = attrs.get("inference_library", "MCMC")
    return f"MCMC ({library}): {chains} chains x {draws} draws"


def summary_heterogeneity(
    model, idata, include_mcmc_diagnostics: bool = True, digits: int = DEFAULT_DIGITS
) -> ResultTable:
    """Heterogeneity: tau, rho and the within/between partition of tau, tau2 and I2, and H2.

    Computed per posterior draw (``heterogeneity.heterogeneity_draws``) with the typical sampling
    variance v~ of the data and the location design, then summarised like
    :func:`~bambi_meta.summary`. I2 (and its parts) is in percent: I2 = 100 tau2 / (tau2 + v~);
    H2 = (tau2 + v~) / v~.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    include_mcmc_diagnostics : bool, default True
        Add ``MCSE``, ``ESS`` and ``R-hat`` of each row, computed as in
        :func:`~bambi_meta.summary` (which is the one that warns about convergence).
    digits : int, default 3
        Decimal places of the printed estimates, as in :func:`~bambi_meta.summary` (printing
        only).

    Returns
    -------
    ResultTable
        Rows ``tau``, ``rho``, ``tau [within]``, ``tau [between]``, ``tau2``, ``tau2 [within]``,
        ``tau2 [between]``, ``I2``, ``I2 [within]``, ``I2 [between]``, ``H2`` (only ``tau``,
        ``tau2``, ``I2``, ``H2`` without clusters); columns ``Mean``, ``SD``, ``0.025``,
        ``0.5`` (the median), ``0.975``, ``MCSE``, ``ESS``, ``R-hat``. It prints under the
        model's header, the engine line and a line giving v~ and the units of I2 and H2.
    """
    _validate.check_model(model)
    digits = check_digits(digits)
    draws = heterogeneity_posterior(model, idata)
    table = _table(draws, include_mcmc_diagnostics, exact=engine_of(idata) == "exact")
    typical = typical_sampling_variance(model.meta_data().variances, _location_design(model))
    units = (
        f"I2 in percent: 100 tau2 / (tau2 + v~); H2 = (tau2 + v~) / v~; "
        f"typical sampling variance v~ = {typical:.4g}"
    )
    return ResultTable.with_header(table, f"{model.header}\n{engine_line(idata)}\n{units}", digits)


def _table(draws: dict[str, np.ndarray], diagnostics: bool, exact: bool) -> pd.DataFrame:
    """Mean, SD, quantiles and (optionally) MCSE, ESS and R-hat of each row's draws."""
    table = describe(draws)[["Mean", "SD", *map(str, QUANTILES)]]
    if diagnostics:
        table = table.join(_diagnostics(draws, independent=exact))
    return table


def _location_design(model) -> np.ndarray:
    return np.asarray(model.parameters["mu"].design.common.design_matrix)


def heterogeneity_posterior(model, idata) -> dict[str, np.ndarray]:
    """Draws (chain, draw) of every row of :func:`summary_heterogeneity`."""
    _validate.check_model(model)
    posterior = posterior_of(idata)
    typical = typical_sampling_variance(model.meta_data().variances, _location_design(model))
    shape = (posterior.sizes["chain"], posterior.sizes["draw"])
    scale_parameters = tuple(name for name in model.family.likelihood.params if name != "mu")
    out: dict[str, np.ndarray] = {}
    for (chain, draws), block in draw_blocks(posterior, model.n_estimates):
        parameters = model.parameter_draws(block, parameters=scale_parameters)
        tau = parameters["tau"]
        tau = np.broadcast_to(tau, np.broadcast_shapes(tau.shape, (1, block.sizes["draw"], 1)))
        rho = parameters.get("rho")
        if rho is not None:
            rho = np.broadcast_to(rho, np.broadcast_shapes(rho.shape, tau.shape))
            tau = np.broadcast_to(tau, rho.shape)
        for name, values in heterogeneity_draws(tau, rho, typical).items():
            out.setdefault(name, np.empty(shape))[chain, draws] = values[0]
    return out


def warn_about_convergence(idata, table: pd.DataFrame) -> None:
    """Warn, with what to do, when R-hat, ESS or divergences signal an unreliable fit."""
    problems = []
    if "posterior" in idata.children and idata["posterior"].sizes.get("chain", 0) < 2:
        problems.append(
            "R-hat cannot be computed from a single chain (it compares chains; shown as NaN), "
            "so non-convergence would go unnoticed; fit with chains >= 2"
        )
    high_rhat = table.index[table["R-hat"] > RHAT_LIMIT].tolist()
    if high_rhat:
        problems.append(f"R-hat > {RHAT_LIMIT} for {', '.join(high_rhat)} (chains disagree)")
    low_ess = table.index[table["ESS"] < ESS_LIMIT].tolist()
    if low_ess:
        problems.append(f"bulk ESS < {ESS_LIMIT} for {', '.join(low_ess)}")
    if "sample_stats" in idata.children and "diverging" in idata["sample_stats"]:
        divergent = int(idata["sample_stats"]["diverging"].sum())
        if divergent:
            problems.append(f"{divergent} divergent transitions")
    if problems:
        warnings.warn(
            "The posterior may be unreliable: "
            + "; ".join(problems)
            + ". Run more draws (draws=, tune=), more chains, or raise target_accept "
            "towards 1 (e.g. fit(target_accept=0.95)); check priors that allow implausible "
            "values.",
            ConvergenceWarning,
            stacklevel=3,
        )


def _parameter_names(model, posterior: xr.Dataset) -> list[str]:
    """Posterior variables to report: location coefficients, then tau, rho, then the rest."""
    names = [name for name, values in posterior.data_vars.items() if "__obs__" not in values.dims]
    heterogeneity = [name for name in ("tau", "rho") if name in names]
    scale = [name for name in names if name.startswith(("tau_", "rho_"))]
    location = [name for name in names if name not in heterogeneity + scale]
    return location + heterogeneity + scale


def _flatten(posterior: xr.Dataset) -> dict[str, np.ndarray]:
    """One (chain, draw) array per scalar quantity; extra dims become ``name[level]``."""
    out = {}
    for name, values in posterior.data_vars.items():
        extra = [dim for dim in values.dims if dim not in ("chain", "draw")]
        if not extra:
            out[name] = values.transpose("chain", "draw").to_numpy()
            continue
        stacked = values.stack(__level__=extra).transpose("chain", "draw", "__level__")
        for index, level in enumerate(stacked["__level__"].to_numpy()):
            label = level if not isinstance(level, tuple) else ", ".join(map(str, level))
            out[f"{name}[{label}]"] = stacked.to_numpy()[..., index]
    return out


def _diagnostics(draws: dict[str, np.ndarray], independent: bool) -> pd.DataFrame:
    """MCSE of the mean, bulk ESS and R-hat; for independent draws ESS = N and MCSE = SD/sqrt(N)."""
    dataset = xr.Dataset({name: (("chain", "draw"), values) for name, values in draws.items()})
    if independent:
        size = next(iter(draws.values())).size
        ess = {name: float(size) for name in draws}
        mcse = {
            name: float(np.std(values, ddof=1) / np.sqrt(size)) for name, values in draws.items()
        }
    else:
        mcse = az.mcse(dataset)
        ess = az.ess(dataset)
    rhat = az.rhat(dataset)
    return pd.DataFrame(
        {
            "MCSE": [float(mcse[name]) for name in draws],
            "ESS": [float(ess[name]) for name in draws],
            "R-hat": [float(rhat[name]) for name in draws],
        },
        index=list(draws),
    )
