"""Exact log marginal likelihood by quadrature and Bayes factors (pure numpy / scipy).

References: tests/data/dat.*.exact.json (copies of shared/data, written by the project's
reference/exact_posterior.py: the same model, a 201-301 node sinh-mapped trapezoid grid, beta
integrated analytically). Their own check: log ml on the half grid differs by <= 2e-14.
"""

import json
import math
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from bambi_meta.datasets import load_dataset
from bambi_meta.engine.exact.evidence import (
    BayesFactor,
    LogMarginalLikelihood,
    bayes_factor,
    conditional_log_density,
    log_marginal_likelihood,
    savage_dickey,
    standard_bayes_factors,
)

DATA = Path(__file__).parents[1] / "data"
EXACT_FILES = sorted(DATA.glob("dat.*.exact.json"))
CASES = [
    (path.name, name) for path in EXACT_FILES for name in json.loads(path.read_text())["models"]
]

# Both quadratures report half-grid changes of log p(y) below 1e-9 (ours: tol=1e-9; the
# reference: <= 2e-14), and halving the step roughly squares the trapezoid rule's relative error
# here, so the true errors are far smaller. 1e-8 keeps a 10x margin over the larger estimate
# and is 100x tighter than the 1e-6 the package promises.
LOGML_TOL = 1e-8
# Posterior moments are integrals of the same smooth integrand on the same kind of grid and
# converge like log p(y); the reference's 3e-5 half-grid spread is for interpolated quantiles.
MOMENT_TOL = 1e-8


@cache
def reference(file: str) -> dict:
    return json.loads((DATA / file).read_text())


@cache
def dataset(name: str) -> pd.DataFrame:
    return load_dataset(name)


def design(df: pd.DataFrame, model: dict) -> np.ndarray:
    """Design on the scale the reference priors act on: continuous (x - mean)/sd, dummies."""
    cols = [np.ones(len(df))]
    for name, spec in model["moderators"].items():
        if spec["type"] == "continuous":
            # the reference standardises with the sample sd (ddof=1); check, do not assume
            assert spec["sd"] == pytest.approx(df[name].std(ddof=1), rel=1e-12)
            cols.append(((df[name] - spec["mean"]) / spec["sd"]).to_numpy())
        else:
            cols += [(df[name] == lev).to_numpy(float) for lev in spec["levels"][1:]]
    return np.column_stack(cols)


def case_args(file: str, name: str) -> tuple[dict, dict]:
    ref = reference(file)
    m = ref["models"][name]
    df = dataset(ref["dataset"])
    X = design(df, m["model"])
    assert X.shape[1] == len(m["model"]["design_columns"])
    pv = m["priors"]["values"]
    sd = [pv["intercept_sd"]] + [pv["mods_sd"]] * (X.shape[1] - 1)
    cluster = df[m["model"]["cluster"]].to_numpy() if m["model"]["cluster"] else None
    kwargs = {"beta_mean": pv["intercept_mean"], "beta_sd": sd, "tau_sd": pv["tau_sd"]}
    if cluster is not None:
        kwargs.update(rho_a=pv["rho_a"], rho_b=pv["rho_b"])
    return {"yi": df.yi.to_numpy(), "vi": df.vi.to_numpy(), "X": X, "cluster": cluster}, kwargs


@cache
def fitted(file: str, name: str) -> LogMarginalLikelihood:
    data, kwargs = case_args(file, name)
    return log_marginal_likelihood(**data, **kwargs)


@pytest.mark.parametrize(("file", "name"), CASES)
def test_log_marginal_likelihood_matches_exact_reference(file, name):
    m = reference(file)["models"][name]
    res = fitted(file, name)
    assert res.error < 1e-9
    assert abs(res.value - m["log_marginal_likelihood"]) < LOGML_TOL
    assert res.details["converged"]


@pytest.mark.parametrize(("file", "name"), CASES)
def test_posterior_moments_match_exact_reference(file, name):
    """The integrand is right: tau, rho and coefficient moments from the same quadrature."""
    m = reference(file)["models"][name]
    det = fitted(file, name).details
    for par in ("tau", "rho"):
        if par in m["heterogeneity"]:
            for stat in ("mean", "sd"):
                assert det[par][stat] == pytest.approx(
                    m["heterogeneity"][par][stat], abs=MOMENT_TOL
                )
        else:
            assert par == "rho" and "rho" not in det
    coefs = m["coefficients_standardized"]
    for j, col in enumerate(m["model"]["design_columns"]):
        assert det["beta"]["mean"][j] == pytest.approx(coefs[col]["mean"], abs=MOMENT_TOL)
        assert det["beta"]["sd"][j] == pytest.approx(coefs[col]["sd"], abs=MOMENT_TOL)


