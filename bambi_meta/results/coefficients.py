"""Moderators in the results: coefficients on the raw scale, heterogeneity at given values.

The posterior of a fit holds the coefficients on the raw scale of the moderators (intercept at
x = 0; :mod:`bambi_meta.bambi_ext.centring`); :func:`coefficient_draws` labels them by the raw
design's columns, :func:`heterogeneity_at` evaluates a location-scale model's heterogeneity at
given moderator values.
"""

import numpy as np
import pandas as pd
import xarray as xr

from bambi_meta import _validate
from bambi_meta._datatree import as_dataset, posterior_of
from bambi_meta.bambi_ext.centring import gather_coefficients, raw_design, raw_scale_transform
from bambi_meta.bambi_ext.columns import MetaData, check_new_data
from bambi_meta.results.printing import ResultTable
from bambi_meta.stats.heterogeneity import heterogeneity_draws, typical_sampling_variance
from bambi_meta.stats.tables import describe, interval_probabilities

AT_QUANTITIES = ("tau", "rho", "tau [within]", "tau [between]", "I2")


def coefficient_draws(model, posterior) -> dict[str, dict[str, np.ndarray]]:
    """Posterior draws of every regression coefficient on the raw scale of its moderators.

    Parameters
    ----------
    model : MetaModel
        The fitted model.
    posterior : xarray.Dataset or xarray.DataTree
        Its posterior group (as ``model.fit()`` stores it: raw scale).

    Returns
    -------
    dict
        For each modelled parameter (``"mu"``, and ``"tau"`` / ``"rho"`` with scale formulas), a
        dict from coefficient name to draws of shape (chain, draw). Location coefficients are
        named by their raw design column (``"Intercept"``, ``"year"``, ``"deltype[overt]"``),
        scale coefficients with the parameter as prefix (``"tau_Intercept"``, ``"tau_z"``).
    """
    _validate.check_model(model)
    if not isinstance(posterior, xr.Dataset | xr.DataTree):
        raise TypeError(
            "'posterior' must be a fit's posterior group (idata.posterior, an xarray Dataset or "
            f"DataTree node); got {type(posterior).__name__}."
        )
    posterior = as_dataset(posterior)
    out = {}
    for name in model.conditional_parameters:
        component = model.parameters[name]
        values, _ = gather_coefficients(component, posterior)
        if values.shape[-1] == 0:
            continue
        transform = raw_scale_transform(model, name)
        if transform is None:
            labels = gather_coefficients(component, posterior)[1]
        else:
            prefix = "" if name == "mu" else f"{name}_"
            labels = [prefix + label for label in raw_design(model, name).as_dataframe().columns]
        out[name] = dict(zip(labels, np.moveaxis(values, -1, 0), strict=True))
    return out


def heterogeneity_at(
    model, idata, data: pd.DataFrame, level: float = 0.95, digits: int = 3
) -> pd.DataFrame:
    r"""Heterogeneity of a location-scale model at given values of its scale moderators.

    Per posterior draw, at each row of ``data``: ``tau`` (exp of the linear predictor of
    ``tau ~ z``), ``rho``, ``tau [within]`` :math:`=\tau\sqrt{1-\rho}`, ``tau [between]``
    :math:`=\tau\sqrt{\rho}` and ``I2`` (percent, with the model's typical sampling variance).
    ``rho`` and the within/between split appear only with a cluster level.

    Parameters
    ----------
    model : MetaModel
        A fitted model with a scale formula (``tau ~ z`` and/or ``rho ~ z``).
    idata : xarray.DataTree
        What ``model.fit()`` returned.
    data : pandas.DataFrame
        Values of the scale moderators, one row per setting.
    level : float, default 0.95
        Probability of the credible interval.
    digits : int, default 3
        Decimals when printed (the table keeps full precision).

    Returns
    -------
    ResultTable
        A DataFrame indexed by the columns of ``data`` and ``quantity``, with the columns of
        :func:`~bambi_meta.summary_heterogeneity` but the diagnostics: ``Mean``, ``SD``, the
        lower bound (``0.025`` by default), ``0.5`` and the upper bound (``0.975``).
    """
    _validate.check_model(model)
    if not model.scale_formulas:
        raise ValueError(
            "heterogeneity_at() needs a location-scale model ('tau ~ z' or 'rho ~ z'); this "
            "model has constant tau and rho: see summary_heterogeneity()."
        )
    level = _validate.check_open_unit_interval(level, "level")
    scale_parameters = tuple(name for name in model.family.likelihood.params if name != "mu")
    data = check_new_data(model, data, "data", scale_parameters)
    posterior = posterior_of(idata)
    frame = data.reset_index(drop=True)
    rows = MetaData(frame, None, None, None, None)
    draws = model.parameter_draws(posterior, rows, parameters=scale_parameters)
    design = np.asarray(model.parameters["mu"].design.common.design_matrix)
    typical = typical_sampling_variance(model.meta_data().variances, design)
    shape = (posterior.sizes["chain"], posterior.sizes["draw"], len(frame))
    tau = np.broadcast_to(draws["tau"], shape)
    rho = None if "rho" not in draws else np.broadcast_to(draws["rho"], shape)

    probabilities = interval_probabilities(level)
    tables, index = [], []
    for i in range(len(frame)):
        values = heterogeneity_draws(
            tau[..., i : i + 1], None if rho is None else rho[..., i : i + 1], typical
        )
        at = {quantity: values[quantity] for quantity in AT_QUANTITIES if quantity in values}
        tables.append(describe(at, probabilities))
        index += [(*frame.loc[i, list(frame.columns)], quantity) for quantity in at]
    names = [*map(str, frame.columns), "quantity"]
    table = pd.concat(tables, ignore_index=True).drop(columns="Median")
    table = table.set_axis(pd.MultiIndex.from_tuples(index, names=names))
    header = f"{model.header}\nHeterogeneity at given moderator values (I2 in percent)"
    return ResultTable.with_header(table, header, digits)
