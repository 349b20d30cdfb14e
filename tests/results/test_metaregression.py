"""Meta-regression: the exact posterior, default priors, raw-scale coefficients, tables, figures.

Reference: tests/data/<dataset>.exact.json, model blocks ``metareg_year`` (konstantopoulos2011,
continuous ``year``), ``metareg_ablat`` (bcg, continuous ``ablat``, no cluster, measure RR) and
``metareg_deltype`` (assink2016, 3-level factor, reference ``covert``): 2-D quadrature over
(tau, rho) with the coefficients integrated analytically, under RoBMA's default priors
(continuous moderators standardised, treatment dummies not centred). Its ``coefficients`` block
is on the raw scale (intercept at x = 0), ``coefficients_standardized`` on the scale the priors act
on (intercept at the means of the continuous moderators).

Tolerance (``assert_agrees`` from test_posterior_exact.py): |MCMC - exact| <= 4 MCSE + 1e-3 for
the mean, SD and 2.5/50/97.5% quantiles, each with its own MCSE from the same draws. Beyond
4 MCSE has probability ~6e-5 per statistic under a correct sampler; the 1e-3 covers the
quadrature error (< 5e-5 per the JSON's convergence check) and MCSE ~ 0 rounding. For the
raw-scale intercept of konstantopoulos (posterior SD 18.5: year = 0 is 2000 years away) the same
rule holds; its MCSE is ~0.3.
"""

import importlib.util
import re
import warnings
from pathlib import Path

import arviz as az
import bambi as bmb
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import (
    HETEROGENEITY_KEYS,
    METAREGRESSION_MODELS,
    assert_agrees,
    exact_reference,
    fake_posterior,
)

import bambi_meta as bmm
from bambi_meta.bambi_ext.centring import to_raw_scale, to_sampled_scale
from bambi_meta.engine.predictive import conditional_effects
from bambi_meta.stats.heterogeneity import typical_sampling_variance

matplotlib.use("Agg")

FITS = {name: f"{name}_mcmc" for name in METAREGRESSION_MODELS}
EXAMPLE = Path(__file__).parents[2] / "examples" / "metaregression.py"


def reference_of(name: str) -> dict:
    dataset, _, _, block = METAREGRESSION_MODELS[name]
    return exact_reference(dataset, block)


def build(name: str, **kwargs):
    dataset, formula, measure, _ = METAREGRESSION_MODELS[name]
    return bmm.MetaModel(formula, bmm.load_dataset(dataset), measure=measure, **kwargs)


def json_name(column: str) -> str:
    """Our design-column name -> the exact JSON's (``Intercept`` -> ``intercept``)."""
    return "intercept" if column == "Intercept" else column


# ---------------------------------------------------------------------------------------------
# Build-only: design, priors, typical sampling variance (deterministic, exact comparisons)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(METAREGRESSION_MODELS))
def test_design_priors_and_typical_variance_match_the_reference(name):
    model, reference = build(name), reference_of(name)
    priors = reference["priors"]["values"]
    mu = model.parameters["mu"]
    # same columns (continuous centred, the same treatment dummies and reference level)
    columns = mu.design.common.as_dataframe().columns
    uncentred = [json_name(re.sub(r"center\((\w+)\)", r"\1", c)) for c in columns]
    assert uncentred == reference["model"]["design_columns"]
    # intercept N(0, UISD/2) at the moderator means / reference level
    assert mu.intercept_term.prior.args["sigma"] == pytest.approx(priors["intercept_sd"], rel=1e-12)
    for variable, info in reference["model"]["moderators"].items():
        expected = priors["mods_sd"]  # N(0, UISD/4) per treatment dummy, uncentred
        if info["type"] == "continuous":
            # N(0, UISD/4) per SD of x = N(0, UISD/4 / sd(x)) per raw unit (sd with ddof=1)
            assert float(model.data[variable].std(ddof=1)) == pytest.approx(info["sd"], rel=1e-12)
            assert float(model.data[variable].mean()) == pytest.approx(info["mean"], rel=1e-12)
            expected /= info["sd"]
            variable = f"center({variable})"
        else:
            assert list(mu.common_terms[variable].levels) == info["levels"][1:]
        assert mu.common_terms[variable].prior.args["sigma"] == pytest.approx(expected, rel=1e-12)
    assert model.parameters["tau"].prior.args["sigma"] == pytest.approx(priors["tau_sd"])
    if reference["model"]["cluster"] is not None:
        rho = model.parameters["rho"].prior.args
        assert (rho["alpha"], rho["beta"]) == (priors["rho_a"], priors["rho_b"])
    design = np.asarray(mu.design.common.design_matrix)
    typical = typical_sampling_variance(model.meta_data().variances, design)
    assert typical == pytest.approx(reference["typical_sampling_variance"], rel=1e-10)