# ------------------------------------------------------------------------- dense-matrix oracle

RNG = np.random.default_rng(20240601)
K_SMALL = 11
SMALL = {
    "yi": RNG.normal(0.2, 0.5, K_SMALL),
    "vi": RNG.uniform(0.01, 0.2, K_SMALL),
    # cluster sizes 1, 3, 2, 1, 4 (two singletons), labels as strings and not sorted
    "cluster": np.array(["e", "b", "b", "b", "c", "c", "a", "d", "d", "d", "d"]),
}
X_SMALL = np.column_stack([np.ones(K_SMALL), RNG.normal(size=K_SMALL), RNG.integers(0, 2, K_SMALL)])
PRIOR_SMALL = {"beta_mean": [0.1, -0.2, 0.3], "beta_sd": [0.7, 0.4, 0.25]}


def dense_logpdf(yi, vi, X, cluster, tau, rho, beta_mean, beta_sd):
    same = np.equal.outer(cluster, cluster) if cluster is not None else np.eye(len(yi), dtype=bool)
    cov = np.diag(vi + tau**2 * (1 - rho)) + tau**2 * rho * same
    cov += X @ np.diag(np.square(beta_sd)) @ X.T
    return stats.multivariate_normal(X @ np.asarray(beta_mean), cov).logpdf(yi)


@pytest.mark.parametrize(
    ("tau", "rho"), [(0.0, 0.0), (0.3, 0.0), (0.3, 0.5), (1.7, 0.95), (0.05, 1.0), (0.6, 1e-6)]
)
def test_conditional_log_density_equals_dense_mvn(tau, rho):
    got = conditional_log_density(**SMALL, X=X_SMALL, tau=tau, rho=rho, **PRIOR_SMALL)
    want = dense_logpdf(
        SMALL["yi"], SMALL["vi"], X_SMALL, SMALL["cluster"], tau, rho, **PRIOR_SMALL
    )
    assert got == pytest.approx(want, abs=1e-10)


def test_conditional_log_density_dense_without_cluster_and_vectorised():
    taus, rhos = np.array([0.0, 0.2, 1.1]), np.array([[0.0], [0.4]])
    got = conditional_log_density(**SMALL, X=X_SMALL, tau=taus, rho=rhos, **PRIOR_SMALL)
    assert got.shape == (2, 3)
    for i, j in np.ndindex(2, 3):
        want = dense_logpdf(
            SMALL["yi"], SMALL["vi"], X_SMALL, SMALL["cluster"], taus[j], rhos[i, 0], **PRIOR_SMALL
        )
        assert got[i, j] == pytest.approx(want, abs=1e-10)
    no_cluster = {**SMALL, "cluster": None}
    got = conditional_log_density(**no_cluster, X=X_SMALL, tau=0.4, **PRIOR_SMALL)
    want = dense_logpdf(SMALL["yi"], SMALL["vi"], X_SMALL, None, 0.4, 0.0, **PRIOR_SMALL)
    assert got == pytest.approx(want, abs=1e-10)
    # p = 0 (no coefficients at all): y ~ N(0, V)
    got = conditional_log_density(
        **SMALL, X=np.zeros((K_SMALL, 0)), tau=0.4, rho=0.3, beta_mean=[], beta_sd=[]
    )
    want = dense_logpdf(
        SMALL["yi"], SMALL["vi"], np.zeros((K_SMALL, 0)), SMALL["cluster"], 0.4, 0.3, [], []
    )
    assert got == pytest.approx(want, abs=1e-10)


# ------------------------------------------------------------------------- special cases


def test_common_effect_model_is_closed_form():
    """tau = 0: nothing to integrate, rho irrelevant; equals the dense Gaussian."""
    want = dense_logpdf(SMALL["yi"], SMALL["vi"], X_SMALL, None, 0.0, 0.0, **PRIOR_SMALL)
    for rho_fixed in (None, 0.0, 0.6):
        res = log_marginal_likelihood(
            **SMALL, X=X_SMALL, tau_sd=0.5, tau_fixed=0.0, rho_fixed=rho_fixed, **PRIOR_SMALL
        )
        assert (res.error, res.n_points) == (0.0, 1)
        assert res.value == pytest.approx(want, abs=1e-10)
        assert "rho" not in res.details and res.details["tau"]["mean"] == 0.0


