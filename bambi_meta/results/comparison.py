"""Marginal likelihoods and Bayes factors of fitted ``MetaModel``s (exact, by quadrature).

The likelihood integrates the cluster and estimate effects out and, with Normal priors, the
coefficients integrate out analytically too; what is left is a 2-D integral over (tau, rho),
computed by adaptive quadrature (:mod:`bambi_meta.engine.exact.evidence`) to about
1e-9. This is more
accurate and faster than bridge sampling on MCMC draws, and needs no draws at all.

Supported priors: Normal on the intercept and moderators, any proper prior on tau and rho (or
either fixed, e.g. tau = 0 for the common-effect model), as for the exact engine's fits. Flat
priors (p(y) is then not defined) and scale models (``tau ~ z``) raise an error rather than
give a wrong number.
"""

import numpy as np

from bambi_meta import _validate
from bambi_meta.engine import exact_model
from bambi_meta.engine.exact import evidence as quadrature
from bambi_meta.engine.exact.evidence import (
    BayesFactor,
    EnsembleBayesFactors,
    LogMarginalLikelihood,
)


def marginal_likelihood(model) -> LogMarginalLikelihood:
    """Log marginal likelihood log p(y) of a ``MetaModel`` under its priors.

    Parameters
    ----------
    model : MetaModel
        The model (it need not be fitted).

    Returns
    -------
    LogMarginalLikelihood
        ``value`` and its quadrature ``error``.
    """
    _validate.check_model(model)
    return quadrature.log_marginal_likelihood(**_quadrature_spec(model))


def bayes_factor(model_1, model_0) -> BayesFactor:
    """Bayes factor of ``model_1`` over ``model_0`` (same data, any priors/moderators/clusters).

    Returns
    -------
    BayesFactor
        ``log_bf`` and ``bf`` = p(y | model_1) / p(y | model_0).
    """
    _validate.check_model(model_1, "model_1")
    _validate.check_model(model_0, "model_0")
    first, second = model_1.meta_data(), model_0.meta_data()
    same = np.array_equal(first.effect_sizes, second.effect_sizes) and np.allclose(
        first.variances, second.variances
    )
    if not same:
        raise ValueError("Bayes factors compare models of the same effect sizes and variances.")
    return quadrature.bayes_factor(marginal_likelihood(model_1), marginal_likelihood(model_0))


def inclusion_bayes_factors(model, prior_model_probs=None) -> EnsembleBayesFactors:
    """RoBMA-style model ensemble: effect x heterogeneity x cluster level.

    Fits, by quadrature, every model of the 2 x 2 x 2 ensemble (mu = 0 or free, tau = 0 or
    free, rho = 0 or free; 2 x 2 without clusters) with ``model``'s priors and moderators, and
    returns posterior model probabilities, inclusion Bayes factors and the pairwise Bayes
    factors for each question. With tau = 0 the cluster level is moot, so those two cells are
    one model and the cluster-level inclusion Bayes factor is computed among tau > 0 models.

    Parameters
    ----------
    model : MetaModel
        A model with an intercept (the effect).
    prior_model_probs : array-like, optional
        Prior probabilities of the models in the order of ``models`` (equal cells by default).

    Returns
    -------
    EnsembleBayesFactors
        ``models``, ``inclusion`` and ``pairwise`` tables.
    """
    _validate.check_model(model)
    if model.parameters["mu"].intercept_term is None:
        raise ValueError("The effect question (mu = 0) needs a model with an intercept.")
    spec = _quadrature_spec(model)
    spec.pop("tau_fixed", None)
    return quadrature.standard_bayes_factors(**spec, prior_model_probs=prior_model_probs)


def _quadrature_spec(model) -> dict:
    """Data, design and priors of ``model`` in the form the quadrature takes.

    The same inputs as the exact engine's fit (:func:`bambi_meta.engine.exact_model.exact_inputs`):
    Normal priors on the coefficients and any proper prior on tau and rho.
    """
    try:
        inputs = exact_model.exact_inputs(model)
    except exact_model.NotExact as reason:
        raise ValueError(
            f"The marginal likelihood by quadrature is not available for this model: {reason}."
        ) from None
    spec = dict(inputs.arguments)
    flat = ~np.isfinite(spec["beta_sd"])
    if flat.any():
        raise ValueError(
            "Marginal likelihoods (and Bayes factors) need proper priors; this model has a flat "
            "prior on a coefficient, so p(y) is not defined. Give it a Normal prior."
        )
    for parameter in ("tau", "rho"):
        prior = spec.pop(f"{parameter}_prior", None)
        if isinstance(prior, float):
            spec[f"{parameter}_fixed"] = prior
        elif prior is not None:
            spec[f"{parameter}_prior"] = prior
    return spec
