"""Reading groups of the xarray DataTree that Bambi fits return."""

import xarray as xr


def as_dataset(group: xr.Dataset | xr.DataTree) -> xr.Dataset:
    """The Dataset of a DataTree group (fits return DataTrees; posteriors may be either)."""
    return group.to_dataset() if isinstance(group, xr.DataTree) else group


def engine_of(idata: xr.DataTree) -> str:
    """Which engine made a fit's draws: ``"exact"``, ``"nutpie"``, ``"pymc"``, ... (attrs)."""
    return str(posterior_of(idata).attrs.get("engine", "mcmc"))


def posterior_of(idata: xr.DataTree, argument: str = "idata") -> xr.Dataset:
    """The posterior group of a fit as a Dataset; a clear error for anything else."""
    if not isinstance(idata, xr.DataTree) or "posterior" not in idata.children:
        raise TypeError(
            f"'{argument}' must be what model.fit() returned (an xarray DataTree with a "
            f"'posterior' group); got {type(idata).__name__}."
        )
    return as_dataset(idata["posterior"])


# Values per array in one block of draws: 2**20 float64 values (8 MB), so that the dozen or so
# per-row temporaries of a block stay below ~100 MB whatever k and the number of draws are.
BLOCK_VALUES = 2**20


def draw_blocks(posterior: xr.Dataset, n_rows: int, budget: int = BLOCK_VALUES):
    """Split a posterior into blocks of consecutive draws of one chain, in chain-major order.

    Computations per draw that need arrays of length ``n_rows`` run block by block, so their
    memory is ``budget`` values per array instead of draws x rows. The order (chain 0 draws
    0, 1, ..., then chain 1, ...) is the C order of a (chain, draw, ...) array, so random numbers
    drawn block by block are the same as drawn for the whole array at once.

    Yields
    ------
    index : tuple of (int, slice)
        The block's chain and draws, for writing results into (chain, draw, ...) arrays.
    block : xarray.Dataset
        The posterior restricted to them (chain dimension of length 1 kept).
    """
    per_block = max(1, budget // max(n_rows, 1))
    for chain in range(posterior.sizes["chain"]):
        for start in range(0, posterior.sizes["draw"], per_block):
            draws = slice(start, min(start + per_block, posterior.sizes["draw"]))
            yield (chain, draws), posterior.isel(chain=[chain], draw=draws)


def draws_dataarray(values, posterior, dim: str, labels, name: str | None = None) -> xr.DataArray:
    """A (chain, draw, ``dim``) DataArray with the posterior's chain and draw coordinates."""
    return xr.DataArray(
        values,
        dims=("chain", "draw", dim),
        coords={"chain": posterior["chain"], "draw": posterior["draw"], dim: labels},
        name=name,
    )
