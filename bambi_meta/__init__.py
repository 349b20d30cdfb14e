"""bambi_meta: Bayesian (multilevel) meta-analysis with Bambi formulas."""

from importlib.metadata import version

from bambi_meta.bambi_ext.model import MetaModel
from bambi_meta.bambi_ext.priors import (
    MEASURES,
    UNIT_INFORMATION_SD,
    PriorDataConflictWarning,
    unit_information_sd,
)
from bambi_meta.datasets import DATASETS, load_dataset
from bambi_meta.effect_sizes import transf
from bambi_meta.effect_sizes.escalc import UndefinedEffectSizeWarning, escalc
from bambi_meta.results.coefficients import coefficient_draws, heterogeneity_at
from bambi_meta.results.comparison import bayes_factor, inclusion_bayes_factors, marginal_likelihood
from bambi_meta.results.effects import Effects, cluster_effects, true_effects
from bambi_meta.results.frequentist import FrequentistFit, fit_frequentist, lrt
from bambi_meta.results.plots import (
    plot_bubble,
    plot_forest,
    plot_funnel,
    plot_posterior,
    prior_density,
)
from bambi_meta.results.prediction import prediction_intervals
from bambi_meta.results.summary import (
    ConvergenceWarning,
    heterogeneity_posterior,
    summary,
    summary_heterogeneity,
)

__version__ = version("bambi_meta")

__all__ = [
    "DATASETS",
    "Effects",
    "FrequentistFit",
    "MEASURES",
    "UNIT_INFORMATION_SD",
    "ConvergenceWarning",
    "MetaModel",
    "PriorDataConflictWarning",
    "UndefinedEffectSizeWarning",
    "__version__",
    "bayes_factor",
    "cluster_effects",
    "coefficient_draws",
    "escalc",
    "fit_frequentist",
    "heterogeneity_at",
    "heterogeneity_posterior",
    "inclusion_bayes_factors",
    "load_dataset",
    "lrt",
    "marginal_likelihood",
    "plot_bubble",
    "plot_forest",
    "plot_funnel",
    "plot_posterior",
    "prediction_intervals",
    "prior_density",
    "summary",
    "summary_heterogeneity",
    "transf",
    "true_effects",
    "unit_information_sd",
]
