"""Legends outside the data, where they cannot cover a point.

Below the x-axis label (funnel, bubble) or above the axes (forest, orchard: their rows fill
the axes).
"""

from matplotlib.transforms import ScaledTranslation

# Gap between the x-axis label and the legend, in inches.
LEGEND_GAP = 0.06
# Axes narrower than this (inches) get a two-column legend, wider ones three columns.
NARROW_AXES = 4.5


def legend_below(ax, handles=None, labels=None, **kwargs):
    """A legend centred under ``ax``'s x-axis label (and tick labels), whatever the axes' size.

    Two columns under narrow axes, three under wide ones, fewer when the legend would be wider
    than the figure.

    The offset is measured once in inches from the axes' bottom edge to the bottom of the
    x-axis' tick and axis labels, so it stays right when a layout engine later resizes the axes
    (tight_layout and ``bbox_inches="tight"`` then make room for the legend).

    Returns
    -------
    matplotlib.legend.Legend
    """
    figure = ax.figure
    renderer = figure.canvas.get_renderer()
    axes_box = ax.get_window_extent(renderer)
    axis_box = ax.xaxis.get_tightbbox(renderer)
    drop = (axes_box.y0 - axis_box.y0) / figure.dpi if axis_box is not None else 0.4
    width = axes_box.width / figure.dpi
    kwargs.setdefault("ncol", 2 if width < NARROW_AXES else 3)
    kwargs.setdefault("fontsize", "small")
    kwargs.setdefault("frameon", False)
    transform = ax.transAxes + ScaledTranslation(0, -(drop + LEGEND_GAP), figure.dpi_scale_trans)
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    columns = kwargs.pop("ncol")
    while True:
        legend = ax.legend(
            handles,
            labels,
            loc="upper center",
            bbox_to_anchor=(0.5, 0.0),
            bbox_transform=transform,
            ncol=columns,
            **kwargs,
        )
        # fewer columns when the legend is wider than the figure (it would be cut off)
        if columns == 1 or legend.get_window_extent(renderer).width <= figure.bbox.width:
            return legend
        columns -= 1


def legend_above(ax, handles: list, fontsize: float, columns: int):
    """The legend centred above the axes, out of the way of rows, columns and the axis label."""
    return ax.legend(
        handles=handles,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        ncol=columns,
        fontsize=fontsize,
        frameon=False,
        handlelength=1.8,
        columnspacing=1.2,
        borderaxespad=0.2,
    )
