"""REML/ML companion (bambi_meta.results.frequentist) against metafor 3.8 reference fits.

Tolerances
----------
* ``RTOL = 1e-4`` for estimates, SEs, variance components, log-likelihoods, fit statistics, Q, I2
  and predictions. metafor's rma.mv optimiser (nlminb, rel.tol 1e-10) and rma.uni's Fisher
  scoring (stopping once tau2 changes by < 1e-5, i.e. up to ~1e-5 relative here) agree with our
  optimum only to that order: e.g. the ``~ 1 | cluster/estimate`` and the equivalent ``struct =
  "CS"`` fits of the same data already differ by ~1e-6 relative inside the JSONs.
* ``ATOL_VAR = 1e-6`` for quantities that are ~0: metafor optimises log(sigma2), so a component
  at the boundary is reported as ~1e-10 where we return exactly 0 (and I2 shares as ~1e-7 %).
* Profile-likelihood (and Q-profile) bounds: metafor's ``confint`` solves for them with
  ``uniroot(..., tol = .Machine$double.eps^0.25)``, an *absolute* tolerance of 1.22e-4 on the
  parameter scale, so its bounds are only that precise (e.g. its lower bound of sigma^2.1 for
  dat.bornmann2007 has a likelihood-ratio statistic of 3.818 instead of 3.841). We compare with
  that absolute tolerance and separately check that our bounds hit the chi^2 cut-off to 1e-6.
"""

from __future__ import annotations

import dataclasses
import json
import re
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from bambi_meta.datasets import load_dataset
from bambi_meta.results.frequentist import FrequentistFit, fit_frequentist, lrt
from bambi_meta.stats import reml as _profile

DATA = Path(__file__).parents[1] / "data"
RTOL = 1e-4
ATOL_VAR = 1e-6
UNIROOT_TOL = np.finfo(float).eps ** 0.25
CRIT = scipy.stats.chi2.ppf(0.95, 1)

# data set -> (cluster column, moderator of the metareg_nested_REML block)
DATASETS = {
    "dat.konstantopoulos2011": ("district", "year_c"),
    "dat.bcg": ("alloc", "ablat"),
    "dat.assink2016": ("study", "deltype"),
    "dat.bornmann2007": ("study", "type"),
}
BLOCKS = ["nested_REML", "nested_ML", "cs_REML", "uni_REML", "metareg_nested_REML"]
CASES = [(name, block) for name in DATASETS for block in BLOCKS]
MULTILEVEL = [c for c in CASES if c[1] != "uni_REML"]
NESTED = [c for c in CASES if c[1] in ("nested_REML", "nested_ML", "metareg_nested_REML")]


@cache
def reference(name: str) -> dict:
    return json.loads((DATA / f"{name}.metafor.json").read_text())


def design(name: str) -> pd.DataFrame:
    """Intercept + moderator as metafor built it (treatment coding, alphabetical reference)."""
    df = load_dataset(name)
    mod = DATASETS[name][1]
    if mod == "year_c":  # year centred over all rows (see the JSON's moderator_note)
        cols = pd.DataFrame({"year_c": df["year"] - df["year"].mean()})
    elif not pd.api.types.is_numeric_dtype(df[mod]):
        cols = pd.get_dummies(df[mod], prefix=mod, prefix_sep="", drop_first=True, dtype=float)
    else:
        cols = df[[mod]].astype(float)
    return pd.concat([pd.DataFrame({"intrcpt": np.ones(len(df))}), cols], axis=1)


@cache
def fit(name: str, block: str) -> FrequentistFit:
    df = load_dataset(name)
    cluster = None if block == "uni_REML" else df[DATASETS[name][0]]
    return fit_frequentist(
        df["yi"],
        df["vi"],
        X=design(name) if block.startswith("metareg") else None,
        cluster=cluster,
        method="ML" if block.endswith("_ML") else "REML",
        struct="CS" if block.startswith("cs") else "nested",
    )


def close(actual, expected, rtol=RTOL, atol=0.0):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


# --------------------------------------------------------------------------------------------
# metafor reference values


