"""The effect-size axis of a figure: its label, its null line and back-transformed tick labels.

Figures draw on the model's scale (log odds ratios, Fisher's z, ...), where intervals are
symmetric, and label the axis in the units a reader knows, as metafor's ``atransf``: a log odds
ratio axis shows odds ratios at ticks 0.25, 0.5, 1, 2, 4. By default (``transform="auto"``) the
ratio measures (OR, RR, HR, IRR and escalc's log-ratio measures) get ``exp`` labels; any other
measure keeps its own scale unless a transform is asked for.
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter

from bambi_meta.effect_sizes import transf

# What the effect sizes are, by measure (the model's effect_measure: escalc or prior measure).
MEASURE_LABELS = {
    "SMD": "Standardised mean difference",
    "SMDH": "Standardised mean difference",
    "SMCC": "Standardised mean change",
    "SMCR": "Standardised mean change",
    "MD": "Mean difference",
    "MC": "Mean change",
    "ZCOR": "Fisher's z",
    "COR": "Correlation",
    "UCOR": "Correlation",
    "OR": "Log odds ratio",
    "PETO": "Log odds ratio",
    "RR": "Log risk ratio",
    "HR": "Log hazard ratio",
    "IRR": "Log incidence rate ratio",
    "ROM": "Log ratio of means",
    "RD": "Risk difference",
    "IRD": "Incidence rate difference",
    "PR": "Proportion",
    "PLN": "Log proportion",
    "PLO": "Log odds",
    "PAS": "Arcsine square-root proportion",
    "IR": "Incidence rate",
    "IRLN": "Log incidence rate",
    "MN": "Mean",
    "MNLN": "Log mean",
    "GEN": "Effect size",
}
# Measures whose axis shows exp(yi) by default, and what exp(yi) is.
RATIO_LABELS = {
    "OR": "Odds ratio",
    "PETO": "Odds ratio",
    "RR": "Risk ratio",
    "HR": "Hazard ratio",
    "IRR": "Incidence rate ratio",
    "ROM": "Ratio of means",
}
# Transforms by name (bambi_meta.transf's functions), with their inverse (to place the ticks at
# round transformed values) and what they turn a measure into.
TRANSFORMS: dict[str, tuple[Callable, Callable]] = {
    "exp": (transf.exp, np.log),
    "ztor": (transf.ztor, np.arctanh),
    "ilogit": (transf.ilogit, lambda p: np.log(p) - np.log1p(-p)),
    "iarcsin": (transf.iarcsin, lambda p: np.arcsin(np.sqrt(p))),
}
TRANSFORMED_LABELS = {"ztor": "Correlation", "ilogit": "Proportion", "iarcsin": "Proportion"}
# Round ratios for the ticks of an exp axis, from dense (a narrow axis) to sparse (a wide one).
RATIO_TICK_LADDERS = (
    (0.8, 0.85, 0.9, 0.95, 1, 1.05, 1.1, 1.15, 1.2, 1.25),
    (0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.1, 1.25, 1.5, 1.75, 2),
    (0.25, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2, 3, 4),
    (0.1, 0.2, 0.25, 0.5, 0.75, 1, 1.5, 2, 4, 5, 10),
    (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 10, 20, 50, 100),
    (1e-4, 1e-3, 0.01, 0.1, 1, 10, 100, 1e3, 1e4),
)


@dataclass(frozen=True)
class EffectScale:
    """How a figure labels the effect-size axis.

    Attributes
    ----------
    label : str
        The axis label, with the measure's name (``"Risk ratio (log scale)"``).
    null : float
        The no-effect value on the model's scale (0), where the reference line goes.
    transform : callable or None
        What the tick labels show, as a function of the model's scale (None: the scale itself).
    inverse : callable or None
        The inverse of ``transform`` when known (ticks then sit at round transformed values).
    transform_name : str or None
        A key of :data:`TRANSFORMS`, or None (no transform, or a user's function).
    """

    label: str
    null: float = 0.0
    transform: Callable | None = None
    inverse: Callable | None = None
    transform_name: str | None = None

    def values(self, x) -> np.ndarray:
        """``x`` (on the model's scale) in the units the axis shows."""
        x = np.asarray(x, dtype=float)
        return x if self.transform is None else np.asarray(self.transform(x), dtype=float)

    def apply(self, ax, axis: str = "x") -> None:
        """Label ``ax``'s ``axis`` and, with a transform, put its ticks at round shown values."""
        target = ax.xaxis if axis == "x" else ax.yaxis
        target.set_label_text(self.label)
        if self.transform is None:
            return
        low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
        if self.transform_name == "exp":
            ticks = _ratio_ticks(low, high, min_gap=_label_gap(ax, axis, high - low))
            if len(ticks) >= 2:
                target.set_major_locator(FixedLocator(ticks))
        elif self.inverse is not None:
            shown = self.values(np.linspace(low, high, 5))
            ticks = self.inverse(np.unique(np.round(shown, 2)))
            target.set_major_locator(FixedLocator(ticks[np.isfinite(ticks)]))
        target.set_major_formatter(FuncFormatter(lambda value, _: _format(self.values(value))))


def effect_scale(model, transform="auto") -> EffectScale:
    """The effect-size axis of ``model``'s figures.

    Parameters
    ----------
    model : MetaModel
        Its ``effect_measure`` names the axis.
    transform : {"auto", None, "exp", "ztor", "ilogit", "iarcsin"} or callable, default "auto"
        What the tick labels show: ``"auto"`` is ``"exp"`` for ratio measures (OR, RR, HR, IRR,
        PETO, ROM) and None otherwise; the functions of ``bmm.transf`` are taken by name too; any
        other callable maps the model's scale to the labels (ticks then stay where matplotlib
        puts them).

    Returns
    -------
    EffectScale
    """
    measure = getattr(model, "effect_measure", model.measure)
    name = MEASURE_LABELS.get(measure, measure)
    if isinstance(transform, str) and transform == "auto":
        transform = "exp" if measure in RATIO_LABELS else None
    named = {function: key for key, (function, _) in TRANSFORMS.items()}
    if callable(transform) and transform in named:  # bmm.transf.exp and the like
        transform = named[transform]
    if transform is None or transform is transf.identity:
        return EffectScale(label=f"{name} ({measure})")
    if callable(transform):
        label = f"{name} ({measure}), transformed by {getattr(transform, '__name__', 'transform')}"
        return EffectScale(label=label, transform=transform)
    if transform not in TRANSFORMS:
        raise ValueError(
            f"'transform' must be 'auto', None, a function or one of {', '.join(TRANSFORMS)}; "
            f"got {transform!r}."
        )
    forward, inverse = TRANSFORMS[transform]
    if transform == "exp":
        label = f"{RATIO_LABELS.get(measure, f'exp({name})')} (log scale)"
    else:
        label = f"{TRANSFORMED_LABELS[transform]} (from {measure})"
    return EffectScale(label=label, transform=forward, inverse=inverse, transform_name=transform)


def _ratio_ticks(low: float, high: float, most: int = 7, min_gap: float = 0.0) -> np.ndarray:
    """Logs of round ratios in [low, high]: the densest ladder with 3 to ``most`` of them.

    ``min_gap`` (on the log scale) is the least distance between neighbouring ticks, so that
    their labels do not run into each other on a short axis (0.2 and 0.25 sit close).
    """
    inside = np.array([])
    for ladder in RATIO_TICK_LADDERS:
        logs = np.log(ladder)
        inside = logs[(logs >= low) & (logs <= high)]
        spaced = len(inside) < 2 or np.min(np.diff(inside)) >= min_gap
        if 3 <= len(inside) <= most and spaced:
            return inside
    return inside


# Room a tick label needs on an axis, in inches: about 4 characters across (0.25) and one line
# up, plus a gap.
TICK_LABEL_ROOM = {"x": 0.42, "y": 0.3}


def _label_gap(ax, axis: str, span: float) -> float:
    """The least tick distance (in data units) that leaves room for the labels on ``ax``."""
    figure = ax.figure
    box = ax.get_window_extent(figure.canvas.get_renderer())
    length = (box.width if axis == "x" else box.height) / figure.dpi
    if not length > 0:
        return 0.0
    return span * TICK_LABEL_ROOM[axis] / length


def _format(value: float) -> str:
    """A tick label with as few digits as it needs (0.25, 1, 2, 0.05)."""
    value = float(value)
    if value == 0 or 0.01 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return f"{value:.2g}"
