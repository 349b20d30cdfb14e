"""Guards against the quantities people confuse: variance vs SD, tau vs tau2, I2 percent, rho."""

import numpy as np
import pytest
from helpers import exact_reference

import bambi_meta as bmm
from bambi_meta.stats.heterogeneity import heterogeneity_draws


def observed_logp(model, point):
    model.build()
    pymc_model = model.backend.model
    return pymc_model.compile_logp(vars=[pymc_model["yi"]])(point)


POINT = {"Intercept": 0.1, "tau_log__": np.log(0.3), "rho_logodds__": 0.4}


def test_variances_and_standard_errors_give_the_same_model(konstantopoulos):
    data = konstantopoulos.assign(sei=np.sqrt(konstantopoulos["vi"]))
    variances = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", data, measure="SMD")
    sds = bmm.MetaModel("yi | se(sei, sd=True) ~ 1 + (1|district)", data, measure="SMD")
    expression = bmm.MetaModel("yi | se(sqrt(vi), sd=True) ~ 1 + (1|district)", data, measure="SMD")
    reference = observed_logp(variances, POINT)
    assert observed_logp(sds, POINT) == pytest.approx(reference, rel=1e-12)
    assert observed_logp(expression, POINT) == pytest.approx(reference, rel=1e-12)
    # ... and reading SDs as variances is a different model (the silent error we guard against)
    wrong = bmm.MetaModel("yi | se(sei, sd=False) ~ 1 + (1|district)", data, measure="SMD")
    assert abs(observed_logp(wrong, POINT) - reference) > 1.0


def test_printout_says_how_the_uncertainty_column_was_read(konstantopoulos):
    data = konstantopoulos.assign(sei=np.sqrt(konstantopoulos["vi"]))
    text = str(bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", data, measure="SMD"))
    assert "vi  read as VARIANCES" in text and "se(sei, sd=True)" in text
    text = str(bmm.MetaModel("yi | se(sei, sd=True) ~ 1 + (1|district)", data, measure="SMD"))
    assert "sei  read as standard errors" in text


def test_tau_is_an_sd_and_tau2_its_square(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    table = bmm.summary_heterogeneity(model, idata)
    # quantiles commute with the monotone map tau -> tau^2; means do not (E[tau^2] > E[tau]^2)
    for column in ["0.025", "0.5", "0.975"]:
        assert table.loc["tau2", column] == pytest.approx(table.loc["tau", column] ** 2, rel=1e-6)
    assert table.loc["tau2", "Mean"] > table.loc["tau", "Mean"] ** 2
    # and the SMD school data have tau ~ 0.32, tau2 ~ 0.10 (exact posterior means)
    exact = exact_reference("dat.konstantopoulos2011")["heterogeneity"]
    assert table.loc["tau", "Mean"] == pytest.approx(exact["tau"]["mean"], abs=0.01)
    assert table.loc["tau2", "Mean"] == pytest.approx(exact["tau2"]["mean"], abs=0.01)


def test_i2_is_in_percent():
    draws = heterogeneity_draws(np.array([[0.3]]), np.array([[0.5]]), typical_variance=0.01)
    # tau2 = 0.09, v~ = 0.01: I2 = 90 (percent), H2 = 10, the halves split evenly
    assert draws["I2"][0] == pytest.approx(90.0)
    assert draws["H2"][0] == pytest.approx(10.0)
    assert draws["I2 [within]"][0] == pytest.approx(45.0)
    assert draws["I2 [between]"][0] == pytest.approx(45.0)


def test_rho_is_the_cluster_share_not_the_estimate_share():
    draws = heterogeneity_draws(np.array([[0.5]]), np.array([[0.8]]), typical_variance=0.02)
    assert draws["tau2 [between]"][0] == pytest.approx(0.25 * 0.8)
    assert draws["tau2 [within]"][0] == pytest.approx(0.25 * 0.2)
    assert draws["tau [between]"][0] == pytest.approx(0.5 * np.sqrt(0.8))


def test_rho_posterior_is_the_between_share(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    draws = bmm.heterogeneity_posterior(model, idata)
    np.testing.assert_allclose(draws["tau2 [between]"], draws["tau2"] * draws["rho"], rtol=1e-12)
    # the school data put most heterogeneity between districts (exact posterior mean 0.632)
    assert 0.55 < draws["rho"].mean() < 0.7