@pytest.mark.parametrize(("name", "block"), CASES)
def test_coefficients(name, block):
    ref, res = reference(name)[block], fit(name, block)
    assert (res.k, res.p) == (ref["k"], ref.get("p", 1))
    if "coefficients" in ref:
        coef = pd.DataFrame(ref["coefficients"]).set_index("term")
    else:  # rma.uni block: scalars
        coef = pd.DataFrame(
            {"estimate": ref["estimate"], "se": ref["se"], "zval": ref["zval"],
             "pval": ref["pval"], "ci_lb": ref["ci"][0], "ci_ub": ref["ci"][1]},
            index=["intrcpt"],
        )  # fmt: skip
    ours = res.coefficients
    assert list(ours.index) == list(coef.index)
    for mine, theirs in [("estimate", "estimate"), ("se", "se"), ("z", "zval"), ("p", "pval"),
                         ("ci_lower", "ci_lb"), ("ci_upper", "ci_ub")]:  # fmt: skip
        close(ours[mine], coef[theirs])
    close(np.sqrt(np.diag(res.vcov)), coef["se"])


@pytest.mark.parametrize(("name", "block"), CASES)
def test_variance_components(name, block):
    ref, res = reference(name)[block], fit(name, block)
    if block == "uni_REML":
        close(res.tau2, ref["tau2"])
        close(res.tau, ref["tau"])
        assert res.rho is None and res.sigma2_cluster is None
        return
    if block == "cs_REML":
        close(res.tau2, ref["tau2"])
        close(res.tau, ref["tau"])
        close(res.rho, ref["rho"])
        comps = ref["implied_components"]
    else:
        comps = ref["sigma2"]
        if "tau2_total" in ref:
            close(res.tau2, ref["tau2_total"], atol=ATOL_VAR)
            close(res.rho, ref["rho_implied"], atol=ATOL_VAR)
    close(res.sigma2_cluster, comps["sigma2_cluster"], atol=ATOL_VAR)
    close(res.sigma2_estimate, comps["sigma2_estimate"], atol=ATOL_VAR)
    close(res.tau2, res.sigma2_cluster + res.sigma2_estimate, rtol=1e-12)


@pytest.mark.parametrize(("name", "block"), CASES)
def test_fit_statistics(name, block):
    ref, res = reference(name)[block]["fitstats"], fit(name, block)
    close(res.loglik, ref["logLik"])
    close(res.deviance, ref["deviance"])
    close(res.AIC, ref["AIC"])
    close(res.BIC, ref["BIC"])
    close(res.AICc, ref["AICc"])


@pytest.mark.parametrize(("name", "block"), CASES)
def test_heterogeneity(name, block):
    ref, res = reference(name)[block], fit(name, block)
    q = ref["QE"] if "QE" in ref and isinstance(ref["QE"], dict) else ref["Q"]
    close(res.QE, q["QE"], rtol=1e-10)
    assert res.QE_df == q["df"]
    close(res.QEp, q["QEp"], rtol=1e-6)
    if "QM" in ref:
        close(res.QM, ref["QM"]["QM"])
        assert res.QM_df == ref["QM"]["df"]
        close(res.QMp, ref["QM"]["QMp"])
    else:
        assert res.QM is None
    if block == "uni_REML":
        close(res.I2, ref["I2"])
        close(res.H2, ref["H2"])
        return
    i2 = ref.get("I2_multilevel_implied_components", ref["I2_multilevel"])
    close(res.typical_v, i2["typical_sampling_variance"], rtol=1e-10)
    close(res.I2, i2["I2_total"])
    for comp, value in i2["I2_by_component"].items():
        close(res.I2_components[comp], value, atol=ATOL_VAR)


@pytest.mark.parametrize(
    ("name", "block"), [c for c in CASES if "predict" in reference(c[0])[c[1]]]
)
def test_predict(name, block):
    ref, pred = reference(name)[block]["predict"], fit(name, block).predict()
    assert pred.shape[0] == 1
    for col in ("pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub"):
        close(pred[col].iloc[0], ref[col])


