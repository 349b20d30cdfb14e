"""Default priors: effect-size measure -> unit-information SD -> priors (RoBMA's brma defaults).

The unit-information SD (UISD) is the standard deviation of one observation's worth of
information on the effect-size scale (Röver et al., 2021, "On weakly informative prior
distributions for the heterogeneity parameter in Bayesian random-effects meta-analysis",
Research Synthesis Methods 12(4), 448-474). RoBMA's ``brma()`` scales every default prior by it:

==============================  ==================================================================
parameter                       default prior and why
==============================  ==================================================================
intercept (pooled effect mu)    Normal(0, UISD/2): effects beyond one UISD are implausible a priori
tau (total heterogeneity SD)    HalfNormal(UISD/4): heterogeneity rarely exceeds half an effect
moderator coefficient           Normal(0, UISD/4) per standardised unit of a continuous moderator
                                (Normal(0, UISD/4 / sd(x)) on the raw scale) or per treatment
                                contrast of a categorical moderator
rho (cluster share of tau^2)    Beta(1, 1): no preference between cluster and estimate level
==============================  ==================================================================

The intercept prior acts at the means of the continuous moderators and at the reference level of
the categorical ones (continuous moderators are centred, dummies are not).

Scale models (``tau ~ z`` with a log link, ``rho ~ z`` with a logit link) keep these priors at the
means of their moderators, exactly:

==============================  ==================================================================
parameter                       default prior and why
==============================  ==================================================================
log-tau intercept               log of a HalfNormal(UISD/4) variable (``LogHalfNormal``): tau at
                                the moderator means has exactly the default tau prior, so
                                ``tau ~ z`` with zero slopes is the default model
log-tau coefficient             Normal(0, 0.5) per standardised unit of z (RoBMA's default for
                                log-tau coefficients): with 95% prior probability a 1-SD change in z
                                multiplies tau by a factor between e^-1 and e (0.37 to 2.7)
logit-rho intercept             Logistic(0, 1): the logit of a Beta(1, 1) (uniform) variable, so
                                rho at the moderator means has exactly the default rho prior
logit-rho coefficient           Normal(0, 0.5) per standardised unit of z, as for log tau: with
                                95% prior probability a 1-SD change in z multiplies the odds
                                rho / (1 - rho) by a factor between e^-1 and e
==============================  ==================================================================
"""

import warnings
from collections.abc import Mapping

import bambi as bmb
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from bambi_meta._validate import check_choice, check_positive_number
from bambi_meta.bambi_ext.formula import SCALE_PARAMETERS

UNIT_INFORMATION_SD = {
    "SMD": float(np.sqrt(2.0)),  # standardised mean difference (Cohen's d, Hedges' g)
    "ZCOR": 1.0,  # Fisher's z-transformed correlation
    "OR": 2.0,  # log odds ratio
    "RR": 2.0,  # log risk ratio
    "HR": 2.0,  # log hazard ratio
    "IRR": 2.0,  # log incidence rate ratio
}
DATA_DEPENDENT_MEASURES = ("RD", "GEN")  # risk difference, generic: UISD from sample sizes
MEASURES = (*UNIT_INFORMATION_SD, *DATA_DEPENDENT_MEASURES)
SCALE_COEFFICIENT_SD = 0.5  # prior SD of log-tau / logit-rho coefficients per SD of z


