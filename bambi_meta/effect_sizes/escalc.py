"""Effect sizes from what papers report: ``escalc`` (metafor's names, numpy formulas).

``escalc(measure, data, ai="tpos", ...)`` returns a copy of ``data`` with the effect sizes
``yi``, their sampling variances ``vi`` and the total sample sizes ``ni`` added, and records the
measure in ``data.attrs["escalc"]``. The formulas are in :mod:`bambi_meta.effect_sizes.measures`;
this module reads and checks the arguments, applies metafor's rules for undefined values and maps
each measure to the default priors of :class:`bambi_meta.MetaModel`
(:data:`~bambi_meta.effect_sizes.escalc.ESCALC_MEASURES`).
"""

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bambi_meta._validate import (
    check_choice,
    check_nonnegative_number,
    check_rows,
    describe_rows,
    numeric_column,
    require_dataframe,
)
from bambi_meta.bambi_ext.priors import DATA_DEPENDENT_MEASURES
from bambi_meta.effect_sizes import measures

CORRECTIONS = ("all", "only0", "if0all", "none")

# What each argument must be, by kind: (test on the finite values, what is allowed).
_KINDS = {
    "count": (lambda x: x >= 0, "a count >= 0"),
    "positive": (lambda x: x > 0, "> 0"),
    "sd": (lambda x: x > 0, "an SD > 0"),
    "n": (lambda x: x >= 2, ">= 2 (an SD or a correlation needs two observations)"),
    "correlation": (lambda x: np.abs(x) <= 1, "a correlation in [-1, 1]"),
    "nonnegative": (lambda x: x >= 0, ">= 0 (its log is taken)"),
    "real": (lambda x: np.ones_like(x, dtype=bool), "finite"),
}
_TWO_BY_TWO = {
    "ai": "count", "bi": "count", "ci": "count", "di": "count", "n1i": "count", "n2i": "count"
}  # fmt: skip
_MEANS = {"m1i": "real", "sd1i": "sd", "n1i": "n", "m2i": "real", "sd2i": "sd", "n2i": "n"}
_CORRELATION = {"ri": "correlation", "ni": "n"}
_PROPORTION = {"xi": "count", "mi": "count", "ni": "positive"}
_RATE = {"xi": "count", "ti": "positive"}
_RATES = {"x1i": "count", "t1i": "positive", "x2i": "count", "t2i": "positive"}
_MEAN = {"mi": "real", "sdi": "sd", "ni": "n"}
_CHANGE = {"m1i": "real", "m2i": "real", "sd1i": "sd", "sd2i": "sd", "ni": "n", "ri": "correlation"}
# A cell given as a group total: cell = total - events (metafor's n1i, n2i, ni alternatives).
_FROM_TOTAL = {"bi": ("n1i", "ai"), "di": ("n2i", "ci"), "mi": ("ni", "xi")}


@dataclass(frozen=True)
class Measure:
    """One escalc measure: what it reads, how it is computed, which default priors it gets.

    Attributes
    ----------
    description : str
        What ``yi`` is.
    arguments : tuple of str
        The metafor arguments it needs, in order; ``"bi|n1i"`` means either one.
    kinds : mapping of str to str
        For each argument, what its values must be (a key of ``_KINDS``).
    compute : callable
        The function of :mod:`bambi_meta.effect_sizes.measures` that computes it.
    prior : str
        The measure :class:`bambi_meta.MetaModel` uses for the default priors (one of
        :data:`bambi_meta.MEASURES`).
    prior_rationale : str
        Why.
    vtypes : tuple of str
        metafor 3.8-1's ``vtype`` options for this measure; bambi_meta implements ``"LS"`` only.
    """

    description: str
    arguments: tuple[str, ...]
    kinds: Mapping[str, str]
    compute: Callable[..., measures.Estimates]
    prior: str
    prior_rationale: str
    vtypes: tuple[str, ...] = ("LS",)
    counts: bool = field(init=False)
    drop00: bool = field(init=False)

    def __post_init__(self) -> None:
        counts = (measures.two_by_two, measures.proportion, measures.incidence_rate)
        two_groups = (measures.two_by_two, measures.rate_comparison)
        object.__setattr__(self, "counts", self.compute in (*counts, *two_groups))
        object.__setattr__(self, "drop00", self.compute in two_groups)


