"""nutpie's NUTS on the model's log-density as compiled by PyTensor, without nutpie's wrapper.

``nutpie.compile_pymc_model`` wraps PyTensor's numba function in a C callback that numba
compiles anew in every process (seconds, whatever the model: numba
does not cache it), which dwarfs sampling a meta-analysis. Here PyTensor compiles the log-density
and its gradient as an ordinary function (its default numba backend, cached on disk across
processes: about 1 s), the likelihood's work runs in the fused kernel
(``bambi_meta.engine.fused``), and nutpie's Rust sampler calls the function through
``nutpie.compiled_pyfunc.from_pyfunc`` (about 30-50 us of Python overhead per gradient, which
matters only for small models; ``NutpieNumbaModel`` avoids it at the price of the slow compile).

The likelihood's data (``bambi_meta.engine.likelihood.DATA_NAMES``) are inputs of the compiled
function, not constants, so :meth:`CompiledModel.sample` can refit new data without compiling.
"""

import threading
import time

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import xarray as xr
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.traversal import ancestors

from bambi_meta import _upstream
from bambi_meta.engine.idata import nutpie_datatree


class _NutpieSampler:
    """What the two ways of compiling a model for nutpie share: sampling and the output.

    Subclasses set ``pymc_model``, ``var_names``, ``shapes`` (stored variable -> shape) and
    ``data`` (shared-variable name -> current value) and make the nutpie model for given data.
    """

    pymc_model: pm.Model
    var_names: list[str]
    shapes: dict
    data: dict

    def _nutpie_model(self, values: dict):
        raise NotImplementedError

    def sample(
        self,
        *,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        cores: int | None = None,
        random_seed: int | None = None,
        data: dict | None = None,
        progressbar: bool = False,
        **kwargs,
    ) -> xr.DataTree:
        """Run nutpie's NUTS; returns ``posterior``, ``sample_stats`` and ``observed_data``.

        Parameters
        ----------
        draws, tune, chains : int
            Draws kept and tuning steps per chain, number of chains.
        cores : int, optional
            Chains run in parallel threads; nutpie's default (all cores) if None.
        random_seed : int, optional
            Seed; the same seed gives the same draws.
        data : dict, optional
            New values of the model's shared data, by shared-variable name (same shapes).
        progressbar : bool, default False
            Show nutpie's progress bar.
        **kwargs
            Passed to ``nutpie.sample`` (e.g. ``target_accept``).

        Returns
        -------
        xarray.DataTree
        """
        import nutpie

        unknown = set(data or {}) - set(self.data)
        if unknown:
            raise ValueError(f"Unknown data names {sorted(unknown)}; known: {sorted(self.data)}")
        values = self.data | {
            name: np.ascontiguousarray(value, dtype=self.data[name].dtype)
            for name, value in (data or {}).items()
        }
        if cores is not None:
            kwargs["cores"] = cores
        start = time.perf_counter()
        raw = nutpie.sample(
            self._nutpie_model(values),
            draws=draws,
            tune=tune,
            chains=chains,
            seed=random_seed,
            save_warmup=False,
            progress_bar=progressbar,
            return_raw_trace=True,
            **kwargs,
        )
        idata = nutpie_datatree(raw, self.pymc_model, self.shapes, values)
        idata["posterior"].attrs.update(
            sampling_time=time.perf_counter() - start, tuning_steps=tune, inference_library="nutpie"
        )
        return idata


