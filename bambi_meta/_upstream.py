"""Every use of a Bambi, PyMC, PyTensor or nutpie internal, in one place.

bambi_meta extends Bambi through its public objects where it can (``bmb.Family``,
``bmb.Likelihood(dist=...)``, ``extra_namespace``). What has no public hook is reached from here
only, each through one small function with a docstring naming the upstream object it relies on,
so that an upstream change breaks one function (and its test in ``tests/test_upstream_hooks.py``)
with a message naming the package and version, not a user's model deep in a traceback.
"""

import atexit
import functools
import shutil
import tempfile
import traceback
import warnings
from importlib.metadata import version
from pathlib import Path

UPSTREAM = ("bambi", "pymc", "pytensor", "nutpie")


class UpstreamChangeError(RuntimeError):
    """An internal of Bambi, PyMC, PyTensor or nutpie that bambi_meta relies on has changed."""


def upstream_versions() -> str:
    """The installed versions of the packages whose internals this module uses."""
    return ", ".join(f"{name} {version(name)}" for name in UPSTREAM)


def _changed(what: str, error: Exception) -> UpstreamChangeError:
    return UpstreamChangeError(
        f"bambi_meta relies on {what}, which is not as expected with {upstream_versions()} "
        f"({type(error).__name__}: {error}). Install the versions pinned in bambi_meta's "
        "pyproject.toml, or report this at the bambi_meta issue tracker."
    )


# ---------------------------------------------------------------------------------------------
# PyTensor's numba backend and its on-disk cache
# ---------------------------------------------------------------------------------------------
class CompileCacheWarning(UserWarning):
    """PyTensor's compile cache could not be used; a private temporary one is used instead."""


_private_cache: Path | None = None


def _pytensor_numba_cache_dir() -> Path:
    """Where PyTensor's numba backend caches compiled functions (``<base_compiledir>/numba``)."""
    from pytensor.configdefaults import config

    return Path(config.base_compiledir) / "numba"


def _is_writable_directory(path: Path) -> bool:
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path):
            return True
    except OSError:
        return False


def _warn_private_cache(cache: Path, private: Path, reason: str) -> None:
    warnings.warn(
        f"PyTensor's compile cache {cache} cannot be used ({reason}); bambi_meta compiles into "
        f"a private temporary cache ({private}) for this session, so compiled models are not "
        f"reused between processes. To fix it, delete the cache (`rm -r {cache}`, PyTensor "
        "rebuilds it) or make it writable, or point PyTensor to another directory with "
        "PYTENSOR_FLAGS='base_compiledir=/a/writable/dir'.",
        CompileCacheWarning,
        stacklevel=3,
    )


def _redirect_base_compiledir(private: Path) -> None:
    """Make PyTensor's (immutable) ``base_compiledir`` point to ``private``.

    PyTensor's numba cache module creates ``<base_compiledir>/numba`` when it is imported, so an
    unwritable directory would make that import (and so ``import bambi_meta``) fail. The config
    parameter refuses changes after initialisation; its descriptor's ``val`` is set directly.
    """
    from pytensor.configdefaults import config

    try:
        parameter = type(config).__dict__["base_compiledir"]
        parameter.val = private
        config.compiledir = private / "compiledir"
    except (KeyError, AttributeError) as error:
        raise _changed("pytensor.config's base_compiledir parameter", error) from error


def use_private_numba_cache(reason: str) -> Path:
    """Send PyTensor's numba cache to a private temporary directory (once), with one warning.

    Parameters
    ----------
    reason : str
        Why the usual cache cannot be used (shown in the warning).

    Returns
    -------
    pathlib.Path
        The private cache directory.
    """
    global _private_cache
    if _private_cache is not None:
        return _private_cache
    cache = _pytensor_numba_cache_dir()
    private = Path(tempfile.mkdtemp(prefix="bambi_meta-pytensor-"))
    (private / "numba").mkdir()
    import sys

    module = sys.modules.get("pytensor.link.numba.cache")
    if module is None:
        _redirect_base_compiledir(private)
    else:
        # Already imported: its locator reads this module global when a function is cached.
        module.NUMBA_CACHE_PATH = private / "numba"
    _private_cache = private
    atexit.register(shutil.rmtree, private, ignore_errors=True)
    _warn_private_cache(cache, private, reason)
    return private


@functools.cache
def prepare_compile_cache() -> None:
    """Before PyTensor first compiles: use a private cache if its cache directory is unwritable.

    Called when a model is built. Without it, an unwritable ``base_compiledir`` makes the first
    compilation (or the import of PyTensor's numba backend) fail with an ``OSError``.
    """
    import sys

    if "pytensor.link.numba.cache" in sys.modules:
        return
    cache = _pytensor_numba_cache_dir()
    if not _is_writable_directory(cache):
        use_private_numba_cache(f"{cache} is not a writable directory")


def numba_dispatch():
    """PyTensor's numba dispatch module, imported with a usable cache directory.

    Returns
    -------
    module
        ``pytensor.link.numba.dispatch.basic``.
    """
    prepare_compile_cache()
    try:
        from pytensor.link.numba.dispatch import basic
    except ImportError as error:
        raise _changed("pytensor.link.numba.dispatch.basic", error) from error
    return basic