# ---------------------------------------------------------------------------------------------
# Fits vs the exact posterior
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow  # MCMC fits (the exact engine's draws: tests/engine/test_exact_model.py)
@pytest.mark.parametrize("name", list(METAREGRESSION_MODELS))
def test_coefficients_on_the_raw_scale_match_the_exact_posterior(request, name):
    model, idata = request.getfixturevalue(FITS[name])
    reference = reference_of(name)
    coefficients = bmm.coefficient_draws(model, idata.posterior)["mu"]
    assert [json_name(c) for c in coefficients] == reference["model"]["design_columns"]
    draws = dict(coefficients)
    exact = {c: reference["coefficients"][json_name(c)] for c in coefficients}
    # the sampled intercept sits at the moderator means: coefficients_standardized's intercept
    draws["Intercept (sampled)"] = to_sampled_scale(model, idata.posterior)["Intercept"].to_numpy()
    exact["Intercept (sampled)"] = reference["coefficients_standardized"]["intercept"]
    for parameter in ("tau", "rho"):
        if parameter in idata.posterior:
            draws[parameter] = idata.posterior[parameter].to_numpy()
            exact[parameter] = reference["estimates"][parameter]
    assert_agrees(draws, exact)


@pytest.mark.slow  # MCMC fits (the exact engine's draws: tests/engine/test_exact_model.py)
@pytest.mark.parametrize("name", list(METAREGRESSION_MODELS))
def test_residual_heterogeneity_matches_the_exact_posterior(request, name):
    """tau, I2, H2 with the typical sampling variance of the moderator design."""
    model, idata = request.getfixturevalue(FITS[name])
    reference = reference_of(name)
    draws = bmm.heterogeneity_posterior(model, idata)
    exact = {key: reference["heterogeneity"][HETEROGENEITY_KEYS[key]] for key in draws}
    assert_agrees(draws, exact)


@pytest.mark.slow  # MCMC fits (the exact engine's draws: tests/engine/test_exact_model.py)
@pytest.mark.parametrize("name", list(METAREGRESSION_MODELS))
def test_true_and_cluster_effects_match_the_exact_posterior(request, name):
    """The effects of the previous issue keep working for meta-regressions.

    Means are Rao-Blackwellised (averages of per-draw conditional means): tolerance 4 MCSE of
    that average + 1e-3. SDs: 4 SD / sqrt(2 ESS) + 1e-3 (the MC error of an SD estimate).
    """
    model, idata = request.getfixturevalue(FITS[name])
    reference = reference_of(name)
    ess = float(bmm.summary(model, idata)["ESS"].min())
    conditional = conditional_effects(model, idata.posterior)
    checks = [(bmm.true_effects(model, idata, random_seed=1).table, conditional.true_mean, "true")]
    if model.cluster is not None:
        scale = conditional.between[..., :1]  # constant tau and rho: the same b on every row
        table = bmm.cluster_effects(model, idata, random_seed=1).table
        checks.append((table, scale * conditional.z_mean, "cluster"))
    for table, per_draw, kind in checks:
        exact = reference[f"{kind}_effects"]
        dataset = xr.Dataset({"x": (("chain", "draw", "unit"), per_draw)})
        mcse = az.mcse(dataset)["x"].to_numpy()
        mean_error = np.abs(table["Mean"].to_numpy() - [e["mean"] for e in exact])
        sd_error = np.abs(table["SD"].to_numpy() - [e["sd"] for e in exact])
        assert np.all(mean_error <= 4 * mcse + 1e-3), kind
        assert np.all(sd_error <= 4 * table["SD"].to_numpy() / np.sqrt(2 * ess) + 1e-3), kind


