"""The rows of a forest plot: their labels, order and the numbers printed beside them.

:func:`layout` lists the rows top to bottom (the estimates, grouped by cluster with a row for
each cluster's effect; then the pooled effect and the prediction interval) with their y
positions; :func:`text_columns` turns them into the label, data and ``estimate [95% CI]``
columns.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bambi_meta.results.figures.columns import (
    TextColumn,
    format_intervals,
    interval_header,
    measure_name,
)

ESTIMATE_COLUMNS = ("observed", "shrunken", "fitted")


@dataclass(frozen=True)
class ForestRows:
    """What each row of the figure shows, top to bottom (y decreases downwards).

    Attributes
    ----------
    kind : list of str
        ``"estimate"``, ``"cluster"``, ``"pooled"`` or ``"prediction"``.
    index : list of int
        The estimate's row in the data, or the cluster's position in ``model.cluster_levels``
        (-1 for the pooled rows).
    y : numpy.ndarray
        Data y of each row.
    """

    kind: list[str]
    index: list[int]
    y: np.ndarray

    def where(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """The ``index`` and ``y`` of the rows of one kind."""
        mask = np.array([each == kind for each in self.kind], dtype=bool)
        return np.array(self.index, dtype=int)[mask], self.y[mask]


@dataclass(frozen=True)
class Numbers:
    """(mean, lower, upper) arrays of what the rows show, on the model's scale.

    ``estimates`` maps ``"observed"``, ``"shrunken"`` and ``"fitted"`` to one triple over the
    estimates (data order); ``cluster`` is over ``model.cluster_levels`` (None without cluster
    rows); ``pooled`` is (mean, CI lower, CI upper, PI lower, PI upper) or None.
    """

    estimates: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    cluster: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    pooled: tuple[float, float, float, float, float] | None


def row_labels(model, labels) -> tuple[list[str], str]:
    """The label of every estimate (data order) and the header of their column."""
    data, k = model.data, model.n_estimates
    if labels is None:
        return default_labels(model), "Estimate"
    if isinstance(labels, str):
        if labels not in data.columns:
            raise ValueError(
                f"'labels' must be a column of the data ({', '.join(map(str, data.columns))}) "
                f"or a sequence of {k} labels; got {labels!r}."
            )
        return [str(value) for value in data[labels]], labels
    if not isinstance(labels, Sequence | np.ndarray | pd.Series | pd.Index):
        raise ValueError(
            f"'labels' must be a column name or a sequence of {k} labels; got "
            f"{type(labels).__name__}."
        )
    if len(labels) != k:
        raise ValueError(
            f"'labels' must have one label per estimate ({k}, the rows the model was fitted "
            f"to); got {len(labels)}."
        )
    header = labels.name if isinstance(labels, pd.Series) and labels.name else "Estimate"
    return [str(value) for value in labels], str(header)


def default_labels(model) -> list[str]:
    """Cluster and position: ``"district 11, estimate 2"``, or ``"estimate 7"`` without clusters.

    With ``(1|district/school)`` the estimate id names the estimate: ``"district 11, school 2"``.
    """
    if model.cluster is None:
        return [f"estimate {i}" for i in range(1, model.n_estimates + 1)]
    clusters = pd.Series(model.meta_data().cluster_labels)
    estimate_id = model.meta_formula.estimate_id
    if estimate_id is not None:
        ids = model.data[estimate_id].to_numpy()
        pairs = zip(clusters, ids, strict=True)
        return [f"{model.cluster} {c}, {estimate_id} {i}" for c, i in pairs]
    within = clusters.groupby(clusters, sort=False).cumcount() + 1
    return [f"{model.cluster} {c}, estimate {j}" for c, j in zip(clusters, within, strict=True)]


def order_key(model, order) -> np.ndarray | None:
    """A numeric sort key per estimate (ranks for a column; missing values last), or None."""
    rows = model.meta_data()
    if order is None:
        return None
    if isinstance(order, str) and order == "effect":
        return np.asarray(rows.effect_sizes, dtype=float)
    if isinstance(order, str) and order == "precision":
        return np.asarray(rows.variances, dtype=float)  # most precise first
    if isinstance(order, str) and order in model.data.columns:
        ranks = pd.Series(model.data[order].to_numpy()).rank(method="min")
        return ranks.fillna(np.inf).to_numpy()
    raise ValueError(
        f"'order' must be None, 'effect', 'precision' or a column of the data "
        f"({', '.join(map(str, model.data.columns))}); got {order!r}."
    )


def layout(model, key, by_effect: bool, grouped: bool, numbers: Numbers) -> ForestRows:
    """Row kinds and y positions: estimates (grouped by cluster), then the pooled rows.

    Grouped rows keep their clusters together: clusters in the order they first appear, by
    their shrunken effect (``by_effect``) or by the average of their rows' ``key``; rows within
    a cluster by ``key``. Half a row separates clusters and the pooled rows.
    """
    kind, index, y = [], [], []
    position = 0.0

    def add(what: str, where: int, step: float = 1.0) -> None:
        nonlocal position
        kind.append(what), index.append(where), y.append(-position)
        position += step

    if grouped:
        codes, first_seen = pd.factorize(pd.Series(model.meta_data().cluster_labels))
        levels = list(pd.Index(model.cluster_levels))
        positions = [levels.index(label) for label in first_seen]
        cluster_key = np.arange(len(first_seen), dtype=float)
        if by_effect:
            cluster_key = numbers.cluster[0][positions]
        elif key is not None:
            cluster_key = pd.Series(key).groupby(codes).mean().to_numpy()
        for code in np.argsort(cluster_key, kind="stable"):
            members = np.flatnonzero(codes == code)
            if key is not None:
                members = members[np.argsort(key[members], kind="stable")]
            for member in members:
                add("estimate", int(member))
            add("cluster", positions[code], step=1.5)
        position -= 0.5
    else:
        n = model.n_estimates
        for member in np.arange(n) if key is None else np.argsort(key, kind="stable"):
            add("estimate", int(member))
    if numbers.pooled is not None:
        position += 0.5
        add("pooled", -1)
        if np.isfinite(numbers.pooled[3]):
            add("prediction", -1)
    return ForestRows(kind, index, np.array(y, dtype=float))


def text_columns(
    model,
    rows: ForestRows,
    labels: tuple[list[str], str],
    data_columns: list[str],
    shown: list[str],
    numbers: Numbers,
    scale,
    level: float,
    digits: int,
) -> tuple[list[TextColumn], list[TextColumn]]:
    """The label and data columns (left of the plot) and the estimate columns (right).

    The first estimate column also holds the summary rows' numbers: each cluster's effect, the
    pooled effect and the prediction interval.
    """
    cells, header = labels
    label_cells, styles = [], []
    for kind, index in zip(rows.kind, rows.index, strict=True):
        if kind == "estimate":
            label_cells.append(cells[index]), styles.append("normal")
        elif kind == "cluster":
            label_cells.append(f"{model.cluster} {model.cluster_levels[index]}")
            styles.append("italic")
        elif kind == "pooled":
            label_cells.append("Pooled effect"), styles.append("bold")
        else:
            where = f", new {model.cluster}" if model.cluster is not None else ""
            label_cells.append(f"Prediction interval{where}"), styles.append("normal")
    left = [TextColumn(header, label_cells, "left", "column:label", styles)]
    for name in data_columns:
        column = model.data[name]
        data_cells = [
            format_value(column.iloc[index]) if kind == "estimate" else ""
            for kind, index in zip(rows.kind, rows.index, strict=True)
        ]
        left.append(TextColumn(str(name), data_cells, "center", f"column:{name}"))

    right = []
    italic = ["italic" if kind == "cluster" else "normal" for kind in rows.kind]
    for position, name in enumerate(shown):
        triples = [_row_numbers(kind, index, name, position, numbers) for kind, index in
                   zip(rows.kind, rows.index, strict=True)]  # fmt: skip
        center, low, high = (scale.values(np.array(part)) for part in zip(*triples, strict=True))
        low, high = np.fmin(low, high), np.fmax(low, high)  # a decreasing transform
        title = measure_name(model, scale) if name == "observed" else name.capitalize()
        right.append(
            TextColumn(
                interval_header(title, level, credible=name != "observed"),
                format_intervals(center, low, high, digits),
                "right",
                f"column:{name}",
                italic,
            )
        )
    return left, right


def _row_numbers(kind: str, index: int, name: str, position: int, numbers: Numbers) -> list:
    """(mean, lower, upper) printed in estimate column ``name`` (at ``position``) of a row."""
    if kind == "estimate":
        return [values[index] for values in numbers.estimates[name]]
    if position > 0:
        return [np.nan] * 3
    if kind == "cluster":
        return [values[index] for values in numbers.cluster]
    if kind == "pooled":
        return list(numbers.pooled[:3])
    return [np.nan, numbers.pooled[3], numbers.pooled[4]]


def format_value(value) -> str:
    """A data column's value: ``44``, ``0.5``, ``random``."""
    if isinstance(value, float | np.floating):
        return f"{value:g}"
    return str(value)