_GEN_N = "no fixed unit-information SD: MetaModel derives it from the sample sizes 'ni'"
_GEN_T = "no fixed unit-information SD and no sample size (person-time): pass uisd= to MetaModel"
_2X2 = ("ai", "bi|n1i", "ci", "di|n2i")
_MEANS_ARGS = ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")
_CHANGE_ARGS = ("m1i", "m2i", "sd1i", "sd2i", "ni", "ri")
_PROP_ARGS = ("xi", "mi|ni")
_two_by_two, _means = measures.two_by_two, measures.two_group_means
_cor, _prop, _rate = measures.correlation, measures.proportion, measures.incidence_rate
_one_mean, _change = measures.single_mean, measures.mean_change

#: The escalc measures: arguments, formula, default priors (``prior``, ``prior_rationale``).
ESCALC_MEASURES: dict[str, Measure] = {
    # two groups, means and SDs
    "MD": Measure("mean difference", _MEANS_ARGS, _MEANS, _means, "GEN",
                  f"in the outcome's units; {_GEN_N}", ("UB", "LS", "HO")),
    "SMD": Measure("standardised mean difference (Hedges' g)", _MEANS_ARGS, _MEANS, _means,
                   "SMD", "Hedges' g", ("UB", "LS", "LS2", "AV")),
    "SMDH": Measure("standardised mean difference, heteroscedastic SDs (Bonett)", _MEANS_ARGS,
                    _MEANS, _means, "SMD", "a standardised mean difference", ("LS", "LS2")),
    "ROM": Measure("log ratio of means", _MEANS_ARGS, _MEANS, _means, "GEN",
                   f"a log ratio of means; {_GEN_N}", ("LS", "HO", "AV", "AVHO")),
    # 2x2 tables
    "OR": Measure("log odds ratio", _2X2, _TWO_BY_TWO, _two_by_two, "OR", "log odds ratio"),
    "RR": Measure("log risk ratio", _2X2, _TWO_BY_TWO, _two_by_two, "RR", "log risk ratio"),
    "RD": Measure("risk difference", _2X2, _TWO_BY_TWO, _two_by_two, "RD",
                  "risk difference: MetaModel derives the UISD from the sample sizes 'ni'",
                  ("UB", "LS", "AV")),
    "PETO": Measure("log odds ratio (Peto's method)", _2X2, _TWO_BY_TWO, _two_by_two, "OR",
                    "Peto's one-step estimate of the log odds ratio"),
    # correlations
    "COR": Measure("raw correlation", ("ri", "ni"), _CORRELATION, _cor, "GEN",
                   f"the raw correlation scale; {_GEN_N}", ("LS", "AV")),
    "UCOR": Measure("unbiased correlation (Olkin & Pratt)", ("ri", "ni"), _CORRELATION, _cor,
                    "GEN", f"the raw correlation scale; {_GEN_N}", ("UB", "LS", "AV")),
    "ZCOR": Measure("Fisher's z-transformed correlation", ("ri", "ni"), _CORRELATION, _cor,
                    "ZCOR", "Fisher's z"),
    # single groups
    "PR": Measure("raw proportion", _PROP_ARGS, _PROPORTION, _prop, "GEN",
                  f"a proportion; {_GEN_N}", ("UB", "LS", "AV")),
    "PLN": Measure("log proportion", _PROP_ARGS, _PROPORTION, _prop, "GEN",
                   f"a log proportion (not a ratio); {_GEN_N}", ("LS", "AV")),
    "PLO": Measure("logit proportion (log odds)", _PROP_ARGS, _PROPORTION, _prop, "OR",
                   "log odds of one group: the log-odds scale of OR", ("LS", "AV")),
    "PAS": Measure("arcsine square-root proportion", _PROP_ARGS, _PROPORTION, _prop, "GEN",
                   f"the arcsine scale; {_GEN_N}"),
    "IR": Measure("incidence rate", ("xi", "ti"), _RATE, _rate, "GEN", f"a rate; {_GEN_T}"),
    "IRLN": Measure("log incidence rate", ("xi", "ti"), _RATE, _rate, "GEN",
                    f"a log rate (not a ratio); {_GEN_T}"),
    "MN": Measure("raw mean", ("mi", "sdi", "ni"), _MEAN, _one_mean, "GEN",
                  f"in the outcome's units; {_GEN_N}"),
    "MNLN": Measure("log mean", ("mi", "sdi", "ni"), {**_MEAN, "mi": "nonnegative"}, _one_mean,
                    "GEN", f"a log mean (not a ratio); {_GEN_N}"),
    # two groups, events and person-time
    "IRR": Measure("log incidence rate ratio", ("x1i", "t1i", "x2i", "t2i"), _RATES,
                   measures.rate_comparison, "IRR", "log incidence rate ratio"),
    "IRD": Measure("incidence rate difference", ("x1i", "t1i", "x2i", "t2i"), _RATES,
                   measures.rate_comparison, "GEN", f"a rate difference; {_GEN_T}"),
    # one group measured twice
    "MC": Measure("raw mean change", _CHANGE_ARGS, _CHANGE, _change, "GEN",
                  f"in the outcome's units; {_GEN_N}"),
    "SMCC": Measure("standardised mean change, change-score SD", _CHANGE_ARGS, _CHANGE, _change,
                    "SMD", "a standardised mean difference (within persons)", ("LS", "LS2")),
    "SMCR": Measure("standardised mean change, raw-score SD", ("m1i", "m2i", "sd1i", "ni", "ri"),
                    {k: v for k, v in _CHANGE.items() if k != "sd2i"}, _change, "SMD",
                    "a standardised mean difference (within persons)", ("LS", "LS2")),
}  # fmt: skip


