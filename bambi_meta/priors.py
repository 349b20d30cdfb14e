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
"""

from collections.abc import Mapping

import bambi as bmb
import numpy as np

from bambi_meta._validate import check_choice, check_positive_number

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
