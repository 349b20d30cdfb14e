"""Checks on drawn figures shared by the figure tests: texts by column, artists by gid, overlaps."""

import numpy as np


def column(ax, name: str) -> list[str]:
    """The texts of a column (header first), without the padding that aligns the numbers."""
    texts = [text.get_text() for text in ax.texts if text.get_gid() == f"column:{name}"]
    return [" ".join(text.replace("\u2007", "").replace("\u2008", "").split()) for text in texts]


def printed(mean: float | None, low: float, high: float) -> str:
    """What a cell shows: two decimals, as metafor prints (no '-0.00'); no mean for a PI."""

    def number(value):
        return f"{'-' if round(value, 2) < 0 else ''}{abs(value):.2f}"

    interval = f"[{number(low)}, {number(high)}]"
    return interval if mean is None else f"{number(mean)} {interval}"


def artist(ax, gid: str):
    matches = [item for item in [*ax.collections, *ax.lines] if item.get_gid() == gid]
    assert len(matches) == 1, f"{gid}: {len(matches)} artists"
    return matches[0]


def diamond_x(ax, gid: str) -> np.ndarray:
    """(lower, mean, upper) of each diamond: its left, top and right vertices."""
    return np.array([path.vertices[:3, 0] for path in artist(ax, gid).get_paths()])


def legend_texts(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def assert_no_overlaps(ax, left=("column:label", "column:ablat")) -> None:
    """Legend, axis label, tick labels and text columns apart; columns beside the plot.

    Texts with a ``gid`` in ``left`` must lie left of the plot, other columns right of it.
    """
    figure = ax.figure
    figure.get_layout_engine().execute(figure)  # where a draw puts everything, without pixels
    renderer = figure.canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    label = ax.xaxis.label.get_window_extent(renderer)
    ticks = [tick.get_window_extent(renderer) for tick in ax.get_xticklabels() if tick.get_text()]
    texts = {text: text.get_window_extent(renderer) for text in ax.texts}
    plot = ax.get_window_extent(renderer)
    assert not legend.overlaps(label) and not any(legend.overlaps(box) for box in texts.values())
    assert not any(a.overlaps(b) for a, b in zip(ticks, ticks[1:], strict=False))
    assert not any(box.overlaps(label) for box in [*ticks, *texts.values()] if box is not label)
    for text, box in texts.items():
        if text.get_gid() in left:
            assert box.x1 < plot.x0
        elif text.get_gid().startswith("column:"):
            assert box.x0 > plot.x1
        assert box.x0 >= 0 and box.x1 <= figure.bbox.x1 + 0.5  # inside the figure
    # rows of a column never touch each other
    for gid in {text.get_gid() for text in texts}:
        boxes = sorted((box for text, box in texts.items() if text.get_gid() == gid),
                       key=lambda box: box.y0)  # fmt: skip
        assert all(low.y1 <= high.y0 + 0.5 for low, high in zip(boxes, boxes[1:], strict=False))


def assert_legend_clear_of_points(ax, points) -> None:
    """The legend's box overlaps no marker's box (display coordinates, after drawing)."""
    figure = ax.figure
    figure.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    centres = ax.transData.transform(points.get_offsets())
    radius = np.sqrt(points.get_sizes()) / 2 * figure.dpi / 72  # marker size is in pt^2
    radius = np.broadcast_to(radius, len(centres))
    inside_x = (centres[:, 0] + radius > legend.x0) & (centres[:, 0] - radius < legend.x1)
    inside_y = (centres[:, 1] + radius > legend.y0) & (centres[:, 1] - radius < legend.y1)
    assert not np.any(inside_x & inside_y)