class UndefinedEffectSizeWarning(UserWarning):
    """Some rows got NaN effect sizes (missing inputs, or the measure is undefined there)."""


def escalc(
    measure: str,
    data: pd.DataFrame,
    *,
    ai: str | None = None,
    bi: str | None = None,
    ci: str | None = None,
    di: str | None = None,
    n1i: str | None = None,
    n2i: str | None = None,
    x1i: str | None = None,
    x2i: str | None = None,
    t1i: str | None = None,
    t2i: str | None = None,
    m1i: str | None = None,
    m2i: str | None = None,
    sd1i: str | None = None,
    sd2i: str | None = None,
    xi: str | None = None,
    mi: str | None = None,
    ri: str | float | None = None,
    ti: str | None = None,
    sdi: str | None = None,
    ni: str | None = None,
    add: float | None = None,
    to: str | None = None,
    drop00: bool = False,
    vtype: str = "LS",
    var_names: tuple[str, str] = ("yi", "vi"),
    ni_name: str | None = "ni",
) -> pd.DataFrame:
    """Compute effect sizes and their sampling variances from summary data (metafor's escalc).

    The arguments have metafor's names and take COLUMN NAMES of ``data``. Each measure equals
    metafor 3.8-1's ``escalc()`` with the same arguments (to 1e-12, relative; see
    ``tests/data/escalc_reference.R``); the formulas are in :mod:`bambi_meta.effect_sizes.measures`.

    ========================  ===========================================  ======================
    measure                   arguments                                    default priors
    ========================  ===========================================  ======================
    MD, SMD, SMDH, ROM        m1i, sd1i, n1i, m2i, sd2i, n2i               GEN, SMD, SMD, GEN
    OR, RR, RD, PETO          ai, bi (or n1i), ci, di (or n2i)             OR, RR, RD, OR
    COR, UCOR, ZCOR           ri, ni                                       GEN, GEN, ZCOR
    PR, PLN, PLO, PAS         xi, mi (non-events, or ni)                   GEN, GEN, OR, GEN
    IR, IRLN                  xi, ti (person-time)                         GEN
    MN, MNLN                  mi (mean), sdi, ni                           GEN
    IRR, IRD                  x1i, t1i, x2i, t2i                           IRR, GEN
    MC, SMCC, SMCR            m1i, m2i, sd1i, sd2i (not SMCR), ni, ri      GEN, SMD, SMD
    ========================  ===========================================  ======================

    Group 1 is the treatment group (``yi > 0`` when it has the larger mean or risk). For
    MC/SMCC/SMCR, ``yi = m1i - m2i`` (pass the post-test as ``m1i``) and SMCR standardises by
    ``sd1i`` (the pre-test SD). See :data:`~bambi_meta.effect_sizes.escalc.ESCALC_MEASURES` for each
    measure's description and why it gets those default priors.

    Parameters
    ----------
    measure : str
        One of the measures above (a key of
        :data:`~bambi_meta.effect_sizes.escalc.ESCALC_MEASURES`).
    data : pandas.DataFrame
        One row per study (or estimate).
    ai, bi, ci, di, n1i, n2i, x1i, x2i, t1i, t2i, m1i, m2i, sd1i, sd2i, xi, mi, ti, sdi, ni : str
        Names of the columns that hold metafor's argument of the same name (see the table).
        A missing value (NaN) gives a NaN effect size for that row, with a warning.
    ri : str or float
        Column of correlations. For MC, SMCC and SMCR (the correlation between the two
        measurements, rarely reported) it may also be one assumed correlation for every row.
    add : float, optional
        Continuity correction added to the counts (measures computed from counts only). Default
        1/2, or 0 for PAS, as in metafor.
    to : {"only0", "all", "if0all", "none"}, optional
        Which rows get ``add``: rows with a zero count (default), all rows, all rows if any row
        has a zero count, no row.
    drop00 : bool, default False
        For OR, RR, RD, PETO, IRR and IRD: set rows without events in both groups (and, for the
        2x2 measures, rows with only events in both groups) to NaN, with a warning.
    vtype : {"LS"}
        The sampling variance: "LS", metafor's default (large-sample approximation). metafor's
        other options ("UB", "LS2", "HO", "AV", "AVHO", "ST", "CS", depending on the measure) are
        not implemented and raise a ValueError that lists them for the measure.
    var_names : tuple of (str, str), default ("yi", "vi")
        Names of the effect-size and sampling-variance columns (replaced if they exist, as
        metafor's ``replace=TRUE`` does).
    ni_name : str or None, default "ni"
        Name of the total-sample-size column (metafor keeps it as the ``ni`` attribute of
        ``yi``); None to leave it out. It is not added for IR, IRLN, IRR and IRD (metafor stores
        person-time there). An existing column of that name with other values raises an error.

    Returns
    -------
    pandas.DataFrame
        A copy of ``data`` with the new columns and ``attrs["escalc"] = {"measure": ...,
        "yi": ..., "vi": ..., "ni": <column or None>}``, which
        :func:`~bambi_meta.effect_sizes.escalc.model_arguments` turns into MetaModel's
        ``measure`` and ``sample_sizes``.

    Warns
    -----
    UndefinedEffectSizeWarning
        When rows get NaN effect sizes or variances: missing inputs, double-zero studies with
        ``drop00=True``, or values where the measure is undefined (e.g. ``log(0)`` with
        ``to="none"``). The warning names the rows and why; the rows are kept.

    Raises
    ------
    ValueError
        Missing or unused arguments, columns not in ``data``, and bad values (negative counts, a
        count larger than its group size, SD <= 0, n < 2 for SDs and correlations, r outside
        [-1, 1], person-time <= 0), naming the measure, the argument, the column and the rows.
    TypeError
        A column that is not numeric, or an argument that is not a column name.

    Examples
    --------
    >>> import bambi_meta as bmm
    >>> bcg = bmm.load_dataset("dat.bcg")
    >>> dat = bmm.escalc("OR", bcg, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> dat[["yi", "vi", "ni"]].head(2).round(4)
           yi      vi   ni
    0 -0.9387  0.3571  262
    1 -1.6662  0.2081  609
    >>> dat.attrs["escalc"]
    {'measure': 'OR', 'yi': 'yi', 'vi': 'vi', 'ni': 'ni'}
    """
    measure = check_choice(measure, "measure", tuple(ESCALC_MEASURES))
    spec = ESCALC_MEASURES[measure]
    data = require_dataframe(data)
    context = f"escalc(measure={measure!r})"
    options = _count_options(measure, spec, add, to, drop00, vtype)
    yi_name, vi_name = _check_names(var_names, ni_name)
    given = {
        name: column
        for name, column in dict(
            ai=ai, bi=bi, ci=ci, di=di, n1i=n1i, n2i=n2i, x1i=x1i, x2i=x2i, t1i=t1i, t2i=t2i,
            m1i=m1i, m2i=m2i, sd1i=sd1i, sd2i=sd2i, xi=xi, mi=mi, ri=ri, ti=ti, sdi=sdi, ni=ni,
        ).items()
        if column is not None
    }  # fmt: skip
    values = _read_arguments(spec, context, given, data)
    estimates = spec.compute(measure, **_cells(spec, context, given, values), **options)
    missing = np.any([np.isnan(column) for column in values.values()], axis=0)
    yi, vi = _recode_like_metafor(estimates, missing)
    reasons = (("a missing value (NaN) in an input column", missing), *estimates.undefined)
    _warn_undefined(context, yi, vi, reasons)

    out = data.copy()
    out[yi_name] = yi
    out[vi_name] = vi
    sample_sizes = _write_sample_sizes(out, estimates.sample_sizes, ni_name, context)
    out.attrs["escalc"] = {"measure": measure, "yi": yi_name, "vi": vi_name, "ni": sample_sizes}
    return out


