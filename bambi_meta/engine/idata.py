"""DataTrees of the default sampler's draws, named and shaped as Bambi's PyMC path names them."""

import numpy as np
import xarray as xr
from pytensor.compile.sharedvalue import SharedVariable

from bambi_meta import _upstream

# nutpie's per-draw statistics kept in ``sample_stats``, under PyMC's names.
STATISTICS = {
    "diverging": "diverging",
    "energy": "energy",
    "energy_error": "energy_error",
    "max_energy_error": "max_energy_error",
    "logp": "lp",
    "n_steps": "n_steps",
    "step_size": "step_size",
    "depth": "tree_depth",
    "maxdepth_reached": "reached_max_treedepth",
    "mean_tree_accept": "acceptance_rate",
}


def nutpie_datatree(raw, model, shapes: dict, values: dict) -> xr.DataTree:
    """Posterior, sample statistics and observed data from nutpie's raw (Arrow) trace."""
    import pyarrow

    posterior = {name: [] for name in shapes}
    stats = {name: [] for name in STATISTICS}
    for draw_batch, stat_batch in zip(*_upstream.nutpie_trace_batches(raw), strict=True):
        # The raw trace holds the tuning steps too, whatever ``save_warmup`` says.
        kept = ~pyarrow.array(stat_batch.column("tuning")).to_numpy(False).astype(bool)
        for batch, group in ((draw_batch, posterior), (stat_batch, stats)):
            for name, chains in group.items():
                column = pyarrow.array(batch.column(name))
                if hasattr(column, "flatten"):  # list columns of vector variables
                    column = column.flatten()
                draws = column.to_numpy(False).reshape(len(kept), *shapes.get(name, ()))
                chains.append(draws[kept])

    def dims(name):
        return list(model.named_vars_to_dims.get(name, ()))

    first = next(iter(posterior.values()))
    n_chains, n_draws = len(first), len(first[0])
    sample_coords = {"chain": np.arange(n_chains), "draw": np.arange(n_draws)}

    def coords(names, sample=True):
        used = {dim for name in names for dim in dims(name)}
        variable_coords = {
            dim: np.asarray(model.coords[dim]) for dim in used if model.coords.get(dim)
        }
        return sample_coords | variable_coords if sample else variable_coords

    observed = {rv.name: _observed_value(model, rv, values) for rv in model.observed_RVs}
    groups = {
        "posterior": xr.Dataset(
            {name: (["chain", "draw", *dims(name)], np.stack(c)) for name, c in posterior.items()},
            coords=coords(posterior),
        ),
        "sample_stats": xr.Dataset(
            {STATISTICS[name]: (["chain", "draw"], np.stack(c)) for name, c in stats.items()},
            coords=sample_coords,
        ),
        "observed_data": xr.Dataset(
            {name: (dims(name), value) for name, value in observed.items()},
            coords=coords(observed, sample=False),
        ),
    }
    return xr.DataTree.from_dict(groups)


def _observed_value(model, rv, values: dict) -> np.ndarray:
    """The observed values of ``rv`` (the current data when they are a shared variable)."""
    value = model.rvs_to_values[rv]
    if isinstance(value, SharedVariable) and value.name in values:
        return np.asarray(values[value.name])
    return np.asarray(value.eval() if hasattr(value, "eval") else value)
