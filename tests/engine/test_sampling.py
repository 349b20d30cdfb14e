"""The MCMC sampler (nutpie on the PyTensor-compiled model): reproducible, Bambi-shaped output.

Its statistical correctness is tested against the exact posterior in test_posterior_exact.py and
test_metaregression.py. (It is the default for models the exact engine cannot fit; here it is
asked for by name.)
"""

import numpy as np
import pytest

import bambi_meta as bmm

pytestmark = pytest.mark.slow  # compiles and samples
FORMULA = "yi | se(vi) ~ 1 + (1|district)"


@pytest.fixture(scope="module")
def model(konstantopoulos):
    return bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")


def test_a_fixed_seed_gives_the_same_draws(model):
    first, again, other = (
        model.fit(
            draws=100, tune=100, random_seed=seed, progressbar=False, inference_method="nutpie"
        )
        for seed in (5, 5, 6)
    )
    for name in ("Intercept", "tau", "rho"):
        np.testing.assert_array_equal(first.posterior[name], again.posterior[name])
        assert not np.array_equal(first.posterior[name], other.posterior[name])


def test_output_has_the_groups_and_names_of_pymcs(model, konstantopoulos):
    ours = model.fit(
        draws=30, tune=30, chains=2, random_seed=1, progressbar=False, inference_method="nutpie"
    )
    pymc = model.fit(
        draws=30, tune=30, chains=2, random_seed=1, progressbar=False, inference_method="pymc"
    )
    for group in ("posterior", "observed_data"):
        assert set(ours[group].data_vars) == set(pymc[group].data_vars)
        for name in ours[group].data_vars:
            assert ours[group][name].dims == pymc[group][name].dims
    assert ours.posterior.sizes == pymc.posterior.sizes  # tuning steps are not kept
    np.testing.assert_array_equal(ours.observed_data["yi"], konstantopoulos["yi"])
    for name in ("diverging", "energy", "lp", "tree_depth", "n_steps", "step_size"):
        assert ours.sample_stats[name].dims == ("chain", "draw")
    assert ours.posterior.attrs["inference_library"] == "nutpie"


def test_unknown_data_names_are_refused(model):
    with pytest.raises(ValueError, match="Unknown data names \\['yi'\\]"):
        model.compiled_sampler().sample(data={"yi": np.zeros(56)})


def test_pymc_only_options_point_to_inference_method_pymc(model):
    with pytest.raises(ValueError, match="inference_method='pymc'"):
        model.fit(inference_method="nutpie", idata_kwargs={"log_prior": True})
    with pytest.raises(ValueError, match="\\['init'\\] are options of PyMC's sampler"):
        model.fit(inference_method="nutpie", init="adapt_diag")
