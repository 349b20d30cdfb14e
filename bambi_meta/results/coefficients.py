r"""Moderators in the results: coefficients on the raw scale, heterogeneity at given values.

``MetaModel`` samples the coefficients of centred continuous moderators, so that each intercept
(of ``mu``, and of ``log tau`` / ``logit rho`` in a scale formula) sits at the moderator means,
where its default prior acts. Meta-analysts read coefficients on the raw scale (metafor, RoBMA):
the intercept at x = 0. Both designs span the same space, :math:`X_c = X_r A`, so per draw

.. math::

    \eta = X_c \beta_c = X_r (A \beta_c) \quad\Rightarrow\quad \beta_r = A \beta_c,

with :math:`A` solved exactly from the two design matrices of the fitted rows. For a single
centred moderator this is :math:`\beta_0 = \beta_{0c} - \beta_1 \bar x`; interactions with
categorical moderators follow from the same algebra.
"""

import warnings

import formulae as fm
import numpy as np
import pandas as pd
import xarray as xr

from bambi_meta import _validate
from bambi_meta._datatree import as_dataset, posterior_of
from bambi_meta.bambi_ext.columns import MetaData, check_new_data
from bambi_meta.bambi_ext.formula import single_term
from bambi_meta.stats.heterogeneity import heterogeneity_draws, typical_sampling_variance
from bambi_meta.stats.tables import describe, interval_probabilities

# The raw design must reproduce the centred one to this relative precision (float rounding of
# centring is ~1e-15 relative; a design that is not a linear map of the raw one is off by O(1)).
REPRODUCTION_TOLERANCE = 1e-8
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
    posterior = as_dataset(posterior)
    out = {}
    for name in model.conditional_parameters:
        component = model.parameters[name]
        values, _ = _gather_coefficients(component, posterior)
        if values.shape[-1] == 0:
            continue
        transform = raw_scale_transform(model, name)
        if transform is None:
            labels = _gather_coefficients(component, posterior)[1]
        else:
            prefix = "" if name == "mu" else f"{name}_"
            labels = [prefix + label for label in _raw_design(model, name).as_dataframe().columns]
        out[name] = dict(zip(labels, np.moveaxis(values, -1, 0), strict=True))
    return out


def to_raw_scale(model, posterior) -> xr.Dataset:
    r"""The posterior with every coefficient on the raw scale of its moderators.

    The sampler works with centred continuous moderators (so the intercepts sit at their means,
    where their priors act); this maps the draws to the raw scale, :math:`\beta_r = A\beta_c`,
    under the same variable names (``Intercept`` at x = 0, as Bambi's ``center_predictors``
    stores it), so ArviZ, ``bmm.summary`` and the references report the same numbers.

    Parameters
    ----------
    model : MetaModel
        The model that was fitted.
    posterior : xarray.Dataset or xarray.DataTree
        Draws as sampled.

    Returns
    -------
    xarray.Dataset
    """
    return _map_coefficients(model, as_dataset(posterior), inverse=False)


def to_sampled_scale(model, posterior) -> xr.Dataset:
    """The inverse of :func:`to_raw_scale`: the coefficients the model's centred design takes.

    Bambi's own prediction machinery multiplies the model's design (centred moderators) by the
    stored coefficients, so it needs them on the sampled scale.
    """
    return _map_coefficients(model, as_dataset(posterior), inverse=True)


def raw_scale_transform(model, parameter: str) -> np.ndarray | None:
    """The matrix A with centred design = raw design @ A, or None if the designs differ.

    Computed from the fitted rows once per model and parameter (``mu``, ``tau``, ``rho``).
    """
    cache = model.__dict__.setdefault("_raw_scale_transforms", {})
    if parameter not in cache:
        component = model.parameters[parameter]
        centred = np.asarray(component.design.common.design_matrix, dtype=float)
        raw = np.asarray(_raw_design(model, parameter).design_matrix, dtype=float)
        cache[parameter] = _solve_transform(raw, centred)
    return cache[parameter]


def _raw_design(model, parameter: str):
    rhs = model.meta_formula.fixed if parameter == "mu" else model.scale_formulas[parameter]
    return fm.design_matrices(
        f"{single_term(model.meta_formula.response)} ~ {rhs}",
        model.data,
        "error",
        1,
        model.formula_namespace,
    ).common


