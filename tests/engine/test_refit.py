"""Refitting a compiled model on new data: exact algebra, no recompilation, input checks.

The likelihood reads its data from shared variables; leaving rows out gives them weight 0. Both
must be exact (1e-10 relative against dense multivariate normal densities), and a refit must
reuse the compiled log-density instead of compiling a new one.
"""

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import CLUSTERS, MU, POINTS, VARIANCES, Y, dense_cluster_logps

import bambi_meta as bmm
from bambi_meta.engine.likelihood import clustered_logp

pytestmark = pytest.mark.slow  # compiles models and samples

FORMULA = "yi | se(vi) ~ 1 + (1|district)"


@pytest.fixture(scope="module")
def compiled_weighted_logp():
    value, mu, tau, rho, variances, weights = (
        pt.dvector(name) for name in "y mu tau rho v w".split()
    )
    clusters, sizes = pt.lvector("clusters"), pt.dvector("sizes")
    out = clustered_logp(value, mu, tau, rho, variances, clusters, sizes, weights)
    inputs = [value, mu, tau, rho, variances, clusters, sizes, weights]
    return pytensor.function(inputs, out)


def _full(value):
    return np.broadcast_to(np.asarray(value, dtype=float), Y.shape).copy()


@pytest.mark.parametrize("tau, rho", POINTS)
def test_weight_zero_rows_are_exactly_left_out(compiled_weighted_logp, tau, rho):
    sizes = np.bincount(CLUSTERS).astype(float)
    everything = compiled_weighted_logp(
        Y, MU, _full(tau), _full(rho), VARIANCES, CLUSTERS, sizes, np.ones(len(Y))
    )
    np.testing.assert_allclose(
        everything, dense_cluster_logps(Y, MU, tau, rho, VARIANCES, CLUSTERS).sum(), rtol=1e-10
    )
    # drop cluster 6 entirely and one row of cluster 5
    keep = CLUSTERS != 6
    keep[np.flatnonzero(CLUSTERS == 5)[0]] = False
    subset = compiled_weighted_logp(
        Y, MU, _full(tau), _full(rho), VARIANCES, CLUSTERS, sizes, keep.astype(float)
    )
    codes = np.unique(CLUSTERS[keep], return_inverse=True)[1]
    expected = dense_cluster_logps(
        Y[keep], MU[keep], _full(tau)[keep], _full(rho)[keep], VARIANCES[keep], codes
    ).sum()
    np.testing.assert_allclose(subset, expected, rtol=1e-10)


def _logp_at(pymc_model, mu, tau, rho):
    point = {"Intercept": mu, "tau_log__": np.log(tau), "rho_logodds__": np.log(rho / (1 - rho))}
    return pymc_model.compile_logp(vars=[pymc_model["yi"]])(point)


def test_swapped_data_equal_a_model_built_on_that_data(konstantopoulos):
    model = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")
    refitter = model.refitter("pymc")
    rng = np.random.default_rng(3)
    new = konstantopoulos.assign(yi=rng.normal(0.2, 0.4, len(konstantopoulos)))
    keep = (konstantopoulos["district"] != 11).to_numpy()
    fresh_new = bmm.MetaModel(FORMULA, new, measure="SMD")
    fresh_subset = bmm.MetaModel(FORMULA, konstantopoulos[keep], measure="SMD")
    fresh_new.build()
    fresh_subset.build()
    pymc_model = model.backend.model
    for mu, tau, rho in [(0.18, 0.32, 0.63), (-0.2, 0.05, 0.1)]:
        with refitter.data(refitter._new_values(new, None, None, None)):
            swapped = _logp_at(pymc_model, mu, tau, rho)
        expected = _logp_at(fresh_new.backend.model, mu, tau, rho)
        np.testing.assert_allclose(swapped, expected, rtol=1e-10)
        with refitter.data(refitter._new_values(None, None, None, keep)):
            left_out = _logp_at(pymc_model, mu, tau, rho)
        expected = _logp_at(fresh_subset.backend.model, mu, tau, rho)
        np.testing.assert_allclose(left_out, expected, rtol=1e-10)
    # the training data are back after each swap
    original = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")
    original.build()
    np.testing.assert_allclose(
        _logp_at(pymc_model, 0.1, 0.3, 0.5), _logp_at(original.backend.model, 0.1, 0.3, 0.5)
    )