def unit_information_sd(
    measure: str,
    variances: np.ndarray | None = None,
    sample_sizes: np.ndarray | None = None,
    uisd: float | None = None,
) -> float:
    r"""Unit-information SD of an effect-size measure.

    Parameters
    ----------
    measure : str
        One of ``MEASURES``.
    variances : numpy.ndarray, optional
        Sampling variances; with ``sample_sizes`` they give the UISD of RD and GEN.
    sample_sizes : numpy.ndarray, optional
        Total sample size of each estimate (needed for RD and GEN unless ``uisd`` is given).
    uisd : float, optional
        An explicit unit-information SD; overrides the measure's value.

    Returns
    -------
    float
        For RD and GEN, :math:`\sqrt{\sum_i n_i / \sum_i v_i^{-1}}`.
    """
    measure = check_choice(measure, "measure", MEASURES)
    if uisd is not None:
        return check_positive_number(uisd, "uisd")
    if measure in UNIT_INFORMATION_SD:
        return UNIT_INFORMATION_SD[measure]
    if sample_sizes is None or variances is None:
        raise ValueError(
            f"measure={measure!r} has no fixed unit-information SD: pass 'sample_sizes' (a column "
            "of total sample sizes) or an explicit 'uisd'."
        )
    sample_sizes = np.asarray(sample_sizes, dtype=float)
    bad = ~np.isfinite(sample_sizes) | (sample_sizes <= 0)
    if bad.any():
        raise ValueError(
            f"'sample_sizes' must be finite and > 0; row {np.flatnonzero(bad)[0] + 1} has "
            f"{sample_sizes[bad][0]!r}."
        )
    return float(np.sqrt(sample_sizes.sum() / np.sum(1.0 / np.asarray(variances))))


class PriorDataConflictWarning(UserWarning):
    """The effect sizes sit where the measure's default priors put almost no mass."""


# Effect sizes this many unit-information SDs from 0 (or this widely spread) are implausible on
# the measure's scale: the default intercept prior N(0, UISD/2) gives them ~1e-22 prior density.
CONFLICT_IN_UISD = 5.0


def warn_about_prior_data_conflict(
    rows, measure: str, uisd: float, user_priors: Mapping[str, object]
) -> None:
    """Warn when the data are far outside what the measure's default priors allow.

    A mislabelled measure (e.g. raw scores as ``SMD``) makes the default priors pull the pooled
    effect and tau towards 0 by orders of magnitude, which the sampler may report only as a few
    divergences. Checked on the inverse-variance weighted mean and the SD of the effect sizes.
    """
    if {"Intercept", "mu"} & set(user_priors) and "tau" in user_priors:
        return
    weights = 1.0 / rows.variances
    location = float(np.sum(weights * rows.effect_sizes) / np.sum(weights))
    spread = float(np.std(rows.effect_sizes))
    if max(abs(location), spread) <= CONFLICT_IN_UISD * uisd:
        return
    warnings.warn(
        f"The effect sizes are far from what measure={measure!r} expects: their weighted mean is "
        f"{location:.4g} and their SD {spread:.4g}, i.e. up to "
        f"{max(abs(location), spread) / uisd:.3g} unit-information SDs (UISD = {uisd:.4g}), "
        f"while the default priors put the pooled effect within about one UISD of 0 and tau "
        f"below about half a UISD. Check that the measure is right; for effect sizes on another "
        f"scale use measure='GEN' with sample_sizes= (or uisd=), or set the priors yourself.",
        PriorDataConflictWarning,
        stacklevel=4,
    )


def default_priors(
    uisd: float,
    coefficient_scales: Mapping[str, float],
    has_intercept: bool,
    has_clusters: bool,
) -> dict[str, bmb.Prior]:
    """Default priors for a meta-analytic model.

    Parameters
    ----------
    uisd : float
        Unit-information SD of the measure.
    coefficient_scales : mapping of str to float
        For each moderator term (Bambi's term name), the SD that standardises it: ``sd(x)`` for
        a continuous moderator, 1 for a treatment contrast, the product of the SDs of the
        continuous factors for an interaction.
    has_intercept : bool
        Whether the location formula has an intercept.
    has_clusters : bool
        Whether the model has a cluster level (and so a ``rho`` parameter).

    Returns
    -------
    dict of str to bambi.Prior
    """
    priors: dict[str, bmb.Prior] = {"tau": bmb.Prior("HalfNormal", sigma=uisd / 4)}
    if has_intercept:
        priors["Intercept"] = bmb.Prior("Normal", mu=0.0, sigma=uisd / 2)
    for name, scale in coefficient_scales.items():
        priors[name] = bmb.Prior("Normal", mu=0.0, sigma=uisd / 4 / scale)
    if has_clusters:
        priors["rho"] = bmb.Prior("Beta", alpha=1.0, beta=1.0)
    return priors


