"""Every input check of bambi_meta, with one message format.

Messages name the argument, the offending rows (1-based, as a spreadsheet or R would number
them) and what is allowed, e.g. ``'vi' must be finite and > 0; row 7 has -0.02.``
Nothing here drops rows: a check either passes or raises.
"""

from collections.abc import Sequence

import numpy as np
import pandas as pd

MAX_ROWS_LISTED = 5


def describe_rows(mask: np.ndarray, values: Sequence | np.ndarray | None = None) -> str:
    """Describe the rows where ``mask`` is true, e.g. ``"rows 3 (nan), 9 (nan)"``.

    Parameters
    ----------
    mask : numpy.ndarray of bool
        Which rows are offending.
    values : array-like, optional
        The offending values, shown next to the row numbers.

    Returns
    -------
    str
        At most ``MAX_ROWS_LISTED`` rows, then how many more there are.
    """
    rows = np.flatnonzero(mask)
    shown = []
    for row in rows[:MAX_ROWS_LISTED]:
        label = f"{row + 1}"
        if values is not None:
            label += f" ({np.asarray(values, dtype=object)[row]!r})"
        shown.append(label)
    text = ("row " if len(rows) == 1 else "rows ") + ", ".join(shown)
    if len(rows) > MAX_ROWS_LISTED:
        text += f" and {len(rows) - MAX_ROWS_LISTED} more"
    return text


def require_dataframe(data: object) -> pd.DataFrame:
    """Check that ``data`` is a pandas DataFrame with at least one row."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"'data' must be a pandas DataFrame; got {type(data).__name__}.")
    if len(data) == 0:
        raise ValueError("'data' has no rows.")
    return data


def require_columns(data: pd.DataFrame, columns: Sequence[str], role: str) -> None:
    """Check that the variables named in the formula exist in ``data``."""
    missing = [name for name in columns if name not in data.columns]
    if missing:
        available = ", ".join(map(str, data.columns))
        raise ValueError(
            f"The {role} column(s) {', '.join(map(repr, missing))} named in the formula are not in "
            f"'data'. Available columns: {available}."
        )


def numeric_column(values: object, name: str, role: str) -> np.ndarray:
    """Return ``values`` as float64, or raise a TypeError naming the non-numeric rows."""
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).ravel())
    if pd.api.types.is_bool_dtype(series):
        raise TypeError(f"{role} '{name}' must be numeric; it has dtype {series.dtype}.")
    converted = pd.to_numeric(series, errors="coerce")
    not_numbers = converted.isna().to_numpy() & series.notna().to_numpy()
    if not_numbers.any():
        raise TypeError(
            f"{role} '{name}' must be numeric; {describe_rows(not_numbers, series.to_numpy())} "
            "cannot be read as numbers."
        )
    return converted.to_numpy(dtype=float)


def check_moderators_vary(data: pd.DataFrame, names: Sequence[str]) -> None:
    """A moderator that takes one value is confounded with the intercept."""
    for name in names:
        if data[name].nunique(dropna=True) < 2:
            raise ValueError(
                f"Moderator '{name}' is constant (every row has {data[name].iloc[0]!r}); it is "
                "confounded with the intercept. Remove it from the formula."
            )


def check_effect_sizes(values: np.ndarray, name: str) -> None:
    """Effect sizes must be finite numbers (NaN means a missing estimate: drop it explicitly)."""
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"Effect sizes '{name}' must be finite; {describe_rows(bad, values)}. "
            "Remove or impute those rows before fitting (pass dropna=True to drop them with a "
            "report of which rows were dropped)."
        )


def check_sampling_uncertainty(values: np.ndarray, name: str, is_sd: bool) -> None:
    """Sampling variances (or standard errors) must be finite and strictly positive."""
    kind = "standard errors" if is_sd else "sampling variances"
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        raise ValueError(f"'{name}' ({kind}) must be finite and > 0; {describe_rows(bad, values)}.")


def check_cluster_labels(values: pd.Series, name: str) -> None:
    """Cluster labels must be present on every row and define at least two clusters."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"Cluster column '{name}' must have a label on every row; {describe_rows(missing)} "
            "are missing (NaN)."
        )
    n_clusters = values.nunique()
    if n_clusters < 2:
        raise ValueError(
            f"Cluster column '{name}' has a single cluster ({values.iloc[0]!r}); the cluster "
            "level (rho) cannot be estimated from one cluster. Drop '(1|"
            f"{name})' from the formula to fit the ordinary random-effects model."
        )