def test_rho_fixed_zero_equals_model_without_cluster():
    kw = {"X": X_SMALL, "tau_sd": 0.5, **PRIOR_SMALL}
    with_cluster = log_marginal_likelihood(**SMALL, rho_fixed=0.0, **kw)
    without = log_marginal_likelihood(**{**SMALL, "cluster": None}, **kw)
    assert with_cluster.details["free"] == without.details["free"] == ["log_tau"]
    assert with_cluster.value == pytest.approx(without.value, abs=1e-12)


def test_one_dimensional_cases_match_adaptive_quadrature():
    """tau fixed > 0 (integral over rho) and rho fixed at 1 (over tau) against scipy.quad."""
    kw = {"X": X_SMALL, **PRIOR_SMALL}

    def dens(tau, rho):
        return math.exp(conditional_log_density(**SMALL, tau=tau, rho=rho, **kw))

    res = log_marginal_likelihood(**SMALL, tau_sd=0.5, rho_a=2.0, rho_b=3.0, tau_fixed=0.4, **kw)
    assert res.details["free"] == ["logit_rho"]
    want = integrate.quad(lambda r: dens(0.4, r) * stats.beta.pdf(r, 2, 3), 0, 1, epsrel=1e-12)
    assert res.value == pytest.approx(math.log(want[0]), abs=1e-9)
    res = log_marginal_likelihood(**SMALL, tau_sd=0.5, rho_fixed=1.0, **kw)
    assert res.details["free"] == ["log_tau"]
    prior = stats.halfnorm(scale=0.5).pdf
    want = integrate.quad(lambda t: dens(t, 1.0) * prior(t), 0, np.inf, epsrel=1e-12)
    assert res.value == pytest.approx(math.log(want[0]), abs=1e-9)


def test_small_shape_parameters_and_wide_priors():
    """Heavy tails in logit rho (Beta(0.3, 0.3)) and a wide tau prior still converge."""
    for rho_a, tau_sd in ((0.3, 0.5), (1.0, 20.0)):
        res = log_marginal_likelihood(
            **SMALL, X=X_SMALL, tau_sd=tau_sd, rho_a=rho_a, rho_b=rho_a, **PRIOR_SMALL
        )
        assert res.details["converged"] and res.error < 1e-9
        coarse = log_marginal_likelihood(
            **SMALL, X=X_SMALL, tau_sd=tau_sd, rho_a=rho_a, rho_b=rho_a, tol=1e-4, **PRIOR_SMALL
        )
        assert coarse.value == pytest.approx(res.value, abs=max(coarse.error, 1e-12))


# ------------------------------------------------------------------------- Bayes factors

KONST = "dat.konstantopoulos2011.exact.json"


@pytest.mark.parametrize(
    ("file", "name", "column"),
    [
        (KONST, "intercept_only", 0),
        (KONST, "metareg_year", 0),
        (KONST, "metareg_year", 1),
        ("dat.bcg.exact.json", "metareg_ablat", 0),
    ],
)
def test_savage_dickey_equals_ratio_of_marginal_likelihoods(file, name, column):
    data, kw = case_args(file, name)
    full = fitted(file, name)
    keep = np.arange(data["X"].shape[1]) != column
    reduced = log_marginal_likelihood(
        **{**data, "X": data["X"][:, keep]},
        **{**kw, "beta_sd": np.asarray(kw["beta_sd"])[keep]},
    )
    sd = savage_dickey(**data, column=column, **kw)
    # both sides are exact up to quadrature error (< 1e-9 each): far inside the ~1e-4 target
    assert sd.log_bf01 == pytest.approx(bayes_factor(reduced, full).log_bf, abs=1e-7)
    assert sd.bf01 == pytest.approx(math.exp(sd.log_bf01))
    assert sd.log_prior_density == pytest.approx(stats.norm(0, kw["beta_sd"][column]).logpdf(0))


@cache
def konst_ensemble(cluster: bool = True):
    data, kw = case_args(KONST, "intercept_only")
    return standard_bayes_factors(**{**data, "cluster": data["cluster"] if cluster else None}, **kw)


