"""Location-scale models: 'tau ~ z' (log link) and 'rho ~ w' (logit link).

* The model's likelihood equals dense per-cluster multivariate normal densities with per-row
  tau_i and rho_i (exact algebra: 1e-9 relative).
* The default intercept priors are the exact images of the default tau and rho priors.
* Simulated data with a known scale effect (tau doubles from z = 0 to z = 1) are recovered.
* A latent-effects PyMC model of the same data and priors (the oracle: cluster and estimate
  effects sampled, not integrated out) gives the same posterior within Monte Carlo error.
* Heterogeneity summaries, predictions, predictive distributions, LOO and effects keep working;
  scale formulas that cannot apply raise clear errors.
"""

import warnings

import arviz as az
import bambi as bmb
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import pytest
import xarray as xr
from helpers import (
    SIMULATED_MU,
    SIMULATED_RHO,
    SIMULATED_SCALE,
    dense_cluster_logps,
    fake_posterior,
    simulate_location_scale,
)
from scipy import stats
from scipy.special import expit

import bambi_meta as bmm
from bambi_meta.bambi_ext.centring import to_raw_scale, to_sampled_scale
from bambi_meta.bambi_ext.priors import log_half_normal
from bambi_meta.stats.heterogeneity import typical_sampling_variance

matplotlib.use("Agg")

FORMULA = bmb.Formula("yi | se(vi) ~ 1 + x + (1|study)", "tau ~ z", "rho ~ w")


@pytest.fixture(scope="module")
def small_data():
    data = simulate_location_scale(seed=5, n_clusters=10, per_cluster=3, rho_slope=1.0)
    # unequal cluster sizes: two rows of cluster 9 form a new cluster 10 (sizes 3, 1 and 2)
    data.loc[[27, 28], "study"] = 10
    return data.assign(x=np.linspace(-1, 1, len(data)))


# ---------------------------------------------------------------------------------------------
# Build only: the likelihood and the priors
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def observed_logp(small_data):
    """The model's log-likelihood of yi as PyMC compiles it (once for the module)."""
    model = bmm.MetaModel(FORMULA, small_data, measure="SMD")
    model.build()
    return model.backend.model.compile_logp(vars=[model.backend.model["yi"]], sum=True)


@pytest.mark.parametrize(
    "point",
    [
        {"Intercept": 0.2, "x": 0.1, "tau_Intercept": -1.2, "tau_z": 0.7, "rho_Intercept": 0.3},
        {"Intercept": -0.5, "x": 0.0, "tau_Intercept": 0.5, "tau_z": -2.0, "rho_Intercept": -3},
        {"Intercept": 0.0, "x": 1.0, "tau_Intercept": -4.0, "tau_z": 3.0, "rho_Intercept": 4.0},
    ],
)
@pytest.mark.parametrize("rho_w", [0.0, 1.5, -6.0])
def test_likelihood_equals_dense_mvn_with_row_varying_tau_and_rho(
    small_data, observed_logp, point, rho_w
):
    logp = observed_logp
    point = {**point, "rho_w": rho_w}
    # the model centres z and w at their means; x too (continuous location moderator)
    data = small_data
    centred = {name: data[name].to_numpy() - data[name].mean() for name in ("x", "z", "w")}
    mu = point["Intercept"] + point["x"] * centred["x"]
    tau = np.exp(point["tau_Intercept"] + point["tau_z"] * centred["z"])
    rho = expit(point["rho_Intercept"] + rho_w * centred["w"])
    codes = pd.factorize(data["study"], sort=True)[0]
    expected = dense_cluster_logps(
        data["yi"].to_numpy(), mu, tau, rho, data["vi"].to_numpy(), codes
    ).sum()
    assert float(logp(point)) == pytest.approx(expected, rel=1e-9)


