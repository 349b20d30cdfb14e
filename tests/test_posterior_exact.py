"""MCMC posterior vs the exact posterior (2-D quadrature) in tests/data/*.exact.json.

Tolerance: |MCMC statistic - exact| <= 4 MCSE + 1e-3, with the MCSE of each statistic (mean,
SD, quantile) computed by ArviZ from the same draws. Under a correct model a deviation beyond
4 MCSE has probability ~6e-5 per statistic; the 1e-3 absolute slack covers the error of the
quadrature (its convergence check is in the JSON, < 3e-5) and float rounding of MCSE ~0 for
near-degenerate statistics. The fixed seed makes the check deterministic.
"""

import arviz as az
import numpy as np
import pytest
import xarray as xr
from conftest import exact_reference

import bambi_meta as bmm

STATISTICS = {"mean": None, "sd": None, "q025": 0.025, "q50": 0.5, "q975": 0.975}
HETEROGENEITY_KEYS = {
    "tau": "tau",
    "rho": "rho",
    "tau [within]": "tau_within",
    "tau [between]": "tau_between",
    "tau2": "tau2",
    "tau2 [within]": "tau2_within",
    "tau2 [between]": "tau2_between",
    "I2": "I2",
    "I2 [within]": "I2_within",
    "I2 [between]": "I2_between",
    "H2": "H2",
}


def z_scores(draws: np.ndarray, exact: dict) -> dict[str, float]:
    """(MCMC - exact) / (MCSE + 1e-3/4) for mean, sd and the 2.5/50/97.5% quantiles."""
    dataset = xr.Dataset({"x": (("chain", "draw"), draws)})
    flat = draws.ravel()
    scores = {}
    for statistic, prob in STATISTICS.items():
        if statistic == "mean":
            value, mcse = flat.mean(), float(az.mcse(dataset)["x"])
        elif statistic == "sd":
            value, mcse = flat.std(ddof=1), float(az.mcse(dataset, method="sd")["x"])
        else:
            value = np.quantile(flat, prob)
            mcse = float(az.mcse(dataset, method="quantile", prob=prob)["x"])
        scores[statistic] = (value - exact[statistic]) / (mcse + 1e-3 / 4)
    return scores


def assert_agrees(draws: dict[str, np.ndarray], exact: dict[str, dict]) -> None:
    failures = []
    for name, reference in exact.items():
        for statistic, z in z_scores(draws[name], reference).items():
            if abs(z) > 4:
                failures.append(f"{name} {statistic}: z = {z:.2f}")
    assert not failures, "; ".join(failures)


# The session fits and the data set of their exact reference: two with clusters, one without.
FITS = [
    ("konstantopoulos_fit", "dat.konstantopoulos2011"),
    ("assink_fit", "dat.assink2016"),
    ("bcg_fit", "dat.bcg"),
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