def coefficient_scale(term: object) -> float:
    """SD that standardises a formulae common term (product over its numeric components).

    Categorical components contribute 1 (treatment contrasts are not standardised); numeric
    components contribute their sample SD (ddof=1, as R's ``sd()`` and RoBMA use).
    """
    scale = 1.0
    for component in term.components:
        if component.kind == "numeric":
            values = np.asarray(component.value, dtype=float).ravel()
            sd = float(np.std(values, ddof=1))
            if not np.isfinite(sd) or sd == 0:
                raise ValueError(
                    f"Moderator '{component.name}' is constant (sd = {sd}); a constant moderator "
                    "is confounded with the intercept. Remove it from the formula."
                )
            scale *= sd
    return scale


def default_scale_priors(
    parameter: str,
    uisd: float,
    coefficient_scales: Mapping[str, float],
    has_intercept: bool,
) -> dict[str, bmb.Prior]:
    r"""Default priors of a scale formula, ``tau ~ z`` (log link) or ``rho ~ z`` (logit link).

    Parameters
    ----------
    parameter : {"tau", "rho"}
        The modelled parameter.
    uisd : float
        Unit-information SD of the measure (sets the tau prior).
    coefficient_scales : mapping of str to float
        For each term of the scale formula (Bambi's term name, without the ``tau_`` prefix), the
        SD that standardises it (see ``coefficient_scale``).
    has_intercept : bool
        Whether the scale formula has an intercept.

    Returns
    -------
    dict of str to bambi.Prior
        Keyed by term name (``"Intercept"`` and the moderator terms).

    Notes
    -----
    The scale moderators are centred, so the intercept is :math:`\log\tau` (or
    :math:`\operatorname{logit}\rho`) at their means. Its prior is the exact image of the
    default prior of the constant parameter under the link: if
    :math:`\tau \sim \text{HalfNormal}(s)` then :math:`a = \log\tau` has density
    :math:`\sqrt{2/\pi}\, s^{-1} \exp(a - e^{2a}/(2s^2))` (:func:`log_half_normal`); if
    :math:`\rho \sim \text{Beta}(1, 1)` then :math:`\operatorname{logit}\rho \sim
    \text{Logistic}(0, 1)`. With all slopes at zero the scale model is therefore the default
    model, prior included, and a slope's posterior speaks only to the moderator.
    Coefficients get :math:`N(0, 0.5)` per standardised unit of the moderator, i.e.
    :math:`N(0, 0.5/\operatorname{sd}(z))` on the centred raw scale (the default of RoBMA's
    log-tau coefficients; used for logit rho too, where it keeps a 1-SD change in z within a
    factor e of the odds of rho with 95% prior probability).
    """
    if parameter not in SCALE_PARAMETERS:
        raise ValueError(
            f"A scale formula models one of {', '.join(SCALE_PARAMETERS)}; got {parameter!r}."
        )
    priors: dict[str, bmb.Prior] = {}
    if has_intercept:
        if parameter == "tau":
            priors["Intercept"] = bmb.Prior("LogHalfNormal", sigma=uisd / 4, dist=log_half_normal)
        else:
            priors["Intercept"] = bmb.Prior("Logistic", mu=0.0, s=1.0)
    for name, scale in coefficient_scales.items():
        priors[name] = bmb.Prior("Normal", mu=0.0, sigma=SCALE_COEFFICIENT_SD / scale)
    return priors


