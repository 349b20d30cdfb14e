"""Trust at the edges: the same seed gives the same numbers in every process, Bambi's own calls
agree with ours, a broken compile cache costs time and never a result, every bad input is stopped
at the door with a message that names it.
"""

import os
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
from pathlib import Path

import arviz as az
import bambi as bmb
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import fake_posterior

import bambi_meta as bmm
from bambi_meta import _upstream
from bambi_meta.bambi_ext.centring import to_raw_scale
from bambi_meta.engine.fused import clustered_logp_op, kernel_cache_version

FORMULA = "yi | se(vi) ~ 1 + (1|district)"


def run_python(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the test's own), with extra environment variables."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
        check=False,
    )


# ---------------------------------------------------------------------------------------------
# 1. Same seed, same numbers, in every process
# ---------------------------------------------------------------------------------------------
REPRODUCE = """
import warnings; warnings.simplefilter("ignore")
import bambi as bmb, bambi_meta as bmm
runs = {
    "three-level": ("yi | se(vi) ~ 1 + (1|district)", "dat.konstantopoulos2011"),
    "meta-regression": ("yi | se(vi) ~ 1 + year + (1|district)", "dat.konstantopoulos2011"),
    "location-scale": (
        bmb.Formula("yi | se(vi) ~ 1 + (1|study)", "tau ~ year", "rho ~ pubstatus"),
        "dat.assink2016",
    ),
}
for name, (formula, data) in runs.items():
    model = bmm.MetaModel(formula, bmm.load_dataset(data), measure="SMD")
    idata = model.fit(
        draws=60, tune=60, chains=2, random_seed=5, progressbar=False, inference_method="nutpie"
    )
    order = [rv.name for rv in model.backend.model.free_RVs]
    tau = "tau" if "tau" in idata.posterior else "tau_Intercept"
    print(name, order, repr(float(idata.posterior[tau].mean())))
    if name != "location-scale":  # and the exact engine's independent draws
        exact = model.fit(draws=60, chains=2, random_seed=5, inference_method="exact")
        print(name, "exact", repr(float(exact.posterior["tau"].mean())))
"""


@pytest.mark.slow
def test_same_seed_same_draws_under_any_hash_seed():
    """Bambi keeps tau and rho in a set; their order (and the draws) must not follow the hash."""
    outputs = []
    for hash_seed in ("1", "2", "3"):
        result = run_python(REPRODUCE, {"PYTHONHASHSEED": hash_seed})
        assert result.returncode == 0, result.stderr[-2000:]
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == outputs[2], outputs
    assert "['tau', 'rho', 'Intercept']" in outputs[0]


def test_family_parameter_order_is_fixed(konstantopoulos):
    model = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")
    assert model.family.auxiliary_parameters == ["tau", "rho"]


# ---------------------------------------------------------------------------------------------
# 2. The compile cache: keyed on the kernel's source, self-healing when broken
# ---------------------------------------------------------------------------------------------
def test_cache_key_changes_with_the_kernel_source():
    source = Path(clustered_logp_op.__module__.replace(".", "/") + ".py")
    text = (Path(__file__).parents[1] / source).read_bytes()
    edited = text + b"\n# an edit of the kernel module\n"
    assert kernel_cache_version(text) != kernel_cache_version(edited)
    assert kernel_cache_version() == kernel_cache_version(text)
    # the version is part of the key under which PyTensor caches the compiled log-density
    import pytensor.tensor as pt

    node = clustered_logp_op.make_node(*(pt.dvector() for _ in range(8)))
    basic = _upstream.numba_dispatch()
    key = _upstream.numba_cache_key(clustered_logp_op, node)
    expected = basic.default_hash_key_from_props(
        clustered_logp_op, cache_version=str(kernel_cache_version())
    )
    stale = basic.default_hash_key_from_props(clustered_logp_op, cache_version="0")
    assert key == expected != stale


FIT_TAU = """
import warnings
warnings.simplefilter("always")
import bambi_meta as bmm
data = bmm.load_dataset("dat.konstantopoulos2011")
model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", data, measure="SMD")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    idata = model.fit(
        draws=50, tune=50, chains=1, random_seed=3, progressbar=False, inference_method="nutpie"
    )
messages = [str(w.message) for w in caught if type(w.message).__name__ == "CompileCacheWarning"]
print(len(messages))
print(repr(float(idata.posterior["tau"].mean())))
print(*messages)
"""


