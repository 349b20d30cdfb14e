"""bambi_meta: Bayesian (multilevel) meta-analysis with Bambi formulas.

The public names are listed in ``__all__`` and imported on first use (PEP 562), so that
``import bambi_meta`` is cheap and the array-level engine (``bambi_meta.engine.exact``) can be
imported in worker processes without importing Bambi, PyMC or PyTensor.
"""

import importlib
from importlib.metadata import version
from typing import TYPE_CHECKING

# public name -> the module that defines it
_WHERE = {
    "MetaModel": "bambi_meta.bambi_ext.model",
    "MEASURES": "bambi_meta.bambi_ext.priors",
    "UNIT_INFORMATION_SD": "bambi_meta.bambi_ext.priors",
    "PriorDataConflictWarning": "bambi_meta.bambi_ext.priors",
    "unit_information_sd": "bambi_meta.bambi_ext.priors",
    "DATASETS": "bambi_meta.datasets",
    "load_dataset": "bambi_meta.datasets",
    "transf": "bambi_meta.effect_sizes.transf",
    "UndefinedEffectSizeWarning": "bambi_meta.effect_sizes.escalc",
    "escalc": "bambi_meta.effect_sizes.escalc",
    "fit_many": "bambi_meta.engine.fit_many",
    "coefficient_draws": "bambi_meta.results.coefficients",
    "heterogeneity_at": "bambi_meta.results.coefficients",
    "bayes_factor": "bambi_meta.results.comparison",
    "inclusion_bayes_factors": "bambi_meta.results.comparison",
    "marginal_likelihood": "bambi_meta.results.comparison",
    "Effects": "bambi_meta.results.effects",
    "cluster_effects": "bambi_meta.results.effects",
    "true_effects": "bambi_meta.results.effects",
    "FrequentistFit": "bambi_meta.results.frequentist",
    "fit_frequentist": "bambi_meta.results.frequentist",
    "lrt": "bambi_meta.results.frequentist",
    "plot_bubble": "bambi_meta.results.figures.bubble",
    "plot_forest": "bambi_meta.results.figures.forest",
    "plot_funnel": "bambi_meta.results.figures.funnel",
    "plot_orchard": "bambi_meta.results.figures.orchard",
    "plot_posterior": "bambi_meta.results.figures.posterior",
    "prior_density": "bambi_meta.results.figures.posterior",
    "prediction_intervals": "bambi_meta.results.prediction",
    "ConvergenceWarning": "bambi_meta.results.summary",
    "heterogeneity_posterior": "bambi_meta.results.summary",
    "summary": "bambi_meta.results.summary",
    "summary_heterogeneity": "bambi_meta.results.summary",
}

# public names that are modules (``bmm.transf.exp``)
_MODULES = {"transf"}

__version__ = version("bambi_meta")
__all__ = [
    "ConvergenceWarning",
    "DATASETS",
    "Effects",
    "FrequentistFit",
    "MEASURES",
    "MetaModel",
    "PriorDataConflictWarning",
    "UNIT_INFORMATION_SD",
    "UndefinedEffectSizeWarning",
    "__version__",
    "bayes_factor",
    "cluster_effects",
    "coefficient_draws",
    "escalc",
    "fit_many",
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
    "plot_orchard",
    "plot_posterior",
    "prediction_intervals",
    "prior_density",
    "summary",
    "summary_heterogeneity",
    "transf",
    "true_effects",
    "unit_information_sd",
]


def __getattr__(name: str):
    """Import a public name from its module the first time it is used."""
    if name not in _WHERE:
        raise AttributeError(f"module 'bambi_meta' has no attribute {name!r}")
    module = importlib.import_module(_WHERE[name])
    value = module if name in _MODULES else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # the names, for type checkers and IDEs
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
    from bambi_meta.engine.fit_many import fit_many
    from bambi_meta.results.coefficients import coefficient_draws, heterogeneity_at
    from bambi_meta.results.comparison import (
        bayes_factor,
        inclusion_bayes_factors,
        marginal_likelihood,
    )
    from bambi_meta.results.effects import Effects, cluster_effects, true_effects
    from bambi_meta.results.figures.bubble import plot_bubble
    from bambi_meta.results.figures.forest import plot_forest
    from bambi_meta.results.figures.funnel import plot_funnel
    from bambi_meta.results.figures.orchard import plot_orchard
    from bambi_meta.results.figures.posterior import plot_posterior, prior_density
    from bambi_meta.results.frequentist import FrequentistFit, fit_frequentist, lrt
    from bambi_meta.results.prediction import prediction_intervals
    from bambi_meta.results.summary import (
        ConvergenceWarning,
        heterogeneity_posterior,
        summary,
        summary_heterogeneity,
    )
