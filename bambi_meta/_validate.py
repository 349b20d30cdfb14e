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


def require_dataframe(data: object, name: str = "data") -> pd.DataFrame:
    """Check that ``data`` is a pandas DataFrame with at least one row."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"'{name}' must be a pandas DataFrame; got {type(data).__name__}.")
    if len(data) == 0:
        raise ValueError(f"'{name}' has no rows.")
    return data


def require_columns(data: pd.DataFrame, columns: Sequence[str], role: str) -> None:
    """Check that the variables named in the formula exist in ``data``, each exactly once."""
    check_names_unique(data[[name for name in columns if name in data.columns]])
    missing = [name for name in columns if name not in data.columns]
    if missing:
        available = ", ".join(map(str, data.columns))
        raise ValueError(
            f"The {role} column(s) {', '.join(map(repr, missing))} named in the formula are not in "
            f"'data'. Available columns: {available}."
        )


def numeric_column(values: object, name: str, role: str) -> np.ndarray:
    """Return ``values`` as float64, or raise a TypeError naming the non-numeric rows.

    Booleans, dates, durations and complex numbers are refused: converting them to floats would
    give numbers (nanoseconds since 1970, a dropped imaginary part) that mean nothing here.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).ravel())
    dtype = series.dtype
    if (
        pd.api.types.is_bool_dtype(dtype)
        or pd.api.types.is_datetime64_any_dtype(dtype)
        or pd.api.types.is_timedelta64_dtype(dtype)
        or pd.api.types.is_complex_dtype(dtype)
        or isinstance(dtype, pd.PeriodDtype)
    ):
        raise TypeError(
            f"{role} '{name}' must be numeric; it has dtype {dtype} (booleans, dates and "
            "complex numbers are not read as numbers)."
        )
    odd = series.map(lambda x: isinstance(x, (complex, np.complexfloating, np.datetime64)))
    if series.dtype == object and odd.any():
        raise TypeError(
            f"{role} '{name}' must be numeric; {describe_rows(odd.to_numpy(), series.to_numpy())}"
            " are not real numbers."
        )
    converted = pd.to_numeric(series, errors="coerce")
    not_numbers = converted.isna().to_numpy() & series.notna().to_numpy()
    if not_numbers.any():
        raise TypeError(
            f"{role} '{name}' must be numeric; {describe_rows(not_numbers, series.to_numpy())} "
            "cannot be read as numbers."
        )
    return converted.to_numpy(dtype=float)


# Names of the model's own parameters (and Bambi's intercept): a moderator column with one of
# these names would be confused with them in the posterior and in priors.
RESERVED_NAMES = ("mu", "tau", "rho", "Intercept")


def check_reserved_names(moderators: Sequence[str]) -> None:
    """A moderator may not be named like a parameter of the model."""
    clashes = [name for name in moderators if name in RESERVED_NAMES]
    if clashes:
        raise ValueError(
            f"The moderator column(s) {', '.join(map(repr, clashes))} have the name of a "
            f"parameter of the model ({', '.join(RESERVED_NAMES)}), which would make the "
            "posterior and the priors ambiguous. Rename the column(s), e.g. "
            f"data.rename(columns={{{clashes[0]!r}: '{clashes[0]}_x'}})."
        )


def check_moderators_vary(data: pd.DataFrame, names: Sequence[str]) -> None:
    """A moderator takes one kind of value, and two values or more (else it is the intercept)."""
    for name in names:
        check_one_kind(
            data[name].dropna(), f"Moderator '{name}'", "it is neither numeric nor categorical"
        )
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


def check_cluster_labels(values: pd.Series, name: str, minimum: int = 2) -> None:
    """Cluster labels: present on every row, of one kind, and at least ``minimum`` clusters."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise ValueError(
            f"Cluster column '{name}' must have a label on every row; {describe_rows(missing)} "
            "are missing (NaN)."
        )
    check_one_kind(values, f"Cluster column '{name}'", "11 and '11' would be different clusters")
    n_clusters = values.nunique()
    if n_clusters < minimum:
        raise ValueError(
            f"Cluster column '{name}' has a single cluster ({values.iloc[0]!r}); the cluster "
            "level (rho) cannot be estimated from one cluster. Drop '(1|"
            f"{name})' from the formula to fit the ordinary random-effects model."
        )


def check_one_kind(values: pd.Series, what: str, why: str) -> None:
    """The values of a column of labels must be of one kind (numbers, text, ...), not mixed."""
    kinds = values.map(_label_kind)
    if kinds.nunique() > 1:
        differ = describe_rows((kinds != kinds.iloc[0]).to_numpy(), values.to_numpy())
        name = values.name if values.name is not None else "x"
        raise ValueError(
            f"{what} mixes kinds of values ({', '.join(sorted(kinds.unique()))}), so {why}: "
            f"{differ} differ from row 1. Convert the column to one type, e.g. "
            f"data['{name}'] = data['{name}'].astype(str)."
        )


def _label_kind(label: object) -> str:
    if isinstance(label, (bool, np.bool_)):
        return "bool"
    if isinstance(label, (int, float, np.integer, np.floating)):
        return "number"
    return type(label).__name__


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


def check_integer(value: object, name: str, minimum: int, maximum: int | None = None) -> int:
    """Check an integer argument within ``[minimum, maximum]`` (numpy integers accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"'{name}' must be an integer >= {minimum}; got {value!r}.")
    if value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"'{name}' must be an integer {allowed}; got {value!r}.")
    return int(value)


