"""The meta-analytic columns of a data frame: effect sizes, known variances and clusters."""

from dataclasses import dataclass

import formulae as fm
import numpy as np
import pandas as pd

from bambi_meta import _validate
from bambi_meta.formula import MetaFormula, is_identifier


@dataclass(frozen=True)
class MetaData:
    """Effect sizes, sampling variances and cluster membership of a set of rows.

    Attributes
    ----------
    frame : pandas.DataFrame or None
        The rows as given by the user; ``None`` stands for the rows the model was fitted to.
    effect_sizes : numpy.ndarray or None
        Observed effect sizes (``None`` for new data without a response column).
    variances : numpy.ndarray or None
        Known sampling VARIANCES (squared when the formula gave standard errors); ``None`` for
        new data without them.
    cluster_labels : numpy.ndarray or None
        Cluster label of every row (``None`` without a cluster level).
    cluster_codes : numpy.ndarray or None
        Index of each row's cluster among the fitted clusters; -1 for a cluster not seen in the
        fitted data.
    """

    frame: pd.DataFrame | None
    effect_sizes: np.ndarray | None
    variances: np.ndarray | None
    cluster_labels: np.ndarray | None
    cluster_codes: np.ndarray | None

    def cluster_codes_in_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Codes 0..J-1 over the clusters present in these rows, and their labels."""
        labels, codes = np.unique(self.cluster_labels, return_inverse=True)
        return codes, labels


def read_meta_data(
    frame: pd.DataFrame,
    formula: MetaFormula,
    cluster_levels: np.ndarray | None,
    namespace: dict,
    require_response: bool,
    source: pd.DataFrame | None = None,
    require_variances: bool = True,
) -> MetaData:
    """Read and check the meta-analytic columns of ``frame``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Data with the columns named in the formula.
    formula : MetaFormula
        The parsed formula (which expressions give yi, vi and the cluster).
    cluster_levels : numpy.ndarray or None
        Labels of the fitted clusters (their order defines the codes).
    namespace : dict
        Functions available to expressions in the formula (e.g. ``sqrt``).
    require_response : bool
        Whether the effect-size column must be present (not for prediction on new data). New
        data for prediction may also omit the cluster column: each row is then an estimate in
        a new cluster.
    source : pandas.DataFrame or None
        What ``MetaData.frame`` records: ``None`` for the fitted rows.
    require_variances : bool, default True
        Whether the sampling-uncertainty column must be present (not for predicting true
        effects).

    Returns
    -------
    MetaData
    """
    effect_sizes = None
    if require_response or _available(formula.response, frame):
        effect_sizes = evaluate(formula.response, frame, namespace, "Effect sizes")
        _validate.check_effect_sizes(effect_sizes, formula.response)
    variances = None
    if require_variances or _available(formula.uncertainty, frame):
        uncertainty = evaluate(formula.uncertainty, frame, namespace, "Sampling uncertainty")
        _validate.check_sampling_uncertainty(
            uncertainty, formula.uncertainty, formula.uncertainty_is_sd
        )
        variances = uncertainty**2 if formula.uncertainty_is_sd else uncertainty

    labels = codes = None
    if formula.cluster is not None and not require_response and formula.cluster not in frame:
        # Prediction for new estimates without a cluster label: each is in a new cluster.
        labels = np.array([f"new cluster {row + 1}" for row in range(len(frame))], dtype=object)
        return MetaData(source, effect_sizes, variances, labels, np.full(len(frame), -1))
    if formula.cluster is not None:
        _validate.require_columns(frame, [formula.cluster], "cluster")
        series = frame[formula.cluster]
        missing = series.isna().to_numpy()
        if missing.any():
            raise ValueError(
                f"Cluster column '{formula.cluster}' must have a label on every row; "
                f"{_validate.describe_rows(missing)} are missing (NaN)."
            )
        labels = series.to_numpy()
        if cluster_levels is not None:
            codes = pd.Categorical(labels, categories=cluster_levels).codes.astype("int64")
    return MetaData(source, effect_sizes, variances, labels, codes)


def evaluate(expression: str, frame: pd.DataFrame, namespace: dict, role: str) -> np.ndarray:
    """Evaluate a column name or a formulae expression (``sqrt(vi)``) on ``frame`` as floats."""
    if is_identifier(expression):
        _validate.require_columns(frame, [expression], role.lower())
        return _validate.numeric_column(frame[expression], expression, role)
    names = fm.model_description(f"{expression} ~ 1").response.var_names
    _validate.require_columns(frame, sorted(names), role.lower())
    for name in names:
        _validate.numeric_column(frame[name], name, role)
    design = fm.design_matrices(f"{expression} ~ 1", frame, "error", 1, namespace)
    return np.asarray(design.response.design_matrix, dtype=float).ravel()


def _available(expression: str, frame: pd.DataFrame) -> bool:
    names = fm.model_description(f"{expression} ~ 1").response.var_names
    return all(name in frame.columns for name in names)