class CompiledModel(_NutpieSampler):
    """A PyMC model's log-density, gradient and trace function, compiled once for nutpie.

    PyTensor compiles two plain functions of the flat unconstrained point and the data (about
    1 s, cached on disk); nutpie calls them through ``from_pyfunc``. The default sampler of
    ``MetaModel.fit`` and ``Refitter``.

    Parameters
    ----------
    pymc_model : pymc.Model
        The model (Bambi's ``model.backend.model``).
    var_names : list of str
        Variables stored in the posterior (constrained values and deterministics).
    """

    def __init__(self, pymc_model: pm.Model, var_names: list[str]):
        self.pymc_model = pymc_model
        self.var_names = list(var_names)
        self.value_vars = [pymc_model.rvs_to_values[rv] for rv in pymc_model.free_RVs]
        point = pymc_model.initial_point()
        self._shapes = [np.shape(point[var.name]) for var in self.value_vars]
        self.n_dim = int(sum(np.prod(shape, dtype=int) for shape in self._shapes))

        flat = pt.dvector("unconstrained_point")
        logp = pymc_model.logp()
        gradient = pt.concatenate([g.ravel() for g in pt.grad(logp, self.value_vars)])
        by_name = {var.name: var for var in pymc_model.unobserved_value_vars}
        stored = [by_name[name] for name in self.var_names]
        shared = _shared_variables([logp, *stored])
        self.data = {var.name: var.get_value() for var in shared}
        givens = self._unflatten(flat) | {var: var.type(name=var.name) for var in shared}
        inputs = [flat, *(givens[var] for var in shared)]
        self._logp_function = _compile(inputs, [logp, gradient], givens)
        self._expand_function = _compile(inputs, stored, givens)
        self.shapes = {
            name: np.shape(value)
            for name, value in zip(
                self.var_names,
                self._expand_function(np.zeros(self.n_dim), *self.data.values()),
                strict=True,
            )
        }
        self._initial_point = _upstream.initial_point_function(pymc_model)
        self._lock = threading.Lock()
        self._check_logp_at_initial_point()

    def _check_logp_at_initial_point(self) -> None:
        """Evaluate the log-density once before any sampling (as PyMC's ``assert_ip_dlogp``).

        This also runs the first call of the compiled function here, in Python, where a problem
        (a corrupted compile cache, a non-finite density) raises a clear error instead of
        failing inside nutpie's sampler threads.
        """
        point = self._initial_point_array(0)
        value, gradient = self._logp_function(point, *self.data.values())
        if not (np.isfinite(value) and np.all(np.isfinite(gradient))):
            raise ValueError(
                f"The model's log-density is not finite at its initial point (logp = {value}); "
                "check the priors and the data."
            )

    def _unflatten(self, flat) -> dict:
        """Value variables as slices of one flat vector, in ``free_RVs`` order."""
        givens, start = {}, 0
        for var, shape in zip(self.value_vars, self._shapes, strict=True):
            size = int(np.prod(shape, dtype=int))
            givens[var] = flat[start : start + size].reshape(shape).astype(var.dtype)
            start += size
        return givens

    def _nutpie_model(self, values: dict):
        """The nutpie model from the compiled functions (one per chain thread)."""
        names = list(self.data)

        def make_logp():
            function = _callable(self._logp_function)

            def logp(x, **data):
                value, gradient = function(x, *(data[name] for name in names))
                return float(value), gradient

            return logp

        def make_expand(seed1, seed2, chain):
            function = _callable(self._expand_function)

            def expand(x, **data):
                values = function(x, *(data[name] for name in names))
                return dict(zip(self.var_names, values, strict=True))

            return expand

        return _upstream.nutpie_model_from_functions(
            ndim=self.n_dim,
            make_logp_fn=make_logp,
            make_expand_fn=make_expand,
            expanded_dtypes=[np.dtype("float64")] * len(self.var_names),
            expanded_shapes=list(self.shapes.values()),
            expanded_names=self.var_names,
            shared_data=values,
            make_initial_point_fn=self._initial_point_array,
        )

    def _initial_point_array(self, seed) -> np.ndarray:
        """PyMC's jittered initial point as one flat array (nutpie calls it from threads)."""
        with self._lock:
            point = self._initial_point(seed)
        return np.concatenate([np.ravel(point[var.name]) for var in self.value_vars])


class NutpieNumbaModel(_NutpieSampler):
    """The model compiled by nutpie itself: a slow compile, then the fastest sampling.

    ``nutpie.compile_pymc_model`` compiles the whole model and its C callback with numba (slow,
    in every process; benchmarks/README.md), after which a small model samples in about 0.15 s
    instead of about 1 s (no Python call per gradient). Worth it for many refits of a small
    model: ``Refitter(model, sampler="nutpie-numba")``.

    Parameters
    ----------
    pymc_model : pymc.Model
        The model (Bambi's ``model.backend.model``).
    var_names : list of str
        Variables stored in the posterior.
    """

    def __init__(self, pymc_model: pm.Model, var_names: list[str]):
        import nutpie

        self.pymc_model = pymc_model
        self.var_names = list(var_names)
        self._compiled = nutpie.compile_pymc_model(pymc_model, var_names=self.var_names)
        self.shapes = {name: tuple(self._compiled.shapes[name]) for name in self.var_names}
        by_name = {var.name: var for var in pymc_model.unobserved_value_vars}
        shared = _shared_variables([pymc_model.logp(), *(by_name[n] for n in self.var_names)])
        self.data = {var.name: var.get_value() for var in shared}

    def _nutpie_model(self, values: dict):
        """Return nutpie's compiled model with the given data."""
        return self._compiled.with_data(**values)


def _compile(inputs, outputs, givens):
    """A PyTensor function of the flat point and the data (default mode: numba, disk-cached)."""
    return pytensor.function(
        inputs,
        outputs,
        givens=givens,
        mode="FAST_RUN",
        on_unused_input="ignore",
        trust_input=True,
    )


def _callable(function):
    """The numba function behind a PyTensor function, else a private copy of the function.

    The numba function is stateless, so chain threads can share it, and it is about 5 us faster
    per call than going through the PyTensor function.
    """
    jit_function = getattr(function.vm, "jit_fn", None)
    return jit_function if jit_function is not None else function.copy()


def _shared_variables(outputs) -> list[SharedVariable]:
    """The shared variables the outputs depend on, in a fixed order (by name)."""
    found = {var for var in ancestors(outputs) if isinstance(var, SharedVariable)}
    names = [var.name for var in found]
    if None in names or len(set(names)) != len(names):
        raise ValueError(f"Shared variables need unique names to be swapped; got {names}")
    return sorted(found, key=lambda var: var.name)
