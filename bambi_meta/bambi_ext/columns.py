"""The meta-analytic columns of a data frame: effect sizes, known variances and clusters."""

import warnings
from dataclasses import dataclass

import formulae as fm
import numpy as np
import pandas as pd

from bambi_meta import _validate
from bambi_meta.bambi_ext.formula import (
    MetaFormula,
    expression_variables,
    formula_variables,
    is_identifier,
    single_term,
)


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
            labels, codes = match_cluster_labels(labels, cluster_levels)
    return MetaData(source, effect_sizes, variances, labels, codes)


def match_cluster_labels(labels: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``labels`` among the fitted cluster ``levels`` (-1 for a label not among them).

    A label of another type that reads the same (``"11"`` for the fitted ``11``) is the same
    cluster: new data read from a CSV or typed by hand should not silently become a new cluster.

    Returns
    -------
    labels : numpy.ndarray
        The labels, with such matches replaced by the fitted level.
    codes : numpy.ndarray of int64
    """
    levels = pd.Index(levels)
    codes = levels.get_indexer(pd.Index(labels, dtype=object)).astype("int64")
    unmatched = codes < 0
    if unmatched.any():
        as_text = {}
        for position, level in enumerate(levels):
            as_text.setdefault(str(level), []).append(position)
        labels = np.array(labels, dtype=object)
        for row in np.flatnonzero(unmatched):
            positions = as_text.get(str(labels[row]), [])
            if len(positions) == 1:
                codes[row] = positions[0]
                labels[row] = levels[positions[0]]
    return labels, codes


def check_new_data(model, data: object, argument: str, parameters: tuple[str, ...]) -> pd.DataFrame:
    """Check new rows for prediction: the moderators the model needs, finite, in their domain.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    data : object
        What the user passed.
    argument : str
        The argument's name, for the messages.
    parameters : tuple of str
        Which modelled parameters (``"mu"``, ``"tau"``, ``"rho"``) will be evaluated on the rows.

    Returns
    -------
    pandas.DataFrame
        ``data`` itself. Cluster labels that match no fitted cluster are reported in a warning:
        those rows are predicted as new clusters.

    Raises
    ------
    ValueError, TypeError
        Naming the argument, the column and the rows.
    """
    data = _validate.require_dataframe(data, argument)
    formulas = {"mu": model.meta_formula.fixed, **model.scale_formulas}
    for parameter in parameters:
        rhs = formulas.get(parameter)
        if rhs is None:
            continue
        needed = sorted(formula_variables(rhs) & set(model.data.columns))
        absent = [name for name in needed if name not in data.columns]
        if absent:
            kind = "location" if parameter == "mu" else "scale"
            raise ValueError(
                f"'{argument}' must give the {kind} moderators {', '.join(map(repr, needed))} "
                f"(of '{parameter} ~ {rhs}'); it lacks {', '.join(map(repr, absent))}."
            )
        for name in needed:
            missing = data[name].isna().to_numpy()
            if missing.any():
                raise ValueError(
                    f"'{argument}' column '{name}' must have a value on every row; "
                    f"{_validate.describe_rows(missing)} are missing (NaN)."
                )
            if pd.api.types.is_numeric_dtype(model.data[name]):
                _validate.numeric_column(data[name], name, f"'{argument}' column")
        design = model.parameters[parameter].design.common
        if design is not None:
            matrix = np.asarray(design.evaluate_new_data(data).design_matrix, dtype=float)
            bad = ~np.isfinite(matrix).all(axis=1)
            if bad.any():
                raise ValueError(
                    f"The moderators of '{parameter} ~ {rhs}' are not finite on "
                    f"{_validate.describe_rows(bad)} of '{argument}' (e.g. log of a value <= 0); "
                    "give values inside the domain of the formula's transformations."
                )
    if model.cluster is not None and model.cluster in data.columns:
        labels = data[model.cluster]
        _validate.check_cluster_labels(labels, model.cluster, minimum=1)
        _, codes = match_cluster_labels(labels.to_numpy(), model.cluster_levels)
        if (codes < 0).any():
            warnings.warn(
                f"'{argument}' has cluster labels that match no fitted {model.cluster}: "
                f"{_validate.describe_rows(codes < 0, labels.to_numpy())}. These rows are "
                "predicted as NEW clusters (a fresh cluster effect).",
                UserWarning,
                stacklevel=3,
            )
    return data


def evaluate(expression: str, frame: pd.DataFrame, namespace: dict, role: str) -> np.ndarray:
    """Evaluate a column name or an expression (``sqrt(vi)``, ``vi + 0.01``) on ``frame``.

    Expressions are evaluated by formulae as ``I(<expression>)``, with the model's namespace
    (``sqrt``, ``log``, ``exp``, ``np``).
    """
    if is_identifier(expression):
        _validate.require_columns(frame, [expression], role.lower())
        return _validate.numeric_column(frame[expression], expression, role)
    wrapped = single_term(expression)
    names = sorted(expression_variables(expression))
    _validate.require_columns(frame, names, role.lower())
    numbers = pd.DataFrame(
        {name: _validate.numeric_column(frame[name], name, role) for name in names},
        index=frame.index,
    )
    try:
        design = fm.design_matrices(f"{wrapped} ~ 1", numbers, "error", 1, namespace)
    except Exception as error:  # an expression formulae or numpy cannot evaluate
        raise ValueError(
            f"{role} '{expression}' could not be evaluated on the data "
            f"({type(error).__name__}: {error})."
        ) from None
    values = np.asarray(design.response.design_matrix, dtype=float).ravel()
    if values.shape != (len(frame),):
        raise ValueError(
            f"{role} '{expression}' must give one number per row; it gives {values.size} values "
            f"for {len(frame)} rows."
        )
    return values


def _available(expression: str, frame: pd.DataFrame) -> bool:
    return expression_variables(expression) <= set(frame.columns)
