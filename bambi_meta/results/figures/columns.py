"""Text columns beside a figure's axes: the tables of the forest and orchard plots.

A column is a header and one cell per row; the rows are data y positions of the axes and the
columns sit outside the axes, at fixed distances in points from its left or right edge. Their
x positions are therefore independent of the axes' width: a figure made with
``layout="constrained"`` (what the figure functions make) keeps room for them however it is
resized. Widths are measured from the font, without drawing.

Numbers in a column are padded so that estimates, lower and upper bounds line up under each
other, as in metafor's ``forest()``: every digit of the default fonts has the same width, and the
padding uses a figure space (the width of a digit) and a punctuation space (about the width of a
minus sign).
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import transforms
from matplotlib.font_manager import FontProperties
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.textpath import text_to_path
from matplotlib.ticker import FixedLocator

from bambi_meta.results.figures.scales import RATIO_LABELS, TRANSFORMED_LABELS

FIGURE_SPACE = "\u2007"  # as wide as a digit
PUNCTUATION_SPACE = "\u2008"  # about as wide as '-' in the default fonts
GAP = 10.0  # points between columns, and between the axes and the nearest column


@dataclass(frozen=True)
class TextColumn:
    """One column of text beside the axes.

    Attributes
    ----------
    header : str
        Bold text above the rows.
    cells : list of str
        One cell per row ('' for none).
    align : {"left", "right", "center"}
        Horizontal alignment of the cells within the column.
    gid : str
        The ``gid`` of every Text of the column, e.g. ``"column:observed"`` (how tests and users
        find a column among ``ax.texts``).
    styles : list of str, optional
        Per cell ``"normal"``, ``"bold"`` or ``"italic"``.
    """

    header: str
    cells: list[str]
    align: str
    gid: str
    styles: list[str] | None = None


def text_width(text: str, fontsize: float, bold: bool = False) -> float:
    """Width of ``text`` (its widest line) in points, from the default font's glyph metrics."""
    if not text:
        return 0.0
    prop = _font(fontsize, bold)
    return max(
        text_to_path.get_text_width_height_descent(line, prop, ismath=False)[0]
        for line in text.split("\n")
    )


def column_width(column: TextColumn, fontsize: float) -> float:
    """The widest cell or header of ``column``, in points.

    Only the cells with at least 3/4 of the longest cell's characters are measured: in a
    proportional font a cell that much shorter is narrower (it would need most of its glyphs
    a third wider than the longer cell's), and measuring hundreds of cells is slow.
    """
    cells = {(cell, style == "bold") for cell, style in _styled(column) if cell}
    longest = max((len(cell) for cell, _ in cells), default=0)
    widths = [text_width(cell, fontsize, bold) for cell, bold in cells
              if len(cell) >= 0.75 * longest]  # fmt: skip
    return max([text_width(column.header, fontsize, bold=True), *widths])


def draw_columns(
    ax,
    rows: np.ndarray,
    header_row: float | None,
    left: Sequence[TextColumn],
    right: Sequence[TextColumn],
    fontsize: float,
    gap: float = GAP,
) -> tuple[float, float]:
    """Draw ``left`` columns (left to right) before the axes and ``right`` columns after it.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    rows : numpy.ndarray
        Data y of each row (one per cell).
    header_row : float or None
        Data y of the headers (None: no headers).
    left, right : sequence of TextColumn
    fontsize : float
    gap : float
        Points between columns, and between the axes and the nearest column.

    Returns
    -------
    (float, float)
        How far the columns reach beyond the axes' left and right edges, in points.
    """
    widths = [column_width(column, fontsize) for column in left]
    offset = -gap - sum(widths) - gap * (len(widths) - 1)
    reach_left = -offset if left else 0.0
    for column, width in zip(left, widths, strict=True):
        _draw_column(ax, 0.0, offset, width, column, rows, header_row, fontsize)
        offset += width + gap
    offset = gap
    for column in right:
        width = column_width(column, fontsize)
        _draw_column(ax, 1.0, offset, width, column, rows, header_row, fontsize)
        offset += width + gap
    reach_right = offset - gap if right else 0.0
    return reach_left, reach_right


