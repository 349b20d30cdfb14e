"""The pooled effect and prediction intervals for new estimates, at given moderator values."""

import numpy as np
import pandas as pd

from bambi_meta import _validate
from bambi_meta._datatree import posterior_of
from bambi_meta.bambi_ext.columns import MetaData, check_new_data
from bambi_meta.engine.predictive import cluster_posterior, draw_new_true_effects
from bambi_meta.results.printing import DEFAULT_DIGITS, ResultTable, check_digits


def prediction_intervals(
    model,
    idata,
    data: pd.DataFrame | None = None,
    level: float = 0.95,
    random_seed=None,
    digits: int = DEFAULT_DIGITS,
) -> ResultTable:
    """Pooled effect with its credible interval, and prediction intervals for new true effects.

    For each row of ``data`` (moderator values, optionally a cluster label):

    * ``Mean``, ``CI lower``, ``CI upper``: the pooled effect X beta (metafor's ``pred``,
      ``ci.lb``, ``ci.ub``);
    * ``PI lower``, ``PI upper``: the true effect of a new estimate in a NEW cluster,
      X beta + u_new + e_new (total variance tau^2; metafor's ``pi.lb``, ``pi.ub``);
    * with a model with clusters and a cluster column in ``data``: ``PI lower [cluster]``,
      ``PI upper [cluster]``, the true effect of a new estimate in THAT cluster (its shrunken
      cluster effect plus a fresh estimate effect; a cluster not in the fitted data is new).

    Sampling error of a new study is not included (add it with
    ``model.predict(idata, kind="response", data=...)``, which needs the new ``vi``).

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    data : pandas.DataFrame, optional
        Moderator values (and cluster labels) to predict at; not needed without moderators.
    level : float, default 0.95
        Probability of the intervals.
    random_seed : int, optional
        Seed for the conditional draws of the new effects.
    digits : int, default 3
        Decimal places of the printed numbers (printing only; see :func:`~bambi_meta.summary`).

    Returns
    -------
    ResultTable
        A pandas DataFrame with the columns above, one row per row of ``data``, labelled by the
        values of ``data``'s moderator columns (and its cluster column when given): one index
        level per column, named after it, so ``table.loc[1990]`` reads the row at year 1990.
        Without moderator or cluster columns the rows keep ``data``'s index (without ``data``,
        the one row is labelled ``mu``; ``.iloc[0]`` reads it either way). It prints under the
        model's header and lines saying what the intervals are.
    """
    _validate.check_model(model)
    level = _validate.check_open_unit_interval(level, "level")
    digits = check_digits(digits)
    if data is None:
        if model.parameters["mu"].common_terms:
            raise ValueError(
                "This is a meta-regression: pass 'data' with the moderator values to predict at."
            )
        data = pd.DataFrame(index=["mu"])  # one row, labelled as in summary()
    else:
        data = check_new_data(model, data, "data", model.conditional_parameters)
    posterior = posterior_of(idata)
    rng = np.random.default_rng(_validate.check_random_seed(random_seed))
    clusters = cluster_posterior(model, posterior)
    tail = (1 - level) / 2

    pooled = model.parameter_draws(posterior, _rows(data, None, None))["mu"]
    pooled = np.broadcast_to(pooled, (*pooled.shape[:-1], len(data)))
    table = pd.DataFrame(index=data.index)
    table["Mean"] = pooled.reshape(-1, len(data)).mean(axis=0)
    table["CI lower"], table["CI upper"] = _quantiles(pooled, tail)

    labels = np.array([f"new cluster {i}" for i in range(len(data))], dtype=object)
    codes = np.full(len(data), -1)
    new_cluster = draw_new_true_effects(model, posterior, clusters, _rows(data, labels, codes), rng)
    table["PI lower"], table["PI upper"] = _quantiles(new_cluster, tail)

    if model.cluster is not None and model.cluster in data.columns:
        rows = model.meta_data(data, require_response=False, require_variances=False)
        in_cluster = draw_new_true_effects(model, posterior, clusters, rows, rng)
        table["PI lower [cluster]"], table["PI upper [cluster]"] = _quantiles(in_cluster, tail)
    table.index = _row_labels(model, data)
    return ResultTable.with_header(
        table, _header(model, level, in_cluster="PI lower [cluster]" in table), digits
    )


def _row_labels(model, data: pd.DataFrame) -> pd.Index:
    """The values of the moderator (and cluster) columns of ``data``, one index level each."""
    names = list(dict.fromkeys(name for names in model.moderators.values() for name in names))
    if model.cluster is not None:
        names.append(model.cluster)
    names = [name for name in names if name in data.columns]
    if not names:
        return data.index
    if len(names) == 1:
        return pd.Index(data[names[0]].to_numpy(), name=names[0])
    return pd.MultiIndex.from_frame(data[names].reset_index(drop=True))


def _header(model, level: float, in_cluster: bool) -> str:
    percent = f"{100 * level:g}%"
    where = "in a new cluster" if model.cluster is not None else "in a new study"
    lines = [
        model.header,
        f"Mean, CI lower/upper: the pooled effect and its {percent} credible interval",
        f"PI lower/upper: {percent} prediction interval of a new estimate's true effect {where}",
    ]
    if in_cluster:
        lines.append(
            f"PI [cluster]: the same in the {model.cluster} given (a new one if not fitted)"
        )
    return "\n".join(lines)


def _rows(data: pd.DataFrame, labels, codes) -> MetaData:
    return MetaData(data, None, None, labels, codes)


def _quantiles(draws: np.ndarray, tail: float) -> tuple[np.ndarray, np.ndarray]:
    flat = draws.reshape(-1, draws.shape[-1])
    return np.quantile(flat, tail, axis=0), np.quantile(flat, 1 - tail, axis=0)
