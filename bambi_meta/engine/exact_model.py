"""A ``MetaModel`` on the exact engine: its data and priors in, Bambi's DataTree out.

The exact engine (:mod:`bambi_meta.engine.exact`) needs the model's rows, the design the
coefficient priors act on (the centred one), Normal (or flat) priors on the coefficients and any
proper prior on tau and rho. :func:`exact_inputs` reads them from the model, or says why the model
does not qualify (scale formulas, other coefficient priors); :func:`fit_exact_model` draws
independent posterior draws and stores them as an MCMC fit would (same names, dims and groups),
with the coefficients on the raw scale.
"""

import time
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from bambi_meta import _validate
from bambi_meta.bambi_ext.centring import coefficient_variables, to_raw_scale
from bambi_meta.engine.exact import BetaPrior, ExactPosterior, HalfNormalPrior, fit_exact

ENGINE = "exact"
# What the posterior's attrs say about an exact fit (and bmm.summary reads).
INFERENCE_LIBRARY = "bambi_meta (exact: quadrature over tau and rho, independent draws)"


class NotExact(ValueError):
    """The model has a part the exact engine cannot integrate (the message says which)."""


@dataclass(frozen=True)
class ExactInputs:
    """What :func:`bambi_meta.engine.exact.fit_exact` takes, read from a model."""

    arguments: dict = field(repr=False)
    prior_names: dict[str, str]


def exact_inputs(model) -> ExactInputs:
    """The model's data, design and priors as the exact engine takes them.

    Raises
    ------
    NotExact
        With the reason when the model does not qualify (MCMC handles it).
    """
    if model.scale_formulas:
        formulas = ", ".join(f"'{name} ~ {rhs}'" for name, rhs in model.scale_formulas.items())
        raise NotExact(
            f"the scale formula(s) {formulas} make tau or rho vary by row, so the posterior is "
            "not a 1-2 dimensional integral"
        )
    rows = model.meta_data()
    location = model.parameters["mu"]
    common = location.design.common
    design = np.asarray(common.design_matrix, dtype=float)
    means, sds = [], []
    for name, columns in common.slices.items():
        term = location.intercept_term if name == "Intercept" else location.common_terms[name]
        mean, sd = _coefficient_prior(term.alias or name, term.prior)
        width = columns.stop - columns.start
        means.append(np.broadcast_to(mean, width))
        sds.append(np.broadcast_to(sd, width))
    arguments = {
        "yi": rows.effect_sizes,
        "vi": rows.variances,
        "X": design,
        "cluster": rows.cluster_codes if model.family.has_clusters else None,
        "beta_mean": np.concatenate(means),
        "beta_sd": np.concatenate(sds),
        "tau_prior": prior_log_density(model.parameters["tau"].prior, "tau"),
    }
    names = {"tau": _describe(model.parameters["tau"].prior)}
    if model.family.has_clusters:
        arguments["rho_prior"] = prior_log_density(model.parameters["rho"].prior, "rho")
        names["rho"] = _describe(model.parameters["rho"].prior)
    return ExactInputs(arguments, names)


def qualifies(model) -> str | None:
    """None if the exact engine can fit ``model``; otherwise the reason it cannot."""
    try:
        exact_inputs(model)
    except NotExact as reason:
        return str(reason)
    return None


def prior_log_density(prior, parameter: str):
    """A Bambi prior on tau or rho as the engine takes it: a log-density callable or a number.

    HalfNormal (tau) and Beta (rho) have closed forms in the engine (Beta is evaluated on the
    logit scale, accurate near rho = 1); any other PyMC distribution is evaluated by PyMC's own
    ``logp``, compiled once.
    """
    if isinstance(prior, (int, float, np.number)):
        return float(prior)
    if getattr(prior, "dist", None) is not None:
        raise NotExact(
            f"the prior on {parameter} is a custom distribution ({prior}), whose log-density "
            "is not available to the quadrature"
        )
    args = {key: float(value) for key, value in prior.args.items()}
    if prior.name == "HalfNormal" and parameter == "tau" and set(args) == {"sigma"}:
        return HalfNormalPrior(args["sigma"])
    if prior.name == "Beta" and parameter == "rho" and set(args) == {"alpha", "beta"}:
        return BetaPrior(args["alpha"], args["beta"])
    if prior.name in ("Flat", "HalfFlat"):
        raise NotExact(f"the prior on {parameter} ({prior}) is improper")
    return _pymc_log_density(prior.name, args, parameter)


def _pymc_log_density(name: str, args: dict, parameter: str):
    """PyMC's log-density of a distribution, as a vectorised function (compiled on first use)."""
    import pymc as pm
    import pytensor.tensor as pt

    distribution = getattr(pm, name, None)
    if distribution is None or not hasattr(distribution, "dist"):
        raise NotExact(f"'{name}' (the prior on {parameter}) is not a PyMC distribution")
    values = pt.dvector("values")
    try:
        logp = pm.logp(distribution.dist(**args), values)
    except Exception as error:  # PyMC raises many kinds for a distribution it cannot evaluate
        raise NotExact(
            f"PyMC cannot evaluate the log-density of the prior on {parameter} ({name} with "
            f"{args}): {type(error).__name__}: {error}"
        ) from None
    compiled = []

    def log_density(x: np.ndarray) -> np.ndarray:
        if not compiled:
            import pytensor

            compiled.append(pytensor.function([values], logp, mode="FAST_COMPILE"))
        x = np.asarray(x, dtype=float)
        return np.asarray(compiled[0](x.ravel()), dtype=float).reshape(x.shape)

    return log_density