@pytest.mark.parametrize(("name", "block"), MULTILEVEL)
def test_profile_ci(name, block):
    ref, res = reference(name)[block]["profile_ci"], fit(name, block)
    assert ref["level"] == res.level
    if block == "cs_REML":
        pairs = {"tau2": "tau^2", "rho": "rho"}
    else:
        pairs = {"sigma2_cluster": "sigma^2.1", "sigma2_estimate": "sigma^2.2"}
    for ours, theirs in pairs.items():
        expected = ref["intervals"][theirs]
        close(res._estimates()[ours], expected["estimate"], atol=ATOL_VAR)
        close(res.profile_ci(ours), [expected["ci_lb"], expected["ci_ub"]], atol=UNIROOT_TOL)


@pytest.mark.parametrize("name", DATASETS)
def test_q_profile_ci(name):
    ref, res = reference(name)["uni_REML"]["confint"]["intervals"], fit(name, "uni_REML")
    lower, upper = res.q_profile_ci()
    close([lower, upper], [ref["tau^2"]["ci_lb"], ref["tau^2"]["ci_ub"]], atol=UNIROOT_TOL)
    df = res.k - res.p  # the generalised Q statistic hits the chi^2 quantiles exactly
    q_at = [_profile.evaluate(res.data, t, 0.0, reml=False).rss for t in (lower, upper)]
    close(q_at, scipy.stats.chi2.isf([0.025, 0.975], df), rtol=1e-8)


# --------------------------------------------------------------------------------------------
# profile intervals: cut-off, boundaries, tau, CS with negative rho


@pytest.mark.parametrize(
    ("name", "block", "parameter"),
    [("dat.bornmann2007", "nested_REML", "sigma2_cluster"), ("dat.assink2016", "cs_REML", "rho"),
     ("dat.bcg", "cs_REML", "rho"), ("dat.bcg", "nested_ML", "sigma2_estimate"),
     ("dat.konstantopoulos2011", "uni_REML", "tau2")],
)  # fmt: skip
def test_profile_bounds_hit_the_cutoff(name, block, parameter):
    res = fit(name, block)
    reml = "REML" in block
    for bound in res.profile_ci(parameter):
        _, ev = _profile.profile_fit(res.data, reml, res.struct, parameter, bound)
        close(2 * (res.loglik - ev.loglik), CRIT, rtol=1e-6)


def test_cs_profile_reaches_negative_rho():
    # dat.bcg: rho-hat = 0.04 and the lower bound -0.256 lies beyond -1/(n_max - 1) = -1/6,
    # where only the sampling variances keep V positive definite (as metafor allows)
    lower, upper = fit("dat.bcg", "cs_REML").profile_ci("rho")
    assert lower < -1 / 6 < 0 < upper < 1


