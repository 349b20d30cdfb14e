"""Code shared by the test modules (fixtures live in conftest.py)."""

import numpy as np
import xarray as xr


def fake_posterior(model, seed: int = 0, chains: int = 2, draws: int = 5) -> xr.Dataset:
    """Random values for every free parameter, named and shaped as Bambi names them (no fit).

    For build-only tests of functions of the posterior draws: tau in (0, inf), rho in (0, 1),
    coefficients standard normal.
    """
    rng = np.random.default_rng(seed)
    variables = {}
    for name, component in model.parameters.items():
        if name not in model.conditional_parameters:
            if not isinstance(component.prior, (int, float)):
                values = rng.uniform(0.05, 0.95, size=(chains, draws))
                variables[component.alias or name] = xr.DataArray(values, dims=("chain", "draw"))
            continue
        for term in [component.intercept_term, *component.common_terms.values()]:
            if term is None:
                continue
            label = term.alias or term.name
            if term.coords:
                (levels,) = term.coords.values()
                values = rng.normal(size=(chains, draws, len(levels)))
                dims = ("chain", "draw", f"{label}_dim")
                variables[label] = xr.DataArray(values, dims=dims, coords={dims[-1]: levels})
            else:
                values = rng.normal(size=(chains, draws))
                variables[label] = xr.DataArray(values, dims=("chain", "draw"))
    return xr.Dataset(variables)