def _count_options(measure, spec, add, to, drop00, vtype) -> dict:
    """Check ``vtype``, ``add``, ``to``, ``drop00``; return the ones the formula takes."""
    if vtype != "LS":
        offered = f"metafor offers {', '.join(spec.vtypes)} for {measure}"
        raise ValueError(
            f"escalc(measure={measure!r}): vtype={vtype!r} is not implemented ({offered}); "
            "bambi_meta implements vtype='LS' (metafor's default, the large-sample variance)."
        )
    if not isinstance(drop00, bool | np.bool_):
        raise TypeError(f"'drop00' must be True or False; got {drop00!r}.")
    if not spec.counts:
        given = [name for name, value in (("add", add), ("to", to)) if value is not None]
        given += ["drop00"] if drop00 else []
        if given:
            counted = ", ".join(name for name, other in ESCALC_MEASURES.items() if other.counts)
            raise ValueError(
                f"escalc(measure={measure!r}) does not use {', '.join(map(repr, given))}: "
                f"continuity corrections apply to measures computed from counts ({counted})."
            )
        return {}
    options = {
        "add": (0.0 if measure == "PAS" else 0.5)
        if add is None
        else check_nonnegative_number(add, "add"),
        "to": "only0" if to is None else check_choice(to, "to", CORRECTIONS),
    }
    if spec.drop00:
        options["drop00"] = bool(drop00)
    elif drop00:
        raise ValueError(
            f"escalc(measure={measure!r}) does not use 'drop00': it applies to measures that "
            "compare two groups' counts (OR, RR, RD, PETO, IRR, IRD)."
        )
    return options