def test_tau_interval_is_sqrt_of_tau2_interval():
    res = fit("dat.bcg", "uni_REML")
    close(res.profile_ci("tau"), np.sqrt(res.profile_ci("tau2")), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# boundary estimates


@pytest.mark.parametrize("block", ["nested_ML", "metareg_nested_REML"])
def test_boundary_component_bcg(block):
    # metafor reports sigma2_cluster ~ 1e-10 (it optimises log sigma2); our box-constrained
    # optimum is exactly 0 and the fit then coincides with the single-level model
    ref, res = reference("dat.bcg")[block], fit("dat.bcg", block)
    assert ref["sigma2"]["sigma2_cluster"] < 1e-9
    assert res.sigma2_cluster == 0.0 and res.rho == 0.0
    close(res.loglik, ref["fitstats"]["logLik"], rtol=1e-9)
    df = load_dataset("dat.bcg")
    single = fit_frequentist(df["yi"], df["vi"], X=res.data.X, method=res.method)
    close(single.tau2, res.sigma2_estimate, rtol=1e-8)
    close(single.loglik, res.loglik, rtol=1e-12)
    # Karush-Kuhn-Tucker: moving sigma2_cluster into the interior lowers the likelihood
    eps = 1e-6
    nudged = res.loglik_at(res.tau2 + eps, eps / (res.tau2 + eps))
    assert nudged < res.loglik
    assert res.profile_ci("sigma2_cluster")[0] == 0.0


# --------------------------------------------------------------------------------------------
# dense-matrix oracle


def dense_loglik(y, v, X, cluster, tau2, rho, reml):
    same = np.equal.outer(cluster, cluster)
    V = np.diag(v + tau2 * (1 - rho)) + tau2 * rho * same
    Vinv = np.linalg.inv(V)
    beta = np.linalg.solve(X.T @ Vinv @ X, X.T @ Vinv @ y)
    ll = scipy.stats.multivariate_normal(X @ beta, V).logpdf(y)
    if reml:
        p = X.shape[1]
        ll += 0.5 * p * np.log(2 * np.pi) + 0.5 * np.linalg.slogdet(X.T @ X)[1]
        ll -= 0.5 * np.linalg.slogdet(X.T @ Vinv @ X)[1]
    return ll, beta, np.linalg.inv(X.T @ Vinv @ X)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(1)
    cluster = np.array(["a", "b", "b", "c", "c", "c", "d", "e", "e", "e", "e"])  # sizes 1,2,3,1,4
    v = rng.uniform(0.01, 0.2, cluster.size)
    X = np.column_stack([np.ones(cluster.size), rng.normal(size=cluster.size)])
    y = 0.3 + 0.2 * X[:, 1] + rng.normal(0, np.sqrt(v + 0.1))
    return y, v, X, cluster


@pytest.mark.parametrize("method", ["ML", "REML"])
@pytest.mark.parametrize(
    ("tau2", "rho"), [(0.0, 0.0), (0.1, 0.0), (0.1, 0.5), (0.3, 1.0), (0.05, 0.9), (0.2, -0.2)]
)
def test_loglik_matches_dense_oracle(small, method, tau2, rho):
    y, v, X, cluster = small
    res = fit_frequentist(y, v, X=X, cluster=cluster, method=method, struct="CS")
    expected, beta, vcov = dense_loglik(y, v, X, cluster, tau2, rho, method == "REML")
    # Exact algebra (Sherman-Morrison vs a dense Cholesky): only float rounding separates them;
    # log-likelihoods here are O(10), so 1e-10 absolute is ~1e-11 relative, a tight bound.
    close(res.loglik_at(tau2, rho), expected, rtol=0, atol=1e-10)
    ev = _profile.evaluate(res.data, tau2 * (1 - rho), tau2 * rho, method == "REML")
    close(ev.beta, beta, rtol=1e-10)
    close(ev.vcov, vcov, rtol=1e-10)


@pytest.mark.parametrize("reml", [False, True])
def test_gradient_matches_finite_differences(small, reml):
    y, v, X, cluster = small
    data = fit_frequentist(y, v, X=X, cluster=cluster).data
    a, c, h = 0.07, 0.04, 1e-6
    grad = _profile.evaluate(data, a, c, reml).grad
    fd = [
        (_profile.evaluate(data, a + h, c, reml).loglik
         - _profile.evaluate(data, a - h, c, reml).loglik) / (2 * h),
        (_profile.evaluate(data, a, c + h, reml).loglik
         - _profile.evaluate(data, a, c - h, reml).loglik) / (2 * h),
    ]  # fmt: skip
    close(grad, fd, rtol=1e-6)


def test_fit_matches_dense_optimum(small):
    y, v, X, cluster = small
    res = fit_frequentist(y, v, X=X, cluster=cluster, method="ML")
    ll, beta, vcov = dense_loglik(y, v, X, cluster, res.tau2, res.rho, reml=False)
    close(res.loglik, ll, rtol=1e-10)
    close(res.coefficients["estimate"], beta, rtol=1e-8)
    close(res.vcov, vcov, rtol=1e-8)


@pytest.mark.parametrize("method", ["ML", "REML"])
def test_cs_negative_rho_estimate(method):
    # negative within-cluster correlation: the nested fit sits at sigma2_cluster = 0, the CS fit
    # finds rho < 0; its optimum is a stationary point of the dense log-likelihood
    rng = np.random.default_rng(5)
    cluster = np.repeat(np.arange(30), rng.integers(2, 4, 30))
    v = rng.uniform(0.01, 0.05, cluster.size)
    same = np.equal.outer(cluster, cluster)
    y = rng.multivariate_normal(np.full(cluster.size, 0.2), np.diag(v + 0.4) - 0.13 * same)
    X = np.ones((cluster.size, 1))
    cs = fit_frequentist(y, v, cluster=cluster, method=method, struct="CS")
    nested = fit_frequentist(y, v, cluster=cluster, method=method)
    assert nested.sigma2_cluster == 0.0 and -0.5 < cs.rho < 0 and cs.loglik > nested.loglik
    reml, h = method == "REML", 1e-6
    for step in ([h, 0.0], [0.0, h]):
        up = dense_loglik(y, v, X, cluster, cs.tau2 + step[0], cs.rho + step[1], reml)[0]
        down = dense_loglik(y, v, X, cluster, cs.tau2 - step[0], cs.rho - step[1], reml)[0]
        assert abs(up - down) / (2 * h) < 1e-4
    lower, upper = cs.profile_ci("rho")
    assert -1 <= lower < cs.rho < upper < 0.5


def test_zero_heterogeneity():
    y = np.array([0.10, 0.12, 0.09, 0.11, 0.10, 0.105])
    res = fit_frequentist(y, np.full(6, 0.05), cluster=[1, 1, 2, 2, 3, 3])
    assert res.tau2 == 0.0 and np.isnan(res.rho) and res.I2 == 0.0
    assert res.sigma2_cluster == 0.0 and res.sigma2_estimate == 0.0
    close(res.coefficients["estimate"].iloc[0], y.mean(), rtol=1e-12)
    assert res.profile_ci("tau2")[0] == 0.0
    with pytest.raises(ValueError, match="not identified"):
        res.profile_ci("rho")
    assert re.search(r"^tau\^2\s+0\.0000\s+0\.0000\s+0\.00", str(res), re.MULTILINE)
    assert "not identified (tau^2 = 0)" in str(res)
    assert np.isnan(res.to_frame(profile=True).loc["rho", "ci_lower"])


# --------------------------------------------------------------------------------------------
# likelihood-ratio test


def test_lrt_rho_zero_versus_free():
    df = load_dataset("dat.konstantopoulos2011")
    full = fit("dat.konstantopoulos2011", "nested_ML")
    reduced = fit_frequentist(df["yi"], df["vi"], method="ML")  # rho = 0: no cluster effect
    out = lrt(full, reduced)
    assert out["df"] == 1
    close(out["LRT"], 2 * (reference("dat.konstantopoulos2011")["nested_ML"]["fitstats"]["logLik"]
                           - reduced.loglik))  # fmt: skip
    assert np.isfinite(out["LRT"]) and out["LRT"] > 0 and 0 < out["pval"] < 0.05


def test_lrt_moderator_ml():
    name = "dat.assink2016"
    df, cluster = load_dataset(name), load_dataset(name)["study"]
    full = fit_frequentist(df["yi"], df["vi"], X=design(name), cluster=cluster, method="ML")
    reduced = fit(name, "nested_ML")
    out = lrt(full, reduced)
    assert out["df"] == 2 and out["LRT"] > 0 and 0 <= out["pval"] <= 1


def test_lrt_errors():
    name = "dat.assink2016"
    df = load_dataset(name)
    with pytest.raises(ValueError, match="REML fits with different X"):
        lrt(fit(name, "metareg_nested_REML"), fit(name, "nested_REML"))
    with pytest.raises(ValueError, match="more parameters"):
        lrt(fit(name, "uni_REML"), fit(name, "nested_REML"))
    with pytest.raises(ValueError, match="same method"):
        lrt(fit(name, "nested_ML"), fit(name, "uni_REML"))
    with pytest.raises(ValueError, match="same yi and vi"):
        lrt(fit(name, "nested_REML"), fit("dat.bcg", "uni_REML"))
    full = fit_frequentist(df["yi"], df["vi"], X=design(name), cluster=df["study"], method="ML")
    other = fit_frequentist(df["yi"], df["vi"], cluster=df["deltype"], method="ML")
    with pytest.raises(ValueError, match="clusters that differ"):
        lrt(full, other)
    with pytest.raises(ValueError, match="span of the full X"):
        X_other = np.column_stack([np.ones(len(df)), df["year"]])
        lrt(full, fit_frequentist(df["yi"], df["vi"], X=X_other, method="ML"))


# --------------------------------------------------------------------------------------------
# input validation and printing


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vi": [0.1, -0.02, 0.1, 0.1]}, r"'vi' must be finite and > 0; row 2 has -0.02"),
        ({"yi": [0.1, np.nan, 0.3, 0.2]}, r"'yi' must be finite; row 2 has nan"),
        ({"vi": [0.1, 0.1]}, r"'vi' must be a 1-D array of length 4 \(as 'yi'\)"),
        ({"yi": [[0.1, 0.2]]}, r"'yi' must be a 1-D array"),
        ({"method": "EB"}, r"'method' must be 'REML' or 'ML'"),
        ({"level": 95}, r"'level' must be a number in \(0, 1\)"),
        ({"X": np.ones((4, 2))}, r"'X' is not of full column rank"),
        ({"X": np.ones((3, 1))}, r"'X' must be 2-D with 4 rows"),
        ({"X": [[1, 0], [1, np.inf], [1, 2], [1, 3]]}, r"'X' must be finite; row 2, column 2"),
        ({"X_names": ["a", "b"]}, r"'X_names' must hold 1 distinct names"),
        ({"cluster": ["a", None, "b", "b"]}, r"'cluster' must not be missing; row 2"),
        ({"cluster": ["a", "a", "a", "a"]}, r"at least 2 distinct labels"),
        ({"cluster": ["a", "b"]}, r"'cluster' must be 1-D with 4 labels"),
        ({"struct": "UN", "cluster": ["a", "a", "b", "b"]}, r"'struct' must be 'nested' or 'CS'"),
        ({"struct": "CS"}, r"'struct' = 'CS' needs 'cluster'"),
        ({"yi": [0.1], "vi": [0.1]}, r"Need more estimates than coefficients"),
    ],
)
def test_input_errors(kwargs, message):
    args = {"yi": [0.1, 0.3, 0.2, 0.5], "vi": [0.1, 0.1, 0.2, 0.1]} | kwargs
    with pytest.raises(ValueError, match=message):
        fit_frequentist(**args)


