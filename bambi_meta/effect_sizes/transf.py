r"""Back-transformations for reporting effect sizes on their natural scale (metafor's ``transf.*``).

Each function maps estimates (and interval bounds) from the scale the model works on back to the
scale people read: ``exp`` turns a log odds ratio into an odds ratio, ``ztor`` Fisher's z into a
correlation, ``ilogit`` a log odds into a proportion, ``iarcsin`` an arcsine square-root
proportion into a proportion. They are monotone increasing, so they map quantiles (medians,
credible and prediction interval bounds) to the same quantiles of the transformed quantity; a
posterior MEAN must be computed from transformed draws instead (the transform of a mean is not
the mean of the transform).

:func:`default_transform` gives the natural back-transformation of each measure, for tables and
figures (``transform=``). Like numpy's ufuncs, they take scalars, arrays and pandas objects
and return the same kind (a pandas Series keeps its index).

Examples
--------
>>> import bambi_meta as bmm
>>> round(float(bmm.transf.exp(-0.7145)), 4)  # pooled log risk ratio of dat.bcg -> risk ratio
0.4894
>>> bmm.transf.default_transform("ZCOR") is bmm.transf.ztor
True
"""

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit


def identity(x: ArrayLike) -> ArrayLike:
    """Return ``x`` as floats, unchanged: measures already on their natural scale."""
    return np.multiply(x, 1.0)


def exp(x: ArrayLike) -> ArrayLike:
    r"""Exponential, :math:`e^x`: log ratios (OR, RR, IRR, ROM, HR) to ratios.

    Also a log proportion (PLN), log rate (IRLN) or log mean (MNLN) to its raw scale. metafor
    users write ``transf = exp``.
    """
    return np.exp(x)


def ztor(x: ArrayLike) -> ArrayLike:
    r"""Fisher's z to a correlation, :math:`r = \tanh(z)` (metafor's ``transf.ztor``)."""
    return np.tanh(x)


def ilogit(x: ArrayLike) -> ArrayLike:
    r"""Inverse logit, :math:`1 / (1 + e^{-x})`: log odds (PLO) to a proportion.

    metafor's ``transf.ilogit`` (R's ``plogis``); accurate for large :math:`|x|`.
    """
    return expit(x)


def iarcsin(x: ArrayLike) -> ArrayLike:
    r"""Inverse arcsine square-root transformation, :math:`\sin^2(x)`: PAS to a proportion.

    Values outside :math:`[0, \pi/2]` (possible for interval bounds) give 0 and 1, as in
    metafor's ``transf.iarcsin``.
    """
    return np.sin(np.clip(x, 0.0, np.pi / 2)) ** 2


NATURAL_SCALE: dict[str, Callable[[ArrayLike], ArrayLike]] = {
    **dict.fromkeys(("OR", "RR", "IRR", "HR", "ROM", "PETO", "PLN", "IRLN", "MNLN"), exp),
    "ZCOR": ztor,
    "PLO": ilogit,
    "PAS": iarcsin,
}
IDENTITY_MEASURES = (
    "SMD", "SMDH", "MD", "RD", "GEN", "COR", "UCOR", "PR", "IR", "MN", "IRD", "MC", "SMCC", "SMCR"
)  # fmt: skip


def default_transform(measure: str) -> Callable[[ArrayLike], ArrayLike]:
    """The back-transformation that reports ``measure`` on its natural scale.

    Parameters
    ----------
    measure : str
        An escalc measure (e.g. ``"PLO"``) or a MetaModel measure (e.g. ``"HR"``).

    Returns
    -------
    callable
        :func:`exp` for log ratios and other log-scale measures (OR, RR, IRR, HR, ROM, PETO,
        PLN, IRLN, MNLN), :func:`ztor` for ZCOR, :func:`ilogit` for PLO, :func:`iarcsin` for
        PAS, :func:`identity` for the rest.

    Examples
    --------
    >>> from bambi_meta.effect_sizes.transf import default_transform
    >>> default_transform("OR").__name__, default_transform("SMD").__name__
    ('exp', 'identity')
    """
    key = measure.upper() if isinstance(measure, str) else measure
    if key in NATURAL_SCALE:
        return NATURAL_SCALE[key]
    if key in IDENTITY_MEASURES:
        return identity
    known = ", ".join((*NATURAL_SCALE, *IDENTITY_MEASURES))
    raise ValueError(f"'measure' must be one of {known}; got {measure!r}.")
