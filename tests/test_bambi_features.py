"""What Bambi users already know keeps working: predict, prior predictive, log-likelihood, LOO."""

import arviz as az
import bambi as bmb
import numpy as np
import pandas as pd
import pytest


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


def test_prior_predictive(konstantopoulos_fit):
    model, _ = konstantopoulos_fit
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


def test_interpret_predictions(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    summary = bmb.interpret.predictions(model, idata, conditional={"district": [11, 58]}).summary
    assert len(summary) == 2
    # without moderators the pooled effect is the same for every district
    assert summary["estimate"].iloc[0] == pytest.approx(summary["estimate"].iloc[1])


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
