"""MCMC posterior vs the exact posterior (2-D quadrature) in tests/data/*.exact.json.

(The exact engine's draws are compared with the same references in
tests/engine/test_exact_model.py.)

Tolerance: |MCMC statistic - exact| <= 4 MCSE + 1e-3, with the MCSE of each statistic (mean,
SD, quantile) computed by ArviZ from the same draws. Under a correct model a deviation beyond
4 MCSE has probability ~6e-5 per statistic; the 1e-3 absolute slack covers the error of the
quadrature (its convergence check is in the JSON, < 3e-5) and float rounding of MCSE ~0 for
near-degenerate statistics. The fixed seed makes the check deterministic.
"""

import numpy as np
import pytest
from helpers import HETEROGENEITY_KEYS, assert_agrees, exact_reference

import bambi_meta as bmm

# The session fits and the data set of their exact reference: two with clusters, one without.
FITS = [
    ("konstantopoulos_mcmc", "dat.konstantopoulos2011"),
    ("assink_mcmc", "dat.assink2016"),
    ("bcg_mcmc", "dat.bcg"),
]


def parameter_draws(idata, names) -> dict[str, np.ndarray]:
    posterior = idata.posterior
    return {name: posterior[name].transpose("chain", "draw").to_numpy() for name in names}


@pytest.mark.parametrize(("fixture", "dataset"), FITS)
def test_parameters_match_exact_posterior(request, fixture, dataset):
    model, idata = request.getfixturevalue(fixture)
    reference = exact_reference(dataset)
    names = {"Intercept": "mu", "tau": "tau"}
    if model.cluster is not None:
        names["rho"] = "rho"
    draws = parameter_draws(idata, names)
    assert_agrees(draws, {name: reference["estimates"][key] for name, key in names.items()})


@pytest.mark.parametrize(("fixture", "dataset"), FITS)
def test_heterogeneity_matches_exact_posterior(request, fixture, dataset):
    model, idata = request.getfixturevalue(fixture)
    reference = exact_reference(dataset)
    draws = bmm.heterogeneity_posterior(model, idata)
    table = bmm.summary_heterogeneity(model, idata)
    assert list(table.index) == list(draws)
    exact = {name: reference["heterogeneity"][HETEROGENEITY_KEYS[name]] for name in draws}
    assert_agrees(draws, exact)


def test_summary_table_layout_and_values(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    table = bmm.summary(model, idata)
    assert list(table.index) == ["mu", "tau", "rho"]
    assert list(table.columns) == ["Mean", "SD", "0.025", "0.5", "0.975", "MCSE", "ESS", "R-hat"]
    posterior = idata.posterior
    np.testing.assert_allclose(table.loc["tau", "Mean"], float(posterior["tau"].mean()))
    np.testing.assert_allclose(table.loc["mu", "0.5"], float(posterior["Intercept"].median()))
    assert (table["R-hat"] < 1.01).all() and (table["ESS"] > 400).all()
    assert list(bmm.summary(model, idata, include_mcmc_diagnostics=False).columns) == [
        "Mean",
        "SD",
        "0.025",
        "0.5",
        "0.975",
    ]


def test_no_cluster_model_reports_only_tau_tau2_i2_h2(bcg_fit):
    model, idata = bcg_fit
    assert list(bmm.summary_heterogeneity(model, idata).index) == ["tau", "tau2", "I2", "H2"]
    assert list(bmm.summary(model, idata).index) == ["mu", "tau"]