def _check_names(var_names, ni_name) -> tuple[str, str]:
    """``var_names`` must be two distinct strings, ``ni_name`` a third one (or None)."""
    names = tuple(var_names) if isinstance(var_names, list | tuple) else ()
    if len(names) != 2 or not all(isinstance(name, str) and name for name in names):
        raise TypeError(
            f"'var_names' must be two column names, e.g. ('yi', 'vi'); got {var_names!r}."
        )
    if ni_name is not None and not (isinstance(ni_name, str) and ni_name):
        raise TypeError(f"'ni_name' must be a column name or None; got {ni_name!r}.")
    if len({*names, ni_name} - {None}) != 2 + (ni_name is not None):
        raise ValueError(f"'var_names' {names!r} and 'ni_name' {ni_name!r} must differ.")
    return names


def _read_arguments(spec: Measure, context: str, given: dict, data: pd.DataFrame) -> dict:
    """Check which arguments were given and read their columns as checked float arrays."""
    reads = ", ".join(argument.replace("|", " (or ") + ")" * ("|" in argument)
                      for argument in spec.arguments)  # fmt: skip
    unused = [name for name in given if name not in spec.kinds]
    if unused:
        raise ValueError(
            f"{context} does not use {', '.join(map(repr, unused))}; it reads {reads}."
        )
    for argument in spec.arguments:
        if not any(name in given for name in argument.split("|")):
            needed = " or ".join(f"'{name}'" for name in argument.split("|"))
            raise ValueError(f"{context} needs {needed} (a column of 'data'); it reads {reads}.")
    values = {}
    for name, column in given.items():
        test, allowed = _KINDS[spec.kinds[name]]
        if name == "ri" and spec.compute is _change and _is_number(column):
            if not -1 <= float(column) <= 1:
                raise ValueError(f"{context}: the assumed correlation 'ri' must be in [-1, 1]; "
                                 f"got {column!r}.")  # fmt: skip
            values[name] = np.full(len(data), float(column))
            continue
        if not isinstance(column, str):
            raise TypeError(f"{context}: '{name}' must be a column name of 'data' (a string); "
                            f"got {type(column).__name__}.")  # fmt: skip
        if column not in data.columns:
            available = ", ".join(map(str, data.columns))
            raise ValueError(f"{context}: '{name}' names column {column!r}, which is not in "
                             f"'data'. Available columns: {available}.")  # fmt: skip
        array = numeric_column(data[column], column, f"{context}: '{name}' reads column")
        with np.errstate(invalid="ignore"):
            check_rows(array, test(array), f"{context}: '{name}' (column {column!r})", allowed)
        values[name] = array
    return values


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _cells(spec: Measure, context: str, given: dict, values: dict) -> dict:
    """The formula's inputs: a cell given as a group total becomes total - events."""
    cells = {}
    for argument in spec.arguments:
        cell, *alternative = argument.split("|")
        if not alternative or alternative[0] not in values:
            cells[cell] = values[cell]
            continue
        total, events = _FROM_TOTAL[cell]
        size, count = values[total], values[events]
        label = f"'{total}' (column {given[total]!r})"
        with np.errstate(invalid="ignore"):
            too_many = count > size
            if too_many.any():
                raise ValueError(
                    f"{context}: '{events}' (column {given[events]!r}) must be <= the group size "
                    f"{label}; it is larger in {describe_rows(too_many, count)}."
                )
            if cell in values:
                differ = size != count + values[cell]
                differ &= ~np.isnan(size) & ~np.isnan(count + values[cell])
                if differ.any():
                    raise ValueError(f"{context}: {label} must equal '{events}' + '{cell}'; it "
                                     f"does not in {describe_rows(differ, size)}.")  # fmt: skip
        cells[cell] = values[cell] if cell in values else size - count
    return cells