@functools.cache
def register_numba_implementation(op_type, funcify, cache_version: int) -> None:
    """Register the numba implementation of a PyTensor Op, keyed for PyTensor's disk cache.

    PyTensor caches each compiled function under a key made of the Op's type and properties;
    ``cache_version`` is added to it, so that a new kernel (an edited source, a new release)
    never loads a function compiled from an old one.

    Parameters
    ----------
    op_type : type
        The Op class.
    funcify : callable
        ``funcify(op, node, **kwargs) -> numba function``.
    cache_version : int
        Changes whenever the numba code behind the Op changes.
    """
    basic = numba_dispatch()
    try:
        register = basic.register_funcify_default_op_cache_key
    except AttributeError as error:
        raise _changed("pytensor's register_funcify_default_op_cache_key", error) from error

    @functools.wraps(funcify)
    def versioned(op, node=None, **kwargs):
        return funcify(op, node=node, **kwargs), cache_version

    register(op_type)(versioned)


def numba_cache_key(op, node=None) -> str:
    """The key under which PyTensor caches the numba function of ``op`` (for tests)."""
    basic = numba_dispatch()
    return basic.numba_funcify_and_cache_key(op, node=node)[1]


def is_compile_cache_error(error: BaseException) -> bool:
    """Whether ``error`` was raised while numba read a (corrupted) cache file."""
    frames = traceback.extract_tb(error.__traceback__)
    return any(
        Path(frame.filename).as_posix().endswith("numba/core/caching.py") for frame in frames
    )


def with_compile_cache_fallback(function):
    """Run ``function``; if a corrupted compile cache breaks it, retry once with a private one.

    A truncated or garbled cache file (``.nbc``/``.nbi``) makes numba raise while it loads a
    compiled function. The retry compiles into a private temporary cache (one warning says how
    to clear the broken one), so a damaged cache costs compile time, never a failed fit.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except Exception as error:
            if _private_cache is not None or not is_compile_cache_error(error):
                raise
            use_private_numba_cache(
                f"reading it failed with {type(error).__name__}: {str(error)[:120]}"
            )
            return function(*args, **kwargs)

    return wrapper


# Warnings PyMC and PyTensor give for this family's predictive draws that say nothing to a user:
# the response's random function is Python code (PyTensor runs it in Numba's object mode), and
# in a model without moderators the deterministic ``mu`` has one value, not one per row (PyMC's
# converter then gives it a fresh coordinate).
PREDICTIVE_NOISE = (
    r"Numba will use object mode to run CustomDist_yi_rv",
    r"Incompatible coordinate length of \d+ for dimension '__obs__' of variable 'mu'",
)


def without_predictive_noise(function):
    """Run ``function`` (a predictive sampler of PyMC or Bambi) without :data:`PREDICTIVE_NOISE`."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings():
            for message in PREDICTIVE_NOISE:
                warnings.filterwarnings("ignore", message=message, category=UserWarning)
            return function(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------------------------
# Bambi: the PyMC backend's results
# ---------------------------------------------------------------------------------------------
def clean_results(model, idata, omit_offsets: bool, include_response_params: bool):
    """Bambi's post-processing of a fit (names, dims, offsets), for draws we sampled ourselves.

    ``bambi.backend.PyMCModel._clean_results`` is what ``bmb.Model.fit`` runs on PyMC's output;
    the default sampler's DataTree has the same layout, so it goes through the same step (and
    the backend is marked fitted, which Bambi's ``predict`` checks).
    """
    backend = model.backend
    try:
        backend.fit = True
        return backend._clean_results(
            idata=idata, omit_offsets=omit_offsets, include_response_params=include_response_params
        )
    except (AttributeError, TypeError) as error:
        raise _changed(
            "bambi's PyMCModel._clean_results(idata, omit_offsets, ...)", error
        ) from error


# ---------------------------------------------------------------------------------------------
# PyMC: names and initial points of a model's variables
# ---------------------------------------------------------------------------------------------
def default_variable_names(variables) -> list[str]:
    """Names of the variables PyMC stores by default (transformed values left out)."""
    from pymc.util import get_default_varnames

    return [var.name for var in get_default_varnames(variables, include_transformed=False)]


def initial_point_function(pymc_model):
    """PyMC's jittered initial point on the unconstrained (transformed) scale, as a function."""
    from pymc.initial_point import make_initial_point_fn

    try:
        return make_initial_point_fn(
            model=pymc_model, jitter_rvs=set(pymc_model.free_RVs), return_transformed=True
        )
    except TypeError as error:
        raise _changed("pymc.initial_point.make_initial_point_fn", error) from error


# ---------------------------------------------------------------------------------------------
# nutpie: a model from Python functions, and its raw trace
# ---------------------------------------------------------------------------------------------
def nutpie_model_from_functions(**arguments):
    """``nutpie.compiled_pyfunc.from_pyfunc``: nutpie's sampler on Python log-density functions.

    Parameters
    ----------
    **arguments
        Passed by keyword (``ndim``, ``make_logp_fn``, ``make_expand_fn``, ``expanded_dtypes``,
        ``expanded_shapes``, ``expanded_names``, ``shared_data``, ``make_initial_point_fn``).
    """
    try:
        from nutpie.compiled_pyfunc import from_pyfunc

        return from_pyfunc(**arguments)
    except (ImportError, TypeError) as error:
        raise _changed("nutpie.compiled_pyfunc.from_pyfunc", error) from error


def nutpie_trace_batches(raw):
    """The (draws, statistics) Arrow record batches of a raw nutpie trace, per chain.

    ``return_raw_trace=True`` gives nutpie's Rust trace object; its ``get_arrow_trace()`` holds
    every draw (tuning included, flagged by the statistic ``tuning``) as Arrow record batches.
    """
    try:
        draws, statistics = raw.get_arrow_trace()
    except (AttributeError, ValueError) as error:
        raise _changed("nutpie's raw trace get_arrow_trace()", error) from error
    return draws, statistics