def log_half_normal(name: str, sigma, **kwargs) -> pm.Distribution:
    r"""PyMC variable :math:`\log X` with :math:`X \sim \text{HalfNormal}(\sigma)`.

    The default prior of the log-tau intercept (:func:`default_scale_priors`). Built as the log of
    a half-normal, so PyMC derives the log-density
    :math:`\tfrac12\log(2/\pi) - \log\sigma + a - e^{2a}/(2\sigma^2)` and can draw from it
    (prior predictive) without a hand-written sampler.

    Parameters
    ----------
    name : str
        Variable name.
    sigma : float
        Scale of the half-normal distribution of :math:`X = e^a`.
    **kwargs
        Passed to ``pymc.CustomDist`` (``dims``, ``shape``, ``observed``).

    Returns
    -------
    pymc.Distribution
    """
    return pm.CustomDist(name, sigma, dist=_log_half_normal_graph, **kwargs)


def _log_half_normal_graph(sigma, size):
    return pt.log(pm.HalfNormal.dist(sigma=sigma, size=size))


def resolve_measure(
    data: pd.DataFrame,
    measure: str | None,
    sample_sizes: str | None,
    uisd: float | None,
    effect_sizes: str,
) -> tuple[str, str, str | None]:
    """The measures and sample-size column of a model, from the arguments or escalc's record.

    A data frame made by ``bmm.escalc`` records its measure (and sample-size column); an escalc
    measure name (``PETO``, ``SMDH``, ...) is mapped to the prior family it shares.

    Returns
    -------
    measure : str
        The prior measure, one of :data:`MEASURES`.
    effect_measure : str
        What the effect sizes are: the escalc measure escalc recorded or the user named
        (``PETO``, ``SMDH``, ...), else ``measure``; figures label their axes with it.
    sample_sizes : str or None
        The column of total sample sizes to use, if any.
    """
    from bambi_meta.effect_sizes.escalc import (
        ESCALC_MEASURES,
        measure_from_attrs,
        model_arguments,
        prior_measure,
    )

    recorded = model_arguments(data, measure, effect_sizes=effect_sizes)
    record = measure_from_attrs(data)
    named = measure
    if record is not None and record["yi"] == effect_sizes:
        named = record["measure"]
    measure = recorded.get("measure", measure)
    if sample_sizes is None and uisd is None:
        sample_sizes = recorded.get("sample_sizes")
    if measure is None:
        raise ValueError(
            f"'measure' is required (it sets the default priors): one of {', '.join(MEASURES)}"
            f", or any measure of bmm.escalc ({', '.join(ESCALC_MEASURES)}); it is "
            "read from the data when bmm.escalc computed the effect sizes."
        )
    if isinstance(measure, str) and measure.upper() in ESCALC_MEASURES:
        measure = prior_measure(measure.upper())
    measure = check_choice(measure, "measure", MEASURES)
    return measure, str(named).upper(), sample_sizes


def default_term_priors(model, user_priors: Mapping) -> dict:
    """Default priors for every term of the location and scale formulas the user left alone.

    Parameters
    ----------
    model : MetaModel
        The built Bambi model (its terms and their data set the scales).
    user_priors : mapping
        The priors the user gave, keyed by Bambi's term names.

    Returns
    -------
    dict
        Bambi priors by term (and per scale parameter), for ``set_priors``.
    """
    mu = model.parameters["mu"]
    scales = {name: coefficient_scale(term.term) for name, term in mu.common_terms.items()}
    defaults = default_priors(model.uisd, scales, mu.intercept_term is not None, False)
    location = {name: prior for name, prior in defaults.items() if name in mu.terms}
    chosen = {name: prior for name, prior in location.items() if name not in user_priors}
    for parameter in model.scale_formulas:
        component = model.parameters[parameter]
        scales = {
            name: coefficient_scale(term.term) for name, term in component.common_terms.items()
        }
        defaults = default_scale_priors(
            parameter, model.uisd, scales, component.intercept_term is not None
        )
        given = user_priors.get(parameter, {})
        missing = {name: prior for name, prior in defaults.items() if name not in given}
        if missing:
            chosen[parameter] = missing
    return chosen