def _recode_like_metafor(estimates, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply metafor's last step: infinite (or, with complete inputs, NaN) yi or vi -> both NaN.

    Rows where metafor itself leaves only ``vi`` undefined (correlations with ni <= 3) keep their
    ``yi``, and negative variances become NaN, as in metafor.
    """
    yi = np.array(estimates.yi, dtype=float)
    vi = np.array(estimates.vi, dtype=float)
    only_vi = np.zeros(yi.shape, bool) if estimates.vi_undefined is None else estimates.vi_undefined
    undefined = np.isinf(yi) | np.isinf(vi)
    undefined |= (np.isnan(yi) | (np.isnan(vi) & ~only_vi)) & ~missing
    yi[undefined] = np.nan
    vi[undefined | (vi < 0)] = np.nan
    return yi, vi


def _warn_undefined(context: str, yi: np.ndarray, vi: np.ndarray, reasons) -> None:
    """One warning naming every NaN row and the first reason that explains it."""
    unexplained = np.isnan(yi) | np.isnan(vi)
    if not unexplained.any():
        return
    count = int(unexplained.sum())
    parts = []
    for reason, rows in reasons:
        rows = unexplained & rows
        if rows.any():
            parts.append(f"{describe_rows(rows)}: {reason}")
            unexplained &= ~rows
    if unexplained.any():
        parts.append(f"{describe_rows(unexplained)}: the formula is undefined for these values "
                     "(e.g. the log of 0 or a division by 0)")  # fmt: skip
    warnings.warn(
        f"{context}: yi and/or vi are NaN in {count} of {len(yi)} rows, which are kept; "
        f"{'; '.join(parts)}. MetaModel needs finite values: fix these rows, or drop them "
        "(MetaModel(..., dropna=True) reports which rows it drops).",
        UndefinedEffectSizeWarning,
        stacklevel=3,
    )


def _write_sample_sizes(out: pd.DataFrame, sizes, ni_name: str | None, context: str):
    """Add the total-sample-size column; return its name (None when not written).

    A column of that name that already holds these sizes (e.g. the ``ni`` a correlation was
    read from) is kept as it is; one with other values is an error.
    """
    if sizes is None or ni_name is None:
        return None
    if ni_name in out.columns:
        existing = pd.to_numeric(out[ni_name], errors="coerce").to_numpy(dtype=float)
        known = ~np.isnan(sizes)
        if np.array_equal(existing[known], sizes[known]):
            return ni_name
        raise ValueError(
            f"{context}: 'data' already has a column {ni_name!r} that differs from the total "
            "sample sizes escalc writes there; pass ni_name='...' (another name) or ni_name=None."
        )
    whole = np.isfinite(sizes).all() and np.array_equal(sizes, np.round(sizes))
    out[ni_name] = sizes.astype(np.int64) if whole else sizes
    return ni_name


# ---- escalc record -> MetaModel arguments -------------------------------------------------------


def measure_from_attrs(data: pd.DataFrame) -> dict | None:
    """The escalc record of ``data`` (``data.attrs["escalc"]``), or None if it has none.

    Parameters
    ----------
    data : pandas.DataFrame

    Returns
    -------
    dict or None
        ``{"measure": <escalc measure>, "yi": <column>, "vi": <column>, "ni": <column or None>}``.
    """
    record = getattr(data, "attrs", {}).get("escalc")
    if record is None:
        return None
    if not isinstance(record, Mapping) or record.get("measure") not in ESCALC_MEASURES:
        raise ValueError(
            f"data.attrs['escalc'] must be the record escalc writes, with a 'measure' among "
            f"{', '.join(ESCALC_MEASURES)}; got {record!r}."
        )
    return {key: record.get(key) for key in ("measure", "yi", "vi", "ni")}


def prior_measure(measure: str) -> str:
    """The measure of :data:`bambi_meta.MEASURES` whose default priors an escalc measure gets.

    Examples
    --------
    >>> prior_measure("PETO"), prior_measure("SMCR"), prior_measure("MD")
    ('OR', 'SMD', 'GEN')
    """
    return ESCALC_MEASURES[check_choice(measure, "measure", tuple(ESCALC_MEASURES))].prior


def model_arguments(
    data: pd.DataFrame, measure: str | None = None, effect_sizes: str | None = None
) -> dict:
    """MetaModel's ``measure`` (and ``sample_sizes``) from the escalc record of ``data``.

    This is how :class:`bambi_meta.MetaModel` is meant to use an escalc record: when the formula's
    effect sizes are the column escalc wrote, ``measure=`` may be omitted; the record gives the
    prior measure (:func:`prior_measure`) and, for RD and GEN, the sample-size column ``ni``. An
    explicit ``measure`` must agree with the record, either as the escalc measure itself or as its
    prior measure; otherwise this raises an error that shows both. Arguments the user passes
    explicitly (``sample_sizes=``, ``uisd=``) take precedence over the returned ones.

    Parameters
    ----------
    data : pandas.DataFrame
        The model's data, possibly returned by :func:`bambi_meta.escalc`.
    measure : str, optional
        The ``measure`` passed to MetaModel, if any.
    effect_sizes : str, optional
        The formula's effect-size column. The record applies only when it is the column escalc
        wrote (or when this is None).

    Returns
    -------
    dict
        ``{"measure": ...}`` plus ``"sample_sizes"`` when the prior measure needs sample sizes
        and escalc wrote them; ``{}`` when there is no applicable record and no ``measure``.

    Examples
    --------
    >>> import bambi_meta as bmm
    >>> bcg = bmm.load_dataset("dat.bcg")
    >>> dat = bmm.escalc("RD", bcg, ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> model_arguments(dat, effect_sizes="yi")
    {'measure': 'RD', 'sample_sizes': 'ni'}
    """
    record = measure_from_attrs(data)
    if record is None or (effect_sizes is not None and effect_sizes != record["yi"]):
        return {} if measure is None else {"measure": measure}
    prior = ESCALC_MEASURES[record["measure"]].prior
    if measure is not None and str(measure).upper() not in (record["measure"], prior):
        raise ValueError(
            f"measure={measure!r} disagrees with the data: escalc computed '{record['yi']}' as "
            f"measure={record['measure']!r}, whose default priors are those of {prior!r}. Omit "
            f"'measure' (or pass {prior!r}); if {measure!r} is really meant, remove the record "
            "with data.attrs.pop('escalc')."
        )
    arguments = {"measure": prior}
    if prior in DATA_DEPENDENT_MEASURES and record["ni"] is not None:
        arguments["sample_sizes"] = record["ni"]
    return arguments
