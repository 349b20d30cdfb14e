"""Marginal likelihoods and Bayes factors of MetaModels vs the exact references.

The exact JSON's log marginal likelihoods come from an independent 2-D quadrature
(reference/exact_posterior.py); ours is a different quadrature code on the model's own design
and priors, so agreement to 1e-6 (both converge to < 1e-9) also checks that MetaModel's default
priors (centred, standardised continuous moderators; uncentred dummies) are the reference's.
"""

import bambi as bmb
import numpy as np
import pytest
from helpers import exact_reference

import bambi_meta as bmm

CASES = [
    ("dat.konstantopoulos2011", "intercept_only", "yi | se(vi) ~ 1 + (1|district)", "SMD"),
    ("dat.konstantopoulos2011", "metareg_year", "yi | se(vi) ~ 1 + year + (1|district)", "SMD"),
    ("dat.konstantopoulos2011", "extra_no_cluster_intercept_only", "yi | se(vi) ~ 1", "SMD"),
    ("dat.bcg", "intercept_only", "yi | se(vi) ~ 1", "RR"),
    ("dat.bcg", "metareg_ablat", "yi | se(vi) ~ ablat", "RR"),
    (
        "dat.bcg",
        "extra_artificial_cluster_alloc_metareg_ablat",
        "yi | se(vi) ~ ablat + (1|alloc)",
        "RR",
    ),
    ("dat.assink2016", "intercept_only", "yi | se(vi) ~ 1 + (1|study)", "SMD"),
    ("dat.assink2016", "metareg_deltype", "yi | se(vi) ~ deltype + (1|study)", "SMD"),
    ("dat.bornmann2007", "metareg_type", "yi | se(vi) ~ type + (1|study)", "OR"),
]


@pytest.mark.parametrize(("dataset", "key", "formula", "measure"), CASES)
def test_log_marginal_likelihood_matches_exact(dataset, key, formula, measure):
    model = bmm.MetaModel(formula, bmm.load_dataset(dataset), measure=measure)
    result = bmm.marginal_likelihood(model)
    assert result.value == pytest.approx(
        exact_reference(dataset, key)["log_marginal_likelihood"], abs=1e-6
    )
    assert result.error < 1e-6


def test_model_bayes_factors_agree_with_the_ensemble(konstantopoulos):
    full = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", konstantopoulos, measure="SMD")
    common = bmm.MetaModel("yi | se(vi) ~ 1", konstantopoulos, measure="SMD", priors={"tau": 0})
    no_cluster = bmm.MetaModel("yi | se(vi) ~ 1", konstantopoulos, measure="SMD")
    ensemble = bmm.inclusion_bayes_factors(full)
    pairwise = ensemble.pairwise.set_index("test")
    heterogeneity = bmm.bayes_factor(full, common)
    cluster_level = bmm.bayes_factor(full, no_cluster)
    assert heterogeneity.log_bf == pytest.approx(
        np.log(pairwise.loc["heterogeneity", "bf10"]), rel=1e-9
    )
    assert cluster_level.log_bf == pytest.approx(
        np.log(pairwise.loc["cluster_level", "bf10"]), rel=1e-9
    )
    # the school data: strong evidence for heterogeneity and for the district level
    assert heterogeneity.log_bf > 100 and cluster_level.bf > 100
    probabilities = ensemble.models["posterior_prob"]
    assert probabilities.sum() == pytest.approx(1.0)


def test_any_proper_tau_prior_and_unsupported_models(konstantopoulos):
    cauchy = bmm.MetaModel(
        "yi | se(vi) ~ 1 + (1|district)",
        konstantopoulos,
        measure="SMD",
        priors={"tau": bmb.Prior("HalfCauchy", beta=0.5)},
    )
    # the model's HalfCauchy prior (PyMC's log-density) gives the marginal likelihood of the
    # array-level quadrature with scipy's HalfCauchy density: the same integral, so equal up to
    # the quadrature's error (its half-grid changes are below 1e-6; observed ~1e-12)
    from scipy import stats

    from bambi_meta.engine.exact import BetaPrior
    from bambi_meta.engine.exact.evidence import log_marginal_likelihood

    rows = cauchy.meta_data()
    direct = log_marginal_likelihood(
        rows.effect_sizes,
        rows.variances,
        None,
        rows.cluster_codes,
        beta_mean=0.0,
        beta_sd=np.sqrt(2) / 2,
        tau_prior=lambda tau: stats.halfcauchy(scale=0.5).logpdf(tau),
        rho_prior=BetaPrior(1.0, 1.0),
    )
    assert bmm.marginal_likelihood(cauchy).value == pytest.approx(direct.value, abs=1e-8)
    heavy = bmm.MetaModel(
        "yi | se(vi) ~ 1 + (1|district)",
        konstantopoulos,
        measure="SMD",
        priors={"mu": bmb.Prior("StudentT", nu=3, mu=0, sigma=1)},
    )
    with pytest.raises(ValueError, match="not available for this model: the prior on 'Intercept'"):
        bmm.marginal_likelihood(heavy)
    other = bmm.MetaModel("yi | se(vi) ~ 1", bmm.load_dataset("dat.bcg"), measure="RR")
    with pytest.raises(ValueError, match="same effect sizes"):
        bmm.bayes_factor(cauchy, other)


def test_ensemble_prints_components_and_takes_prior_probabilities_in_model_order(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", konstantopoulos, measure="SMD")
    equal = bmm.inclusion_bayes_factors(model, prior_model_probs=[1, 1, 1, 1, 1, 1])
    assert equal.models["prior_prob"].tolist() == pytest.approx([1 / 6] * 6)
    text = str(equal)
    assert "Inclusion BF" in text and "Cluster level" in text and "mu, tau, rho" in text
    with pytest.raises(ValueError, match="must give a weight to each of"):
        bmm.inclusion_bayes_factors(model, prior_model_probs=[1, 1])