def test_parameter_errors():
    with pytest.raises(ValueError, match="'parameter' must be one of tau2, tau for a uni fit"):
        fit("dat.bcg", "uni_REML").profile_ci("rho")
    with pytest.raises(ValueError, match="'parameter' must be one of tau2, tau, rho for a CS"):
        fit("dat.bcg", "cs_REML").profile_ci("sigma2_cluster")
    with pytest.raises(ValueError, match="single-level fit"):
        fit("dat.bcg", "nested_REML").q_profile_ci()
    with pytest.raises(ValueError, match="'X_new' must have 2 columns"):
        fit("dat.bcg", "metareg_nested_REML").predict([[1.0, 2.0, 3.0]])


def test_frozen_and_printing():
    res = fit("dat.konstantopoulos2011", "metareg_nested_REML")
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.tau2 = 1.0
    text = str(res)
    assert "REML" in text and "year_c" in text and "QM(df = 1)" in text and "56 estimates" in text
    table = res.to_frame()
    assert list(table.index) == ["intrcpt", "year_c", "tau2", "rho", "sigma2_cluster",
                                 "sigma2_estimate"]  # fmt: skip
    assert table.loc[["intrcpt", "year_c"], "se"].notna().all()
    assert table.loc["tau2", ["ci_lower", "ci_upper"]].isna().all()
    fitted = res.predict()
    assert fitted.shape == (56, 6)
    close(fitted["pred"], res.data.X @ res.coefficients["estimate"], rtol=1e-12)


def test_lrt_result_prints_and_reads_by_name():
    df = load_dataset("dat.konstantopoulos2011")
    full = fit("dat.konstantopoulos2011", "nested_ML")
    reduced = fit_frequentist(df["yi"], df["vi"], method="ML")
    test = lrt(full, reduced)
    assert test["LRT"] == test.LRT and str(test).startswith("Likelihood-ratio test: LRT = ")
