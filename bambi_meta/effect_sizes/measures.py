r"""The closed forms behind :func:`bambi_meta.escalc`: one numpy function per measure family.

Every formula is the one metafor 3.8-1's ``escalc()`` uses with its default ``vtype="LS"`` (large
sample variances), written in the same order of operations so that both give the same doubles.
Inputs are float arrays that :func:`bambi_meta.escalc` has already checked (counts >= 0, SDs > 0,
correlations in [-1, 1], ...); NaN marks a missing value and propagates. Each function returns an
:class:`Estimates` with the rows it leaves undefined and why, so that escalc can say so.

Notation: group 1 is the treatment (experimental) group, group 2 the control group; for a 2x2
table :math:`a_i, b_i` are the events and non-events of group 1, :math:`c_i, d_i` those of group 2,
:math:`n_{1i} = a_i + b_i`, :math:`n_{2i} = c_i + d_i`, :math:`p_{1i} = a_i / n_{1i}`,
:math:`p_{2i} = c_i / n_{2i}`.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import gammaln, hyp2f1

Formula = Callable[..., tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Estimates:
    """Effect sizes of one measure, before metafor's final recoding of non-finite values.

    Attributes
    ----------
    yi, vi : numpy.ndarray
        Effect sizes and their sampling variances.
    sample_sizes : numpy.ndarray or None
        Total sample size of each row (metafor's ``ni`` attribute), before any continuity
        correction; None for the person-time measures, where metafor stores person-time instead.
    undefined : tuple of (str, numpy.ndarray)
        ``(reason, rows)`` pairs naming why rows are NaN (e.g. dropped double-zero studies).
    vi_undefined : numpy.ndarray of bool or None
        Rows where metafor sets only ``vi`` to NA and keeps ``yi`` (correlations with ni <= 3).
    """

    yi: np.ndarray
    vi: np.ndarray
    sample_sizes: np.ndarray | None
    undefined: tuple[tuple[str, np.ndarray], ...] = ()
    vi_undefined: np.ndarray | None = None


def continuity_correction(cells: Sequence[np.ndarray], add: float, to: str) -> list[np.ndarray]:
    """Add ``add`` to every cell of the rows chosen by ``to`` (metafor's ``add`` and ``to``).

    Parameters
    ----------
    cells : sequence of numpy.ndarray
        The counts of each row that are checked for zeros and corrected together (the four cells
        of a 2x2 table; events and non-events of a proportion; the event counts of a rate).
    add : float
        The amount added.
    to : {"all", "only0", "if0all", "none"}
        ``"all"``: every row; ``"only0"``: rows with a zero cell; ``"if0all"``: every row if any
        row has a zero cell; ``"none"``: no row.

    Returns
    -------
    list of numpy.ndarray
    """
    has_zero = zero_rows(cells)
    rows = {
        "all": np.ones_like(has_zero),
        "only0": has_zero,
        "if0all": np.full_like(has_zero, has_zero.any()),
        "none": np.zeros_like(has_zero),
    }[to]
    return [np.where(rows, cell + add, cell) for cell in cells]


def zero_rows(cells: Sequence[np.ndarray]) -> np.ndarray:
    """Rows where any of ``cells`` is 0."""
    has_zero = np.zeros(np.shape(cells[0]), dtype=bool)
    for cell in cells:
        has_zero |= cell == 0
    return has_zero


def _zero_note(cells: Sequence[np.ndarray], add: float, to: str) -> tuple[str, np.ndarray]:
    """Why a row with a zero count can still be NaN (a log or a ratio of 0)."""
    return f"a zero count, not corrected with add={add:g}, to={to!r}", zero_rows(cells)


def bias_correction(m: np.ndarray) -> np.ndarray:
    r"""Hedges' exact small-sample correction :math:`c(m)`, NaN where :math:`m \le 1`.

    .. math::

        c(m) = \frac{\Gamma(m/2)}{\sqrt{m/2}\,\Gamma((m-1)/2)}
             = \exp\{\ln\Gamma(m/2) - \ln\sqrt{m/2} - \ln\Gamma((m-1)/2)\}

    computed on the log scale, as metafor's ``.cmicalc`` does (the gamma functions overflow for
    m > 340).
    """
    m = np.asarray(m, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.exp(gammaln(m / 2) - np.log(np.sqrt(m / 2)) - gammaln((m - 1) / 2))
    return np.where(m <= 1, np.nan, value)


# ---- 2x2 tables ---------------------------------------------------------------------------------


def _log_odds_ratio(ai, bi, ci, di):
    p1i, p2i = ai / (ai + bi), ci / (ci + di)
    yi = np.log(p1i / (1 - p1i)) - np.log(p2i / (1 - p2i))
    return yi, 1 / ai + 1 / bi + 1 / ci + 1 / di


def _log_risk_ratio(ai, bi, ci, di):
    n1i, n2i = ai + bi, ci + di
    yi = np.log(ai / n1i) - np.log(ci / n2i)
    return yi, 1 / ai - 1 / n1i + 1 / ci - 1 / n2i


def _risk_difference(ai, bi, ci, di):
    n1i, n2i = ai + bi, ci + di
    p1i, p2i = ai / n1i, ci / n2i
    return p1i - p2i, p1i * (1 - p1i) / n1i + p2i * (1 - p2i) / n2i


def _peto_log_odds_ratio(ai, bi, ci, di):
    n1i, n2i = ai + bi, ci + di
    ni = n1i + n2i
    expected = (ai + ci) * n1i / ni
    variance = (ai + ci) * (bi + di) * (n1i / ni) * (n2i / ni) / (ni - 1)
    return (ai - expected) / variance, 1 / variance


TWO_BY_TWO: dict[str, Formula] = {
    "OR": _log_odds_ratio,
    "RR": _log_risk_ratio,
    "RD": _risk_difference,
    "PETO": _peto_log_odds_ratio,
}


def two_by_two(measure, ai, bi, ci, di, *, add: float, to: str, drop00: bool) -> Estimates:
    r"""Log odds ratio (OR), log risk ratio (RR), risk difference (RD), Peto's log odds ratio.

    .. math::

        \text{OR: } y_i = \ln\frac{p_{1i}/(1-p_{1i})}{p_{2i}/(1-p_{2i})}, \quad
            v_i = \frac1{a_i} + \frac1{b_i} + \frac1{c_i} + \frac1{d_i}

        \text{RR: } y_i = \ln\frac{p_{1i}}{p_{2i}}, \quad
            v_i = \frac1{a_i} - \frac1{n_{1i}} + \frac1{c_i} - \frac1{n_{2i}}

        \text{RD: } y_i = p_{1i} - p_{2i}, \quad
            v_i = \frac{p_{1i}(1-p_{1i})}{n_{1i}} + \frac{p_{2i}(1-p_{2i})}{n_{2i}}

        \text{PETO: } y_i = \frac{a_i - E_i}{V_i}, \quad v_i = \frac1{V_i}, \quad
            E_i = \frac{(a_i + c_i) n_{1i}}{n_i}, \quad
            V_i = \frac{(a_i + c_i)(b_i + d_i) n_{1i} n_{2i}}{n_i^2 (n_i - 1)}

    after the continuity correction (:func:`continuity_correction` of all four cells, which
    metafor applies to PETO too). With ``drop00=True``, rows with no events in both groups
    (:math:`a_i = c_i = 0`) or only events (:math:`b_i = d_i = 0`) are set to NaN first.
    """
    sample_sizes = ai + bi + ci + di
    undefined = []
    if drop00:
        double_zero = ((ai == 0) & (ci == 0)) | ((bi == 0) & (di == 0))
        ai, bi, ci, di = (np.where(double_zero, np.nan, cell) for cell in (ai, bi, ci, di))
        undefined.append(("no events (or only events) in both groups, dropped: drop00=True",
                          double_zero))  # fmt: skip
    undefined.append(_zero_note((ai, bi, ci, di), add, to))
    ai, bi, ci, di = continuity_correction((ai, bi, ci, di), add, to)
    with np.errstate(divide="ignore", invalid="ignore"):
        yi, vi = TWO_BY_TWO[measure](ai, bi, ci, di)
    return Estimates(yi, vi, sample_sizes, tuple(undefined))


# ---- two groups: means and SDs ------------------------------------------------------------------


def two_group_means(measure, m1i, sd1i, n1i, m2i, sd2i, n2i) -> Estimates:
    r"""Mean difference (MD), Hedges' g (SMD, SMDH), log ratio of means (ROM).

    With :math:`m_i = n_{1i} + n_{2i} - 2`, the pooled SD
    :math:`s_{pi} = \sqrt{((n_{1i}-1) s_{1i}^2 + (n_{2i}-1) s_{2i}^2)/m_i}` and the correction
    :math:`c(m_i)` of :func:`bias_correction`:

    .. math::

        \text{MD: } y_i = \bar x_{1i} - \bar x_{2i}, \quad
            v_i = \frac{s_{1i}^2}{n_{1i}} + \frac{s_{2i}^2}{n_{2i}}

        \text{SMD: } y_i = c(m_i) \frac{\bar x_{1i} - \bar x_{2i}}{s_{pi}}, \quad
            v_i = \frac1{n_{1i}} + \frac1{n_{2i}} + \frac{y_i^2}{2 (n_{1i} + n_{2i})}

        \text{SMDH: } y_i = c(m_i) \frac{\bar x_{1i} - \bar x_{2i}}{s_i},\
            s_i^2 = \frac{s_{1i}^2 + s_{2i}^2}2, \quad
            v_i = c(m_i)^2 \left[\frac{y_i^2 (s_{1i}^4/(n_{1i}-1) + s_{2i}^4/(n_{2i}-1))}
            {2 (s_{1i}^2 + s_{2i}^2)^2} + \frac{s_{1i}^2/(n_{1i}-1) + s_{2i}^2/(n_{2i}-1)}
            {s_i^2}\right]

        \text{ROM: } y_i = \ln\frac{\bar x_{1i}}{\bar x_{2i}}, \quad
            v_i = \frac{s_{1i}^2}{n_{1i} \bar x_{1i}^2} + \frac{s_{2i}^2}{n_{2i} \bar x_{2i}^2}

    SMDH is Bonett's (2009) standardisation by the unweighted mean of the two variances (no
    assumption of equal variances).
    """
    ni = n1i + n2i
    undefined = []
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "MD":
            yi, vi = m1i - m2i, sd1i**2 / n1i + sd2i**2 / n2i
        elif measure == "SMD":
            pooled_sd = np.sqrt(((n1i - 1) * sd1i**2 + (n2i - 1) * sd2i**2) / (ni - 2))
            yi = bias_correction(ni - 2) * ((m1i - m2i) / pooled_sd)
            vi = 1 / n1i + 1 / n2i + yi**2 / (2 * ni)
        elif measure == "SMDH":
            correction = bias_correction(ni - 2)
            yi = correction * (m1i - m2i) / np.sqrt((sd1i**2 + sd2i**2) / 2)
            vi = yi**2 * (sd1i**4 / (n1i - 1) + sd2i**4 / (n2i - 1)) / (
                2 * (sd1i**2 + sd2i**2) ** 2
            ) + (sd1i**2 / (n1i - 1) + sd2i**2 / (n2i - 1)) / ((sd1i**2 + sd2i**2) / 2)
            vi = correction**2 * vi
        else:  # ROM
            yi = np.log(m1i / m2i)
            vi = sd1i**2 / (n1i * m1i**2) + sd2i**2 / (n2i * m2i**2)
            undefined.append(
                ("the ratio of the means is <= 0: its log is undefined", m1i / m2i <= 0)
            )
    return Estimates(yi, vi, ni, tuple(undefined))


def olkin_pratt_factor(ni: np.ndarray, ri: np.ndarray) -> np.ndarray:
    r"""The Olkin-Pratt factor :math:`{}_2F_1(\tfrac12, \tfrac12; c; 1 - r^2)`, :math:`c = (n-2)/2`.

    NaN where :math:`c \le 1` (:math:`n \le 4`). For :math:`c < 14` this is
    ``scipy.special.hyp2f1``; above, scipy returns NaN for :math:`z > 0.75`, so the Gauss series
    :math:`\sum_k (\tfrac12)_k^2 z^k / ((c)_k k!)` is summed instead: its terms are positive
    and fall at least like :math:`\prod_{j<k} j/(c+j)`, so they drop below 1e-17 of the sum
    within a few dozen terms. Against mpmath (40 digits) on a grid of n from 5 to 1e5 and r from
    1e-3 to 0.99 the relative error is below 4e-14. (metafor calls GSL's ``hyperg_2F1``, which
    is off by up to 1e-3 for some even n, e.g. n = 8, 10, 20 with :math:`|r| \le 0.05`.)
    """
    c, z = (ni - 2) / 2, 1 - ri**2
    small = c < 14
    with np.errstate(invalid="ignore"):
        factor = np.where(small, hyp2f1(0.5, 0.5, np.where(small, c, 2.0), z), np.nan)
    large = ~small & np.isfinite(c) & np.isfinite(z)
    total = term = np.ones(int(large.sum()))
    c_large, z_large = c[large], z[large]
    k = 0
    while term.size and np.any(term > 1e-17 * total):
        term = term * (k + 0.5) ** 2 * z_large / ((c_large + k) * (k + 1))
        total = total + term
        k += 1
    factor[large] = total
    return np.where(c > 1, factor, np.nan)


# ---- correlations -------------------------------------------------------------------------------


def correlation(measure, ri, ni) -> Estimates:
    r"""Raw (COR), unbiased (UCOR) and Fisher-z transformed (ZCOR) correlation coefficients.

    .. math::

        \text{COR: } y_i = r_i, \quad v_i = \frac{(1 - y_i^2)^2}{n_i - 1}

        \text{UCOR: } y_i = r_i\, {}_2F_1\!\left(\tfrac12, \tfrac12; \tfrac{n_i - 2}2;
            1 - r_i^2\right), \quad v_i = \frac{(1 - y_i^2)^2}{n_i - 1}

        \text{ZCOR: } y_i = \tfrac12 \ln\frac{1 + r_i}{1 - r_i}, \quad v_i = \frac1{n_i - 3}

    As in metafor, :math:`v_i` is undefined (NaN, with :math:`y_i` kept) when
    :math:`n_i \le 3`, and UCOR's :math:`y_i` when :math:`n_i \le 4` (Olkin & Pratt's
    hypergeometric series needs :math:`(n_i - 2)/2 > 1`).
    """
    undefined = []
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "ZCOR":
            yi, vi = 1 / 2 * np.log((1 + ri) / (1 - ri)), 1 / (ni - 3)
            undefined.append(("|ri| = 1: Fisher's z is infinite", np.abs(ri) == 1))
        else:
            yi = ri
            if measure == "UCOR":
                yi = ri * olkin_pratt_factor(ni, ri)
                undefined.append(("ni <= 4: the UCOR correction needs ni > 4", ni <= 4))
            vi = (1 - yi**2) ** 2 / (ni - 1)
    vi_undefined = ni <= 3
    undefined.append(("ni <= 3: metafor leaves the sampling variance undefined", vi_undefined))
    return Estimates(yi, np.where(vi_undefined, np.nan, vi), ni, tuple(undefined), vi_undefined)


# ---- single groups ------------------------------------------------------------------------------


def proportion(measure, xi, mi, *, add: float, to: str) -> Estimates:
    r"""Raw (PR), log (PLN), logit (PLO) and arcsine square-root (PAS) proportions.

    With :math:`x_i` events and :math:`m_i` non-events among :math:`n_i = x_i + m_i`,
    :math:`p_i = x_i / n_i` (after the continuity correction of :math:`x_i` and :math:`m_i`):

    .. math::

        \text{PR: } y_i = p_i,\ v_i = \frac{p_i (1 - p_i)}{n_i} \qquad
        \text{PLN: } y_i = \ln p_i,\ v_i = \frac1{x_i} - \frac1{n_i}

        \text{PLO: } y_i = \ln\frac{p_i}{1 - p_i},\ v_i = \frac1{x_i} + \frac1{m_i} \qquad
        \text{PAS: } y_i = \arcsin\sqrt{p_i},\ v_i = \frac1{4 n_i}
    """
    sample_sizes = xi + mi
    undefined = _zero_note((xi, mi), add, to)
    xi, mi = continuity_correction((xi, mi), add, to)
    ni = xi + mi
    pri = xi / ni
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "PR":
            yi, vi = pri, pri * (1 - pri) / ni
        elif measure == "PLN":
            yi, vi = np.log(pri), 1 / xi - 1 / ni
        elif measure == "PLO":
            yi, vi = np.log(pri / (1 - pri)), 1 / xi + 1 / mi
        else:  # PAS
            yi, vi = np.arcsin(np.sqrt(pri)), 1 / (4 * ni)
    return Estimates(yi, vi, sample_sizes, (undefined,))


def incidence_rate(measure, xi, ti, *, add: float, to: str) -> Estimates:
    r"""Raw (IR) and log (IRLN) incidence rates: :math:`x_i` events in person-time :math:`t_i`.

    .. math::

        \text{IR: } y_i = \frac{x_i}{t_i},\ v_i = \frac{x_i}{t_i^2} \qquad
        \text{IRLN: } y_i = \ln\frac{x_i}{t_i},\ v_i = \frac1{x_i}

    after the continuity correction of :math:`x_i`. There is no sample size (metafor stores the
    person-time as ``ni``).
    """
    undefined = _zero_note((xi,), add, to)
    (xi,) = continuity_correction((xi,), add, to)
    iri = xi / ti
    with np.errstate(divide="ignore"):
        yi, vi = (iri, iri / ti) if measure == "IR" else (np.log(iri), 1 / xi)
    return Estimates(yi, vi, None, (undefined,))


def rate_comparison(measure, x1i, t1i, x2i, t2i, *, add: float, to: str, drop00: bool):
    r"""Log incidence rate ratio (IRR) and incidence rate difference (IRD) of two groups.

    .. math::

        \text{IRR: } y_i = \ln\frac{x_{1i}/t_{1i}}{x_{2i}/t_{2i}},\
            v_i = \frac1{x_{1i}} + \frac1{x_{2i}} \qquad
        \text{IRD: } y_i = \frac{x_{1i}}{t_{1i}} - \frac{x_{2i}}{t_{2i}},\
            v_i = \frac{x_{1i}}{t_{1i}^2} + \frac{x_{2i}}{t_{2i}^2}

    after the continuity correction of the event counts; with ``drop00=True`` rows without
    events in both groups are NaN. There is no sample size (metafor stores person-time).
    """
    undefined = []
    if drop00:
        double_zero = (x1i == 0) & (x2i == 0)
        x1i, x2i = (np.where(double_zero, np.nan, count) for count in (x1i, x2i))
        undefined.append(("no events in both groups, dropped: drop00=True", double_zero))
    undefined.append(_zero_note((x1i, x2i), add, to))
    x1i, x2i = continuity_correction((x1i, x2i), add, to)
    ir1i, ir2i = x1i / t1i, x2i / t2i
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "IRR":
            yi, vi = np.log(ir1i) - np.log(ir2i), 1 / x1i + 1 / x2i
        else:  # IRD
            yi, vi = ir1i - ir2i, ir1i / t1i + ir2i / t2i
    return Estimates(yi, vi, None, tuple(undefined))


def single_mean(measure, mi, sdi, ni) -> Estimates:
    r"""Raw (MN) and log (MNLN) mean of one group.

    .. math::

        \text{MN: } y_i = \bar x_i,\ v_i = \frac{s_i^2}{n_i} \qquad
        \text{MNLN: } y_i = \ln \bar x_i,\ v_i = \frac{s_i^2}{n_i \bar x_i^2}
    """
    undefined = []
    if measure == "MN":
        yi, vi = mi, sdi**2 / ni
    else:  # MNLN
        with np.errstate(divide="ignore"):
            yi, vi = np.log(mi), sdi**2 / (ni * mi**2)
        undefined.append(("the mean is 0: its log is -inf", mi == 0))
    return Estimates(yi, vi, ni, tuple(undefined))


# ---- one group measured twice -------------------------------------------------------------------


def mean_change(measure, m1i, m2i, sd1i, ni, ri, sd2i=None) -> Estimates:
    r"""Raw (MC) and standardised mean change (SMCC: change-score, SMCR: raw-score SD).

    One group of :math:`n_i` measured twice (means :math:`\bar x_{1i}, \bar x_{2i}`, SDs
    :math:`s_{1i}, s_{2i}`, correlation :math:`r_i` between the occasions), with
    :math:`c(n_i - 1)` of :func:`bias_correction` and the SD of the change
    :math:`s_{di} = \sqrt{s_{1i}^2 + s_{2i}^2 - 2 r_i s_{1i} s_{2i}}`:

    .. math::

        \text{MC: } y_i = \bar x_{1i} - \bar x_{2i},\ v_i = \frac{s_{di}^2}{n_i}

        \text{SMCC: } y_i = c(n_i - 1) \frac{\bar x_{1i} - \bar x_{2i}}{s_{di}},\
            v_i = \frac1{n_i} + \frac{y_i^2}{2 n_i}

        \text{SMCR: } y_i = c(n_i - 1) \frac{\bar x_{1i} - \bar x_{2i}}{s_{1i}},\
            v_i = \frac{2 (1 - r_i)}{n_i} + \frac{y_i^2}{2 n_i}

    SMCR standardises by :math:`s_{1i}` (pass the pre-test SD) and does not use :math:`s_{2i}`.
    """
    undefined = []
    with np.errstate(divide="ignore", invalid="ignore"):
        if measure == "MC":
            yi, vi = m1i - m2i, (sd1i**2 + sd2i**2 - 2 * ri * sd1i * sd2i) / ni
        else:
            correction = bias_correction(ni - 1)
            undefined.append(("ni <= 2: the correction c(ni - 1) is undefined", ni <= 2))
            if measure == "SMCC":
                change_sd = np.sqrt(sd1i**2 + sd2i**2 - 2 * ri * sd1i * sd2i)
                undefined.append(("the SD of the change is 0 (ri = 1, equal SDs)", change_sd == 0))
                yi = correction * ((m1i - m2i) / change_sd)
                vi = 1 / ni + yi**2 / (2 * ni)
            else:  # SMCR
                yi = correction * ((m1i - m2i) / sd1i)
                vi = 2 * (1 - ri) / ni + yi**2 / (2 * ni)
    return Estimates(yi, vi, ni, tuple(undefined))
