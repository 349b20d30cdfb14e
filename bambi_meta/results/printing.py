"""How result tables print: a header, fixed decimals, integer ESS, never truncated.

Every table the package returns (``summary``, ``summary_heterogeneity``, ``prediction_intervals``,
the effects tables) is a :class:`ResultTable`: a pandas DataFrame that keeps full precision and
only rounds when it is shown. Its text is made here, cell by cell, and laid out with
``DataFrame.to_string`` with every limit switched off, so pandas' display options (width,
max_columns, max_rows, precision) never cut or round it, in a terminal or piped. Global pandas
options are never read for the numbers nor changed.

The rounding rules (``digits`` = decimal places, as ``digits`` means in RoBMA and metafor):

* estimates (``Mean``, ``SD``, quantiles, interval bounds, ``yi``, ``estimate``, ``se``):
  ``digits`` decimals, more in a row whose ``SD`` (or ``se``) is small, so that the SD shows two
  significant digits (a slope of 0.0048 per year with SD 0.0093 does not print as 0.005 and
  0.009, nor one per day as 0.000);
* ``MCSE``: two significant digits (at least ``digits`` decimals);
* ``ESS`` and counts: integers; ``R-hat``: 3 decimals;
* other numbers (``vi``, probabilities): ``digits`` decimals, two significant digits for a
  nonzero value that would otherwise print as 0.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from bambi_meta import _validate

DEFAULT_DIGITS = 3
# decimals beyond ``digits`` that the small-SD rule may add (an SD of 1e-12 is a fixed value)
MAX_EXTRA_DECIMALS = 6
INTEGER_COLUMNS = frozenset({"ESS", "n", "nlvls"})
SCALE_COLUMNS = ("SD", "se")  # the column whose size sets a row's decimals
ESTIMATE_COLUMNS = frozenset(
    {"Mean", "SD", "Median", "yi", "estimate", "se", "ci_lower", "ci_upper"}
    | {"CI lower", "CI upper", "PI lower", "PI upper", "PI lower [cluster]", "PI upper [cluster]"}
)


def check_digits(digits: object) -> int:
    """Decimal places of a printed table: an integer from 0 to 10."""
    return _validate.check_integer(digits, "digits", minimum=0, maximum=10)


def decimals_for(value: float, digits: int, significant: int = 2) -> int:
    """Decimals that show ``significant`` digits of ``value``, and at least ``digits``."""
    if not np.isfinite(value) or value == 0:
        return digits
    needed = significant - 1 - math.floor(math.log10(abs(value)))
    return int(min(max(digits, needed), digits + MAX_EXTRA_DECIMALS))


def _is_estimate(column: object) -> bool:
    """Columns on the scale of the estimates: means, SDs, quantiles (``0.025``), bounds."""
    if column in ESTIMATE_COLUMNS:
        return True
    try:
        return 0.0 < float(str(column)) < 1.0  # a quantile column, e.g. "0.025"
    except ValueError:
        return False


def _fixed(value: object, decimals: int) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "NaN"
    return f"{value:.{decimals}f}"


def format_cells(table: pd.DataFrame, digits: int = DEFAULT_DIGITS) -> pd.DataFrame:
    """The table as strings, rounded by the rules in this module's docstring.

    Parameters
    ----------
    table : pandas.DataFrame
        Any table; columns are recognised by name (``Mean``, ``SD``, ``MCSE``, ``ESS``, ...).
    digits : int, default 3
        Decimal places of the estimates.

    Returns
    -------
    pandas.DataFrame
        Same index and columns, every cell a string.
    """
    scale = next((table[name] for name in SCALE_COLUMNS if name in table.columns), None)
    if scale is not None and pd.api.types.is_numeric_dtype(scale):
        row_decimals = [decimals_for(float(value), digits) for value in scale.to_numpy(float)]
    else:
        row_decimals = [digits] * len(table)
    out = {}
    for position, column in enumerate(table.columns):
        values = table.iloc[:, position]
        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            out[position] = ["" if pd.isna(v) else str(v) for v in values]
        elif column in INTEGER_COLUMNS or pd.api.types.is_integer_dtype(values):
            out[position] = [_fixed(float(v), 0) for v in values]
        elif column == "R-hat":
            out[position] = [_fixed(float(v), 3) for v in values]
        elif column == "MCSE":
            out[position] = [_fixed(float(v), decimals_for(float(v), digits)) for v in values]
        elif _is_estimate(column):
            out[position] = [_fixed(float(v), d) for v, d in zip(values, row_decimals, strict=True)]
        else:
            out[position] = [_fixed(float(v), _small(float(v), digits)) for v in values]
    cells = pd.DataFrame(out, index=table.index)
    cells.columns = table.columns
    return cells


def _small(value: float, digits: int) -> int:
    """``digits`` decimals, or two significant digits for a value that would print as 0."""
    if np.isfinite(value) and value != 0 and abs(value) < 0.5 * 10.0**-digits:
        return decimals_for(value, digits)
    return digits


def render_text(cells: pd.DataFrame) -> str:
    """Lay out a table of strings with every pandas display limit off (never truncated)."""
    if cells.shape[1] == 0 or len(cells) == 0:
        return cells.to_string(max_rows=None, max_cols=None, line_width=None)
    # every column at least one character wider than its widest entry: two spaces between columns
    widths = [
        max([len(str(column)), *(len(str(value)) for value in cells.iloc[:, i])]) + 1
        for i, column in enumerate(cells.columns)
    ]
    return cells.to_string(
        col_space=widths,
        justify="right",
        sparsify=True,
        index_names=True,
        na_rep="NaN",
        max_rows=None,
        max_cols=None,
        min_rows=None,
        line_width=None,
        max_colwidth=None,
        show_dimensions=False,
    )


def render_html(cells: pd.DataFrame) -> str:
    """The HTML of a table of strings, with every pandas display limit off."""
    return cells.to_html(
        justify="right",
        sparsify=True,
        index_names=True,
        na_rep="NaN",
        max_rows=None,
        max_cols=None,
        show_dimensions=False,
    )


class ResultTable(pd.DataFrame):
    """A pandas DataFrame that prints under a header, rounded, and never truncated.

    It is a DataFrame in every other way (``.loc``, ``.to_csv``, arithmetic); the numbers keep
    full precision, only the printed text is rounded
    (:func:`~bambi_meta.results.printing.format_cells`). ``header`` (one or more lines) is
    printed above the table and ``footer`` below; ``digits`` sets the decimals (change it with
    ``table.digits = 4``). In a notebook, ``_repr_html_`` shows the same.
    """

    _metadata = ["header", "footer", "digits"]

    @property
    def _constructor(self):
        return ResultTable

    @classmethod
    def with_header(
        cls,
        table: pd.DataFrame,
        header: str = "",
        digits: int = DEFAULT_DIGITS,
        footer: str = "",
    ) -> ResultTable:
        """``table`` as a ResultTable printed under ``header`` with ``digits`` decimals."""
        out = cls(table)
        out.header, out.footer, out.digits = header, footer, check_digits(digits)
        return out

    def _cells(self) -> pd.DataFrame:
        return format_cells(pd.DataFrame(self), getattr(self, "digits", DEFAULT_DIGITS))

    def to_text(self) -> str:
        """Header, the rounded table and the footer, as printed."""
        parts = [getattr(self, "header", "") or "", render_text(self._cells())]
        parts.append(getattr(self, "footer", "") or "")
        return "\n\n".join(part for part in parts if part)

    def __repr__(self) -> str:
        return self.to_text()

    def __str__(self) -> str:
        return self.to_text()

    def _repr_html_(self) -> str:
        lines = [getattr(self, "header", "") or "", getattr(self, "footer", "") or ""]
        head, foot = (
            "".join(f"<p>{html.escape(line)}</p>\n" for line in part.splitlines()) for part in lines
        )
        return head + render_html(self._cells()) + foot
