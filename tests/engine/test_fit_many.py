"""bmm.fit_many: exact refits equal single fits, in any order, in parallel or on Dask."""

import joblib
import numpy as np
import pytest

import bambi_meta as bmm

FORMULA = "yi | se(vi) ~ 1 + year + (1|district)"


@pytest.fixture(scope="module")
def model(konstantopoulos):
    return bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")


def test_a_refit_equals_the_model_built_on_that_data(model, konstantopoulos):
    rng = np.random.default_rng(1)
    simulated = konstantopoulos["yi"].to_numpy() + rng.normal(0, 0.1, (3, 56))
    refits = bmm.fit_many(model, effect_sizes=simulated, draws=500, random_seed=7)
    assert len(refits) == 3
    direct = bmm.MetaModel(FORMULA, konstantopoulos.assign(yi=simulated[1]), measure="SMD")
    reference = direct.fit(draws=500, random_seed=1)
    # the same posterior: the quadrature's moments agree to its own accuracy (log p(y) to 1e-8)
    log_ml = reference.posterior.attrs["log_marginal_likelihood"]
    assert refits[1].posterior.attrs["log_marginal_likelihood"] == pytest.approx(log_ml, abs=1e-8)
    np.testing.assert_array_equal(refits[1].observed_data["yi"], simulated[1])


def test_leave_one_cluster_out_equals_the_model_without_that_cluster(konstantopoulos):
    # intercept only: the priors do not depend on the rows, so leaving a cluster out is exactly
    # the model built on the other rows (log p(y) equal to the quadrature's accuracy, 1e-8)
    formula = "yi | se(vi) ~ 1 + (1|district)"
    model = bmm.MetaModel(formula, konstantopoulos, measure="SMD")
    clusters = konstantopoulos["district"].to_numpy()
    masks = np.stack([clusters != label for label in np.unique(clusters)[:2]])
    refits = bmm.fit_many(model, keep=masks, draws=200, random_seed=2)
    for mask, refit in zip(masks, refits, strict=True):
        without = konstantopoulos[mask].reset_index(drop=True)
        direct = bmm.MetaModel(formula, without, measure="SMD").fit(draws=10, random_seed=1)
        expected = direct.posterior.attrs["log_marginal_likelihood"]
        assert refit.posterior.attrs["log_marginal_likelihood"] == pytest.approx(expected, abs=1e-8)
        assert refit.observed_data["yi"].size == mask.sum()


@pytest.mark.slow  # starts joblib worker processes
def test_same_seed_same_draws_in_parallel_and_in_order(model, konstantopoulos):
    simulated = konstantopoulos["yi"].to_numpy() + np.linspace(0, 0.2, 4)[:, None]
    serial = bmm.fit_many(model, effect_sizes=simulated, draws=100, random_seed=3)
    parallel = bmm.fit_many(model, effect_sizes=simulated, draws=100, random_seed=3, n_jobs=2)
    for one, other in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(one.posterior["tau"], other.posterior["tau"])
    assert not np.array_equal(serial[0].posterior["tau"], serial[1].posterior["tau"])


def test_summaries_and_bad_input(model, konstantopoulos):
    def mu_interval(model, idata):
        return tuple(bmm.summary(model, idata).loc["year", ["0.025", "0.975"]])

    intervals = bmm.fit_many(
        model, effect_sizes=konstantopoulos["yi"], draws=200, summarize=mu_interval
    )
    assert len(intervals) == 1 and intervals[0][0] < intervals[0][1]
    with pytest.raises(ValueError, match=r"'effect_sizes' must have shape \(n_fits, 56\)"):
        bmm.fit_many(model, effect_sizes=np.zeros((2, 5)))
    with pytest.raises(ValueError, match="'variances' must be finite and > 0; refit 1, row 3"):
        bmm.fit_many(model, variances=np.where(np.arange(56) == 2, -1.0, 0.1))
    with pytest.raises(ValueError, match="Give 'effect_sizes', 'variances' or 'keep'"):
        bmm.fit_many(model)


@pytest.mark.slow  # starts a local Dask cluster of two worker processes
def test_refits_run_on_a_dask_cluster(model, konstantopoulos):
    distributed = pytest.importorskip("distributed")  # the [dask] extra, in the test extras
    simulated = konstantopoulos["yi"].to_numpy() + np.linspace(0, 0.3, 4)[:, None]
    local = bmm.fit_many(model, effect_sizes=simulated, draws=100, random_seed=4)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        with distributed.Client(cluster), joblib.parallel_config(backend="dask"):
            remote = bmm.fit_many(model, effect_sizes=simulated, draws=100, random_seed=4)
    for one, other in zip(local, remote, strict=True):
        np.testing.assert_array_equal(one.posterior["tau"], other.posterior["tau"])
