"""Shared fixtures: reference JSON and a few real fits, each made once per test session."""

import json
from pathlib import Path

import bambi as bmb
import numpy as np
import pandas as pd
import pytest
from helpers import fake_posterior  # noqa: F401  (re-exported for the test modules)

import bambi_meta as bmm

DATA = Path(__file__).parent / "data"

# Draws for the fits compared with the exact posterior: 4 chains x 2000 draws give MCSEs of
# about 1-2% of a posterior SD, small enough that the tolerance (a few MCSE) is informative.
DRAWS = 2000


def exact_reference(dataset: str, model: str = "intercept_only") -> dict:
    """A model block of ``tests/data/<dataset>.exact.json`` (shared/data, 2-D quadrature)."""
    with open(DATA / f"{dataset}.exact.json") as handle:
        return json.load(handle)["models"][model]


def metafor_reference(dataset: str) -> dict:
    """``tests/data/<dataset>.metafor.json`` (metafor 3.8-1 fits, see its ``software`` block)."""
    with open(DATA / f"{dataset}.metafor.json") as handle:
        return json.load(handle)


def _fit(dataset: str, formula: str, measure: str):
    data = bmm.load_dataset(dataset)
    model = bmm.MetaModel(formula, data, measure=measure)
    idata = model.fit(draws=DRAWS, tune=1000, chains=4, random_seed=20261122, progressbar=False)
    return model, idata


@pytest.fixture(scope="session")
def konstantopoulos_fit():
    return _fit("dat.konstantopoulos2011", "yi | se(vi) ~ 1 + (1|district)", "SMD")


@pytest.fixture(scope="session")
def assink_fit():
    return _fit("dat.assink2016", "yi | se(vi) ~ 1 + (1|study)", "SMD")


@pytest.fixture(scope="session")
def bcg_fit():
    return _fit("dat.bcg", "yi | se(vi) ~ 1", "RR")


@pytest.fixture(scope="session")
def konstantopoulos():
    return bmm.load_dataset("dat.konstantopoulos2011")


# ---------------------------------------------------------------------------------------------
# Meta-regression and location-scale fits (tests/test_metaregression.py, test_location_scale.py)
# ---------------------------------------------------------------------------------------------
# 4 chains x 1000 draws: MCSEs of about 2-3% of a posterior SD. The comparisons use each
# statistic's own MCSE, so fewer draws widen the tolerance honestly instead of loosening it.
# 500 tuning steps adapt the step size and diagonal mass matrix of these 2-5 parameter
# posteriors (R-hat < 1.01 and bulk ESS > 2000 in every fit below).
METAREGRESSION_DRAWS = 1000
METAREGRESSION_TUNE = 500
METAREGRESSION_MODELS = {
    # fixture name: (dataset, formula, measure, exact.json model block)
    "konstantopoulos_year": (
        "dat.konstantopoulos2011",
        "yi | se(vi) ~ 1 + year + (1|district)",
        "SMD",
        "metareg_year",
    ),
    "bcg_ablat": ("dat.bcg", "yi | se(vi) ~ 1 + ablat", "RR", "metareg_ablat"),
    "assink_deltype": (
        "dat.assink2016",
        "yi | se(vi) ~ 1 + deltype + (1|study)",
        "SMD",
        "metareg_deltype",
    ),
}


def _fit_metaregression(name: str, **fit_kwargs):
    dataset, formula, measure, _ = METAREGRESSION_MODELS[name]
    model = bmm.MetaModel(formula, bmm.load_dataset(dataset), measure=measure)
    idata = model.fit(
        draws=METAREGRESSION_DRAWS,
        tune=METAREGRESSION_TUNE,
        chains=4,
        random_seed=20261122,
        progressbar=False,
        **fit_kwargs,
    )
    return model, idata


@pytest.fixture(scope="session")
def konstantopoulos_year_fit():
    return _fit_metaregression("konstantopoulos_year")


@pytest.fixture(scope="session")
def bcg_ablat_fit():
    # 13 trials, tau posterior reaching 0: at target_accept 0.8 the funnel between tau and the
    # coefficients gives a few divergences; 0.95 removes them (a smaller step, same posterior).
    return _fit_metaregression("bcg_ablat", target_accept=0.95)


@pytest.fixture(scope="session")
def assink_deltype_fit():
    return _fit_metaregression("assink_deltype")


# Simulated location-scale data: tau doubles from z = 0 to z = 1, log tau = log(0.2) + log(2) z.
SIMULATED_SCALE = {"tau_Intercept": float(np.log(0.2)), "tau_z": float(np.log(2.0))}
SIMULATED_MU, SIMULATED_RHO = 0.3, 0.5


def simulate_location_scale(
    seed: int, n_clusters: int, per_cluster: int, rho_slope: float = 0.0
) -> pd.DataFrame:
    """Three-level data with tau_i = 0.2 * 2**z_i and logit rho_i = rho_slope * (w_i - 1/2).

    Row i of cluster j: y_i = 0.3 + tau_i sqrt(rho_i) z_j + tau_i sqrt(1 - rho_i) e_i + eps_i,
    z_j, e_i ~ N(0, 1), eps_i ~ N(0, v_i), v_i ~ U(0.005, 0.03); z, w ~ U(0, 1) per row.
    """
    rng = np.random.default_rng(seed)
    k = n_clusters * per_cluster
    cluster = np.repeat(np.arange(n_clusters), per_cluster)
    z, w = rng.uniform(0, 1, k), rng.uniform(0, 1, k)
    tau = np.exp(SIMULATED_SCALE["tau_Intercept"] + SIMULATED_SCALE["tau_z"] * z)
    rho = 1 / (1 + np.exp(-rho_slope * (w - 0.5)))
    vi = rng.uniform(0.005, 0.03, k)
    between = tau * np.sqrt(rho) * rng.standard_normal(n_clusters)[cluster]
    within = tau * np.sqrt(1 - rho) * rng.standard_normal(k)
    yi = SIMULATED_MU + between + within + np.sqrt(vi) * rng.standard_normal(k)
    return pd.DataFrame({"yi": yi, "vi": vi, "z": z, "w": w, "study": cluster})


@pytest.fixture(scope="session")
def simulated_scale_fit():
    """240 estimates in 60 clusters; the model 'tau ~ z' with constant rho."""
    data = simulate_location_scale(seed=11, n_clusters=60, per_cluster=4)
    formula = bmb.Formula("yi | se(vi) ~ 1 + (1|study)", "tau ~ z")
    model = bmm.MetaModel(formula, data, measure="SMD")
    # the recovery check needs posterior means and SDs only: 4 x 500 draws are plenty
    idata = model.fit(draws=500, tune=METAREGRESSION_TUNE, random_seed=3, progressbar=False)
    return model, idata


@pytest.fixture(scope="session")
def small_scale_fit():
    """30 estimates in 10 clusters, 'tau ~ z' and 'rho ~ w': compared with a latent oracle."""
    data = simulate_location_scale(seed=5, n_clusters=10, per_cluster=3, rho_slope=1.0)
    formula = bmb.Formula("yi | se(vi) ~ 1 + (1|study)", "tau ~ z", "rho ~ w")
    model = bmm.MetaModel(formula, data, measure="SMD")
    idata = model.fit(draws=1000, tune=METAREGRESSION_TUNE, random_seed=3, progressbar=False)
    return model, idata
