"""What Bambi users already know keeps working: predict, prior predictive, log-likelihood, LOO."""

import warnings

import arviz as az
import bambi as bmb
import numpy as np
import pandas as pd
import pytest
from helpers import exact_reference

import bambi_meta as bmm


def test_posterior_predictive_in_sample_has_the_observed_spread(
    konstantopoulos_fit, konstantopoulos
):
    model, idata = konstantopoulos_fit
    predicted = model.predict(idata, kind="response", inplace=False, random_seed=3)
    replicated = predicted.posterior_predictive["yi"]
    assert replicated.dims == ("chain", "draw", "__obs__")
    assert replicated.shape[-1] == len(konstantopoulos)
    # replicated yi_i = theta_i + eps_i: its spread around theta_i is at least sqrt(v_i)
    sd = replicated.std(("chain", "draw")).to_numpy()
    assert np.all(sd > np.sqrt(konstantopoulos["vi"].to_numpy()) * 0.95)
    # and its mean tracks the observations (shrunken towards the district means)
    mean = replicated.mean(("chain", "draw")).to_numpy()
    assert np.corrcoef(mean, konstantopoulos["yi"])[0, 1] > 0.8


def test_predict_on_new_data_without_yi(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    new = pd.DataFrame({"vi": [0.01, 0.01], "district": [71, 10_000]})  # known / new district
    predicted = model.predict(idata, kind="response", data=new, inplace=False, random_seed=4)
    draws = predicted.posterior_predictive["yi"].to_numpy().reshape(-1, 2)
    # a new district adds between-district variance tau^2 rho on top of the known one's
    assert draws[:, 1].std() > draws[:, 0].std()
    # a new school of district 71 is centred at mu + u_71; exact posterior mean of u_71: 0.517
    # (tests/data exact JSON, cluster_effects). 8000 draws of SD ~0.25 give an MC error ~0.01.
    expected = float(idata.posterior["Intercept"].mean()) + 0.517
    assert draws[:, 0].mean() == pytest.approx(expected, abs=0.04)
    assert draws[:, 1].mean() == pytest.approx(float(idata.posterior["Intercept"].mean()), abs=0.04)


def test_new_data_needs_the_sampling_variances(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    with pytest.raises(ValueError, match="needs their sampling uncertainty 'vi'"):
        model.predict(idata, kind="response", data=pd.DataFrame({"district": [11]}), inplace=False)


@pytest.mark.slow  # PyMC compiles the prior predictive sampler
def test_prior_predictive():
    model = bmm.MetaModel(
        "yi | se(vi) ~ 1 + (1|district)", bmm.load_dataset("dat.konstantopoulos2011"), measure="SMD"
    )
    with warnings.catch_warnings():
        # PyMC's and PyTensor's remarks on this family's draws are not for the user
        warnings.simplefilter("error")
        prior = model.prior_predictive(draws=50, random_seed=5)
    assert prior.prior_predictive["yi"].shape == (1, 50, 56)
    assert np.isfinite(prior.prior_predictive["yi"].to_numpy()).all()


def test_log_likelihood_per_cluster_and_loo(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    with_loglik = model.compute_log_likelihood(idata, inplace=False)
    values = with_loglik.log_likelihood["yi"]
    assert values.dims == ("chain", "draw", "district") and values.shape[-1] == 11
    loo = az.loo(with_loglik)
    assert np.isfinite(loo.elpd)


def test_interpret_predictions_of_a_district_include_its_effect(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    summary = bmb.interpret.predictions(model, idata, conditional={"district": [11, 58, 71]})
    estimates = summary.summary.set_index("district")["estimate"]
    # The mean of a known district is mu + u_j: the exact posterior means of mu + u_j
    # (tests/data exact JSON: mu 0.1806; u_11 -0.180, u_58 -0.228, u_71 0.517), not mu for all.
    # bmb.interpret reports the posterior mean of 8000 draws; SD ~0.1-0.2 gives an MC error
    # below 0.005 (4 x 1000 effective draws), and the draws of u_j add about as much: 0.02 is
    # about 4 MCSE.
    exact = exact_reference("dat.konstantopoulos2011")
    mu = exact["estimates"]["mu"]["mean"]
    effects = {int(row["cluster"]): row["mean"] for row in exact["cluster_effects"]}
    for district in (11, 58, 71):
        assert estimates[district] == pytest.approx(mu + effects[district], abs=0.02)
    # and they agree with bmm.cluster_effects and model.predict
    table = bmm.cluster_effects(model, idata, random_seed=1).table
    pooled = float(idata.posterior["Intercept"].mean())
    predicted = model.predict(idata, inplace=False, random_seed=2).posterior["mu"]
    rows = model.data["district"].to_numpy() == 71
    assert float(predicted[..., rows].mean()) == pytest.approx(
        pooled + table.loc[71, "Mean"], abs=0.01
    )
    # include_group_specific=False gives the pooled effect on every row
    pooled_only = model.predict(idata, inplace=False, include_group_specific=False).posterior["mu"]
    np.testing.assert_allclose(pooled_only.to_numpy()[..., 0], idata.posterior["Intercept"])


def test_interpret_posterior_predictive_needs_vi_and_treats_rows_as_new_clusters(
    konstantopoulos_fit,
):
    model, idata = konstantopoulos_fit
    with pytest.raises(ValueError, match="needs their sampling uncertainty 'vi'"):
        bmb.interpret.predictions(model, idata, conditional={"district": [11]}, target="yi")
    summary = bmb.interpret.predictions(
        model, idata, conditional={"vi": [0.001, 0.2]}, target="yi"
    ).summary
    lower, upper = (column for column in summary.columns if column.startswith(("lower", "upper")))
    widths = (summary[upper] - summary[lower]).to_numpy()
    # new estimate in a new district: sd sqrt(Var(mu) + tau^2 + vi) ~ 0.34 vs ~0.56
    assert widths[1] > 1.3 * widths[0]