def test_ensemble_table_and_default_prior_probabilities():
    ens = konst_ensemble()
    models = ens.models.set_index("model")
    assert list(models.index) == [
        "mu=0, tau=0",
        "mu=0, tau, rho=0",
        "mu=0, tau, rho",
        "mu, tau=0",
        "mu, tau, rho=0",
        "mu, tau, rho",
    ]
    assert models.prior_prob.tolist() == [0.25, 0.125, 0.125, 0.25, 0.125, 0.125]
    assert models.posterior_prob.sum() == pytest.approx(1.0)
    assert models.cluster_level.isna().tolist() == [True, False, False, True, False, False]
    ref = reference(KONST)["models"]
    assert models.log_ml["mu, tau, rho"] == pytest.approx(
        ref["intercept_only"]["log_marginal_likelihood"], abs=LOGML_TOL
    )
    assert models.log_ml["mu, tau, rho=0"] == pytest.approx(
        ref["extra_no_cluster_intercept_only"]["log_marginal_likelihood"], abs=LOGML_TOL
    )
    incl = ens.inclusion.set_index("component")
    assert incl.prior_incl_prob.tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert incl.among["cluster_level"] == "tau > 0"
    # the tau = 0 models sit on neither side of the cluster-level question
    mod = models[models.heterogeneity]
    odds = (
        mod.posterior_prob[mod.cluster_level.astype(bool)].sum()
        / mod.posterior_prob[~mod.cluster_level.astype(bool)].sum()
    )
    assert incl.inclusion_bf["cluster_level"] == pytest.approx(odds, rel=1e-10)
    pair = ens.pairwise.set_index("test")
    assert pair.log_bf10["cluster_level"] == pytest.approx(
        models.log_ml["mu, tau, rho"] - models.log_ml["mu, tau, rho=0"]
    )
    assert pair.bf10["effect"] * pair.bf01["effect"] == pytest.approx(1.0)
    # the ensemble's effect BF and the Savage-Dickey ratio of the full model agree
    data, kw = case_args(KONST, "intercept_only")
    assert -pair.log_bf10["effect"] == pytest.approx(savage_dickey(**data, **kw).log_bf01, abs=1e-7)


def test_ensemble_without_cluster_has_four_models():
    ens = konst_ensemble(cluster=False)
    assert list(ens.models.model) == ["mu=0, tau=0", "mu=0, tau", "mu, tau=0", "mu, tau"]
    assert list(ens.inclusion.component) == ["effect", "heterogeneity"]
    assert ens.models.prior_prob.tolist() == [0.25] * 4


def test_inclusion_bf_of_two_model_ensemble_equals_plain_bf():
    data, kw = case_args(KONST, "intercept_only")
    names = list(konst_ensemble().models.model)
    for comp, m1, m0 in [
        ("effect", "mu, tau, rho", "mu=0, tau, rho"),
        ("cluster_level", "mu, tau, rho", "mu, tau, rho=0"),
        ("heterogeneity", "mu, tau, rho", "mu, tau=0"),
    ]:
        probs = {n: (0.3 if n == m1 else 0.7 if n == m0 else 0.0) for n in names}
        ens = standard_bayes_factors(**data, **kw, prior_model_probs=probs)
        row = ens.inclusion.set_index("component").loc[comp]
        plain = bayes_factor(*ens.models.set_index("model").log_ml[[m1, m0]])
        assert row.log_inclusion_bf == pytest.approx(plain.log_bf, abs=1e-12)
        assert row.prior_incl_prob == pytest.approx(0.3)
        others = ens.inclusion.set_index("component").drop(comp)
        assert others.log_inclusion_bf.isna().all()  # one side has no prior mass: undefined


def test_bayes_factor_accepts_floats_and_results():
    a = LogMarginalLikelihood(-10.0, 0.0, 1)
    assert bayes_factor(a, -12.0) == BayesFactor(2.0, math.exp(2.0))
    assert bayes_factor(-1000.0, 0.0).bf == 0.0
    assert bayes_factor(1000.0, 0.0).bf == math.inf


# ------------------------------------------------------------------------- input errors

