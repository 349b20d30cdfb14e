"""Shared fixtures: data and a few real fits, each made once per test session.

The fits of models the exact engine can integrate run twice: on the exact engine (fast) and on
nutpie's NUTS (marked slow: it compiles and samples), so every test of what follows a fit checks
both engines. Tests that use the location-scale fits (MCMC only) are marked slow here too.
"""

from pathlib import Path

import bambi as bmb
import pytest
from helpers import METAREGRESSION_MODELS, simulate_location_scale

import bambi_meta as bmm

DATA = Path(__file__).parent / "data"

# Draws for the fits compared with the exact posterior: 4 chains x 2000 draws give MCSEs of
# about 1-2% of a posterior SD, small enough that the tolerance (a few MCSE) is informative.
DRAWS = 2000
ENGINES = [pytest.param("exact"), pytest.param("nutpie", marks=pytest.mark.slow)]
# MCMC fits (the location-scale models, which only MCMC fits, and the ``*_mcmc`` fits that the
# comparisons of MCMC with the exact references use): a test that uses one is slow.
MCMC_FITS = {
    "simulated_scale_fit",
    "small_scale_fit",
    "konstantopoulos_mcmc",
    "assink_mcmc",
    "bcg_mcmc",
    "konstantopoulos_year_mcmc",
    "bcg_ablat_mcmc",
    "assink_deltype_mcmc",
}


def pytest_collection_modifyitems(items):
    """Mark the tests that use an MCMC fit as slow (fixtures asked for by name included)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            names |= {value for value in callspec.params.values() if isinstance(value, str)}
        if MCMC_FITS & names:
            item.add_marker(pytest.mark.slow)


def _fit(dataset: str, formula: str, measure: str, engine: str):
    data = bmm.load_dataset(dataset)
    model = bmm.MetaModel(formula, data, measure=measure)
    idata = model.fit(
        draws=DRAWS,
        tune=1000,
        chains=4,
        random_seed=20261122,
        progressbar=False,
        inference_method=engine,
    )
    return model, idata


MODELS = {
    "konstantopoulos": ("dat.konstantopoulos2011", "yi | se(vi) ~ 1 + (1|district)", "SMD"),
    "assink": ("dat.assink2016", "yi | se(vi) ~ 1 + (1|study)", "SMD"),
    "bcg": ("dat.bcg", "yi | se(vi) ~ 1", "RR"),
}


def _either_engine(request, name: str):
    if request.param == "exact":
        return _fit(*MODELS[name], "exact")
    return request.getfixturevalue(f"{name}_mcmc")


@pytest.fixture(scope="session")
def konstantopoulos_mcmc():
    return _fit(*MODELS["konstantopoulos"], "nutpie")


@pytest.fixture(scope="session")
def assink_mcmc():
    return _fit(*MODELS["assink"], "nutpie")


@pytest.fixture(scope="session")
def bcg_mcmc():
    return _fit(*MODELS["bcg"], "nutpie")


@pytest.fixture(scope="session", params=ENGINES)
def konstantopoulos_fit(request):
    return _either_engine(request, "konstantopoulos")


@pytest.fixture(scope="session", params=ENGINES)
def assink_fit(request):
    return _either_engine(request, "assink")


@pytest.fixture(scope="session", params=ENGINES)
def bcg_fit(request):
    return _either_engine(request, "bcg")


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


def _fit_metaregression(name: str, engine: str, **fit_kwargs):
    dataset, formula, measure, _ = METAREGRESSION_MODELS[name]
    model = bmm.MetaModel(formula, bmm.load_dataset(dataset), measure=measure)
    idata = model.fit(
        draws=METAREGRESSION_DRAWS,
        tune=METAREGRESSION_TUNE,
        chains=4,
        random_seed=20261122,
        progressbar=False,
        inference_method=engine,
        **fit_kwargs,
    )
    return model, idata


@pytest.fixture(scope="session")
def konstantopoulos_year_mcmc():
    return _fit_metaregression("konstantopoulos_year", "nutpie")


@pytest.fixture(scope="session")
def bcg_ablat_mcmc():
    # 13 trials, tau posterior reaching 0: at target_accept 0.8 the funnel between tau and the
    # coefficients gives a few divergences; 0.95 removes them (a smaller step, same posterior).
    return _fit_metaregression("bcg_ablat", "nutpie", target_accept=0.95)


@pytest.fixture(scope="session")
def assink_deltype_mcmc():
    return _fit_metaregression("assink_deltype", "nutpie")


def _either_metaregression(request, name: str):
    if request.param == "exact":
        return _fit_metaregression(name, "exact")
    return request.getfixturevalue(f"{name}_mcmc")


@pytest.fixture(scope="session", params=ENGINES)
def konstantopoulos_year_fit(request):
    return _either_metaregression(request, "konstantopoulos_year")


@pytest.fixture(scope="session", params=ENGINES)
def bcg_ablat_fit(request):
    return _either_metaregression(request, "bcg_ablat")


@pytest.fixture(scope="session", params=ENGINES)
def assink_deltype_fit(request):
    return _either_metaregression(request, "assink_deltype")


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
