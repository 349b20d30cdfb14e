"""bambi_meta: Bayesian (multilevel) meta-analysis with Bambi formulas."""

from importlib.metadata import version

from bambi_meta.datasets import DATASETS, load_dataset
from bambi_meta.model import MetaModel
from bambi_meta.priors import MEASURES, UNIT_INFORMATION_SD, unit_information_sd

__version__ = version("bambi_meta")

__all__ = [
    "DATASETS",
    "MEASURES",
    "UNIT_INFORMATION_SD",
    "MetaModel",
    "__version__",
    "load_dataset",
    "unit_information_sd",
]
