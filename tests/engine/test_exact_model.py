"""MetaModel.fit on the exact engine: independent draws against the exact references, the MCMC
engine, and every helper a user calls afterwards.

References: tests/data/dat.*.exact.json (an independent 2-D quadrature, see tests/data/README).
Tolerance: 4 MCSE of each statistic, computed by ArviZ from the draws (for independent draws
the MCSE of the mean is SD/sqrt(N)), plus 1e-3/4 for the reference's own quadrature error; under
a correct posterior a deviation beyond 4 MCSE has probability ~6e-5 per statistic. With 4 x
25,000 draws the MCSEs are ~0.3% of a posterior SD, so the check is sharp, and the sampler's own
error (measured in tests/engine/test_exact.py: < 1/20 of the MCSE) is negligible in it.
"""

import json
from pathlib import Path

import arviz as az
import bambi as bmb
import numpy as np
import pandas as pd
import pytest
from helpers import HETEROGENEITY_KEYS, assert_agrees

import bambi_meta as bmm

DATA = Path(__file__).parents[1] / "data"
CASES = [
    (path.name.removesuffix(".exact.json"), block)
    for path in sorted(DATA.glob("dat.*.exact.json"))
    for block in json.loads(path.read_text())["models"]
]
DRAWS, CHAINS = 25_000, 4


def reference(dataset: str, block: str) -> dict:
    return json.loads((DATA / f"{dataset}.exact.json").read_text())["models"][block]


def model_of(dataset: str, block: str) -> bmm.MetaModel:
    """The reference's model: 'yi ~ x, cluster = g' -> 'yi | se(vi) ~ 1 + x + (1|g)'."""
    spec = reference(dataset, block)["model"]
    rhs = spec["formula"].split("~")[1].split(",")[0].strip()
    formula = f"yi | se(vi) ~ {'1' if rhs == '1' else '1 + ' + rhs}"
    if spec.get("cluster"):
        formula += f" + (1|{spec['cluster']})"
    data = bmm.load_dataset(dataset)
    return bmm.MetaModel(formula, data, measure=spec["measure"], dropna=False)


def json_name(column: str) -> str:
    return "intercept" if column == "Intercept" else column


@pytest.mark.slow  # 4 x 25,000 draws for each of 12 models
@pytest.mark.parametrize(("dataset", "block"), CASES)
def test_exact_draws_match_the_reference(dataset, block):
    model, exact = model_of(dataset, block), reference(dataset, block)
    idata = model.fit(draws=DRAWS, chains=CHAINS, random_seed=20261206)
    assert idata.posterior.attrs["engine"] == "exact"
    coefficients = bmm.coefficient_draws(model, idata.posterior)["mu"]
    draws = {json_name(name): values for name, values in coefficients.items()}
    expected = {name: exact["coefficients"][name] for name in draws}
    heterogeneity = bmm.heterogeneity_posterior(model, idata)
    for name, values in heterogeneity.items():
        draws[name] = values
        expected[name] = exact["heterogeneity"][HETEROGENEITY_KEYS[name]]
    assert_agrees(draws, expected)
    # the quadrature's own log p(y) is the reference's (both converge below 1e-9)
    log_ml = idata.posterior.attrs["log_marginal_likelihood"]
    assert log_ml == pytest.approx(exact["log_marginal_likelihood"], abs=1e-8)


@pytest.mark.parametrize("dataset", ["dat.konstantopoulos2011", "dat.assink2016"])
def test_exact_cluster_and_true_effects_match_the_reference(dataset):
    model, exact = model_of(dataset, "intercept_only"), reference(dataset, "intercept_only")
    idata = model.fit(draws=5000, chains=4, random_seed=3)
    table = bmm.cluster_effects(model, idata, random_seed=4).table
    for row in exact["cluster_effects"]:
        label = type(table.index[0])(row["cluster"])
        # Rao-Blackwellised means and SDs: MC error ~ posterior SD / sqrt(20,000) / 3
        assert table.loc[label, "Mean"] == pytest.approx(row["mean"], abs=0.01)
        assert table.loc[label, "SD"] == pytest.approx(row["sd"], rel=0.02)