def check_unique_within(values: pd.Series, cluster: str, estimate_id: str) -> None:
    """In ``(1|g/id)``, the pair (g, id) must identify a single row."""
    duplicated = values.duplicated(keep=False).to_numpy()
    if duplicated.any():
        raise ValueError(
            f"'(1|{cluster}/{estimate_id})' is the three-level model only when each row has its "
            f"own {cluster}:{estimate_id} combination; {describe_rows(duplicated)} share one. "
            f"Use '(1|{cluster})' if several rows belong to the same estimate level."
        )


def check_number_of_estimates(n_rows: int) -> None:
    """A meta-analysis needs at least two estimates."""
    if n_rows < 2:
        raise ValueError(f"A meta-analysis needs at least 2 estimates (rows); 'data' has {n_rows}.")


def check_choice(value: object, name: str, allowed: Sequence[str]) -> str:
    """Check that ``value`` is one of ``allowed`` (case-insensitive); return the canonical form."""
    canonical = {option.upper(): option for option in allowed}
    if not isinstance(value, str) or value.upper() not in canonical:
        raise ValueError(f"'{name}' must be one of {', '.join(allowed)}; got {value!r}.")
    return canonical[value.upper()]


def check_positive_number(value: object, name: str) -> float:
    """Check a strictly positive finite scalar."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"'{name}' must be a positive number; got {value!r}.") from None
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f"'{name}' must be finite and > 0; got {value!r}.")
    return number


def check_full_rank(matrix: np.ndarray, columns: Sequence[str], formula: str) -> None:
    """A design whose columns are linearly dependent leaves some coefficients unidentified."""
    matrix = np.asarray(matrix, dtype=float)
    kept, redundant = [], []
    for index, name in enumerate(columns):
        candidate = matrix[:, [*kept, index]]
        if np.linalg.matrix_rank(candidate) > len(kept):
            kept.append(index)
        else:
            redundant.append(name)
    if redundant:
        raise ValueError(
            f"The moderators in '{formula}' are linearly dependent: column(s) "
            f"{', '.join(map(repr, redundant))} are combinations of the columns before them "
            "(e.g. a moderator constant within a level of another, or an interaction with an "
            "empty cell), so the data cannot tell their coefficients apart. Remove or recode them."
        )


def check_nonnegative_number(value: object, name: str) -> float:
    """Check a finite scalar >= 0."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"'{name}' must be a number >= 0; got {value!r}.") from None
    if not np.isfinite(number) or number < 0:
        raise ValueError(f"'{name}' must be finite and >= 0; got {value!r}.")
    return number


def check_rows(values: np.ndarray, ok: np.ndarray, name: str, allowed: str) -> None:
    """Raise a ValueError naming the rows of ``values`` that are infinite or where ``ok`` fails.

    NaN (a missing value) passes: the caller decides what a missing value means. ``name`` says
    what the values are, e.g. ``"escalc(measure='OR'): 'ai' (column 'tpos')"``, and ``allowed``
    what they must be, e.g. ``"a count >= 0"``.
    """
    values = np.asarray(values, dtype=float)
    bad = ~np.isnan(values) & (np.isinf(values) | ~np.asarray(ok, dtype=bool))
    if bad.any():
        raise ValueError(f"{name} must be {allowed}; {describe_rows(bad, values)}.")