def rule(ax, y: float, left: float, right: float, **line_kwargs) -> list[Line2D]:
    """A horizontal line at data ``y`` from ``left`` points before the axes to ``right`` after.

    Drawn in three pieces (before, across and after the axes) so that each end stays a fixed
    distance from the axes' edge when a layout engine moves or resizes the axes.
    """
    style = {"color": "black", "linewidth": 0.6, "clip_on": False, **line_kwargs}
    lines = [ax.plot([0, 1], [y, y], transform=ax.get_yaxis_transform(), **style)[0]]
    for edge, (start, stop) in ((0.0, (-left, 0.0)), (1.0, (0.0, right))):
        if stop - start <= 0:
            continue
        anchor = transforms.ScaledTranslation(edge, y, _blended(ax))
        points = transforms.Affine2D().scale(1 / 72) + ax.figure.dpi_scale_trans
        piece = Line2D([start, stop], [0, 0], transform=points + anchor, **style)
        ax.add_line(piece)
        lines.append(piece)
    for line in lines:
        line.set_gid("rule")
    return lines


def format_intervals(
    estimates: np.ndarray, lower: np.ndarray, upper: np.ndarray, digits: int
) -> list[str]:
    """``"0.18 [0.02, 0.35]"`` per row, padded so the numbers line up (NaN: left out).

    A row whose estimate is NaN shows its interval only (``"[-0.49, 0.86]"``, a prediction
    interval); a row whose bounds are NaN shows nothing.
    """
    parts = [_aligned(values, digits) for values in (estimates, lower, upper)]
    cells = []
    for estimate, low, high in zip(*parts, strict=True):
        if not low or not high:
            cells.append("")
        elif not estimate:
            cells.append(f"[{low}, {high}]")
        else:
            cells.append(f"{estimate} [{low}, {high}]")
    return cells


def interval_header(name: str, level: float, credible: bool = False) -> str:
    """``"SMD [95% CI]"``; ``"[95% CrI]"`` for credible intervals."""
    return f"{name} [{100 * level:g}% {'CrI' if credible else 'CI'}]"


def measure_name(model, scale) -> str:
    """What the numbers are: ``"SMD"``, ``"Risk ratio"`` (exp), ``"Correlation"`` (ztor)."""
    measure = getattr(model, "effect_measure", model.measure)
    if scale.transform_name == "exp":
        return RATIO_LABELS.get(measure, f"exp({measure})")
    if scale.transform_name is not None:
        return TRANSFORMED_LABELS[scale.transform_name]
    if scale.transform is not None:
        return f"{getattr(scale.transform, '__name__', 'transformed')}({measure})"
    return measure


def plural(name: str, count: int) -> str:
    """``"3 studies"``, ``"1 district"``: a count of a column's levels in words."""
    if count == 1:
        return f"{count} {name}"
    if name.endswith("y") and name[-2:-1] not in tuple("aeiou"):
        return f"{count} {name[:-1]}ies"
    if name.endswith(("s", "x", "ch", "sh")):
        return f"{count} {name}es"
    return f"{count} {name}s"


def thin_ticks(ax, panel_inches: float, keep: float, fontsize: float) -> None:
    """Keep fixed x ticks about six characters apart, the roundest labels first.

    The tick nearest ``keep`` (the null) stays; then ticks whose labels have fewer significant
    digits (1, 2, 0.5 before 0.25 or 1.5), nearer ones first, join while they keep their
    distance. Only for fixed positions (back-transformed axes, whose round ratios are unevenly
    spaced on the log scale): matplotlib's own locators already adapt to the axis' length.
    """
    locator = ax.xaxis.get_major_locator()
    if not isinstance(locator, FixedLocator) or len(locator.locs) < 3:
        return
    ticks = np.sort(np.asarray(locator.locs, dtype=float))
    spacing = 4.2 * fontsize / 72  # inches: a label like "0.25" and two spaces
    low, high = ax.get_xlim()
    inches = (ticks - low) / (high - low) * panel_inches
    formatter = ax.xaxis.get_major_formatter()
    digits = [len(formatter(tick, 0).lstrip("-0.").replace(".", "")) for tick in ticks]
    anchor = int(np.argmin(np.abs(ticks - keep)))
    kept = [anchor]
    for index in sorted(range(len(ticks)), key=lambda i: (digits[i], abs(i - anchor))):
        if all(abs(inches[index] - inches[other]) >= spacing for other in kept):
            kept.append(index)
    ax.xaxis.set_major_locator(FixedLocator(ticks[sorted(kept)]))


