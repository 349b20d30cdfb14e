"""Many exact fits of one model: simulation studies, leave-one-cluster-out, prior sensitivity.

The design, the priors and the cluster structure are read from the model once; each refit
swaps effect sizes (and variances) or keeps a subset of the rows, and runs the exact engine on
arrays. Refits run in parallel through joblib, so ``joblib.parallel_config(backend="dask")``
sends them to a Dask cluster without code changes; the workers import the exact engine only
(NumPy, SciPy, numba), not Bambi, PyMC or PyTensor. Seeds are spawned per refit from
``random_seed`` (``numpy.random.SeedSequence``), so the draws do not depend on the scheduling.
"""

import joblib
import numpy as np

from bambi_meta import _validate
from bambi_meta.engine import exact_model


def fit_many(
    model,
    *,
    effect_sizes=None,
    variances=None,
    keep=None,
    draws: int = 1000,
    chains: int = 4,
    random_seed=None,
    n_jobs: int | None = 1,
    summarize=None,
) -> list:
    """Refit ``model`` exactly to many data sets or row subsets (independent draws each).

    Parameters
    ----------
    model : MetaModel
        A model the exact engine can fit (its design, priors and clusters are kept).
    effect_sizes : array-like of shape (n_fits, k), optional
        New effect sizes for the model's k rows, one data set per row (simulation studies).
    variances : array-like of shape (n_fits, k), optional
        New sampling VARIANCES for the same rows (with ``effect_sizes``).
    keep : array-like of bool, shape (n_fits, k), optional
        Rows to fit in each refit (the others are left out: leave-one-cluster-out); with
        ``effect_sizes``, applied to each data set.
    draws, chains : int
        Independent draws per refit, laid out as (chain, draw).
    random_seed : int or numpy.random.Generator, optional
        Seeds the refits (each gets its own stream); the same seed, the same draws.
    n_jobs : int or None, default 1
        Parallel workers (joblib's ``n_jobs``; -1: all cores; the backend, e.g. Dask, is set
        with ``joblib.parallel_config``).
    summarize : callable, optional
        ``summarize(model, idata)`` applied to each refit's DataTree (e.g. a row of
        ``bmm.summary``); its results are returned instead of the DataTrees.

    Returns
    -------
    list
        One DataTree (or ``summarize`` result) per refit. Each holds the posterior (raw-scale
        coefficients, tau, rho) and the refit's effect sizes in ``observed_data``; summaries of
        the parameters apply directly, while helpers that re-read the data (effects,
        heterogeneity, LOO) refer to the model's own rows.
    """
    _validate.check_model(model)
    reason = exact_model.qualifies(model)
    if reason is not None:
        raise ValueError(
            f"fit_many() refits with the exact engine, which cannot fit this model: "
            f"{reason}. Use model.refitter() (MCMC) for it."
        )
    draws = _validate.check_integer(draws, "draws", 1)
    chains = _validate.check_integer(chains, "chains", 1)
    base = exact_model.exact_inputs(model).arguments
    k = len(base["yi"])
    effect_sizes = _matrix(effect_sizes, "effect_sizes", k)
    variances = _matrix(variances, "variances", k, positive=True)
    keep = _masks(keep, k)
    n_fits = _number_of_fits(effect_sizes, variances, keep)
    seeds = _seeds(random_seed, n_fits)
    tasks = [
        _arguments(base, _row(effect_sizes, i), _row(variances, i), _row(keep, i))
        for i in range(n_fits)
    ]
    results = joblib.Parallel(n_jobs=n_jobs)(
        joblib.delayed(exact_model.draw_exact)(arguments, draws * chains, seed)
        for arguments, seed in zip(tasks, seeds, strict=True)
    )
    out = []
    for index, ((sample, attributes), arguments) in enumerate(zip(results, tasks, strict=True)):
        attributes = {**attributes, "refit": index}
        tree = exact_model.exact_datatree(
            model, sample, chains, draws, attributes, observed=arguments["yi"]
        )
        out.append(tree if summarize is None else summarize(model, tree))
    return out


def _matrix(values, name: str, k: int, positive: bool = False) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[np.newaxis]
    if array.ndim != 2 or array.shape[1] != k:
        raise ValueError(
            f"'{name}' must have shape (n_fits, {k}): one row of the model's {k} estimates per "
            f"refit; got shape {array.shape}."
        )
    bad = ~np.isfinite(array) | ((array <= 0) if positive else False)
    if bad.any():
        fit, row = np.argwhere(bad)[0]
        rule = "finite and > 0" if positive else "finite"
        raise ValueError(
            f"'{name}' must be {rule}; refit {fit + 1}, row {row + 1} has {array[fit, row]!r}."
        )
    return array


def _masks(keep, k: int) -> np.ndarray | None:
    if keep is None:
        return None
    masks = np.asarray(keep)
    if masks.ndim == 1:
        masks = masks[np.newaxis]
    if masks.dtype != bool or masks.ndim != 2 or masks.shape[1] != k:
        raise ValueError(
            f"'keep' must be boolean masks of shape (n_fits, {k}); got {masks.dtype} of shape "
            f"{masks.shape}."
        )
    few = masks.sum(axis=1) < 2
    if few.any():
        raise ValueError(
            f"'keep' must leave at least 2 rows; refit {np.flatnonzero(few)[0] + 1} keeps fewer."
        )
    return masks


def _number_of_fits(*arrays) -> int:
    counts = {len(array) for array in arrays if array is not None}
    if not counts:
        raise ValueError("Give 'effect_sizes', 'variances' or 'keep': what changes between refits.")
    if len(counts) > 1:
        counts.discard(1)  # one row is used in every refit
    if len(counts) > 1:
        raise ValueError(
            f"'effect_sizes', 'variances' and 'keep' must have as many rows (refits) "
            f"as each other; got {sorted(counts)}."
        )
    return counts.pop()


def _row(array, index: int):
    if array is None:
        return None
    return array[index] if len(array) > 1 else array[0]


def _seeds(random_seed, n_fits: int) -> list:
    seed = _validate.check_random_seed(random_seed)
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(_validate.SEED_LIMIT, dtype=np.uint64))
    return np.random.SeedSequence(seed).spawn(n_fits)


def _arguments(base: dict, effect_sizes, variances, keep) -> dict:
    """The engine's arguments of one refit: new yi / vi, or a subset of the rows."""
    arguments = dict(base)
    if effect_sizes is not None:
        arguments["yi"] = effect_sizes
    if variances is not None:
        arguments["vi"] = variances
    if keep is not None:
        for name in ("yi", "vi", "X", "cluster"):
            if arguments.get(name) is not None:
                arguments[name] = np.asarray(arguments[name])[keep]
    return arguments
