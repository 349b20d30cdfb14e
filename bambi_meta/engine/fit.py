"""``MetaModel.fit``: check the arguments, run the engine, return Bambi's DataTree.

The default engine is the exact one (:mod:`bambi_meta.engine.exact_model`: independent draws
from the posterior computed by quadrature) for every model it can integrate; the others (scale
formulas, non-Normal coefficient priors) get nutpie's NUTS on the model compiled by PyTensor
(:mod:`bambi_meta.engine.compile`). ``inference_method="nutpie"``, ``"pymc"`` and ``"vi"`` force
MCMC or variational inference. Whatever ran, the posterior holds the coefficients on the raw
scale of the moderators (:func:`bambi_meta.bambi_ext.centring.to_raw_scale`) and its attrs say
which engine ran (``engine``).
"""

import numpy as np
import xarray as xr

from bambi_meta import _upstream, _validate
from bambi_meta.bambi_ext.centring import to_raw_scale
from bambi_meta.engine import exact_model
from bambi_meta.engine.compile import CompiledModel

# Settings of PyMC's NUTS (Bambi's ``nuts=``) that nutpie has under another name.
NUTPIE_SETTINGS = {"target_accept": "target_accept", "max_treedepth": "maxdepth"}

# Arguments of ``bambi.Model.fit`` that only PyMC's sampler understands.
PYMC_ONLY = ("init", "n_init", "discard_tuned_samples", "step", "trace")

# Inference methods a MetaModel accepts: the exact engine, the default sampler, and Bambi's
# methods that work with the fused likelihood (first derivatives only, numba or C backends).
INFERENCE_METHODS = ("exact", "nutpie", "pymc", "vi")

# Settings of the samplers that mean nothing for independent draws: checked, then ignored, so
# that a script written for MCMC runs unchanged on the exact engine.
IGNORED_BY_EXACT = (
    "cores",
    "progressbar",
    "nuts",
    "target_accept",
    "max_treedepth",
    "omit_offsets",
    "init",
    "n_init",
    "discard_tuned_samples",
)

REFUSED_METHODS = {
    "laplace": "the Laplace approximation needs second derivatives, which the fused likelihood "
    "(one compiled pass for the log-density and its gradient) does not provide",
    "numpyro": "JAX samplers need a JAX version of the fused likelihood, which does not exist",
    "blackjax": "JAX samplers need a JAX version of the fused likelihood, which does not exist",
}

# With PyMC's NUTS (``inference_method="pymc"``) chains run one after the other below this many
# estimates: starting and compiling worker processes takes longer than sampling small models.
# The default sampler runs chains one after the other at every k: parallel chain threads were
# slower at every k measured (benchmarks/README.md).
SEQUENTIAL_CHAINS_BELOW = 1000


def fit(model, bambi_fit, *, draws, tune, chains, inference_method, **kwargs):
    """Fit ``model`` (see :meth:`bambi_meta.MetaModel.fit`); ``bambi_fit`` is Bambi's own fit."""
    if inference_method is None:
        inference_method = "exact" if exact_model.qualifies(model) is None else "nutpie"
    inference_method = check_fit_arguments(
        inference_method, draws=draws, tune=tune, chains=chains, options=kwargs
    )
    if inference_method == "exact":
        return fit_exact(model, draws=draws, chains=chains, **kwargs)
    default_sampler = inference_method == "nutpie"
    if default_sampler or model.n_estimates < SEQUENTIAL_CHAINS_BELOW:
        kwargs.setdefault("cores", 1)
    idata_kwargs = dict(kwargs.pop("idata_kwargs", None) or {})
    wants_log_likelihood = idata_kwargs.pop("log_likelihood", False)
    if default_sampler:
        if idata_kwargs:
            raise ValueError(
                f"idata_kwargs {sorted(idata_kwargs)} are PyMC's; the default sampler "
                "takes only log_likelihood. Use inference_method='pymc' for the others."
            )
        idata = sample_nutpie(model, draws=draws, tune=tune, chains=chains, **kwargs)
    else:
        if idata_kwargs:
            kwargs["idata_kwargs"] = idata_kwargs
        idata = _upstream.with_compile_cache_fallback(bambi_fit)(
            draws=draws, tune=tune, chains=chains, inference_method=inference_method, **kwargs
        )
    if not isinstance(idata, xr.DataTree):  # e.g. the approximation of inference_method="vi"
        return idata
    idata["posterior"] = to_raw_scale(model, idata["posterior"])
    idata["posterior"].attrs["engine"] = inference_method
    if wants_log_likelihood:
        model.compute_log_likelihood(idata)
    return idata


