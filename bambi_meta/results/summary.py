"""Tables a meta-analyst reports, from a fitted ``MetaModel`` and its posterior (pandas)."""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bambi_meta import _validate
from bambi_meta._datatree import draw_blocks, engine_of, posterior_of
from bambi_meta.stats.heterogeneity import heterogeneity_draws, typical_sampling_variance
from bambi_meta.stats.tables import QUANTILES, describe

RHAT_LIMIT = 1.01
ESS_LIMIT = 400


class ConvergenceWarning(UserWarning):
    """The sampler's output does not support reliable estimates yet."""


def summary(model, idata, include_mcmc_diagnostics: bool = True) -> pd.DataFrame:
    """Posterior summary of the pooled effect / moderators, tau and rho.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    include_mcmc_diagnostics : bool, default True
        Add the Monte Carlo standard error of the mean, bulk ESS and R-hat, and warn when R-hat
        exceeds 1.01, bulk ESS is below 400 or there were divergent transitions.

    Returns
    -------
    SummaryTable
        A pandas DataFrame that prints the model's header (``model.header``: which model, k,
        clusters) above it. Rows ``mu`` (the intercept of an intercept-only model;
        ``Intercept`` and one row per moderator column otherwise), ``tau``, ``rho`` and any
        scale-model coefficients (``tau_Intercept``, ``tau_z``); columns ``Mean``, ``SD``,
        ``0.025``, ``0.5``, ``0.975`` and ``MCSE``, ``ESS``, ``R-hat``. Coefficients are on the
        raw scale of the moderators (intercept at x = 0), as metafor and RoBMA report them, though
        the model samples them with continuous moderators centred
        (``bambi_meta.results.coefficients``).
    """
    _validate.check_model(model)
    posterior = posterior_of(idata)
    names = _parameter_names(model, posterior)
    draws = _flatten(posterior[names])
    if (
        model.parameters["mu"].intercept_term is not None
        and not model.parameters["mu"].common_terms
    ):
        draws = {("mu" if name == "Intercept" else name): values for name, values in draws.items()}
    table = describe(draws)[["Mean", "SD", *map(str, QUANTILES)]]
    exact = engine_of(idata) == "exact"
    if include_mcmc_diagnostics:
        table = table.join(_diagnostics(draws, independent=exact))
        if not exact:  # independent draws: nothing to converge, the MCSE is exact
            warn_about_convergence(idata, table)
    return SummaryTable.with_header(table, f"{model.header}\n{engine_line(idata)}")


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


def summary_heterogeneity(model, idata) -> pd.DataFrame:
    """Heterogeneity: tau, rho and the within/between partition of tau, tau2 and I2, and H2.

    Computed per posterior draw (``heterogeneity.heterogeneity_draws``) with the typical sampling
    variance of the data and the location design, then summarised. I2 is in percent.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.

    Returns
    -------
    pandas.DataFrame
        Rows ``tau``, ``rho``, ``tau [within]``, ``tau [between]``, ``tau2``, ``tau2 [within]``,
        ``tau2 [between]``, ``I2``, ``I2 [within]``, ``I2 [between]``, ``H2`` (only ``tau``,
        ``tau2``, ``I2``, ``H2`` without clusters); columns ``Mean``, ``Median``, ``0.025``,
        ``0.975``.
    """
    _validate.check_model(model)
    draws = heterogeneity_posterior(model, idata)
    return describe(draws)[["Mean", "Median", "0.025", "0.975"]]


def heterogeneity_posterior(model, idata) -> dict[str, np.ndarray]:
    """Draws (chain, draw) of every row of :func:`summary_heterogeneity`."""
    _validate.check_model(model)
    posterior = posterior_of(idata)
    design = np.asarray(model.parameters["mu"].design.common.design_matrix)
    typical = typical_sampling_variance(model.meta_data().variances, design)
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


class SummaryTable(pd.DataFrame):
    """A pandas DataFrame that prints a one-line header (which model was fitted) above itself."""

    _metadata = ["header"]

    @property
    def _constructor(self):
        return SummaryTable

    @classmethod
    def with_header(cls, table: pd.DataFrame, header: str) -> "SummaryTable":
        """``table`` as a SummaryTable printed under ``header``."""
        out = cls(table)
        out.header = header
        return out

    def __repr__(self) -> str:
        header = getattr(self, "header", None)
        return f"{header}\n{super().__repr__()}" if header else super().__repr__()

    def _repr_html_(self) -> str:
        header = getattr(self, "header", None)
        html = super()._repr_html_()
        return f"<p>{header}</p>\n{html}" if header and html else html
