r"""Centring of continuous moderators: the formula Bambi gets, the names users see, the raw scale.

Continuous moderators (columns, or numeric calls such as ``log(n)``) are centred before sampling
(``center()`` from formulae, a stateful transform that new data reuse), so each intercept (of
``mu``, and of ``log tau`` / ``logit rho`` in a scale formula) sits at their means, where its
default prior acts; categorical moderators keep uncentred treatment contrasts. Users name terms as
they wrote them (:class:`Aliases`). Meta-analysts read coefficients on the raw scale (metafor,
RoBMA): the intercept at x = 0. Both designs span the same space, :math:`X_c = X_r A`, so per draw

.. math::

    \eta = X_c \beta_c = X_r (A \beta_c) \quad\Rightarrow\quad \beta_r = A \beta_c,

with :math:`A` solved exactly from the two design matrices of the fitted rows. The posterior of a
fit holds :math:`\beta_r` under the sampled names (:func:`to_raw_scale`), as Bambi's own
``center_predictors`` stores its intercept; Bambi's prediction machinery, which multiplies the
centred design, gets :math:`\beta_c` back (:func:`to_sampled_scale`).
"""

import warnings
from dataclasses import dataclass, field

import formulae as fm
import numpy as np
import pandas as pd
import xarray as xr

from bambi_meta import _validate
from bambi_meta._datatree import as_dataset
from bambi_meta.bambi_ext.formula import (
    SCALE_PARAMETERS,
    center_continuous_moderators,
    formula_has_intercept,
    is_identifier,
    single_term,
)

# The raw design must reproduce the centred one to this relative precision (float rounding of
# centring is ~1e-15 relative; a design that is not a linear map of the raw one is off by O(1)).
REPRODUCTION_TOLERANCE = 1e-8


@dataclass(frozen=True)
class Aliases:
    """Names of centred terms as the user wrote them.

    Attributes
    ----------
    location : dict of str to str
        Bambi's term of the location formula -> the user's name (``center(year)`` -> ``year``).
    scale : dict of str to dict
        The same per scale parameter (``"tau"``, ``"rho"``).
    """

    location: dict[str, str] = field(default_factory=dict)
    scale: dict[str, dict[str, str]] = field(default_factory=dict)

    def for_bambi(self, n_parameters: int) -> dict:
        """The argument of ``bmb.Model.set_alias`` (per parameter with scale formulas)."""
        if n_parameters == 1:
            return dict(self.location)
        aliases = {
            name: {term: f"{name}_{alias}" for term, alias in terms.items()}
            for name, terms in self.scale.items()
            if terms
        }
        if self.location:
            aliases["mu"] = dict(self.location)
        return aliases

    def rename_priors(self, priors: object, scale_formulas: dict, has_intercept: bool) -> dict:
        """Priors keyed as the user wrote them (``year``, ``mu``) -> keyed as Bambi's terms."""
        if not isinstance(priors, dict):
            raise TypeError(
                f"'priors' must be a dict of Bambi priors; got {type(priors).__name__}."
            )
        by_user_name = {alias: term for term, alias in self.location.items()}
        renamed = {}
        for name, prior in priors.items():
            if name in scale_formulas:
                renamed[name] = self._rename_scale_priors(name, scale_formulas[name], prior)
                continue
            _validate.check_prior(name, prior)
            if name == "mu" and not isinstance(prior, dict):
                # ``mu`` is what summary() calls the pooled effect of an intercept-only model.
                if not has_intercept:
                    raise ValueError(
                        "priors={'mu': ...}: 'mu' is the intercept (pooled effect), and this "
                        "model has none; give priors per moderator, e.g. {'year': bmb.Prior(...)}."
                    )
                name = "Intercept"
            renamed[by_user_name.get(name, name)] = prior
        return renamed

    def _rename_scale_priors(self, parameter: str, rhs: str, priors: object) -> dict:
        """Priors of a scale formula's terms: ``{"Intercept": ..., "z": ...}``."""
        if not isinstance(priors, dict):
            raise TypeError(
                f"'{parameter}' is modelled by the scale formula '{parameter} ~ {rhs}', so its "
                f"priors are given per term, e.g. priors={{'{parameter}': {{'Intercept': "
                f"bmb.Prior(...), ...}}}} (the intercept on the {SCALE_PARAMETERS[parameter]} "
                f"scale); got {priors!r}. To hold {parameter} at a value, drop the scale formula."
            )
        by_user_name = {alias: term for term, alias in self.scale.get(parameter, {}).items()}
        return {by_user_name.get(name, name): prior for name, prior in priors.items()}