def test_default_scale_priors_are_the_images_of_the_default_tau_and_rho_priors(small_data):
    model = bmm.MetaModel(FORMULA, small_data, measure="SMD")
    tau_prior = model.parameters["tau"].intercept_term.prior
    rho_prior = model.parameters["rho"].intercept_term.prior
    uisd = np.sqrt(2.0)
    assert tau_prior.args["sigma"] == pytest.approx(uisd / 4)  # HalfNormal(UISD/4) on tau
    a = np.linspace(-6.0, 1.5, 13)
    with pm.Model():
        variable = log_half_normal("a", uisd / 4, shape=len(a))
        log_density = pm.logp(variable, a).eval()
    # density of a = log tau when tau ~ HalfNormal(s): p_tau(e^a) * e^a (change of variables)
    expected = stats.halfnorm(scale=uisd / 4).logpdf(np.exp(a)) + a
    np.testing.assert_allclose(log_density, expected, rtol=1e-12)
    # logit rho ~ Logistic(0, 1) <=> rho ~ Beta(1, 1): p_rho(expit(c)) * expit'(c)
    assert (rho_prior.name, rho_prior.args["mu"], rho_prior.args["s"]) == ("Logistic", 0, 1)
    c = np.linspace(-8.0, 8.0, 9)
    jacobian = np.log(expit(c) * (1 - expit(c)))
    np.testing.assert_allclose(
        stats.logistic.logpdf(c), stats.beta(1, 1).logpdf(expit(c)) + jacobian, rtol=1e-12
    )
    # coefficients: N(0, 0.5) per SD of the moderator
    for parameter, variable in (("tau", "z"), ("rho", "w")):
        term = model.parameters[parameter].common_terms[f"center({variable})"]
        sd = small_data[variable].std(ddof=1)
        assert term.prior.args["sigma"] == pytest.approx(0.5 / sd, rel=1e-12)


def test_scale_coefficients_on_the_raw_scale_reproduce_log_tau_and_logit_rho():
    """Raw-scale scale coefficients (continuous, categorical) give the sampled tau_i and rho_i."""
    data = bmm.load_dataset("dat.assink2016")
    formula = bmb.Formula("yi | se(vi) ~ 1 + (1|study)", "tau ~ year + deltype", "rho ~ pubstatus")
    model = bmm.MetaModel(formula, data, measure="SMD")
    posterior = fake_posterior(model, draws=20)
    idata = xr.DataTree.from_dict({"posterior": to_raw_scale(model, posterior)})
    raw = bmm.coefficient_draws(model, idata.posterior)
    assert list(raw["tau"]) == [
        "tau_Intercept",
        "tau_year",
        "tau_deltype[general]",
        "tau_deltype[overt]",
    ]
    assert list(raw["rho"]) == ["rho_Intercept", "rho_pubstatus"]
    designs = {
        "tau": np.column_stack(
            [
                np.ones(len(data)),
                data["year"],
                data["deltype"] == "general",
                data["deltype"] == "overt",
            ]
        ).astype(float),
        "rho": np.column_stack([np.ones(len(data)), data["pubstatus"]]).astype(float),
    }
    links = {"tau": np.log, "rho": lambda p: np.log(p / (1 - p))}
    as_sampled = xr.DataTree.from_dict({"posterior": posterior})
    for name, design in designs.items():
        sampled = model.parameters[name].predict(as_sampled).transpose("chain", "draw", "__obs__")
        coefficients = np.stack(list(raw[name].values()), axis=-1)
        # The raw-scale coefficients are an exact linear map of the sampled ones, so the two
        # linear predictors (O(1) values) differ by float rounding only: 1e-10 is tight.
        np.testing.assert_allclose(
            coefficients @ design.T, links[name](sampled.to_numpy()), atol=1e-10
        )
    table = bmm.summary(model, idata, include_mcmc_diagnostics=False)
    assert list(table.index) == ["mu", *raw["tau"], *raw["rho"]]


def test_user_priors_for_scale_terms_use_the_names_written(small_data):
    priors = {"tau": {"z": bmb.Prior("Normal", mu=0, sigma=1)}}
    model = bmm.MetaModel(FORMULA, small_data, measure="SMD", priors=priors)
    tau = model.parameters["tau"]
    assert tau.common_terms["center(z)"].prior.args["sigma"] == 1
    assert tau.intercept_term.prior.name == "LogHalfNormal"  # the default stays for the rest


# ---------------------------------------------------------------------------------------------
# Errors: scale formulas that cannot apply, bad moderators
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("formula", "error", "message"),
    [
        (("yi | se(vi) ~ 1", "rho ~ w"), ValueError, "rho, the share of tau\\^2 at the cluster"),
        (("yi | se(vi) ~ 1", "sigma ~ w"), ValueError, "left-hand side must be 'tau'"),
        (("yi | se(vi) ~ 1", "mu ~ w"), ValueError, "right-hand side of the main formula"),
        (("yi | se(vi) ~ 1", "tau ~ z", "tau ~ w"), ValueError, "'tau' has two scale formulas"),
        (("yi | se(vi) ~ 1", "tau ~ z + (1|study)"), ValueError, "group-specific terms"),
    ],
)
def test_scale_formulas_that_cannot_apply(small_data, formula, error, message):
    with pytest.raises(error, match=message):
        bmm.MetaModel(bmb.Formula(*formula), small_data, measure="SMD")


