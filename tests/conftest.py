"""Shared fixtures: reference JSON and a few real fits, each made once per test session."""

import json
from pathlib import Path

import pytest

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