def centre_formulas(
    formulas: dict[str, str], data: pd.DataFrame, namespace: dict
) -> tuple[dict[str, str], Aliases]:
    """The right-hand sides Bambi gets (continuous moderators centred), and their aliases.

    Parameters
    ----------
    formulas : dict of str to str
        Right-hand side per parameter (``"mu"`` and the scale parameters).
    data : pandas.DataFrame
        The fitted rows (which factors are continuous).
    namespace : dict
        Functions the formulas may call.

    Returns
    -------
    formulas : dict of str to str
    aliases : Aliases
    """
    centred, aliases = {}, {}
    for name, rhs in formulas.items():
        if formula_has_intercept(rhs):
            centred[name], aliases[name] = center_continuous_moderators(
                rhs, lambda factor: is_continuous_moderator(data, namespace, factor)
            )
        else:
            centred[name], aliases[name] = rhs, {}
    return centred, Aliases(aliases.pop("mu"), aliases)


def is_continuous_moderator(data: pd.DataFrame, namespace: dict, factor: str) -> bool:
    """Whether a formula factor (a column or a call like ``log(n)``) is a continuous moderator.

    Numeric columns are continuous, booleans are not (they are treatment contrasts); a call is
    evaluated on the data by formulae and is continuous when it gives non-boolean numbers.
    """
    if is_identifier(factor):
        column = data[factor] if factor in data.columns else None
        return (
            column is not None
            and pd.api.types.is_numeric_dtype(column)
            and not pd.api.types.is_bool_dtype(column)
        )
    try:
        design = fm.design_matrices(f"0 + {factor}", data, "error", 1, namespace)
    except Exception as error:
        raise ValueError(
            f"The moderator '{factor}' could not be evaluated on the data "
            f"({type(error).__name__}: {error})."
        ) from None
    (term,) = design.common.terms.values()
    values = np.asarray(design.common.design_matrix)
    return all(c.kind == "numeric" for c in term.components) and values.dtype != bool


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
        raw = np.asarray(raw_design(model, parameter).design_matrix, dtype=float)
        cache[parameter] = _solve_transform(raw, centred)
    return cache[parameter]


def _has_centred_terms(model, parameter: str) -> bool:
    aliases = model.aliases.location if parameter == "mu" else model.aliases.scale[parameter]
    return bool(aliases)


def raw_design(model, parameter: str):
    """The raw (uncentred) design of a parameter's formula on the fitted rows."""
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
        if component.design.common is None or not _has_centred_terms(model, name):
            continue  # nothing centred: the raw and the sampled scales are the same
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
        values, _ = gather_coefficients(component, posterior)
        matrix = np.linalg.inv(transform) if inverse else transform
        mapped = np.einsum("rc,...c->...r", matrix, values)
        _scatter_coefficients(component, out, mapped)
    return out


def coefficient_variables(component) -> list[tuple[str, slice, object]]:
    """(posterior variable, design columns, Bambi term) of each common term, in column order."""
    blocks = []
    for term_name, columns in component.design.common.slices.items():
        term = component.intercept_term if term_name == "Intercept" else None
        if term is None:
            term = component.common_terms[term_name]
        blocks.append((term.alias or term.name, columns, term))
    return blocks


def gather_coefficients(component, posterior: xr.Dataset) -> tuple[np.ndarray, list[str]]:
    """Draws (chain, draw, p) of a component's common coefficients, in design-column order."""
    if component.design.common is None:
        return np.empty((posterior.sizes["chain"], posterior.sizes["draw"], 0)), []
    blocks, labels = [], []
    for variable, columns, _ in coefficient_variables(component):
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
    for variable, columns, _ in coefficient_variables(component):
        current = posterior[variable]
        extra = [dim for dim in current.dims if dim not in ("chain", "draw")]
        ordered = current.transpose("chain", "draw", *extra)
        block = values[..., columns].reshape(ordered.shape)
        posterior[variable] = ordered.copy(data=block).transpose(*current.dims)


def _solve_transform(raw: np.ndarray, centred: np.ndarray) -> np.ndarray | None:
    """The matrix A with centred = raw @ A (square and exact), or None if there is none."""
    if raw.shape != centred.shape or np.linalg.matrix_rank(raw) < raw.shape[1]:
        return None
    transform, *_ = np.linalg.lstsq(raw, centred, rcond=None)
    error = np.max(np.abs(raw @ transform - centred))
    if error > REPRODUCTION_TOLERANCE * max(1.0, np.max(np.abs(centred))):
        return None
    return transform