def test_a_fixed_tau_cannot_have_a_scale_formula(small_data):
    formula = bmb.Formula("yi | se(vi) ~ 1", "tau ~ z")
    with pytest.raises(TypeError, match="'tau' is modelled by the scale formula 'tau ~ z'"):
        bmm.MetaModel(formula, small_data, measure="SMD", priors={"tau": 0})
    with pytest.raises(TypeError, match="its priors are given per term"):
        bmm.MetaModel(
            formula, small_data, measure="SMD", priors={"tau": bmb.Prior("HalfNormal", sigma=1)}
        )


def test_scale_moderators_with_missing_or_constant_values(small_data):
    data = small_data.copy()
    data.loc[[4, 11], "z"] = np.nan
    with pytest.raises(ValueError, match=r"Missing values \(NaN\) in 'z': rows 5, 12"):
        bmm.MetaModel(bmb.Formula("yi | se(vi) ~ 1", "tau ~ z"), data, measure="SMD")
    with pytest.raises(ValueError, match="Moderator 'flat' is constant"):
        bmm.MetaModel(
            bmb.Formula("yi | se(vi) ~ 1", "tau ~ flat"), small_data.assign(flat=2.0), "SMD"
        )


def test_no_frequentist_fit_of_a_scale_model(small_data):
    model = bmm.MetaModel(FORMULA, small_data, measure="SMD")
    with pytest.raises(NotImplementedError, match="'tau ~ z', 'rho ~ w'"):
        model.fit_frequentist()


# ---------------------------------------------------------------------------------------------
# Simulation: a known scale effect is recovered
# ---------------------------------------------------------------------------------------------
def test_simulated_scale_effect_is_recovered(simulated_scale_fit):
    """240 estimates, tau = 0.2 at z = 0 doubling to 0.4 at z = 1, rho = 0.5, mu = 0.3.

    One simulated data set and a fixed seed: the truth must lie within 3 posterior SDs of the
    posterior mean (a calibrated posterior misses that with probability ~0.3% per parameter).
    """
    model, idata = simulated_scale_fit
    table = bmm.summary(model, idata)
    assert list(table.index) == ["mu", "rho", "tau_Intercept", "tau_z"]
    truth = {**SIMULATED_SCALE, "mu": SIMULATED_MU, "rho": SIMULATED_RHO}
    for name, value in truth.items():
        mean, sd = table.loc[name, "Mean"], table.loc[name, "SD"]
        assert abs(mean - value) < 3 * sd, (name, mean, sd, value)
    # the doubling itself: tau(z = 1) / tau(z = 0) = exp(tau_z)
    ratio = np.exp(bmm.coefficient_draws(model, idata.posterior)["tau"]["tau_z"])
    assert np.quantile(ratio, 0.025) < 2.0 < np.quantile(ratio, 0.975)
    assert np.quantile(ratio, 0.025) > 1.0  # and the data show that tau grows with z


def test_heterogeneity_is_averaged_over_rows(simulated_scale_fit):
    """tau2 = mean_i tau_i^2, I2 = mean_i 100 tau_i^2 / (tau_i^2 + v~).

    (bambi_meta.stats.heterogeneity)
    """
    model, idata = simulated_scale_fit
    draws = bmm.heterogeneity_posterior(model, idata)
    raw = bmm.coefficient_draws(model, idata.posterior)["tau"]
    z = model.data["z"].to_numpy()
    row_tau2 = np.exp(2 * (raw["tau_Intercept"][..., None] + raw["tau_z"][..., None] * z))
    np.testing.assert_allclose(draws["tau2"], row_tau2.mean(axis=-1), rtol=1e-10)
    rho = idata.posterior["rho"].to_numpy()[..., None]
    np.testing.assert_allclose(draws["tau2 [between]"], (row_tau2 * rho).mean(-1), rtol=1e-10)
    typical = typical_sampling_variance(model.meta_data().variances)
    i2 = (100 * row_tau2 / (row_tau2 + typical)).mean(axis=-1)
    np.testing.assert_allclose(draws["I2"], i2, rtol=1e-10)