GOOD = {**SMALL, "X": X_SMALL, "tau_sd": 0.5, **PRIOR_SMALL}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vi": np.r_[0.1, -0.02, SMALL["vi"][2:]]}, r"'vi' must be finite and > 0; row 2 has -0"),
        ({"yi": np.r_[np.nan, SMALL["yi"][1:]]}, r"'yi' must be finite; row 1 has nan"),
        ({"vi": SMALL["vi"][:-1]}, r"'vi' must be a 1-D array of length 11"),
        ({"X": X_SMALL[:-1]}, r"'X' must have shape \(11, p\)"),
        ({"X": np.where(np.arange(K_SMALL)[:, None] == 4, np.inf, X_SMALL)}, r"'X' .* row 5 has"),
        ({"cluster": SMALL["cluster"][:-1]}, r"'cluster' must be 1-D of length 11"),
        (
            {"cluster": np.r_[SMALL["cluster"][:3].astype(object), None, SMALL["cluster"][4:]]},
            r"'cluster' must not be missing; row 4",
        ),
        ({"beta_sd": [1.0, 1.0]}, r"'beta_sd' must be"),
        ({"beta_sd": [1.0, 0.0, 1.0]}, r"'beta_sd' must be finite and > 0; row 2 has 0.0"),
        ({"tau_sd": 0.0}, r"'tau_sd' must be finite and > 0; got 0.0"),
        ({"tau_sd": "wide"}, r"'tau_sd' must be a real number"),
        ({"rho_a": -1}, r"'rho_a' must be finite and > 0"),
        ({"tau_fixed": -0.1}, r"'tau_fixed' must be finite and >= 0"),
        ({"rho_fixed": 1.5}, r"'rho_fixed' must be finite and >= 0 and <= 1"),
        ({"cluster": None, "rho_fixed": 0.5}, r"'rho_fixed' must be None or 0 without 'cluster'"),
        ({"tol": 0}, r"'tol' must be finite and > 0"),
        ({"yi": []}, r"'yi' must have at least one row"),
    ],
)
def test_log_marginal_likelihood_input_errors(change, message):
    with pytest.raises(ValueError, match=message):
        log_marginal_likelihood(**{**GOOD, **change})


def test_other_input_errors():
    ens_kw = {k: v for k, v in GOOD.items()}
    with pytest.raises(ValueError, match=r"'effect_column' must be a column index in \[0, 2\]"):
        standard_bayes_factors(**ens_kw, effect_column=3)
    with pytest.raises(ValueError, match=r"'prior_model_probs' must give a weight to each of"):
        standard_bayes_factors(**ens_kw, prior_model_probs={"mu, tau, rho": 1.0})
    names = ["mu=0, tau=0", "mu=0, tau, rho=0", "mu=0, tau, rho", "mu, tau=0", "mu, tau, rho=0"]
    zeros = dict.fromkeys([*names, "mu, tau, rho"], 0.0)
    with pytest.raises(ValueError, match=r"'prior_model_probs' must have a positive sum"):
        standard_bayes_factors(**ens_kw, prior_model_probs=zeros)
    with pytest.raises(ValueError, match=r"'prior_model_probs\['mu, tau, rho'\]' must be finite"):
        standard_bayes_factors(**ens_kw, prior_model_probs={**zeros, "mu, tau, rho": -1.0})
    with pytest.raises(ValueError, match=r"'column' must be a column index in \[0, 2\]; got 5"):
        savage_dickey(**GOOD, column=5)
    with pytest.raises(ValueError, match=r"'logml_0' must be a LogMarginalLikelihood or a finite"):
        bayes_factor(1.0, math.nan)
    with pytest.raises(ValueError, match=r"'tau' must be finite and >= 0"):
        conditional_log_density(**SMALL, X=X_SMALL, tau=-1.0, **PRIOR_SMALL)
    with pytest.raises(ValueError, match=r"'rho' must lie in \[0, 1\], and be 0 without 'cluster'"):
        conditional_log_density(
            **{**SMALL, "cluster": None}, X=X_SMALL, tau=1.0, rho=0.5, **PRIOR_SMALL
        )


def test_pandas_inputs_and_unconverged_warning():
    ref = reference(KONST)
    df = dataset(ref["dataset"])
    kw = {"beta_mean": 0.0, "beta_sd": 0.7071067811865476, "tau_sd": 0.3535533905932738}
    res = log_marginal_likelihood(df.yi, df.vi, None, df.district, **kw)
    assert res.value == pytest.approx(fitted(KONST, "intercept_only").value, abs=1e-12)
    # an unreachable tol: the rule stops at its finest grid and says so unless it hit 0 exactly
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = log_marginal_likelihood(**SMALL, X=X_SMALL, tau_sd=0.5, tol=1e-300, **PRIOR_SMALL)
    assert res.details["converged"] == (res.error == 0.0)
    assert [str(w.message).startswith("quadrature stopped") for w in caught] == (
        [] if res.details["converged"] else [True]
    )
