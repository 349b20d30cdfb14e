"""Marginal likelihoods and Bayes factors of fitted ``MetaModel``s (exact, by quadrature).

The likelihood integrates the cluster and estimate effects out and, with Normal priors, the
coefficients integrate out analytically too; what is left is a 2-D integral over (tau, rho),
computed by adaptive quadrature in ``marginal_likelihood.py`` to about 1e-9. This is more
accurate and faster than bridge sampling on MCMC draws, and needs no draws at all.

Supported priors: Normal on the intercept and moderators, HalfNormal on tau (or tau fixed at 0,
the common-effect model), Beta on rho. Other priors and scale models (``tau ~ z``) raise an
error rather than give a wrong number.
"""

import numpy as np

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
    return quadrature.log_marginal_likelihood(**_quadrature_spec(model))


def bayes_factor(model_1, model_0) -> BayesFactor:
    """Bayes factor of ``model_1`` over ``model_0`` (same data, any priors/moderators/clusters).

    Returns
    -------
    BayesFactor
        ``log_bf`` and ``bf`` = p(y | model_1) / p(y | model_0).
    """
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
    if model.parameters["mu"].intercept_term is None:
        raise ValueError("The effect question (mu = 0) needs a model with an intercept.")
    spec = _quadrature_spec(model)
    spec.pop("tau_fixed", None)
    return quadrature.standard_bayes_factors(**spec, prior_model_probs=prior_model_probs)


def _quadrature_spec(model) -> dict:
    """Data, design and prior parameters in the form the quadrature takes."""
    if len(model.conditional_parameters) > 1:
        raise ValueError(
            "Marginal likelihoods by quadrature need constant tau and rho; this model has a "
            "scale formula (tau ~ z or rho ~ z)."
        )
    rows = model.meta_data()
    location = model.parameters["mu"]
    design = np.asarray(location.design.common.design_matrix, dtype=float)
    means, sds = [], []
    for name, term in location.terms.items():
        prior = term.prior
        if getattr(prior, "name", None) != "Normal":
            raise ValueError(f"Quadrature needs a Normal prior on '{name}'; it has {prior}.")
        width = design[:, location.design.common.slices[name]].shape[1]
        means.append(np.broadcast_to(np.asarray(prior.args["mu"], dtype=float), width))
        sds.append(np.broadcast_to(np.asarray(prior.args["sigma"], dtype=float), width))
    spec = {
        "yi": rows.effect_sizes,
        "vi": rows.variances,
        "X": design,
        "cluster": rows.cluster_labels,
        "beta_mean": np.concatenate(means),
        "beta_sd": np.concatenate(sds),
    }
    spec.update(_tau_prior(model.parameters["tau"].prior))
    if model.family.has_clusters:
        rho = model.parameters["rho"].prior
        if getattr(rho, "name", None) != "Beta":
            raise ValueError(f"Quadrature needs a Beta prior on 'rho'; it has {rho}.")
        spec.update(rho_a=float(rho.args["alpha"]), rho_b=float(rho.args["beta"]))
    return spec


def _tau_prior(prior) -> dict:
    if isinstance(prior, (int, float)):
        if prior != 0:
            raise ValueError(f"tau fixed at {prior}: only tau = 0 (common effect) is supported.")
        return {"tau_sd": 1.0, "tau_fixed": 0.0}
    if getattr(prior, "name", None) != "HalfNormal":
        raise ValueError(f"Quadrature needs a HalfNormal prior on 'tau'; it has {prior}.")
    return {"tau_sd": float(prior.args["sigma"])}