# ---------------------------------------------------------------------------------------------
# What the user sees
# ---------------------------------------------------------------------------------------------
def test_summary_reports_raw_coefficients_under_a_header(konstantopoulos_year_fit):
    model, idata = konstantopoulos_year_fit
    table = bmm.summary(model, idata)
    assert list(table.index) == ["Intercept", "year", "tau", "rho"]
    assert model.header == (
        "Multilevel random-effects (compound-symmetric tau, rho), meta-regression: "
        "k = 56 estimates in 11 clusters (district)"
    )
    assert repr(table).splitlines()[0] == model.header
    # raw intercept = sampled intercept - slope * mean(year), draw by draw
    posterior = to_sampled_scale(model, idata.posterior)
    raw = posterior["Intercept"] - posterior["year"] * model.data["year"].mean()
    assert table.loc["Intercept", "Mean"] == pytest.approx(float(raw.mean()), rel=1e-10)
    assert table.loc["year", "SD"] == pytest.approx(float(posterior["year"].std(ddof=1)))
    printout = str(model)
    assert "sampled at the means of the continuous moderators (year)" in printout
    assert "summary() reports coefficients on the raw scale (intercept at year = 0)" in printout


def test_categorical_summary_rows_follow_treatment_coding(assink_deltype_fit):
    model, idata = assink_deltype_fit
    table = bmm.summary(model, idata)
    assert list(table.index) == ["Intercept", "deltype[general]", "deltype[overt]", "tau", "rho"]
    # no continuous moderator: nothing is centred and the raw scale is the sampled one
    np.testing.assert_allclose(
        table.loc["deltype[overt]", "Mean"],
        float(idata.posterior["deltype"].sel(deltype_dim="overt").mean()),
    )


def test_interpret_predictions_against_a_moderator(bcg_ablat_fit):
    """bmb.interpret gives the pooled effect at moderator values: b0 + b1 * ablat per draw."""
    model, idata = bcg_ablat_fit
    result = bmb.interpret.predictions(model, idata, conditional={"ablat": [20.0, 50.0]})
    coefficients = bmm.coefficient_draws(model, idata.posterior)["mu"]
    for ablat, estimate in zip([20.0, 50.0], result.summary["estimate"], strict=True):
        expected = np.mean(coefficients["Intercept"] + coefficients["ablat"] * ablat)
        assert estimate == pytest.approx(expected, rel=1e-10)
    with warnings.catch_warnings():
        # Bambi 0.21 announces that these functions will return matplotlib figures later
        warnings.simplefilter("ignore", bmb.PlottingFutureWarning)
        plot = bmb.interpret.plot_predictions(model, idata, "ablat")
    plot.plot()  # renders the seaborn.objects.Plot
    plt.close("all")


def test_predictive_distributions_and_loo(konstantopoulos_year_fit):
    model, idata = konstantopoulos_year_fit
    new = pd.DataFrame({"year": [1980, 2000], "vi": [0.01, 0.01], "district": [71, 10_000]})
    predicted = model.predict(idata, kind="response", data=new, inplace=False, random_seed=2)
    assert predicted.posterior_predictive["yi"].shape[-1] == 2
    with_loglik = model.compute_log_likelihood(idata, inplace=False)
    assert with_loglik.log_likelihood["yi"].dims == ("chain", "draw", "district")
    assert np.isfinite(az.loo(with_loglik).elpd)


@pytest.mark.slow  # PyMC compiles the prior predictive sampler
def test_prior_predictive_with_a_moderator():
    model = bmm.MetaModel(
        "yi | se(vi) ~ 1 + year + (1|district)",
        bmm.load_dataset("dat.konstantopoulos2011"),
        measure="SMD",
    )
    prior = model.prior_predictive(draws=50, random_seed=5)
    assert prior.prior_predictive["yi"].shape == (1, 50, 56)


