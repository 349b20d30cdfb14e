"""numba compilation for the engine: cached on disk when possible, never breaking import."""

import warnings

import numba

__all__ = ["CACHE_ENABLED", "njit"]

CACHE_ENABLED = True


def njit(func=None, **options):
    r"""``numba.njit(cache=True, nogil=True)``, compiled in memory if no cache dir is writable.

    Used bare (``@njit``) it gives ``error_model="numpy"``: a float division by zero gives
    inf/nan instead of raising, which lets LLVM vectorise the loops over points (with Python's
    error model every ``1.0 / d`` carries a zero test and stays scalar: 2.5 vs 1.0 ns per row and
    point at q = 2). The kernels never divide by zero on valid input (:math:`d_i \ge v_i > 0`).
    ``@njit(**options)`` passes other numba options (e.g. ``error_model="python"``).

    numba raises ``RuntimeError("cannot cache function ...: no locator available")`` at
    decoration, i.e. at import, when neither the package's ``__pycache__`` nor the user-wide
    numba cache directory is writable (checked on numba 0.68). The kernels then compile in
    memory in each process (about 2 s, once) and a ``RuntimeWarning`` says how to keep them:
    set ``NUMBA_CACHE_DIR`` to a writable directory.
    """
    if func is None:
        return lambda function: njit(function, **options)
    options = {"nogil": True, "error_model": "numpy", **options}
    global CACHE_ENABLED
    if CACHE_ENABLED:
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError as err:
            if "no locator available" not in str(err):
                raise
            CACHE_ENABLED = False
            warnings.warn(
                f"numba cannot cache bambi_meta's kernels ({err}); they are compiled in "
                "memory in each process. Set NUMBA_CACHE_DIR to a writable directory to keep "
                "them.",
                RuntimeWarning,
                stacklevel=3,
            )
    return numba.njit(**options)(func)
