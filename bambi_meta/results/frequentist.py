r"""Frequentist (REML/ML) companion to the Bayesian multilevel meta-analysis model.

Row :math:`i` (an estimate) in cluster :math:`j` with known sampling variance :math:`v_i`,

.. math::

    y_i = X_i \beta + u_j + e_i + \varepsilon_i,\quad u_j \sim N(0, \tau^2 \rho),\quad
    e_i \sim N(0, \tau^2 (1 - \rho)),\quad \varepsilon_i \sim N(0, v_i).

This is metafor's ``rma.mv(yi, vi, random = ~ 1 | cluster/estimate)`` (``struct="nested"``,
``sigma2_cluster`` :math:`= \tau^2\rho`, ``sigma2_estimate`` :math:`= \tau^2(1-\rho)`, both
:math:`\ge 0`) and ``rma.mv(yi, vi, random = ~ estimate | cluster, struct = "CS")``
(``struct="CS"``, which also admits :math:`\rho < 0` while the marginal covariance stays positive
definite). Without clusters it is ``rma.uni`` (:math:`\tau^2` only). Pure numpy/scipy; the
likelihood algebra lives in :mod:`bambi_meta.stats.reml`.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field

import formulae as fm
import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats

from bambi_meta import _validate
from bambi_meta.results.frequentist_printout import printout
from bambi_meta.stats import reml as _profile
from bambi_meta.stats.reml import ModelData

__all__ = ["FrequentistFit", "LikelihoodRatioTest", "fit_frequentist", "lrt"]

_VARIANCE_PARAMETERS = {
    "uni": ("tau2", "tau"),
    "nested": ("tau2", "tau", "rho", "sigma2_cluster", "sigma2_estimate"),
    "CS": ("tau2", "tau", "rho"),
}

# variance structures that are special cases of each structure (rho = 0; rho >= 0)
_NESTED_IN = {"uni": ("uni",), "nested": ("uni", "nested"), "CS": ("uni", "nested", "CS")}


@dataclass(frozen=True, eq=False, repr=False)
class FrequentistFit:
    r"""Result of :func:`fit_frequentist` (metafor's conventions throughout).

    Attributes
    ----------
    method, struct : str
        ``"REML"``/``"ML"``; ``"uni"`` (no clusters), ``"nested"`` or ``"CS"``.
    k, p, n_clusters : int
        Estimates, fixed-effect coefficients and clusters (``None`` without clusters).
    coefficients : pandas.DataFrame
        ``estimate, se, z, p, ci_lower, ci_upper`` per column of X (Wald z tests and intervals).
    vcov : pandas.DataFrame
        Covariance matrix of the coefficients, :math:`(X^\top V^{-1} X)^{-1}`.
    tau2, rho, sigma2_cluster, sigma2_estimate : float
        Total heterogeneity, cluster share and the implied components (``None`` without clusters;
        ``rho`` is NaN when ``tau2 = 0``).
    loglik, deviance, AIC, BIC, AICc : float
        Fit statistics; REML ones use the restricted log-likelihood and ``k - p`` observations.
    n_parameters : int
        ``p`` plus the number of variance parameters.
    QE, QE_df, QEp : float, int, float
        Residual heterogeneity test :math:`Q_E = y^\top P y` with :math:`W = \mathrm{diag}(1/v)`.
    QM, QM_df, QMp : float, int, float or None
        Wald test of all non-intercept coefficients (``None`` without moderators).
    typical_v, I2 : float
        Typical sampling variance :math:`(k-p)/\mathrm{tr}(P)` and :math:`I^2` in percent.
    I2_components : dict
        :math:`I^2` split into ``sigma2_cluster`` / ``sigma2_estimate`` (``tau2`` without clusters).
    level : float
        Confidence level of all intervals.
    data : bambi_meta.stats.reml.ModelData
        The validated arrays of the fit (estimates, variances, design, cluster codes), which
        :meth:`loglik_at`, :meth:`profile_ci` and :func:`lrt` evaluate the likelihood on.
    factors : tuple of str
        Names of the cluster and the estimate level (``("district", "school")``), which the
        printout uses as metafor does (``sigma^2.1 ... district``,
        ``sigma^2.2 ... district/school``); ``("cluster", "estimate")`` when not given.
    """

    method: str
    struct: str
    k: int
    p: int
    n_clusters: int | None
    coefficients: pd.DataFrame
    vcov: pd.DataFrame
    tau2: float
    rho: float | None
    sigma2_cluster: float | None
    sigma2_estimate: float | None
    loglik: float
    deviance: float
    AIC: float
    BIC: float
    AICc: float
    n_parameters: int
    QE: float
    QE_df: int
    QEp: float
    QM: float | None
    QM_df: int | None
    QMp: float | None
    typical_v: float
    I2: float
    I2_components: dict[str, float]
    level: float
    data: ModelData = field(repr=False)
    factors: tuple[str, str] = ("cluster", "estimate")

    @property
    def tau(self) -> float:
        r"""Total heterogeneity standard deviation :math:`\sqrt{\tau^2}`."""
        return float(np.sqrt(self.tau2))

    @property
    def H2(self) -> float:
        r""":math:`H^2 = (\tau^2 + \tilde v) / \tilde v` with the typical variance."""
        return (self.tau2 + self.typical_v) / self.typical_v

    @property
    def _rho_unidentified(self) -> bool:
        return self.rho is not None and self.tau2 > 0.0 and not np.isfinite(self.rho)

    def _estimates(self) -> dict[str, float]:
        return {
            "tau2": self.tau2,
            "rho": self.rho if self.rho is not None else 0.0,
            "sigma2_cluster": self.sigma2_cluster or 0.0,
            "sigma2_estimate": self.sigma2_estimate or 0.0,
        }

    def loglik_at(self, tau2: float, rho: float | None = None) -> float:
        r"""(Restricted) log-likelihood at fixed ``tau2`` (and ``rho``), :math:`\beta` profiled out.

        Returns ``-inf`` where the marginal covariance is not positive definite.
        """
        rho = 0.0 if rho is None else rho
        ev = _profile.evaluate(self.data, tau2 * (1 - rho), tau2 * rho, self.method == "REML")
        return -np.inf if ev is None else ev.loglik

    def predict(self, X_new: np.ndarray | None = None, level: float | None = None) -> pd.DataFrame:
        r"""Predicted mean with confidence and prediction interval, like metafor's ``predict()``.

        .. math::

            \hat\mu = x^\top\hat\beta,\quad \mathrm{se} = \sqrt{x^\top \Sigma_\beta x},
            \quad \mathrm{PI} = \hat\mu \pm z_{1-\alpha/2}\sqrt{\mathrm{se}^2 + \tau^2}.

        Parameters
        ----------
        X_new : array_like, optional
            Rows of the design (shape ``(p,)`` or ``(n, p)``). Default: the pooled estimate for a
            one-column design, otherwise the fitted values of all rows.
        level : float, optional
            Confidence level; defaults to the fit's level.

        Returns
        -------
        pandas.DataFrame
            Columns ``pred, se, ci_lb, ci_ub, pi_lb, pi_ub``.
        """
        z = _z(self.level if level is None else _check_level(level))
        if X_new is None:
            X_new = np.ones((1, 1)) if self.p == 1 else self.data.X
        X_new = np.atleast_2d(np.asarray(X_new, dtype=float))
        if X_new.shape[1] != self.p:
            raise ValueError(f"'X_new' must have {self.p} columns; got shape {X_new.shape}.")
        pred = X_new @ self.coefficients["estimate"].to_numpy()
        se = np.sqrt(np.einsum("ij,jk,ik->i", X_new, self.vcov.to_numpy(), X_new))
        half_pi = z * np.sqrt(se**2 + self.tau2)
        return pd.DataFrame(
            {"pred": pred, "se": se, "ci_lb": pred - z * se, "ci_ub": pred + z * se,
             "pi_lb": pred - half_pi, "pi_ub": pred + half_pi}
        )  # fmt: skip

    def profile_ci(self, parameter: str, level: float | None = None) -> tuple[float, float]:
        r"""Profile-likelihood confidence interval of a variance parameter (metafor's ``confint``).

        The bounds solve :math:`2[\ell(\hat\theta) - \ell_p(\theta)] = \chi^2_{1,\,level}`
        where :math:`\ell_p` re-maximises over the other variance parameter. A bound at the edge
        of the parameter space (0 for variances; 0 or -1 and 1 for rho) is reported as that edge.

        Parameters
        ----------
        parameter : {"tau2", "tau", "rho", "sigma2_cluster", "sigma2_estimate"}
            ``tau`` is the square root of the ``tau2`` interval; the sigma2 components exist for
            ``struct="nested"`` only, rho needs clusters.
        level : float, optional
            Confidence level; defaults to the fit's level.
        """
        level = self.level if level is None else _check_level(level)
        if parameter not in _VARIANCE_PARAMETERS[self.struct]:
            allowed = ", ".join(_VARIANCE_PARAMETERS[self.struct])
            raise ValueError(
                f"'parameter' must be one of {allowed} for a {self.struct} fit; got {parameter!r}."
            )
        if parameter == "rho" and self.tau2 == 0.0:
            raise ValueError("'rho' is not identified (tau2 = 0); no profile interval exists.")
        if parameter in ("rho", "sigma2_cluster", "sigma2_estimate") and self._rho_unidentified:
            raise ValueError(
                f"'{parameter}' is not identified (every cluster has one estimate); no profile "
                "interval exists."
            )
        name = "tau2" if parameter == "tau" else parameter
        estimate = self._estimates()[name]
        rho_low = -1.0 if self.struct == "CS" else 0.0
        domain, scale = ((rho_low, 1.0), 1.0) if name == "rho" else ((0.0, np.inf), self.typical_v)
        reml = self.method == "REML"

        def profile(value: float) -> float:
            return _profile.profile_fit(self.data, reml, self.struct, name, value)[1].loglik

        drop = scipy.stats.chi2.ppf(level, 1) / 2.0
        bounds = _profile.profile_interval(profile, estimate, domain, scale, drop)
        return tuple(np.sqrt(bounds)) if parameter == "tau" else bounds

    def q_profile_ci(self, level: float | None = None) -> tuple[float, float]:
        r"""Q-profile interval for ``tau2`` of a single-level fit (metafor's ``confint.rma.uni``).

        Solves :math:`Q(\tau^2) = \sum_i (y_i - x_i\hat\beta_{\tau^2})^2 / (v_i + \tau^2)
        = \chi^2_{k-p}` quantiles (upper quantile for the lower bound and vice versa); a bound
        below 0 is reported as 0.
        """
        if self.struct != "uni":
            raise ValueError("The Q-profile interval needs a single-level fit (cluster=None).")
        alpha = 1.0 - (self.level if level is None else _check_level(level))
        df = self.k - self.p

        def q_stat(tau2: float) -> float:
            return _profile.evaluate(self.data, tau2, 0.0, reml=False).rss

        def solve(crit: float) -> float:
            if q_stat(0.0) <= crit:
                return 0.0
            hi = max(self.tau2, self.typical_v)
            while q_stat(hi) > crit:
                hi *= 2.0
            return scipy.optimize.brentq(lambda t: q_stat(t) - crit, 0.0, hi, xtol=1e-14)

        crit_upper, crit_lower = scipy.stats.chi2.isf([alpha / 2, 1 - alpha / 2], df)
        return solve(crit_upper), solve(crit_lower)

    def to_frame(self, profile: bool = False) -> pd.DataFrame:
        """Coefficients and variance parameters in one table.

        Parameters
        ----------
        profile : bool
            Fill ``ci_lower``/``ci_upper`` of the variance parameters with profile-likelihood
            intervals (slower); otherwise they are NaN.
        """
        rows = self.coefficients[["estimate", "se", "ci_lower", "ci_upper"]]
        names = [n for n in _VARIANCE_PARAMETERS[self.struct] if n != "tau"]
        est = self._estimates()
        var = pd.DataFrame(
            {"estimate": [est[n] for n in names], "se": np.nan, "ci_lower": np.nan,
             "ci_upper": np.nan}, index=names,
        )  # fmt: skip
        if profile:
            for name in names:
                unidentified = self._rho_unidentified and name != "tau2"
                if not (name == "rho" and self.tau2 == 0.0) and not unidentified:
                    var.loc[name, ["ci_lower", "ci_upper"]] = self.profile_ci(name)
        return pd.concat([rows, var])

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"

    def __str__(self) -> str:
        return printout(self)

    def __repr__(self) -> str:
        return printout(self)


# ------------------------------------------------------------------------------------------------
# fitting


def fit_frequentist(
    yi: np.ndarray,
    vi: np.ndarray,
    X: np.ndarray | pd.DataFrame | None = None,
    cluster: np.ndarray | None = None,
    method: str = "REML",
    X_names: list[str] | None = None,
    level: float = 0.95,
    *,
    struct: str = "nested",
    factors: tuple[str, str] | None = None,
) -> FrequentistFit:
    r"""Fit the (multilevel) random-effects meta-analysis model by REML or ML.

    Parameters
    ----------
    yi, vi : array_like
        Estimates and their known sampling variances (1-D, finite, ``vi > 0``).
    X : array_like or pandas.DataFrame, optional
        Design matrix ``(k, p)`` of full column rank; default an intercept column ``"intrcpt"``.
    cluster : array_like, optional
        Cluster label of every row; ``None`` fits the single-level model (``rma.uni``).
    method : {"REML", "ML"}
        Estimation method.
    X_names : list of str, optional
        Coefficient names (default: DataFrame columns, ``intrcpt`` or ``x0, x1, ...``).
    level : float
        Confidence level of the Wald and profile intervals.
    struct : {"nested", "CS"}
        Variance parameter space with clusters: both components :math:`\ge 0` (``nested``) or
        :math:`\tau^2 \ge 0` and :math:`\rho \ge -1/(n_{max} - 1)` (``CS``; the random-effects
        matrix of the largest cluster stays positive semidefinite, so rho may be negative).
        Profile intervals of rho in CS extend to -1 as long as V stays positive definite, as
        metafor's do.
    factors : tuple of (str, str), optional
        Names of the cluster and the estimate level for the printout, as metafor names its
        variance components (``("district", "school")`` prints ``sigma^2.1 ... district`` and
        ``sigma^2.2 ... district/school``). Default: the name of ``cluster`` when it is a named
        pandas Series (else ``"cluster"``) and ``"estimate"``.

    Notes
    -----
    Estimation maximises the profile of the (restricted) log-likelihood over rho, with tau2
    solved from its score equation (see ``_profile.fit_components``); a variance
    component on the boundary is estimated as exactly 0 (metafor, optimising log-variances,
    reports ~1e-10 there).

    Returns
    -------
    FrequentistFit
    """
    if not isinstance(method, str) or method.upper() not in ("REML", "ML"):
        raise ValueError(f"'method' must be 'REML' or 'ML'; got {method!r}.")
    if struct not in ("nested", "CS"):
        raise ValueError(f"'struct' must be 'nested' or 'CS'; got {struct!r}.")
    if struct == "CS" and cluster is None:
        raise ValueError("'struct' = 'CS' needs 'cluster'.")
    level, method = _check_level(level), method.upper()
    factors = _check_factors(factors, cluster)
    data, names = _profile.build_data(yi, vi, X, cluster, X_names)
    struct = struct if data.clustered else "uni"
    reml = method == "REML"
    est, ev = _profile.fit_components(data, reml, struct)
    tau2, rho = est["tau2"], est.get("rho")
    k, p = data.k, data.p

    z = _z(level)
    se = np.sqrt(np.diag(ev.vcov))
    zval = ev.beta / se
    coefficients = pd.DataFrame(
        {"estimate": ev.beta, "se": se, "z": zval, "p": 2 * scipy.stats.norm.sf(np.abs(zval)),
         "ci_lower": ev.beta - z * se, "ci_upper": ev.beta + z * se}, index=names,
    )  # fmt: skip

    n_parameters = p + (2 if data.clustered else 1)
    n_obs = k - p if reml else k
    if reml:
        deviance = -2.0 * ev.loglik
    else:  # metafor: ML deviance relative to the saturated model
        deviance = -2.0 * (ev.loglik + 0.5 * np.sum(np.log(2 * np.pi * data.v)))
    n_aicc = max(n_obs, n_parameters + 2)

    qe = _profile.evaluate(data, 0.0, 0.0, reml=False).rss
    qm, qm_df, qmp = _moderator_test(data.X, ev.beta, ev.vcov)
    typical_v = _profile.typical_variance(data)
    if data.clustered and np.max(data.cluster_sizes) == 1:
        # Any rho gives the same likelihood when every cluster has one estimate.
        warnings.warn(
            "Every cluster has a single estimate: the cluster and estimate levels cannot be "
            "told apart, so rho (and the split of tau2 into sigma2_cluster and sigma2_estimate) "
            "is not identified and is reported as NaN; tau2 is.",
            UserWarning,
            stacklevel=2,
        )
        rho = np.nan
    if data.clustered:
        share = rho if np.isfinite(rho) else (0.0 if tau2 == 0.0 else np.nan)
        sc, se_ = tau2 * share, tau2 * (1.0 - share)
        comps = {"sigma2_cluster": sc, "sigma2_estimate": se_}
    else:
        sc = se_ = None
        comps = {"tau2": tau2}
    return FrequentistFit(
        method=method, struct=struct, k=k, p=p,
        n_clusters=len(data.cluster_sizes) if data.clustered else None,
        coefficients=coefficients, vcov=pd.DataFrame(ev.vcov, index=names, columns=names),
        tau2=tau2, rho=rho, sigma2_cluster=sc, sigma2_estimate=se_,
        loglik=ev.loglik, deviance=deviance,
        AIC=-2 * ev.loglik + 2 * n_parameters,
        BIC=-2 * ev.loglik + n_parameters * np.log(n_obs),
        AICc=-2 * ev.loglik + 2 * n_parameters * n_aicc / (n_aicc - n_parameters - 1),
        n_parameters=n_parameters,
        QE=qe, QE_df=k - p, QEp=float(scipy.stats.chi2.sf(qe, k - p)),
        QM=qm, QM_df=qm_df, QMp=qmp,
        typical_v=typical_v, I2=100 * tau2 / (tau2 + typical_v),
        I2_components={n: 100 * v / (tau2 + typical_v) for n, v in comps.items()},
        level=level, data=data, factors=factors,
    )  # fmt: skip


@dataclass(frozen=True)
class LikelihoodRatioTest:
    r"""A likelihood-ratio test of two nested fits (:func:`~bambi_meta.lrt`).

    Attributes
    ----------
    LRT : float
        :math:`2[\ell_{full} - \ell_{reduced}]`.
    df : int
        Difference in the number of parameters.
    pval : float
        :math:`P(\chi^2_{df} > LRT)`.
    """

    LRT: float
    df: int
    pval: float

    def __getitem__(self, key: str):
        """``test["LRT"]``, ``test["df"]``, ``test["pval"]`` (the fields by name)."""
        return getattr(self, key)

    def __str__(self) -> str:
        return f"Likelihood-ratio test: LRT = {self.LRT:.4f}, df = {self.df}, p = {self.pval:.4g}"

    def _repr_html_(self) -> str:
        return f"<pre>{self}</pre>"


def lrt(fit_full: FrequentistFit, fit_reduced: FrequentistFit) -> LikelihoodRatioTest:
    r"""Likelihood-ratio test of two nested fits to the same data (like metafor's ``anova``).

    .. math::

        LRT = 2\,[\ell_{full} - \ell_{reduced}] \sim \chi^2_{df},\quad
        df = n_{par,full} - n_{par,reduced}.

    A restriction at the boundary (e.g. ``rho = 0``, i.e. a single-level reduced fit) makes the
    naive :math:`\chi^2` p-value conservative; it is reported as metafor does.

    Raises
    ------
    ValueError
        If the fits use different data, methods or clusters, are REML fits with different X,
        have a reduced design not spanned by the full one, or are not nested (``df <= 0``).
    """
    full, red = fit_full.data, fit_reduced.data
    if fit_full.method != fit_reduced.method:
        raise ValueError("'fit_full' and 'fit_reduced' must use the same method (REML or ML).")
    if not (np.array_equal(full.y, red.y) and np.array_equal(full.v, red.v)):
        raise ValueError("'fit_full' and 'fit_reduced' must be fitted to the same yi and vi.")
    df = fit_full.n_parameters - fit_reduced.n_parameters
    if df <= 0:
        raise ValueError(f"'fit_full' must have more parameters than 'fit_reduced' (df = {df}).")
    if fit_full.method == "REML":
        if full.X.shape != red.X.shape or not np.allclose(full.X, red.X):
            raise ValueError(
                "REML fits with different X are not comparable; refit both with method='ML'."
            )
    else:
        resid = red.X - full.X @ np.linalg.lstsq(full.X, red.X, rcond=None)[0]
        if np.max(np.abs(resid)) > 1e-8 * max(1.0, np.max(np.abs(red.X))):
            raise ValueError("The columns of the reduced X must lie in the span of the full X.")
    if red.clustered and (not full.clustered or not np.array_equal(full.codes, red.codes)):
        raise ValueError("'fit_reduced' has clusters that differ from those of 'fit_full'.")
    if fit_reduced.struct not in _NESTED_IN[fit_full.struct]:
        raise ValueError(f"A {fit_reduced.struct} fit is not nested in a {fit_full.struct} fit.")
    stat = max(0.0, 2.0 * (fit_full.loglik - fit_reduced.loglik))
    return LikelihoodRatioTest(stat, df, float(scipy.stats.chi2.sf(stat, df)))


# ------------------------------------------------------------------------------------------------
# helpers


def _z(level: float) -> float:
    return float(scipy.stats.norm.ppf(0.5 + level / 2.0))


def _check_level(level: float) -> float:
    return _validate.check_open_unit_interval(level, "level")


def _check_factors(factors: object, cluster: object) -> tuple[str, str]:
    """The names of the cluster and estimate levels (printing only)."""
    if factors is None:
        name = getattr(cluster, "name", None)
        return (name if isinstance(name, str) and name else "cluster", "estimate")
    if (
        not isinstance(factors, tuple | list)
        or len(factors) != 2
        or not all(isinstance(name, str) and name for name in factors)
    ):
        raise ValueError(
            f"'factors' must be two names (cluster, estimate level), e.g. ('district', 'school'); "
            f"got {factors!r}."
        )
    return (factors[0], factors[1])


def _moderator_test(
    X: np.ndarray, beta: np.ndarray, vcov: np.ndarray
) -> tuple[float | None, int | None, float | None]:
    """Wald test of all coefficients except an intercept column (metafor's default ``btt``)."""
    intercept = np.all(X == 1.0, axis=0)
    btt = np.flatnonzero(~intercept) if intercept.any() else np.arange(X.shape[1])
    if btt.size == 0:
        return None, None, None
    b = beta[btt]
    qm = float(b @ np.linalg.solve(vcov[np.ix_(btt, btt)], b))
    return qm, int(btt.size), float(scipy.stats.chi2.sf(qm, btt.size))


def fit_model(model, method: str = "REML", level: float = 0.95) -> FrequentistFit:
    """:meth:`bambi_meta.MetaModel.fit_frequentist`: REML/ML of a model's data and design."""
    if model.scale_formulas:
        raise NotImplementedError(
            "fit_frequentist() fits constant tau and rho; this model has the scale formula(s) "
            + ", ".join(f"'{name} ~ {rhs}'" for name, rhs in model.scale_formulas.items())
            + ". Fit the model without them, or use the Bayesian fit()."
        )
    design = fm.design_matrices(
        f"{model.meta_formula.response} ~ {model.meta_formula.fixed}", model.data
    )
    columns = design.common.as_dataframe()
    rows = model.meta_data()
    return fit_frequentist(
        rows.effect_sizes,
        rows.variances,
        columns.to_numpy(dtype=float),
        cluster=rows.cluster_labels,
        method=method,
        X_names=list(columns.columns),
        level=level,
        factors=(model.cluster or "cluster", model.meta_formula.estimate_id or "estimate"),
    )