def test_heterogeneity_at_moderator_values(simulated_scale_fit):
    model, idata = simulated_scale_fit
    table = bmm.heterogeneity_at(model, idata, pd.DataFrame({"z": [0.0, 1.0]}))
    assert table.index.names == ["z", "quantity"]
    assert list(table.loc[0.0].index) == ["tau", "rho", "tau [within]", "tau [between]", "I2"]
    raw = bmm.coefficient_draws(model, idata.posterior)["tau"]
    for z in (0.0, 1.0):
        tau = np.exp(raw["tau_Intercept"] + raw["tau_z"] * z)
        assert table.loc[(z, "tau"), "Mean"] == pytest.approx(tau.mean(), rel=1e-10)
        rho = idata.posterior["rho"].to_numpy()
        between = (tau * np.sqrt(rho)).mean()
        assert table.loc[(z, "tau [between]"), "Mean"] == pytest.approx(between, rel=1e-10)
    with pytest.raises(ValueError, match="must give the scale moderators 'z'"):
        bmm.heterogeneity_at(model, idata, pd.DataFrame({"w": [0.0]}))


def test_heterogeneity_at_needs_only_the_scale_moderators(small_data):
    """A location moderator (x) need not be given to tabulate tau and rho at z and w."""
    model = bmm.MetaModel(FORMULA, small_data, measure="SMD")
    posterior = fake_posterior(model)
    idata = xr.DataTree.from_dict({"posterior": to_raw_scale(model, posterior)})
    at = pd.DataFrame({"z": [0.2, 0.8], "w": [0.5, 0.5]})
    table = bmm.heterogeneity_at(model, idata, at, level=0.9)
    assert list(table.columns) == ["Mean", "SD", "0.05", "0.5", "0.95"]
    z_mean, w_mean = small_data["z"].mean(), small_data["w"].mean()
    tau = np.exp(posterior["tau_Intercept"] + posterior["tau_z"] * (0.8 - z_mean))
    rho = expit(posterior["rho_Intercept"] + posterior["rho_w"] * (0.5 - w_mean))
    assert table.loc[(0.8, 0.5, "tau"), "Mean"] == pytest.approx(float(tau.mean()), rel=1e-10)
    within = float((tau * np.sqrt(1 - rho)).mean())
    assert table.loc[(0.8, 0.5, "tau [within]"), "Mean"] == pytest.approx(within, rel=1e-10)
    no_scale = bmm.MetaModel("yi | se(vi) ~ 1 + (1|study)", small_data, measure="SMD")
    with pytest.raises(ValueError, match="needs a location-scale model"):
        bmm.heterogeneity_at(no_scale, idata, at)


def test_interpret_tau_against_a_scale_moderator(simulated_scale_fit):
    model, idata = simulated_scale_fit
    result = bmb.interpret.predictions(model, idata, conditional={"z": [0.0, 1.0]}, target="tau")
    raw = bmm.coefficient_draws(model, idata.posterior)["tau"]
    for z, estimate in zip([0.0, 1.0], result.summary["estimate"], strict=True):
        assert estimate == pytest.approx(np.exp(raw["tau_Intercept"] + raw["tau_z"] * z).mean())
    with warnings.catch_warnings():
        # Bambi 0.21 announces that these functions will return matplotlib figures later
        warnings.simplefilter("ignore", bmb.PlottingFutureWarning)
        plot = bmb.interpret.plot_predictions(model, idata, "z", target="tau")
    plot.plot()  # renders the seaborn.objects.Plot
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# The latent-effects oracle
# ---------------------------------------------------------------------------------------------
def latent_effects_fit(model, data: pd.DataFrame):
    """The same model with u_j and e_i sampled (non-centred), same priors, plain PyMC."""
    priors = {
        name: model.parameters[parameter].common_terms[f"center({name[4:]})"].prior.args["sigma"]
        for parameter, name in (("tau", "tau_z"), ("rho", "rho_w"))
    }
    zc = data["z"].to_numpy() - data["z"].mean()
    wc = data["w"].to_numpy() - data["w"].mean()
    codes = pd.factorize(data["study"], sort=True)[0]
    with pm.Model():
        mu = pm.Normal("Intercept", 0.0, np.sqrt(2) / 2)
        tau_intercept = log_half_normal("tau_Intercept", np.sqrt(2) / 4)
        tau_z = pm.Normal("tau_z", 0.0, priors["tau_z"])
        rho_intercept = pm.Logistic("rho_Intercept", 0.0, 1.0)
        rho_w = pm.Normal("rho_w", 0.0, priors["rho_w"])
        tau = pt.exp(tau_intercept + tau_z * zc)
        rho = pm.math.sigmoid(rho_intercept + rho_w * wc)
        cluster = pm.Normal("cluster", 0.0, 1.0, shape=int(codes.max()) + 1)
        estimate = pm.Normal("estimate", 0.0, 1.0, shape=len(data))
        theta = mu + tau * pt.sqrt(rho) * cluster[codes] + tau * pt.sqrt(1 - rho) * estimate
        pm.Deterministic("theta", theta)
        pm.Normal("yi", theta, np.sqrt(data["vi"].to_numpy()), observed=data["yi"].to_numpy())
        return pm.sample(
            1000, tune=1000, chains=4, target_accept=0.9, random_seed=4, progressbar=False
        )