def _map_coefficients(model, posterior: xr.Dataset, inverse: bool) -> xr.Dataset:
    out = posterior.copy()
    for name in model.conditional_parameters:
        component = model.parameters[name]
        if component.design.common is None:
            continue
        transform = raw_scale_transform(model, name)
        if transform is None:
            if not inverse:
                warnings.warn(
                    f"The coefficients of '{name}' cannot be put on the raw scale: the centred "
                    "design of the fitted model is not a linear map of the raw one (e.g. an "
                    "interaction without its main effects). They are reported as sampled, with "
                    "the moderators centred at their means.",
                    UserWarning,
                    stacklevel=3,
                )
            continue
        values, _ = _gather_coefficients(component, posterior)
        matrix = np.linalg.inv(transform) if inverse else transform
        mapped = np.einsum("rc,...c->...r", matrix, values)
        _scatter_coefficients(component, out, mapped)
    return out


def _coefficient_variables(component) -> list[tuple[str, slice]]:
    """(posterior variable, design columns) of each common term, in design-column order."""
    blocks = []
    for term_name, columns in component.design.common.slices.items():
        term = component.intercept_term if term_name == "Intercept" else None
        if term is None:
            term = component.common_terms[term_name]
        blocks.append((term.alias or term.name, columns))
    return blocks


def _gather_coefficients(component, posterior: xr.Dataset) -> tuple[np.ndarray, list[str]]:
    """Draws (chain, draw, p) of a component's common coefficients, in design-column order."""
    if component.design.common is None:
        return np.empty((posterior.sizes["chain"], posterior.sizes["draw"], 0)), []
    blocks, labels = [], []
    for variable, columns in _coefficient_variables(component):
        values = posterior[variable]
        extra = [dim for dim in values.dims if dim not in ("chain", "draw")]
        array = values.transpose("chain", "draw", *extra).to_numpy()
        blocks.append(array.reshape(*array.shape[:2], columns.stop - columns.start))
        if extra:
            labels += [f"{variable}[{level}]" for level in values[extra[0]].to_numpy()]
        else:
            labels.append(variable)
    return np.concatenate(blocks, axis=-1), labels


def _scatter_coefficients(component, posterior: xr.Dataset, values: np.ndarray) -> None:
    """Write (chain, draw, p) coefficient draws back into the component's variables."""
    for variable, columns in _coefficient_variables(component):
        current = posterior[variable]
        extra = [dim for dim in current.dims if dim not in ("chain", "draw")]
        ordered = current.transpose("chain", "draw", *extra)
        block = values[..., columns].reshape(ordered.shape)
        posterior[variable] = ordered.copy(data=block).transpose(*current.dims)


def heterogeneity_at(model, idata, data: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
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

    Returns
    -------
    pandas.DataFrame
        Indexed by the columns of ``data`` and ``quantity``; columns ``Mean``, ``SD``,
        ``Median``, and the interval bounds (``0.025``, ``0.975`` by default).
    """
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

    low, _, high = interval_probabilities(level)
    tables, index = [], []
    for i in range(len(frame)):
        values = heterogeneity_draws(
            tau[..., i : i + 1], None if rho is None else rho[..., i : i + 1], typical
        )
        at = {quantity: values[quantity] for quantity in AT_QUANTITIES if quantity in values}
        tables.append(describe(at, (low, high)))
        index += [(*frame.loc[i, list(frame.columns)], quantity) for quantity in at]
    names = [*map(str, frame.columns), "quantity"]
    table = pd.concat(tables, ignore_index=True)
    return table.set_axis(pd.MultiIndex.from_tuples(index, names=names))


def _solve_transform(raw: np.ndarray, centred: np.ndarray) -> np.ndarray | None:
    """The matrix A with centred = raw @ A (square and exact), or None if there is none."""
    if raw.shape != centred.shape or np.linalg.matrix_rank(raw) < raw.shape[1]:
        return None
    transform, *_ = np.linalg.lstsq(raw, centred, rcond=None)
    error = np.max(np.abs(raw @ transform - centred))
    if error > REPRODUCTION_TOLERANCE * max(1.0, np.max(np.abs(centred))):
        return None
    return transform