def fit_exact(
    model,
    *,
    draws: int,
    chains: int,
    random_seed=None,
    idata_kwargs: dict | None = None,
    include_response_params: bool = False,
    **ignored,
) -> xr.DataTree:
    """The exact engine with ``fit()``'s arguments (MCMC settings checked before, ignored here)."""
    unknown = sorted(set(ignored) - set(IGNORED_BY_EXACT))
    if unknown:
        raise TypeError(
            f"fit() got {', '.join(map(repr, unknown))}, which the exact engine does not take: "
            "it takes draws, chains, random_seed, idata_kwargs and include_response_params (and "
            f"ignores the sampler settings {', '.join(IGNORED_BY_EXACT)})."
        )
    reason = exact_model.qualifies(model)
    if reason is not None:
        raise ValueError(
            f"inference_method='exact' cannot fit this model: {reason}. MCMC handles it: "
            "fit(inference_method='nutpie') (the default for such models)."
        )
    idata_kwargs = dict(idata_kwargs or {})
    wants_log_likelihood = idata_kwargs.pop("log_likelihood", False)
    if idata_kwargs:
        raise ValueError(
            f"idata_kwargs {sorted(idata_kwargs)} are PyMC's; the exact engine takes only "
            "log_likelihood."
        )
    idata = exact_model.fit_exact_model(model, draws=draws, chains=chains, random_seed=random_seed)
    if include_response_params:
        model.predict(idata, kind="response_params", random_seed=random_seed)
    if wants_log_likelihood:
        model.compute_log_likelihood(idata)
    return idata


def check_fit_arguments(inference_method, *, draws, tune, chains, options: dict) -> str:
    """Check every argument of ``MetaModel.fit``/``Refitter.fit`` against its allowed range.

    Normalises ``options`` in place (``random_seed``: a ``numpy.random.Generator`` becomes an
    integer seed for nutpie, drawn from it) and returns the inference method's name.

    Raises
    ------
    ValueError, TypeError
        Naming the argument, the value and what is allowed.
    """
    method = "nutpie" if inference_method is None else inference_method
    if method in REFUSED_METHODS:
        raise ValueError(
            f"inference_method={method!r} is not available for meta-analytic models: "
            f"{REFUSED_METHODS[method]}. Use one of {', '.join(map(repr, INFERENCE_METHODS))}."
        )
    if method not in INFERENCE_METHODS:
        raise ValueError(
            f"'inference_method' must be one of {', '.join(map(repr, INFERENCE_METHODS))}; "
            f"got {inference_method!r}."
        )
    _validate.check_integer(draws, "draws", 1)
    _validate.check_integer(chains, "chains", 1)
    # nutpie needs at least one tuning step (tune=0 poisons its sampler state); PyMC does not.
    _validate.check_integer(tune, "tune", 1 if method == "nutpie" else 0)
    if options.get("cores") is not None:
        options["cores"] = _validate.check_integer(options["cores"], "cores", 1)
    seed = _validate.check_random_seed(options.get("random_seed"))
    if isinstance(seed, np.random.Generator) and method == "nutpie":  # nutpie takes integers
        seed = int(seed.integers(_validate.SEED_LIMIT, dtype=np.uint64))
    if "random_seed" in options:
        options["random_seed"] = seed
    nuts = options.get("nuts") or {}
    if not isinstance(nuts, dict):
        raise TypeError(f"'nuts' must be a dict of NUTS settings; got {nuts!r}.")
    for source in (options, nuts):
        if "target_accept" in source:
            _validate.check_open_unit_interval(source["target_accept"], "target_accept")
        for depth in ("max_treedepth", "maxdepth"):
            if depth in source:
                _validate.check_integer(source[depth], depth, 1, 30)
    return method


def sample_nutpie(
    model,
    *,
    draws: int,
    tune: int,
    chains: int,
    random_seed=None,
    cores=None,
    progressbar: bool = True,
    omit_offsets: bool = True,
    include_response_params: bool = False,
    nuts: dict | None = None,
    **kwargs,
) -> xr.DataTree:
    """``MetaModel.fit`` with the default sampler: Bambi's arguments, Bambi's output."""
    pymc_only = sorted(set(kwargs) & set(PYMC_ONLY))
    if pymc_only:
        raise ValueError(
            f"{pymc_only} are options of PyMC's sampler, not of the default sampler (nutpie); "
            "use inference_method='pymc' with them."
        )
    for name, value in (nuts or {}).items():
        if name not in NUTPIE_SETTINGS:
            raise ValueError(
                f"nuts={{{name!r}: ...}} is not a setting of the default sampler (nutpie); "
                f"it takes {sorted(NUTPIE_SETTINGS)}. Use inference_method='pymc' for others."
            )
        kwargs[NUTPIE_SETTINGS[name]] = value
    idata = compiled_model(model).sample(
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        random_seed=random_seed,
        progressbar=progressbar,
        **kwargs,
    )
    return _upstream.clean_results(model, idata, omit_offsets, include_response_params)


def compiled_model(model) -> "CompiledModel":
    """The ``CompiledModel`` of a Bambi model, compiled on first use and kept on the model."""
    if not model.built:
        model.build()
    compiled = model.compiled
    if compiled is None or compiled.pymc_model is not model.backend.model:
        compile_model = _upstream.with_compile_cache_fallback(CompiledModel)
        compiled = compile_model(model.backend.model, stored_variable_names(model))
        model.compiled = compiled
    return compiled


def stored_variable_names(model) -> list[str]:
    """What Bambi stores: the model's variables without the likelihood's deterministics."""
    pymc_model = model.backend.model
    names = _upstream.default_variable_names(pymc_model.unobserved_value_vars)
    params = set(model.family.likelihood.params)
    deterministic = {var.name for var in pymc_model.deterministics}
    return [name for name in names if not (name in params and name in deterministic)]
