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

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from bambi_meta import _validate
from bambi_meta.engine import exact_model
from bambi_meta.engine.exact import evidence as quadrature
from bambi_meta.engine.exact.evidence import (
    BayesFactor,
    EnsembleBayesFactors,
    LogMarginalLikelihood,
)
from bambi_meta.results.printing import DEFAULT_DIGITS, check_digits, render_html, render_text

COMPONENTS = {
    "effect": "Effect",
    "heterogeneity": "Heterogeneity",
    "cluster_level": "Cluster level",
}
# Bayes factors print with fixed decimals inside this range and in scientific notation outside
BF_FIXED_RANGE = (1e-3, 1e5)


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


@dataclass(frozen=True, repr=False, eq=False)
class InclusionBayesFactors(EnsembleBayesFactors):
    """The ensemble of :func:`~bambi_meta.inclusion_bayes_factors`, printed like RoBMA's summary.

    A component table (RoBMA's "Components summary": models with the component, prior and
    posterior inclusion probability, inclusion Bayes factor and its log) and a model table
    (prior probability, log marginal likelihood and its quadrature error, posterior
    probability, the model's own Bayes factor against the rest), under the model's header.
    The data are the ``models``, ``inclusion`` and ``pairwise`` DataFrames of
    ``bambi_meta.engine.exact.evidence.EnsembleBayesFactors``, unrounded.

    Attributes
    ----------
    header : str
        The line(s) printed above the tables.
    digits : int
        Decimal places of the printed probabilities and log Bayes factors.
    """

    header: str = ""
    digits: int = DEFAULT_DIGITS

    def components_table(self) -> pd.DataFrame:
        """RoBMA's components summary, as printed (strings)."""
        models, digits = self.models, self.digits
        heterogeneity = models["heterogeneity"].to_numpy(dtype=bool)
        rows = {}
        for _, row in self.inclusion.iterrows():
            considered = heterogeneity if row["component"] == "cluster_level" else None
            with_component = models[row["component"]].fillna(False).to_numpy(dtype=bool)
            if considered is not None:
                with_component = with_component[considered]
            label = COMPONENTS.get(row["component"], row["component"])
            rows[label] = {
                "Models": f"{with_component.sum()}/{len(with_component)}",
                "Prior prob.": f"{row['prior_incl_prob']:.{digits}f}",
                "Post. prob.": f"{row['posterior_incl_prob']:.{digits}f}",
                "Inclusion BF": format_bayes_factor(row["inclusion_bf"], digits),
                "log(BF)": f"{row['log_inclusion_bf']:.{digits}f}",
            }
        return pd.DataFrame.from_dict(rows, orient="index")

    def models_table(self) -> pd.DataFrame:
        """One row per model, as printed (strings)."""
        models, digits = self.models, self.digits
        with np.errstate(divide="ignore"):
            log_prior = np.log(models["prior_prob"].to_numpy(float))
        log_joint = log_prior + models["log_ml"].to_numpy(float)
        table = pd.DataFrame(index=pd.Index(models["model"].to_numpy()))
        table["Prior prob."] = [f"{p:.{digits}f}" for p in models["prior_prob"]]
        table["log p(y)"] = [f"{v:.{digits}f}" for v in models["log_ml"]]
        table["error"] = [f"{e:.1g}" for e in models["log_ml_error"]]
        table["Post. prob."] = [f"{p:.{digits}f}" for p in models["posterior_prob"]]
        table["BF (vs rest)"] = [
            format_bayes_factor(np.exp(value), digits)
            for value in _log_bayes_factors_against_the_rest(log_prior, log_joint)
        ]
        return table

    def to_text(self) -> str:
        """The header, the components summary and the model table, as printed."""
        parts = [self.header] if self.header else []
        parts.append("Components summary\n" + render_text(self.components_table()))
        parts.append(self._components_note())
        parts.append("Models\n" + render_text(self.models_table()))
        return "\n\n".join(parts)

    def _components_note(self) -> str:
        note = (
            "Inclusion BF: posterior odds / prior odds of the models with the component against "
            "those without."
        )
        if "cluster_level" in set(self.inclusion["component"]):
            note += (
                "\nCluster level: among the models with tau > 0 only (with tau = 0 the cluster "
                "level is moot)."
            )
        return note

    def __str__(self) -> str:
        return self.to_text()

    def __repr__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        head = "".join(f"<p>{html.escape(line)}</p>\n" for line in self.header.splitlines())
        note = "".join(
            f"<p>{html.escape(line)}</p>\n" for line in self._components_note().splitlines()
        )
        return (
            f"{head}<p><b>Components summary</b></p>\n{render_html(self.components_table())}"
            f"{note}<p><b>Models</b></p>\n{render_html(self.models_table())}"
        )


def format_bayes_factor(value: float, digits: int = DEFAULT_DIGITS) -> str:
    """A Bayes factor with ``digits`` decimals, or in scientific notation when very large/small."""
    value = float(value)
    if not np.isfinite(value):
        return "NaN" if np.isnan(value) else "inf"
    if value == 0.0 or BF_FIXED_RANGE[0] <= value < BF_FIXED_RANGE[1]:
        return f"{value:.{digits}f}"
    return f"{value:.2e}"


def _log_bayes_factors_against_the_rest(log_prior: np.ndarray, log_joint: np.ndarray):
    """The log of (posterior odds / prior odds) of each model against all the others."""
    out = np.full(len(log_prior), np.nan)
    for i in range(len(log_prior)):
        rest = np.arange(len(log_prior)) != i
        if not np.isfinite(log_prior[i]) or not np.isfinite(log_prior[rest]).any():
            continue
        posterior_odds = log_joint[i] - special.logsumexp(log_joint[rest])
        prior_odds = log_prior[i] - special.logsumexp(log_prior[rest])
        out[i] = posterior_odds - prior_odds
    return out


def inclusion_bayes_factors(
    model, prior_model_probs=None, digits: int = DEFAULT_DIGITS
) -> InclusionBayesFactors:
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
    digits : int, default 3
        Decimal places of the printed probabilities and Bayes factors (printing only).

    Returns
    -------
    InclusionBayesFactors
        ``models``, ``inclusion`` and ``pairwise`` tables (full precision); prints RoBMA's
        components summary and the model table under the model's header.
    """
    _validate.check_model(model)
    digits = check_digits(digits)
    if model.parameters["mu"].intercept_term is None:
        raise ValueError("The effect question (mu = 0) needs a model with an intercept.")
    spec = _quadrature_spec(model)
    spec.pop("tau_fixed", None)
    ensemble = quadrature.standard_bayes_factors(**spec, prior_model_probs=prior_model_probs)
    header = (
        f"Bayes factors: effect x heterogeneity{' x cluster level' if model.cluster else ''} "
        f"(exact marginal likelihoods by quadrature)\n{model.header}"
    )
    return InclusionBayesFactors(
        ensemble.models, ensemble.inclusion, ensemble.pairwise, header=header, digits=digits
    )


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