def test_default_engine_is_exact_where_it_can_be_and_mcmc_otherwise(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + year + (1|district)", konstantopoulos, measure="SMD")
    assert model.fit(draws=10, random_seed=1).posterior.attrs["engine"] == "exact"
    scale = bmm.MetaModel(
        bmb.Formula("yi | se(vi) ~ 1 + (1|district)", "tau ~ year"), konstantopoulos, measure="SMD"
    )
    with pytest.raises(ValueError, match=r"'tau ~ year'.*MCMC handles it.*nutpie"):
        scale.fit(inference_method="exact")
    heavy = bmm.MetaModel(
        "yi | se(vi) ~ 1 + (1|district)",
        konstantopoulos,
        measure="SMD",
        priors={"mu": bmb.Prior("StudentT", nu=3, mu=0, sigma=1)},
    )
    with pytest.raises(ValueError, match=r"prior on 'Intercept' is StudentT.*Normal \(or flat\)"):
        heavy.fit(inference_method="exact")


def test_any_proper_prior_on_tau_and_rho(konstantopoulos):
    priors = {
        "tau": bmb.Prior("HalfCauchy", beta=0.5),
        "rho": bmb.Prior("Uniform", lower=0.0, upper=1.0),
    }
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", konstantopoulos, "SMD", priors)
    idata = model.fit(draws=4000, random_seed=5)
    assert idata.posterior.attrs["engine"] == "exact"
    # a HalfCauchy(0.5) tau prior is wider than HalfNormal(0.35): tau's posterior moves up a bit
    default = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", konstantopoulos, "SMD")
    tau_default = float(default.fit(draws=4000, random_seed=5).posterior["tau"].mean())
    assert float(idata.posterior["tau"].mean()) > tau_default


def test_same_seed_same_draws_and_sampler_settings_ignored(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", konstantopoulos, measure="SMD")
    first = model.fit(draws=200, random_seed=11)
    again = model.fit(draws=200, random_seed=11, tune=5, target_accept=0.99, cores=2)
    np.testing.assert_array_equal(first.posterior["tau"], again.posterior["tau"])
    generator = model.fit(draws=200, random_seed=np.random.default_rng(11))
    assert generator.posterior["tau"].shape == (4, 200)
    with pytest.raises(TypeError, match="'step', which the exact engine does not take"):
        model.fit(step="NUTS")


def test_summary_says_exact_and_reports_independent_draws(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", konstantopoulos, measure="SMD")
    idata = model.fit(draws=1000, chains=4, random_seed=2)
    table = bmm.summary(model, idata)
    assert "Exact posterior: 4 x 1000 independent draws" in repr(table)
    assert (table["ESS"] == 4000).all()
    sd = idata.posterior["tau"].std(ddof=1)
    assert table.loc["tau", "MCSE"] == pytest.approx(float(sd) / np.sqrt(4000), rel=1e-12)
    assert not idata.sample_stats["diverging"].any()


def test_every_helper_works_on_exact_draws(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + year + (1|district)", konstantopoulos, measure="SMD")
    idata = model.fit(draws=500, random_seed=3, idata_kwargs={"log_likelihood": True})
    assert np.isfinite(az.loo(idata).elpd)
    assert list(bmm.summary_heterogeneity(model, idata).index)[:2] == ["tau", "rho"]
    assert len(bmm.true_effects(model, idata, random_seed=1).table) == 56
    new = pd.DataFrame({"year": [1990.0, 2000.0], "district": [11, 71], "vi": [0.01, 0.02]})
    predicted = model.predict(idata, kind="response", data=new, inplace=False, random_seed=1)
    assert predicted.posterior_predictive["yi"].shape == (4, 500, 2)
    intervals = bmm.prediction_intervals(model, idata, new, random_seed=1)
    assert (intervals["PI lower"] < intervals["CI lower"]).all()
    summary = bmb.interpret.predictions(model, idata, conditional={"district": [11, 71]}).summary
    assert summary["estimate"].iloc[1] > summary["estimate"].iloc[0]
    assert az.summary(idata, var_names=["Intercept", "year"]).shape[0] == 2