def check_open_unit_interval(value: object, name: str) -> float:
    """Check a probability strictly between 0 and 1 (``target_accept``, ``level``)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"'{name}' must be a number in (0, 1); got {value!r}.") from None
    if isinstance(value, bool) or not 0 < number < 1:
        raise ValueError(
            f"'{name}' must be a number in (0, 1) (strictly between 0 and 1); got {value!r}."
        )
    return number


SEED_LIMIT = 2**64


def check_random_seed(value: object) -> int | np.random.Generator | None:
    """A seed is None, an integer in [0, 2**64) or a ``numpy.random.Generator`` (as in Bambi).

    (A ``numpy.random.SeedSequence``, which the package spawns for parallel refits, passes too.)
    """
    if value is None or isinstance(value, np.random.Generator | np.random.SeedSequence):
        return value
    return check_integer(value, "random_seed", 0, SEED_LIMIT - 1)


def check_names_unique(data: pd.DataFrame) -> None:
    """Column names must be unique (a formula could not tell two columns of one name apart)."""
    duplicated = data.columns[data.columns.duplicated()].unique().tolist()
    if duplicated:
        raise ValueError(
            f"'data' has duplicate column names {', '.join(map(repr, duplicated))}; rename them "
            "so that every column the formula names is unambiguous."
        )


# Fixed values a parameter may take instead of a prior: tau >= 0 (0 is the common-effect model)
# and rho in [0, 1].
FIXED_VALUE_RANGES = {"tau": (0.0, np.inf), "rho": (0.0, 1.0)}


def check_prior(name: str, prior: object) -> None:
    """A prior is a ``bambi.Prior``, a dict of them, or a fixed number in the parameter's range."""
    if isinstance(prior, bool) or not isinstance(prior, (int, float, np.number)):
        return  # bmb.Prior and nested dicts are checked by Bambi
    low, high = FIXED_VALUE_RANGES.get(name, (-np.inf, np.inf))
    if name not in FIXED_VALUE_RANGES or not (np.isfinite(prior) and low <= prior <= high):
        allowed = (
            f"a bambi.Prior or a fixed number in [{low:g}, {high:g}]"
            if name in FIXED_VALUE_RANGES
            else "a bambi.Prior (only tau and rho can be fixed at a number)"
        )
        raise ValueError(f"priors={{{name!r}: ...}} must be {allowed}; got {prior!r}.")


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


def finite_vector(
    values: object,
    name: str,
    length: int | None = None,
    positive: bool = False,
    infinite_allowed: bool = False,
    length_of: str = "'yi'",
) -> np.ndarray:
    """A 1-D float array, finite (and > 0 with ``positive``), of ``length`` rows if given.

    ``infinite_allowed``: +inf passes too (a flat prior's infinite SD). ``length_of`` says what
    the length must match (for the message).
    """
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"'{name}' must be numeric; got {type(values).__name__}.") from None
    if array.ndim != 1 or (length is not None and array.shape[0] != length):
        size = "" if length is None else f" of length {length} (as {length_of})"
        raise ValueError(f"'{name}' must be a 1-D array{size}; got shape {array.shape}.")
    finite = np.isfinite(array) | ((array == np.inf) if infinite_allowed else False)
    bad = ~finite | ((array <= 0) if positive else False)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        if infinite_allowed:
            rule = "> 0 (inf: a flat prior)"
        else:
            rule = "finite and > 0" if positive else "finite"
        raise ValueError(f"'{name}' must be {rule}; row {row + 1} has {array[row].item()!r}.")
    return array


def check_model(model: object, name: str = "model") -> None:
    """The first argument of every helper: a :class:`bambi_meta.MetaModel`."""
    from bambi_meta.bambi_ext.model import MetaModel

    if not isinstance(model, MetaModel):
        raise TypeError(f"'{name}' must be a bambi_meta.MetaModel; got {type(model).__name__}.")
