"""Shrunken effects, prediction intervals, posterior predictive checks, LOO and figures.

Shrunken effects are compared with the exact posterior (tests/data/*.exact.json, blocks
``cluster_effects`` and ``true_effects``). Means are Rao-Blackwellised: the Monte Carlo error is
that of the average of the per-draw conditional means, whose MCSE ArviZ computes; SDs combine
E[Var | theta] and Var(E | theta), with MC error about SD / sqrt(2 ESS). Tolerance: 4 MCSE +
1e-3, as in test_posterior_exact.py.
"""

import arviz as az
import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import exact_reference

import bambi_meta as bmm
from bambi_meta.engine.predictive import conditional_effects

matplotlib.use("Agg")


def mcse_of_mean(per_draw: np.ndarray) -> np.ndarray:
    """MCSE of the posterior mean of each column of (chain, draw, n) conditional means."""
    dataset = xr.Dataset({"x": (("chain", "draw", "unit"), per_draw)})
    return az.mcse(dataset)["x"].to_numpy()


def check_against_exact(table, per_draw_mean, reference, ess):
    mean_tolerance = 4 * mcse_of_mean(per_draw_mean) + 1e-3
    sd_tolerance = 4 * table["SD"].to_numpy() / np.sqrt(2 * ess) + 1e-3
    exact_mean = np.array([entry["mean"] for entry in reference])
    exact_sd = np.array([entry["sd"] for entry in reference])
    assert np.all(np.abs(table["Mean"].to_numpy() - exact_mean) <= mean_tolerance)
    assert np.all(np.abs(table["SD"].to_numpy() - exact_sd) <= sd_tolerance)


@pytest.mark.parametrize(
    ("fixture", "dataset"),
    [("konstantopoulos_mcmc", "dat.konstantopoulos2011"), ("assink_mcmc", "dat.assink2016")],
)
def test_cluster_and_true_effects_match_exact_posterior(request, fixture, dataset):
    model, idata = request.getfixturevalue(fixture)
    reference = exact_reference(dataset)
    ess = float(bmm.summary(model, idata)["ESS"].min())
    conditional = conditional_effects(model, idata.posterior)

    clusters = bmm.cluster_effects(model, idata, random_seed=1)
    assert [str(label) for label in clusters.table.index] == [
        entry["cluster"] for entry in reference["cluster_effects"]
    ]
    assert clusters.table["n"].tolist() == [entry["n"] for entry in reference["cluster_effects"]]
    scale = conditional.between[..., :1]  # constant tau and rho: b is the same on every row
    check_against_exact(
        clusters.table, scale * conditional.z_mean, reference["cluster_effects"], ess
    )

    estimates = bmm.true_effects(model, idata, random_seed=1)
    assert estimates.draws.dims == ("chain", "draw", "estimate")
    check_against_exact(estimates.table, conditional.true_mean, reference["true_effects"], ess)


def test_small_cluster_is_pulled_toward_the_pooled_mean(konstantopoulos_fit, konstantopoulos):
    model, idata = konstantopoulos_fit
    table = bmm.cluster_effects(model, idata, relative=False).table
    pooled = float(idata.posterior["Intercept"].mean())
    observed = konstantopoulos.groupby("district")["yi"].mean()
    # district 71: 3 schools with mean 0.82; its shrunken mean lies between that and the pool
    assert pooled < table.loc[71, "Mean"] < observed.loc[71]


def test_prediction_interval_matches_exact_predictive_moments(konstantopoulos_fit):
    """New true effect in a new cluster: mean E[mu], variance Var(mu) + E[tau^2] (exact JSON)."""
    model, idata = konstantopoulos_fit
    exact = exact_reference("dat.konstantopoulos2011")
    mean = exact["estimates"]["mu"]["mean"]
    sd = np.sqrt(exact["estimates"]["mu"]["sd"] ** 2 + exact["heterogeneity"]["tau2"]["mean"])
    table = bmm.prediction_intervals(model, idata, random_seed=2)
    assert table.iloc[0]["Mean"] == pytest.approx(mean, abs=0.01)  # MCSE of mu ~0.0015
    # the predictive distribution is a scale mixture of normals, close to normal here: compare
    # the interval with mean +- 1.96 sd of the exact moments; its MC error (8000 draws, tails)
    # is ~0.02, and non-normality of the mixture moves the 2.5% points by < 0.02
    assert table.iloc[0]["PI lower"] == pytest.approx(mean - 1.96 * sd, abs=0.05)
    assert table.iloc[0]["PI upper"] == pytest.approx(mean + 1.96 * sd, abs=0.05)
    ci = bmm.summary(model, idata).loc["mu", ["0.025", "0.975"]].to_numpy()
    np.testing.assert_allclose(table.iloc[0][["CI lower", "CI upper"]].to_numpy(float), ci)


def test_prediction_in_a_known_cluster_is_narrower_and_shifted(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    table = bmm.prediction_intervals(model, idata, pd.DataFrame({"district": [71]}), random_seed=3)
    row = table.iloc[0]
    assert row["PI upper [cluster]"] - row["PI lower [cluster]"] < row["PI upper"] - row["PI lower"]
    assert row["PI lower [cluster]"] > row["PI lower"]


def test_leave_one_cluster_and_one_estimate_out(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    by_cluster = model.compute_log_likelihood(idata, inplace=False, unit="cluster")
    by_estimate = model.compute_log_likelihood(idata, inplace=False, unit="estimate")
    assert by_cluster.log_likelihood["yi"].shape[-1] == 11
    assert by_estimate.log_likelihood["yi"].shape[-1] == 56
    for tree in (by_cluster, by_estimate):
        assert np.isfinite(az.loo(tree).elpd)
    comparison = az.compare({"cluster": by_cluster, "again": by_cluster.copy()})
    assert len(comparison) == 2
    with pytest.raises(ValueError, match="'unit' must be 'cluster', 'estimate' or a column"):
        model.compute_log_likelihood(idata, inplace=False, unit="region")


def test_posterior_predictive_check_replicates_the_spread(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    predicted = model.predict(idata, kind="response", inplace=False, random_seed=5)
    replicated = predicted.posterior_predictive["yi"].to_numpy().reshape(-1, 56)
    observed = model.meta_data().effect_sizes
    # Bayesian p-value of the SD of the estimates: neither extreme under a well-fitting model
    p_value = np.mean(replicated.std(axis=1) >= observed.std())
    assert 0.05 < p_value < 0.95
