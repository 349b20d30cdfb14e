"""The pooled effect and prediction intervals for new estimates, at given moderator values."""

import numpy as np
import pandas as pd

from bambi_meta import _validate
from bambi_meta._datatree import posterior_of
from bambi_meta.bambi_ext.columns import MetaData, check_new_data
from bambi_meta.engine.predictive import cluster_posterior, draw_new_true_effects


def prediction_intervals(
    model, idata, data: pd.DataFrame | None = None, level: float = 0.95, random_seed=None
) -> pd.DataFrame:
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

    Returns
    -------
    pandas.DataFrame
    """
    _validate.check_model(model)
    level = _validate.check_open_unit_interval(level, "level")
    if data is None:
        if model.parameters["mu"].common_terms:
            raise ValueError(
                "This is a meta-regression: pass 'data' with the moderator values to predict at."
            )
        data = pd.DataFrame(index=[0])
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
    return table


def _rows(data: pd.DataFrame, labels, codes) -> MetaData:
    return MetaData(data, None, None, labels, codes)


def _quantiles(draws: np.ndarray, tail: float) -> tuple[np.ndarray, np.ndarray]:
    flat = draws.reshape(-1, draws.shape[-1])
    return np.quantile(flat, tail, axis=0), np.quantile(flat, 1 - tail, axis=0)
