"""Reading groups of the xarray DataTree that Bambi fits return."""

import xarray as xr


def as_dataset(group: xr.Dataset | xr.DataTree) -> xr.Dataset:
    """The Dataset of a DataTree group (fits return DataTrees; posteriors may be either)."""
    return group.to_dataset() if isinstance(group, xr.DataTree) else group


def posterior_of(idata: xr.DataTree) -> xr.Dataset:
    """The posterior group of a fit as a Dataset."""
    return as_dataset(idata["posterior"])