def _forbid(monkeypatch, owner, name):
    def fail(*args, **kwargs):
        raise AssertionError(f"a refit recompiled the model ({name})")

    monkeypatch.setattr(owner, name, fail)


def test_pymc_refit_reuses_the_compiled_logp(konstantopoulos, monkeypatch):
    model = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")
    refitter = model.refitter("pymc")
    _forbid(monkeypatch, pm.Model, "logp_dlogp_function")
    keep = (konstantopoulos["district"] != 11).to_numpy()
    idata = refitter.fit(keep=keep, draws=100, tune=100, chains=1, random_seed=1)
    assert idata["posterior"]["tau"].shape == (1, 100)
    assert refitter.n_compilations == 1


@pytest.mark.parametrize("sampler", ["nutpie", "nutpie-numba"])
def test_nutpie_refit_reuses_the_compiled_model(konstantopoulos, monkeypatch, sampler):
    import nutpie

    from bambi_meta.engine import compile as compiled_module

    model = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")
    refitter = model.refitter(sampler)
    _forbid(monkeypatch, nutpie, "compile_pymc_model")
    _forbid(monkeypatch, compiled_module, "_compile")
    _forbid(monkeypatch, pm.Model, "logp_dlogp_function")
    idata = refitter.fit(
        effect_sizes=konstantopoulos["yi"] + 1.0, draws=200, tune=200, random_seed=1
    )
    table = bmm.summary(model, idata, include_mcmc_diagnostics=False)
    # shifting every effect size by 1 shifts the pooled effect by about 1 (posterior SD ~0.09)
    assert 0.9 < table.loc["mu", "Mean"] < 1.5
    assert refitter.n_compilations == 1
    if sampler == "nutpie":  # fit() and the default refitter share one compiled model
        assert model.fit(draws=50, tune=50, random_seed=1, progressbar=False)["posterior"]


def test_refit_inputs_are_checked(konstantopoulos):
    model = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")
    refitter = model.refitter("pymc")
    with pytest.raises(ValueError, match="'effect_sizes' must have the 56 rows"):
        refitter.fit(effect_sizes=np.zeros(3))
    with pytest.raises(ValueError, match="'variances' must be > 0"):
        refitter.fit(variances=np.zeros(56))
    with pytest.raises(ValueError, match="'keep' must be a boolean mask of length 56"):
        refitter.fit(keep=np.ones(56))
    with pytest.raises(ValueError, match="'sampler' must be one of"):
        model.refitter("stan")


def test_default_sampler_and_cores_by_size(monkeypatch, konstantopoulos):
    """nutpie on the PyTensor-compiled model, sequential chains; PyMC: below 1,000.

    (MCMC is the default only for models the exact engine cannot fit, see
    tests/engine/test_exact_model.py; here it is asked for.)
    """
    import bambi as bmb

    from bambi_meta.engine.compile import CompiledModel

    seen = {}

    def record(self, **kwargs):
        seen.update(kwargs)
        raise StopIteration

    monkeypatch.setattr(CompiledModel, "sample", record)
    monkeypatch.setattr(CompiledModel, "__init__", lambda self, *args: None)
    model = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")
    with pytest.raises(StopIteration):
        model.fit(inference_method="nutpie", nuts={"target_accept": 0.95, "max_treedepth": 8})
    assert seen["cores"] == 1 and seen["chains"] == 4 and seen["tune"] == 1000
    assert seen["target_accept"] == 0.95 and seen["maxdepth"] == 8
    with pytest.raises(ValueError, match="not a setting of the default sampler"):
        model.fit(inference_method="nutpie", nuts={"step_scale": 0.1})
    seen.clear()
    large = bmm.MetaModel(
        FORMULA, pd.concat([konstantopoulos] * 18, ignore_index=True), measure="SMD"
    )  # k = 1,008
    with pytest.raises(StopIteration):
        large.fit(inference_method="nutpie")
    assert seen["cores"] == 1
    # any other inference method goes to Bambi unchanged
    monkeypatch.setattr(bmb.Model, "fit", lambda self, **kwargs: seen.update(kwargs))
    seen.clear()
    model.fit(inference_method="pymc")
    assert seen["inference_method"] == "pymc" and seen["cores"] == 1
    seen.clear()
    large.fit(inference_method="pymc")
    assert "cores" not in seen