@pytest.mark.slow
def test_corrupted_cache_falls_back_to_a_private_one(tmp_path):
    env = {"PYTENSOR_FLAGS": f"base_compiledir={tmp_path}"}
    warm = run_python(FIT_TAU, env)
    assert warm.returncode == 0, warm.stderr[-2000:]
    assert warm.stdout.splitlines()[0] == "0"
    files = list((tmp_path / "numba").glob("*.nb[ci]"))
    assert files
    for path in files:  # truncated object files and garbled indexes
        path.write_bytes(path.read_bytes()[:50] if path.suffix == ".nbc" else b"garbage\n")
    broken = run_python(FIT_TAU, env)
    assert broken.returncode == 0, broken.stderr[-2000:]
    count, tau, message = broken.stdout.splitlines()
    assert count == "1"  # one warning, saying how to clear the cache
    assert f"rm -r {tmp_path / 'numba'}" in message
    assert tau == warm.stdout.splitlines()[1]  # and the same numbers


@pytest.mark.slow
def test_unwritable_cache_directory_does_not_break_import_or_fit():
    # /proc cannot hold directories: the cache cannot be created there, even as root
    result = run_python(FIT_TAU, {"PYTENSOR_FLAGS": "base_compiledir=/proc/no-such/dir"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines()[0] == "1"


# ---------------------------------------------------------------------------------------------
# 3. Bambi's own calls agree with ours
# ---------------------------------------------------------------------------------------------
def test_arviz_summary_reports_the_raw_scale_intercept(bcg_ablat_fit):
    model, idata = bcg_ablat_fit
    ours = bmm.summary(model, idata)
    theirs = az.summary(idata, var_names=["Intercept", "ablat", "tau"], kind="stats")
    for name in ("Intercept", "ablat", "tau"):
        assert float(theirs.loc[name, "mean"]) == pytest.approx(ours.loc[name, "Mean"], rel=1e-4)
    # the raw-scale intercept of metafor's ~ ablat: 0.25 (exact posterior mean 0.206)
    assert 0.0 < ours.loc["Intercept", "Mean"] < 0.5


def test_log_likelihood_by_any_column_lets_az_compare_rank_both_models(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    two_level = bmm.MetaModel("yi | se(vi) ~ 1", model.data, measure="SMD")
    # a stand-in posterior of the two-level model, of the same shape
    posterior = idata.posterior.to_dataset()[["Intercept", "tau"]]
    other = xr.DataTree.from_dict({"posterior": posterior})
    by_district = two_level.compute_log_likelihood(other, inplace=False, unit="district")
    by_cluster = model.compute_log_likelihood(idata, inplace=False)
    assert by_district.log_likelihood["yi"].dims == by_cluster.log_likelihood["yi"].dims
    assert len(az.compare({"three": by_cluster, "two": by_district})) == 2
    # grouping a model without clusters adds up independent rows
    by_row = two_level.compute_log_likelihood(other, inplace=False, unit="estimate")
    summed = (
        by_row.log_likelihood["yi"]
        .groupby(xr.DataArray(model.data["district"].to_numpy(), dims="__obs__"))
        .sum()
    )
    np.testing.assert_allclose(
        summed.transpose("chain", "draw", ...).to_numpy(),
        by_district.log_likelihood["yi"].to_numpy(),
        rtol=1e-12,  # the same sums in another order: rounding only
    )
    with pytest.raises(ValueError, match="unit='cluster': this model has no cluster level"):
        two_level.compute_log_likelihood(other, unit="cluster")
    with pytest.raises(ValueError, match="'unit' must be 'cluster', 'estimate' or a column"):
        model.compute_log_likelihood(idata, unit="region")


def test_priors_by_the_names_the_summary_uses(konstantopoulos):
    wide = bmb.Prior("Normal", mu=0.0, sigma=3.0)
    model = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD", priors={"mu": wide})
    assert model.parameters["mu"].intercept_term.prior.args["sigma"] == 3.0
    model = bmm.MetaModel("yi | se(vi) ~ 1 + year + (1|district)", konstantopoulos, measure="SMD")
    model.set_priors({"year": wide})
    assert model.parameters["mu"].common_terms["center(year)"].prior.args["sigma"] == 3.0


@pytest.mark.parametrize(
    ("method", "message"),
    [
        ("laplace", "needs second derivatives"),
        ("numpyro", "JAX"),
        ("blackjax", "JAX"),
        ("mcmc", "'inference_method' must be one of 'exact', 'nutpie', 'pymc', 'vi'"),
    ],
)
def test_inference_methods_that_cannot_work_are_refused_up_front(konstantopoulos, method, message):
    model = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")
    with pytest.raises(ValueError, match=message):
        model.fit(inference_method=method)


def test_formulae_transforms_of_moderators(konstantopoulos):
    shifted = bmm.MetaModel(
        "yi | se(vi) ~ 1 + I(year - 1990) + (1|district)", konstantopoulos, measure="SMD"
    )
    plain = bmm.MetaModel("yi | se(vi) ~ 1 + year + (1|district)", konstantopoulos, measure="SMD")
    # a numeric transform is centred like a bare column: the same sampled design
    np.testing.assert_allclose(
        shifted.parameters["mu"].design.common.design_matrix,
        plain.parameters["mu"].design.common.design_matrix,
        atol=1e-12,  # year - 1990 - mean(year - 1990) == year - mean(year) up to rounding
    )
    assert "I(year - 1990)" in str(shifted)
    split = bmm.MetaModel("yi | se(vi) ~ 1 + C(year > 1990)", konstantopoulos, measure="SMD")
    assert list(split.parameters["mu"].terms) == ["Intercept", "C(year > 1990)"]


# ---------------------------------------------------------------------------------------------
# 4. Units
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "formula", ["yi | se(sqrt(vi)) ~ 1", "yi | se(sei) ~ 1", "yi | se(se_g) ~ 1", "yi | se(sd) ~ 1"]
)
def test_likely_standard_errors_need_an_explicit_sd(konstantopoulos, formula):
    data = konstantopoulos.assign(sei=1.0, se_g=1.0, sd=1.0)
    with pytest.raises(ValueError, match=r"se\(\) reads VARIANCES.*sd=True.*sd=False"):
        bmm.MetaModel(formula, data, measure="SMD")
    explicit = formula.replace(") ~", ", sd=True) ~")
    assert bmm.MetaModel(explicit, data, measure="SMD").meta_formula.uncertainty_is_sd


def test_prior_data_conflict_is_reported(konstantopoulos):
    raw_scores = konstantopoulos.assign(yi=5000 + 100 * konstantopoulos["yi"])
    with pytest.warns(bmm.PriorDataConflictWarning, match="measure='GEN'"):
        bmm.MetaModel(FORMULA, raw_scores, measure="SMD")
    with warnings.catch_warnings():
        warnings.simplefilter("error", bmm.PriorDataConflictWarning)
        bmm.MetaModel(FORMULA, raw_scores, measure="GEN", uisd=2000.0)
        bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")


# ---------------------------------------------------------------------------------------------
# 5. Sampler arguments
# ---------------------------------------------------------------------------------------------
# Every sampler argument with the error it gets (fit() and a refitter check the same way).
SAMPLER_ARGUMENT_ERRORS = [
    ({"cores": 0}, "'cores' must be an integer >= 1; got 0"),
    ({"tune": 0}, "'tune' must be an integer >= 1; got 0"),
    ({"draws": 0}, "'draws' must be an integer >= 1; got 0"),
    ({"chains": 0}, "'chains' must be an integer >= 1; got 0"),
    ({"draws": 2.5}, "'draws' must be an integer"),
    (
        {"random_seed": -1},
        r"'random_seed' must be an integer between 0 and 18446744073709551615",
    ),
    ({"random_seed": 2**64}, "'random_seed' must be an integer between 0"),
    ({"random_seed": "1"}, "'random_seed' must be an integer"),
    ({"target_accept": 1.5}, r"'target_accept' must be a number in \(0, 1\) .*; got 1.5"),
    ({"nuts": {"target_accept": 0}}, "strictly between 0 and 1"),
    ({"nuts": {"max_treedepth": 0}}, "'max_treedepth' must be an integer between 1 and 30"),
]


@pytest.mark.parametrize(("arguments", "message"), SAMPLER_ARGUMENT_ERRORS)
def test_every_sampler_argument_is_checked(konstantopoulos, arguments, message):
    model = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")
    with pytest.raises((ValueError, TypeError), match=message):
        model.fit(inference_method="nutpie", **arguments)
    if "tune" not in arguments:  # tune means nothing for independent draws (tune=0 is fine)
        with pytest.raises((ValueError, TypeError), match=message):
            model.fit(**arguments)


@pytest.fixture(scope="module")
def refitter(konstantopoulos):
    return bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD").refitter()


@pytest.mark.slow  # the refitter compiles the model
@pytest.mark.parametrize(("arguments", "message"), SAMPLER_ARGUMENT_ERRORS)
def test_every_refit_argument_is_checked(refitter, arguments, message):
    with pytest.raises((ValueError, TypeError), match=message):
        refitter.fit(**arguments)


@pytest.mark.slow
def test_a_generator_seeds_the_default_sampler(konstantopoulos):
    model = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")
    settings = {"draws": 30, "tune": 30, "chains": 1, "progressbar": False}
    first = model.fit(random_seed=np.random.default_rng(7), **settings)
    second = model.fit(random_seed=np.random.default_rng(7), **settings)
    np.testing.assert_array_equal(first.posterior["tau"], second.posterior["tau"])
    assert model.fit(random_seed=2**64 - 1, **settings).posterior.sizes["draw"] == 30


# ---------------------------------------------------------------------------------------------
# 6. New data
# ---------------------------------------------------------------------------------------------
def test_cluster_labels_are_matched_across_types_and_unknown_ones_reported(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    as_text = pd.DataFrame({"district": ["71", "11"]})
    as_numbers = pd.DataFrame({"district": [71, 11]})
    seeded = {"inplace": False, "random_seed": 1}
    text = model.predict(idata, data=as_text, **seeded).posterior["mu"]
    numbers = model.predict(idata, data=as_numbers, **seeded).posterior["mu"]
    np.testing.assert_array_equal(text, numbers)
    with pytest.warns(UserWarning, match=r"match no fitted district: row 2 \('1234'\).*NEW"):
        model.predict(idata, data=pd.DataFrame({"district": ["71", "1234"]}), inplace=False)


def test_new_moderator_values_are_checked(konstantopoulos_year_fit):
    model, idata = konstantopoulos_year_fit
    with pytest.raises(ValueError, match="must give the location moderators 'year'.*lacks 'year'"):
        model.predict(idata, data=pd.DataFrame({"district": [11]}), inplace=False)
    with pytest.raises(
        ValueError, match=r"'data' column 'year' must have a value on every row; row 2"
    ):
        model.predict(idata, data=pd.DataFrame({"year": [1990.0, np.nan]}), inplace=False)
    with pytest.raises(ValueError, match="must give the location moderators"):
        bmm.prediction_intervals(model, idata, pd.DataFrame({"x": [1.0]}))


def test_out_of_domain_transforms_in_new_data_name_the_row(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + log(year)", konstantopoulos, measure="SMD")
    idata = xr.DataTree.from_dict({"posterior": to_raw_scale(model, fake_posterior(model))})
    with pytest.raises(ValueError, match=r"not finite on row 2 of 'data' \(e.g. log of a value"):
        model.predict(idata, data=pd.DataFrame({"year": [1990.0, -1.0]}), inplace=False)


def _mixed_labels(data):
    return data.assign(district=data["district"].astype(object).where(data.index % 2 == 0, "x"))


@pytest.mark.parametrize(
    ("change", "formula", "error", "message"),
    [
        (_mixed_labels, FORMULA, ValueError, "mixes kinds of values"),
        (lambda d: pd.concat([d, d[["year"]]], axis=1), "yi | se(vi) ~ 1 + year", ValueError,
         "duplicate column names 'year'"),
        (lambda d: d.assign(yi=pd.Timestamp("2020-01-01")), FORMULA, TypeError,
         "must be numeric; it has dtype datetime64"),
        (lambda d: d.assign(yi=d["yi"] + 1j), FORMULA, TypeError,
         "must be numeric; it has dtype complex128"),
        (lambda d: d.assign(tau=d["year"]), "yi | se(vi) ~ 1 + tau", ValueError,
         "name of a parameter of the model"),
        (lambda d: d, "yi | se(vi) ~ 0", ValueError, "leaves nothing to estimate"),
        (lambda d: d, "yi | se(vi) ~", ValueError, "right-hand side is empty"),
    ],
)  # fmt: skip
def test_bad_data_and_formulas_fail_at_construction(
    konstantopoulos, change, formula, error, message
):
    with pytest.raises(error, match=message):
        bmm.MetaModel(formula, change(konstantopoulos), measure="SMD")


def test_negative_tau_is_refused(konstantopoulos):
    with pytest.raises(ValueError, match=r"priors=\{'tau': ...\} must be a bambi.Prior or a fixed"):
        bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD", priors={"tau": -1})


# ---------------------------------------------------------------------------------------------
# 7. Identifiability
# ---------------------------------------------------------------------------------------------
def test_all_singleton_clusters_warn_and_reml_reports_no_rho(konstantopoulos):
    data = konstantopoulos.assign(own=np.arange(len(konstantopoulos)))
    with pytest.warns(UserWarning, match="rho is not identified"):
        model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|own)", data, measure="SMD")
    with pytest.warns(UserWarning, match="rho .* is not identified and is reported as NaN"):
        fit = model.fit_frequentist("REML")
    single = bmm.MetaModel("yi | se(vi) ~ 1", data, measure="SMD").fit_frequentist("REML")
    assert np.isnan(fit.rho) and np.isnan(fit.sigma2_cluster)
    assert fit.tau2 == pytest.approx(single.tau2, rel=1e-6)  # tau2 is identified: rma.uni's
    with pytest.raises(ValueError, match="not identified"):
        fit.profile_ci("rho")


def test_one_chain_warns_that_rhat_cannot_be_computed(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    # an MCMC posterior of one chain (the exact engine's independent draws need no R-hat)
    posterior = idata.posterior.to_dataset().isel(chain=[0])
    posterior.attrs = {"engine": "nutpie"}
    one_chain = xr.DataTree.from_dict({"posterior": posterior})
    with pytest.warns(bmm.ConvergenceWarning, match="R-hat cannot be computed from a single chain"):
        bmm.summary(model, one_chain)


# ---------------------------------------------------------------------------------------------
# 8. Memory: effects are computed in blocks of draws
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow  # k = 40,000 rows x 1,000 draws
def test_cluster_effects_do_not_hold_draws_by_rows(tmp_path):
    rng = np.random.default_rng(1)
    k, clusters = 40_000, 400
    data = pd.DataFrame(
        {
            "yi": rng.normal(0.2, 0.3, k),
            "vi": rng.uniform(0.01, 0.05, k),
            "study": np.repeat(np.arange(clusters), k // clusters),
        }
    )
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|study)", data, measure="SMD")
    posterior = to_raw_scale(model, fake_posterior(model, chains=2, draws=500))
    idata = xr.DataTree.from_dict({"posterior": posterior})
    tracemalloc.start()
    effects = bmm.cluster_effects(model, idata, random_seed=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert effects.draws.shape == (2, 500, clusters)
    # One draws x rows array would be 1,000 x 40,000 x 8 bytes = 320 MB (and the per-draw
    # algebra needs about ten of them); in blocks of draws (2**20 values, 8 MB per temporary)
    # the peak does not grow with the number of draws.
    assert peak < 160e6


# ---------------------------------------------------------------------------------------------
# 9. Formula errors are ours
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("yi | se(vi ~ 1", r"parenthesis\(es\) '\(' are not closed"),
        ("yi | se(vi) ~ 1 + (1|district", r"parenthesis\(es\) '\(' are not closed"),
        ("yi | se(vi)) ~ 1", r"the '\)' at character 12 closes no open parenthesis"),
        ("_yi | se(vi) ~ 1", "names starting with '_'"),
        ("yi | se(vi) ~ 1 + year district", "no operator between 'year' and 'district'"),
        ("yi | se(vi) ~ 1 + year +", "Cannot read the formula"),
    ],
)
def test_formula_errors_quote_the_formula(konstantopoulos, formula, message):
    with pytest.raises(ValueError, match=message):
        bmm.MetaModel(formula, konstantopoulos, measure="SMD")


def test_expressions_in_se_are_evaluated(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi + 0.01) ~ 1", konstantopoulos, measure="SMD")
    np.testing.assert_allclose(model.meta_data().variances, konstantopoulos["vi"] + 0.01)


# ---------------------------------------------------------------------------------------------
# 10. No pandas deprecation on the way to a new cluster
# ---------------------------------------------------------------------------------------------
def test_new_cluster_prediction_raises_no_pandas_deprecation(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*match no fitted")
        model.predict(idata, data=pd.DataFrame({"district": [10_000]}), inplace=False)