# ---------------------------------------------------------------------------------------------
# Raw-scale algebra with interactions (build only, synthetic posterior draws)
# ---------------------------------------------------------------------------------------------
def test_raw_scale_reproduces_the_linear_predictor_with_interactions():
    data = bmm.load_dataset("dat.assink2016")
    model = bmm.MetaModel(
        "yi | se(vi) ~ 1 + year * pubstatus + deltype + (1|study)", data, measure="SMD"
    )
    posterior = fake_posterior(model)
    raw = bmm.coefficient_draws(model, to_raw_scale(model, posterior))["mu"]
    assert list(raw) == [
        "Intercept",
        "year",
        "pubstatus",
        "year:pubstatus",
        "deltype[general]",
        "deltype[overt]",
    ]
    design = pd.DataFrame(
        {
            "Intercept": 1.0,
            "year": data["year"],
            "pubstatus": data["pubstatus"],
            "year:pubstatus": data["year"] * data["pubstatus"],
            "deltype[general]": (data["deltype"] == "general").astype(float),
            "deltype[overt]": (data["deltype"] == "overt").astype(float),
        }
    )
    eta_raw = sum(raw[c][..., None] * design[c].to_numpy() for c in raw)
    eta_sampled = (
        model.parameters["mu"]
        .predict(xr.DataTree.from_dict({"posterior": posterior}))
        .transpose("chain", "draw", "__obs__")
    )
    # Same linear predictor in two exact parametrisations (raw vs centred): float rounding only.
    np.testing.assert_allclose(eta_raw, eta_sampled.to_numpy(), atol=1e-10)


def test_interaction_without_main_effects_stays_on_the_sampled_scale():
    data = bmm.load_dataset("dat.assink2016")
    model = bmm.MetaModel("yi | se(vi) ~ 1 + year:pubstatus", data, measure="SMD")
    with pytest.warns(UserWarning, match="cannot be put on the raw scale"):
        raw = bmm.coefficient_draws(model, to_raw_scale(model, fake_posterior(model)))["mu"]
    assert list(raw) == ["Intercept", "year:pubstatus"]


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
def test_missing_moderator_values_name_the_rows(konstantopoulos):
    data = konstantopoulos.copy()
    data.loc[[2, 9], "year"] = np.nan
    with pytest.raises(ValueError, match=r"Missing values \(NaN\) in 'year': rows 3, 10"):
        bmm.MetaModel("yi | se(vi) ~ 1 + year + (1|district)", data, measure="SMD")
    with pytest.warns(UserWarning, match="dropped 2 of 56 rows"):
        model = bmm.MetaModel(
            "yi | se(vi) ~ 1 + year + (1|district)", data, measure="SMD", dropna=True
        )
    assert model.n_estimates == 54


@pytest.mark.parametrize("value", [1999.0, "a"])
def test_constant_moderators_are_rejected(konstantopoulos, value):
    data = konstantopoulos.assign(flat=value)
    with pytest.raises(ValueError, match="Moderator 'flat' is constant"):
        bmm.MetaModel("yi | se(vi) ~ 1 + flat + (1|district)", data, measure="SMD")


def test_linearly_dependent_moderators_are_rejected():
    # in assink2016 every 'covert' estimate has year 2.5: year:deltype has an empty direction
    data = bmm.load_dataset("dat.assink2016")
    with pytest.raises(ValueError, match=re.escape("column(s) 'year:deltype[overt]'")):
        bmm.MetaModel("yi | se(vi) ~ 1 + year * deltype + (1|study)", data, measure="SMD")


def test_user_priors_override_the_moderator_defaults():
    model = build("bcg_ablat", priors={"ablat": bmb.Prior("Normal", mu=0, sigma=1)})
    assert model.parameters["mu"].terms["center(ablat)"].prior.args["sigma"] == 1
    assert model.parameters["mu"].intercept_term.prior.args["sigma"] == 1.0  # RR: UISD/2 = 1


# ---------------------------------------------------------------------------------------------
# The README example (examples/metaregression.py) runs end to end with few draws
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow  # its location-scale model samples with nutpie
def test_metaregression_example(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("metaregression_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with warnings.catch_warnings():
        # 100 draws per chain are too few for the ESS >= 400 the summary asks for
        warnings.simplefilter("ignore", bmm.ConvergenceWarning)
        module.main(draws=100, output=tmp_path)
    printed = capsys.readouterr().out
    for text in ["meta-regression: k = 13", "ablat", "location-scale", "tau_year", "quantity"]:
        assert text in printed
    for figure in ["bcg_bubble.png", "assink_location_scale.png"]:
        assert (tmp_path / figure).stat().st_size > 10_000
