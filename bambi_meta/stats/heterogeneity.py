r"""Heterogeneity summaries per posterior draw: tau, tau2, I2, H2 and their partition (NumPy only).

The typical sampling variance is fixed by the data and the location design :math:`X` (p columns):

.. math::

    \tilde v = \frac{K - p}{\operatorname{tr}(P)}, \qquad
    P = W - W X (X^\top W X)^{-1} X^\top W, \qquad W = \operatorname{diag}(1/v_i).

Per draw, with row-level :math:`s_i = \tau_i^2` (constant without a scale model):

.. math::

    \tau^2_{within} = \overline{\tau_i^2 (1-\rho_i)}, \quad
    \tau^2_{between} = \overline{\tau_i^2 \rho_i}, \quad
    I^2 = 100\,\overline{\frac{s_i}{s_i + \tilde v}}, \quad
    H^2 = \overline{\frac{s_i + \tilde v}{\tilde v}},

the bars being means over rows; :math:`I^2_{within}` and :math:`I^2_{between}` split the numerator
of :math:`I^2` the same way. I2 is in percent, as metafor and RoBMA print it.
"""

import numpy as np


def typical_sampling_variance(variances: np.ndarray, design: np.ndarray | None = None) -> float:
    r"""Typical sampling variance :math:`(K - p) / \operatorname{tr}(P)` (Higgins & Thompson).

    Parameters
    ----------
    variances : numpy.ndarray of shape (k,)
        Known sampling variances.
    design : numpy.ndarray of shape (k, p), optional
        Location design matrix; an intercept column by default.

    Returns
    -------
    float
    """
    variances = np.asarray(variances, dtype=float)
    design = np.ones((variances.size, 1)) if design is None else np.asarray(design, dtype=float)
    weights = 1.0 / variances
    weighted_design = design * weights[:, np.newaxis]
    information = design.T @ weighted_design
    # tr(P) = sum(w) - tr((X'WX)^-1 X'W^2 X)
    trace = weights.sum() - np.trace(
        np.linalg.solve(information, weighted_design.T @ weighted_design)
    )
    return float((variances.size - design.shape[1]) / trace)


def heterogeneity_draws(
    tau: np.ndarray, rho: np.ndarray | None, typical_variance: float
) -> dict[str, np.ndarray]:
    """Heterogeneity summaries for every posterior draw.

    Parameters
    ----------
    tau : numpy.ndarray of shape (..., n_rows)
        Draws of the total heterogeneity SD; the last axis holds the rows (length 1 when tau is
        the same for every row, k for a scale model ``tau ~ z``).
    rho : numpy.ndarray of shape (..., n_rows) or None
        Draws of the cluster share of tau^2; ``None`` without a cluster level.
    typical_variance : float
        See :func:`typical_sampling_variance`.

    Returns
    -------
    dict of str to numpy.ndarray
        Keys ``tau``, ``tau2``, ``I2``, ``H2`` and, with clusters, ``rho``, ``tau [within]``,
        ``tau [between]``, ``tau2 [within]``, ``tau2 [between]``, ``I2 [within]``,
        ``I2 [between]``; each of shape (...,), i.e. one value per draw.
    """
    row_tau2 = np.square(np.asarray(tau, dtype=float))
    share = 100.0 / (row_tau2 + typical_variance)
    tau2 = row_tau2.mean(axis=-1)
    out = {
        "tau": np.sqrt(tau2),
        "tau2": tau2,
        "I2": (row_tau2 * share).mean(axis=-1),
        "H2": ((row_tau2 + typical_variance) / typical_variance).mean(axis=-1),
    }
    if rho is None:
        return out
    between = row_tau2 * np.asarray(rho, dtype=float)
    within = row_tau2 - between
    tau2_between = between.mean(axis=-1)
    tau2_within = within.mean(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho_overall = np.where(tau2 > 0, tau2_between / tau2, np.mean(rho, axis=-1))
    return {
        "tau": out["tau"],
        "rho": rho_overall,
        "tau [within]": np.sqrt(tau2_within),
        "tau [between]": np.sqrt(tau2_between),
        "tau2": tau2,
        "tau2 [within]": tau2_within,
        "tau2 [between]": tau2_between,
        "I2": out["I2"],
        "I2 [within]": (within * share).mean(axis=-1),
        "I2 [between]": (between * share).mean(axis=-1),
        "H2": out["H2"],
    }