def test_agrees_with_a_latent_effects_oracle(small_scale_fit):
    """Both posteriors are MCMC: z = (a - b) / sqrt(MCSE_a^2 + MCSE_b^2) must be below 4.

    Under a correct marginalisation each z is ~N(0, 1); beyond 4 has probability ~6e-5 per
    statistic (25 statistics: ~0.2% for the whole test). 1e-3 absolute slack as elsewhere.
    """
    model, idata = small_scale_fit
    oracle = latent_effects_fit(model, model.data)
    assert int(oracle.sample_stats["diverging"].sum()) == 0
    names = ["Intercept", "tau_Intercept", "tau_z", "rho_Intercept", "rho_w"]
    failures = []
    sampled = to_sampled_scale(model, idata.posterior)  # the oracle's centred parametrisation
    for name in names:
        a = sampled[name].transpose("chain", "draw").to_numpy()
        b = oracle.posterior[name].transpose("chain", "draw").to_numpy()
        for statistic, (va, ma), (vb, mb) in _statistics(a, b):
            z = (va - vb) / (np.hypot(ma, mb) + 1e-3 / 4)
            if abs(z) > 4:
                failures.append(f"{name} {statistic}: {va:.4f} vs {vb:.4f}, z = {z:.2f}")
    assert not failures, "; ".join(failures)
    # the exact conditional true effects (Rao-Blackwellised) vs the oracle's sampled theta_i
    effects = bmm.true_effects(model, idata, random_seed=1).table
    theta = oracle.posterior["theta"]
    mcse = az.mcse(theta).to_numpy()
    difference = np.abs(effects["Mean"].to_numpy() - theta.mean(("chain", "draw")).to_numpy())
    # the oracle's MCSE dominates (ours is Rao-Blackwellised); 4.5 covers the small MCSE of ours
    assert np.all(difference <= 4.5 * mcse + 1e-3)


def _statistics(a: np.ndarray, b: np.ndarray):
    """(name, (value_a, mcse_a), (value_b, mcse_b)) for mean, SD and three quantiles."""
    out = []
    for statistic, kwargs in [
        ("mean", {}),
        ("sd", {"method": "sd"}),
        ("q025", {"method": "quantile", "prob": 0.025}),
        ("q50", {"method": "quantile", "prob": 0.5}),
        ("q975", {"method": "quantile", "prob": 0.975}),
    ]:
        pair = []
        for draws in (a, b):
            dataset = xr.Dataset({"x": (("chain", "draw"), draws)})
            if statistic == "mean":
                value = draws.mean()
            elif statistic == "sd":
                value = draws.std(ddof=1)
            else:
                value = np.quantile(draws, kwargs["prob"])
            pair.append((value, float(az.mcse(dataset, **kwargs)["x"])))
        out.append((statistic, *pair))
    return out


# ---------------------------------------------------------------------------------------------
# Bambi features and the previous issue's effects keep working
# ---------------------------------------------------------------------------------------------
def test_predictive_distributions_loo_and_effects(small_scale_fit):
    model, idata = small_scale_fit
    prior = model.prior_predictive(draws=50, random_seed=5)
    assert np.isfinite(prior.prior_predictive["yi"].to_numpy()).all()
    new = pd.DataFrame({"z": [0.1, 0.9], "w": [0.5, 0.5], "vi": [0.01, 0.01], "study": [0, 99]})
    predicted = model.predict(idata, kind="response", data=new, inplace=False, random_seed=2)
    draws = predicted.posterior_predictive["yi"].to_numpy().reshape(-1, 2)
    assert np.all(np.isfinite(draws))
    for unit, dim in (("cluster", "study"), ("estimate", "__obs__")):
        with_loglik = model.compute_log_likelihood(idata, inplace=False, unit=unit)
        assert with_loglik.log_likelihood["yi"].dims == ("chain", "draw", dim)
        assert np.isfinite(az.loo(with_loglik).elpd)
    clusters = bmm.cluster_effects(model, idata, random_seed=1).table
    assert len(clusters) == 10 and np.isfinite(clusters["Mean"]).all()
    # z moderates tau only: the bubble plot (pooled effect against z) does not apply
    with pytest.raises(ValueError, match="'z' is not a moderator of the location formula"):
        bmm.plot_bubble(model, idata, "z")