def axes_inches(ax, created: bool, reach: tuple[float, float] = (0.0, 0.0)):
    """Width and height (inches) of the plot once a constrained layout has made room.

    ``created``: the axes fills a figure made by :func:`new_figure` (its position is known only
    after the layout has run); ``reach``: how far the text columns extend beyond it (points).
    """
    figure = ax.figure
    width, height = figure.get_figwidth(), figure.get_figheight()
    if not created:
        position = ax.get_position()
        width, height = position.width * width, position.height * height
    if isinstance(figure.get_layout_engine(), ConstrainedLayoutEngine):
        height -= 0.8  # the legend above, the axis and its label below
        width -= sum(reach) / 72
    return width - 0.1, height


def figure_size(figsize, width: float) -> tuple[float, float | None]:
    """Check a ``figsize`` argument: (width, height) in inches, height None to fit the data."""
    if figsize is None:
        return width, None
    try:
        width, height = figsize
        width = float(width)
        height = None if height is None else float(height)
    except (TypeError, ValueError):
        raise ValueError(
            f"'figsize' must be (width, height) in inches, height None to fit the rows; "
            f"got {figsize!r}."
        ) from None
    if not (np.isfinite(width) and width > 0) or (height is not None and not height > 0):
        raise ValueError(f"'figsize' must be positive; got {figsize!r}.")
    return width, height


def new_figure(width: float, height: float):
    """A figure whose constrained layout keeps room for the text columns, and its axes."""
    figure, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return figure, ax


def _draw_column(ax, edge, offset, width, column, rows, header_row, fontsize) -> None:
    """The texts of ``column``: x is the axes' ``edge`` shifted by ``offset`` points."""
    anchor = {"left": 0.0, "center": width / 2, "right": width}[column.align]
    shift = transforms.ScaledTranslation((offset + anchor) / 72, 0, ax.figure.dpi_scale_trans)
    transform = _blended(ax) + shift
    common = {
        "ha": column.align,
        "va": "center",
        "fontsize": fontsize,
        "transform": transform,
        "clip_on": False,
        "gid": column.gid,
        "parse_math": False,
    }
    if header_row is not None and column.header:
        ax.text(edge, header_row, column.header, fontweight="bold", **common)
    for row, (cell, style) in zip(rows, _styled(column), strict=True):
        if cell:
            weight = "bold" if style == "bold" else "normal"
            slant = "italic" if style == "italic" else "normal"
            ax.text(edge, row, cell, fontweight=weight, fontstyle=slant, **common)


@functools.lru_cache(maxsize=16)
def _font(fontsize: float, bold: bool) -> FontProperties:
    return FontProperties(size=fontsize, weight="bold" if bold else "normal")


def _styled(column: TextColumn):
    styles = column.styles or ["normal"] * len(column.cells)
    return zip(column.cells, styles, strict=True)


def _blended(ax):
    return transforms.blended_transform_factory(ax.transAxes, ax.transData)


def _aligned(values: np.ndarray, digits: int) -> list[str]:
    """Numbers with ``digits`` decimals, padded to a common width (sign, then integer digits)."""
    values = np.asarray(values, dtype=float)
    finite = np.isfinite(values)
    text = [
        f"{abs(value):.{digits}f}" if ok else "" for value, ok in zip(values, finite, strict=True)
    ]
    negative = finite & (np.round(values, digits) < 0)
    integer_digits = max((len(t.split(".")[0]) for t in text if t), default=1)
    padded = []
    for body, ok, minus in zip(text, finite, negative, strict=True):
        if not ok:
            padded.append("")
            continue
        body = FIGURE_SPACE * (integer_digits - len(body.split(".")[0])) + body
        sign = "-" if minus else (PUNCTUATION_SPACE if negative.any() else "")
        padded.append(sign + body)
    return padded