def _coefficient_prior(name: str, prior) -> tuple[np.ndarray, np.ndarray]:
    """Mean and SD of a Normal prior on a coefficient (SD inf for a flat one)."""
    if getattr(prior, "name", None) == "Normal" and getattr(prior, "dist", None) is None:
        return (
            np.asarray(prior.args["mu"], dtype=float),
            np.asarray(prior.args["sigma"], dtype=float),
        )
    if getattr(prior, "name", None) == "Flat":
        return np.asarray(0.0), np.asarray(np.inf)
    raise NotExact(
        f"the prior on '{name}' is {prior}; the exact engine integrates the coefficients "
        "analytically, which needs Normal (or flat) priors"
    )


def _describe(prior) -> str:
    return str(prior) if not isinstance(prior, (int, float)) else f"fixed at {prior:g}"


def fit_exact_model(model, *, draws: int, chains: int, random_seed=None) -> xr.DataTree:
    """Independent draws from the exact posterior, stored as a Bambi fit stores its draws.

    Parameters
    ----------
    model : MetaModel
        A model that :func:`qualifies`.
    draws, chains : int
        ``chains`` x ``draws`` independent draws, laid out as (chain, draw).
    random_seed : int, numpy.random.Generator or numpy.random.SeedSequence, optional
        The same seed gives the same draws in every process.

    Returns
    -------
    xarray.DataTree
        ``posterior`` (coefficients on the raw scale, ``tau``, ``rho``), ``sample_stats``
        (``diverging``: all False) and ``observed_data``; the posterior's attrs hold the engine,
        the log marginal likelihood and the quadrature's error and grid.
    """
    inputs = exact_inputs(model)
    sample, attributes = draw_exact(inputs.arguments, draws * chains, random_seed)
    return exact_datatree(model, sample, chains, draws, attributes)


def draw_exact(arguments: dict, n_draws: int, random_seed=None) -> tuple[dict, dict]:
    """Fit the exact engine to ``arguments`` and draw ``n_draws`` (arrays in, arrays out).

    Returns
    -------
    sample : dict
        ``tau`` (n,), ``rho`` (n,) (with a cluster level), ``beta`` (n, p) on the design's scale.
    attributes : dict
        What the posterior's attrs record about the fit.
    """
    start = time.perf_counter()
    exact = fit_exact(**arguments, probs=())  # the draws give the quantiles
    sample = exact.sample(n_draws, np.random.default_rng(_validate.check_random_seed(random_seed)))
    return sample, _attributes(exact, time.perf_counter() - start)


def exact_datatree(
    model, sample: dict, chains: int, draws: int, attributes: dict, observed=None
) -> xr.DataTree:
    """The DataTree of exact draws of ``model``, named and shaped as a Bambi fit's.

    ``observed`` (the effect sizes the draws are conditioned on) defaults to the model's.
    """
    posterior = _posterior_dataset(model, sample, chains, draws)
    posterior.attrs.update(attributes)
    if observed is None:
        observed = model.meta_data().effect_sizes
    return xr.DataTree.from_dict(
        {
            "posterior": to_raw_scale(model, posterior),
            "sample_stats": xr.Dataset(
                {"diverging": (("chain", "draw"), np.zeros((chains, draws), dtype=bool))},
                coords={"chain": np.arange(chains), "draw": np.arange(draws)},
                attrs={"independent_draws": 1},
            ),
            "observed_data": xr.Dataset(
                {model.meta_formula.response: (("__obs__",), observed)},
                coords={"__obs__": np.arange(len(observed))},
            ),
        }
    )


def _posterior_dataset(model, sample: dict, chains: int, draws: int) -> xr.Dataset:
    """The draws under Bambi's names and dims, coefficients on the sampled (centred) scale."""
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    variables = {}
    location = model.parameters["mu"]
    beta = sample["beta"].reshape(chains, draws, -1)
    for name, columns, term in coefficient_variables(location):
        extra = dict(getattr(term, "coords", None) or {})
        coords.update(extra)
        values = beta[..., columns]
        if extra:
            variables[name] = (("chain", "draw", *extra), values)
        else:
            variables[name] = (("chain", "draw"), values[..., 0])
    for parameter in ("tau", "rho"):
        prior = model.parameters[parameter].prior if parameter in model.parameters else None
        if parameter in sample and not isinstance(prior, (int, float)):
            variables[parameter] = (("chain", "draw"), sample[parameter].reshape(chains, draws))
    return xr.Dataset(variables, coords=coords)


def _attributes(exact: ExactPosterior, seconds: float) -> dict:
    return {
        "engine": ENGINE,
        "inference_library": INFERENCE_LIBRARY,
        "sampling_time": seconds,
        "log_marginal_likelihood": exact.log_marginal_likelihood,
        "log_marginal_likelihood_error": exact.log_marginal_likelihood_error,
        "quadrature_nodes_per_axis": list(exact.nodes_per_axis),
        "quadrature_axes": list(exact.free),
        "modeling_interface": "bambi",
    }
