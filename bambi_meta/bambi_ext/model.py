"""``MetaModel``: a ``bmb.Model`` for (multilevel) meta-analysis with known sampling variances.

The constructor reads the formula (:mod:`~bambi_meta.bambi_ext.formula`), checks and reads the
data (:mod:`~bambi_meta.bambi_ext.columns`), centres continuous moderators
(:mod:`~bambi_meta.bambi_ext.centring`), sets the measure's default priors
(:mod:`~bambi_meta.bambi_ext.priors`) and hands Bambi the meta-analytic family
(:mod:`~bambi_meta.bambi_ext.family`). Fitting, prediction and the frequentist companion are
delegated to :mod:`bambi_meta.engine` and :mod:`bambi_meta.results`.
"""

import bambi as bmb
import numpy as np
import pandas as pd
import xarray as xr

from bambi_meta import _upstream, _validate
from bambi_meta._datatree import as_dataset, posterior_of
from bambi_meta.bambi_ext import printout
from bambi_meta.bambi_ext.centring import centre_formulas, to_raw_scale, to_sampled_scale
from bambi_meta.bambi_ext.columns import (
    MetaData,
    match_cluster_labels,
    prepare_data,
    read_meta_data,
    read_training_rows,
    sample_size_column,
)
from bambi_meta.bambi_ext.family import MetaAnalyticFamily
from bambi_meta.bambi_ext.formula import (
    RESPONSE_FUNCTION,
    MetaFormula,
    formula_variables,
    parse_meta_formula,
    parse_scale_formulas,
    uncentred_name,
)
from bambi_meta.bambi_ext.priors import (
    default_priors,
    default_term_priors,
    resolve_measure,
    unit_information_sd,
    warn_about_prior_data_conflict,
)
from bambi_meta.engine import fit as engine_fit
from bambi_meta.engine import predictive

FORMULA_NAMESPACE = {"sqrt": np.sqrt, "log": np.log, "exp": np.exp, "np": np}


class MetaModel(bmb.Model):
    r"""Bayesian meta-analysis with Bambi: known sampling variances, (tau, rho) heterogeneity.

    Row i (an estimate) in cluster j with known sampling variance :math:`v_i`:

    .. math::

        y_i = X_i\beta + u_j + e_i + \varepsilon_i,\quad
        u_j \sim N(0, \tau^2\rho),\quad e_i \sim N(0, \tau^2(1-\rho)),\quad
        \varepsilon_i \sim N(0, v_i).

    The cluster and estimate effects are integrated out analytically
    (:mod:`bambi_meta.engine.likelihood`): MCMC only sees the moderators, ``tau`` and ``rho``,
    and the exact engine (``fit()``'s default where it applies) integrates the coefficients
    too, leaving a 1-2 dimensional integral over ``tau`` and ``rho``.

    Parameters
    ----------
    formula : str or bambi.Formula
        ``"yi | se(vi) ~ 1 + moderators + (1|cluster)"``. **vi are sampling VARIANCES** (as in
        metafor). Standard errors need ``se(sei, sd=True)``; note that brms's ``se()`` takes
        standard errors, so a formula copied from brms must add ``sd=True``. ``(1|cluster)`` (or
        ``(1|cluster/estimate)``) adds the cluster level; without it the model is the ordinary
        random-effects model. A ``bmb.Formula`` may add ``"tau ~ z"`` (log link: a location-scale
        model with per-row tau_i) and, with a cluster level, ``"rho ~ z"`` (logit link).
        Continuous moderators are centred before sampling (the intercept then sits at their
        means, where its prior acts); ``summary()`` reports coefficients on the raw scale.
    data : pandas.DataFrame
        One row per estimate.
    measure : str
        Effect-size measure, which sets the default priors: one of ``SMD``, ``ZCOR``, ``OR``,
        ``RR``, ``HR``, ``IRR``, ``RD``, ``GEN`` (see ``bambi_meta.bambi_ext.priors``), or any
        measure of :func:`bambi_meta.escalc` (``PETO``, ``SMDH``, ...; kept as
        ``model.effect_measure`` for the figures' axes). Read from the data when ``escalc``
        computed the effect sizes.
    priors : dict, optional
        Bambi priors overriding the defaults, e.g. ``{"tau": bmb.Prior("HalfCauchy", beta=0.5)}``;
        ``{"tau": 0}`` gives the common-effect model. Moderators are named as in the formula
        (``{"year": bmb.Prior(...)}``); the terms of a scale formula are given per parameter,
        ``{"tau": {"Intercept": ..., "z": ...}}``. Priors act on the centred moderators.
    sample_sizes : str, optional
        Column of total sample sizes (sets the unit-information SD of RD and GEN).
    uisd : float, optional
        Explicit unit-information SD (overrides the measure's).
    dropna : bool, default False
        Drop rows with missing values in the variables the model uses, with a warning that lists
        them. By default missing values are an error.
    **kwargs
        Passed to ``bambi.Model`` (e.g. ``categorical``, ``noncentered``).

    Examples
    --------
    >>> import bambi_meta as bmm
    >>> dat = bmm.load_dataset("dat.konstantopoulos2011")
    >>> model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", dat, measure="SMD")
    >>> sorted(model.family.likelihood.params)
    ['mu', 'rho', 'tau']
    """

    def __init__(
        self,
        formula: str | bmb.Formula,
        data: pd.DataFrame,
        measure: str | None = None,
        priors: dict | None = None,
        *,
        sample_sizes: str | None = None,
        uisd: float | None = None,
        dropna: bool = False,
        **kwargs,
    ):
        main, additionals = _split_formula(formula)
        self.meta_formula: MetaFormula = parse_meta_formula(main)
        self.scale_formulas: dict[str, str] = parse_scale_formulas(
            additionals, self.meta_formula.cluster is not None
        )
        data = _validate.require_dataframe(data)
        self.measure, self.effect_measure, sample_sizes = resolve_measure(
            data, measure, sample_sizes, uisd, self.meta_formula.response
        )
        data = prepare_data(data, self.meta_formula, self.scale_formulas, dropna)
        self.formula_namespace = dict(FORMULA_NAMESPACE)
        self.training_rows, self.cluster_levels = read_training_rows(
            data, self.meta_formula, self.formula_namespace
        )
        sizes = None if sample_sizes is None else sample_size_column(data, sample_sizes)
        self.uisd = unit_information_sd(self.measure, self.training_rows.variances, sizes, uisd)
        if uisd is None:
            warn_about_prior_data_conflict(
                self.training_rows, self.measure, self.uisd, priors or {}
            )
        #: The nutpie-ready compiled model (``bambi_meta.engine.compile.CompiledModel``), made by
        #: the first ``fit()`` or ``refitter()`` and shared by them.
        self.compiled = None

        family = MetaAnalyticFamily(None if self.cluster is None else len(self.cluster_levels))
        family.set_default_priors(default_priors(self.uisd, {}, False, family.has_clusters))
        formulas, self.aliases = centre_formulas(
            {"mu": self.meta_formula.fixed, **self.scale_formulas}, data, self.formula_namespace
        )
        self.formula_namespace[RESPONSE_FUNCTION] = self._response_columns
        user_priors = self._rename_priors(priors or {})
        super().__init__(
            bmb.Formula(
                f"{self.meta_formula.response_call()} ~ {formulas['mu']}",
                *(f"{name} ~ {formulas[name]}" for name in self.scale_formulas),
            ),
            data,
            family=family,
            priors=user_priors,
            auto_scale=False,
            center_predictors=False,
            extra_namespace=self.formula_namespace,
            **kwargs,
        )
        self._check_designs_have_full_rank()
        defaults = default_term_priors(self, user_priors)
        if defaults:
            super().set_priors(priors=defaults)
        self.set_alias({self.response_term.name: self.meta_formula.response})
        names = self.aliases.for_bambi(len(self.conditional_parameters))
        if names:
            self.set_alias(names)

    # ----------------------------------------------------------------------------------------
    # Fitting and what Bambi users call
    # ----------------------------------------------------------------------------------------
    def fit(
        self,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        inference_method: str | None = None,
        **kwargs,
    ):
        """Fit the model; returns an xarray DataTree like ``bambi.Model.fit``.

        By default (``inference_method=None``) a model whose posterior is a 1-2 dimensional
        integral (Normal or flat priors on the coefficients, proper priors on tau and rho, no
        distributional formula for tau or rho) gets the exact engine: independent draws from
        the exact posterior, computed on a quadrature grid in milliseconds
        (``bambi_meta.engine.exact_model``). Other models get nutpie's NUTS on the log-density
        compiled once per model by PyTensor (``bambi_meta.engine.compile``).
        ``print(model)`` says which engine ``fit()`` will use.

        Parameters
        ----------
        draws, tune, chains : int
            Draws kept per chain, tuning steps per chain and chains (Bambi's defaults). The exact
            engine returns ``chains x draws`` independent draws and has no tuning: ``tune`` is
            checked and ignored.
        inference_method : str, optional
            ``None`` (exact where it applies, else nutpie), ``"exact"`` (an error naming the
            reason when the model does not qualify), ``"nutpie"``, ``"pymc"`` or ``"vi"``
            (Bambi's own methods, unchanged).
        **kwargs
            Bambi's ``fit`` arguments: ``random_seed`` (an int, a NumPy Generator or
            SeedSequence; the same seed gives the same numbers in every process), ``cores``,
            ``progressbar``, ``omit_offsets``, ``include_response_params``, ``nuts`` (its
            ``target_accept`` and ``max_treedepth``) and ``idata_kwargs``. Sampler settings are
            checked and ignored by the exact engine; PyMC-only options (``init``,
            ``discard_tuned_samples``, ...) raise an error that points to
            ``inference_method="pymc"``; anything else is passed to ``nutpie.sample``. With
            ``idata_kwargs={"log_likelihood": True}`` the pointwise log-likelihood is this
            family's (per cluster when the model has clusters), not PyMC's single joint value.
        """
        return engine_fit.fit(
            self,
            super().fit,
            draws=draws,
            tune=tune,
            chains=chains,
            inference_method=inference_method,
            **kwargs,
        )

    def predict(
        self,
        idata,
        kind: str = "response_params",
        data: pd.DataFrame | None = None,
        inplace: bool = True,
        include_group_specific: bool = True,
        sample_new_groups=None,
        random_seed=None,
    ):
        """Bambi's ``predict``, where a known cluster's mean includes its cluster effect.

        ``kind="response_params"`` adds ``mu`` to the posterior: for a row of a cluster the
        model was fitted to, the pooled effect plus that cluster's effect u_j (drawn, per
        posterior draw, from its exact conditional posterior, as a latent-effects model would
        hold it), i.e. the mean of a new estimate of that cluster; for a row of a new cluster
        (or a model without clusters) the pooled effect X beta. ``include_group_specific=False``
        gives the pooled effect on every row. ``kind="response"`` also draws new effect sizes
        (``posterior_predictive``), which needs their sampling variances. For each estimate's
        own shrunken true effect see :func:`bambi_meta.true_effects`; for the cluster effects
        :func:`bambi_meta.cluster_effects`.

        Parameters
        ----------
        idata : xarray.DataTree
            What ``model.fit()`` returned.
        kind : {"response_params", "response"}
            As in Bambi.
        data : pandas.DataFrame, optional
            New rows: moderator values, optionally the cluster column (rows without it are new
            clusters) and, for ``kind="response"``, the sampling uncertainty. The fitted rows by
            default.
        inplace, include_group_specific, sample_new_groups, random_seed
            As in Bambi; ``random_seed`` also seeds the draws of the cluster effects.

        Returns
        -------
        xarray.DataTree or None
        """
        return predictive.predict(
            self,
            super().predict,
            idata,
            kind=kind,
            data=data,
            inplace=inplace,
            include_group_specific=include_group_specific,
            sample_new_groups=sample_new_groups,
            random_seed=random_seed,
        )

    def prior_predictive(
        self, draws: int = 500, var_names=None, omit_offsets: bool = True, random_seed=None
    ):
        """Bambi's prior predictive, with the coefficients on the raw scale (as the posterior).

        Builds the PyMC model first if no MCMC fit has (the exact engine does not need it).
        """
        draws = _validate.check_integer(draws, "draws", 1)
        if not self.built:
            self.build()
        sampler = _upstream.without_predictive_noise(super().prior_predictive)
        idata = _upstream.with_compile_cache_fallback(sampler)(
            draws=draws,
            var_names=var_names,
            omit_offsets=omit_offsets,
            random_seed=_validate.check_random_seed(random_seed),
        )
        if "prior" in idata.children:
            idata["prior"] = to_raw_scale(self, idata["prior"])
        return idata

    def compute_log_likelihood(
        self, idata, data=None, inplace: bool = True, unit: str | None = None
    ):
        """Pointwise log-likelihood for LOO: per cluster, per estimate or per group of a column.

        Parameters
        ----------
        idata : xarray.DataTree
            What ``model.fit()`` returned.
        data : pandas.DataFrame, optional
            Rows to evaluate (with ``yi``, ``vi`` and the cluster column); the fitted rows by
            default.
        inplace : bool, default True
            Add the ``log_likelihood`` group to ``idata``; otherwise return a copy with it.
        unit : str, optional
            ``"cluster"`` (the default with clusters): the joint density of each cluster's rows,
            for leave-one-cluster-out. ``"estimate"`` (the default without clusters): each row's
            density given the rest of its cluster, for leave-one-estimate-out. The name of a
            column of the data: the density of each group of rows with the same value given
            all other rows, e.g. ``unit="district"`` on a model without clusters, so that
            ``az.compare`` can rank it against the three-level model on the same units.

        Returns
        -------
        xarray.DataTree or None
        """
        if not inplace:
            idata = idata.copy()
        posterior = posterior_of(idata)
        values = self.family.log_likelihood(self, posterior, data, unit=unit)
        idata["log_likelihood"] = xr.Dataset({self.meta_formula.response: values})
        return None if inplace else idata

    def graph(self, formatting: str = "plain", name=None, figsize=None, dpi=300, fmt="png"):
        """Bambi's graph of the model (built first if no MCMC fit has built it)."""
        if not self.built:
            self.build()
        return super().graph(formatting=formatting, name=name, figsize=figsize, dpi=dpi, fmt=fmt)

    def set_priors(self, priors=None, common=None, group_specific=None):
        """Bambi's ``set_priors``, with the names the constructor accepts (``year``, ``mu``).

        Parameters
        ----------
        priors : dict, optional
            Priors by parameter or term name, as in :class:`MetaModel` (e.g. ``{"year": ...}``).
        common, group_specific : bambi.Prior, optional
            As in Bambi.
        """
        if priors is not None:
            priors = self._rename_priors(priors)
        return super().set_priors(priors=priors, common=common, group_specific=group_specific)

    def compiled_sampler(self):
        """The model compiled for nutpie (``bambi_meta.engine.compile.CompiledModel``), made once.

        ``fit()`` and :meth:`refitter` share it; rebuilding the model compiles it again.
        """
        return engine_fit.compiled_model(self)

    def refitter(self, sampler: str = "nutpie"):
        """Compile this model once for refits on new data (see ``bambi_meta.engine.refit``).

        Simulation studies, leave-one-cluster-out and parametric bootstraps refit the same model
        many times. The returned :class:`~bambi_meta.engine.refit.Refitter` swaps effect sizes,
        variances, cluster labels or a row subset (``keep=``) into the compiled log-density
        instead of rebuilding and recompiling. k, the moderator design and the priors stay fixed.

        Parameters
        ----------
        sampler : {"nutpie", "nutpie-numba", "pymc"}, default "nutpie"
            ``"nutpie"`` (compiled in about 1 s and shared with ``fit()``), ``"nutpie-numba"``
            (a slow compile, then the fastest refits of small models) or PyMC's NUTS.

        Returns
        -------
        bambi_meta.engine.refit.Refitter
        """
        from bambi_meta.engine.refit import Refitter

        return Refitter(self, sampler)

    def fit_frequentist(self, method: str = "REML", level: float = 0.95):
        """REML or ML fit of the same model (metafor's ``rma.mv``/``rma.uni``), by closed form.

        Moderators enter on their raw scale (no centring), so coefficients read as in metafor.

        Parameters
        ----------
        method : {"REML", "ML"}
            Estimation method.
        level : float, default 0.95
            Confidence level of Wald and profile intervals.

        Returns
        -------
        bambi_meta.results.frequentist.FrequentistFit
        """
        from bambi_meta.results.frequentist import fit_model

        return fit_model(self, method, level)

    # ----------------------------------------------------------------------------------------
    # What the model is
    # ----------------------------------------------------------------------------------------
    @property
    def cluster(self) -> str | None:
        """Name of the cluster column, or ``None`` without a cluster level."""
        return self.meta_formula.cluster

    @property
    def n_estimates(self) -> int:
        """Number of estimates (rows), k."""
        return len(self.training_rows.variances)

    @property
    def moderators(self) -> dict[str, list[str]]:
        """Data columns used as moderators, per modelled parameter (``mu``, ``tau``, ``rho``)."""
        formulas = {"mu": self.meta_formula.fixed, **self.scale_formulas}
        return {
            name: sorted(formula_variables(rhs) & set(self.data.columns))
            for name, rhs in formulas.items()
        }

    @property
    def header(self) -> str:
        """One line naming the model and its size, e.g. for the head of a summary table."""
        return printout.header(self)

    @property
    def description(self) -> str:
        """Which meta-analytic model this is, in the field's words."""
        return printout.description(self)

    def __str__(self) -> str:
        return printout.meta_block(self) + "\n\n" + super().__str__()

    # ----------------------------------------------------------------------------------------
    # Data and draws used by the family, the effects and the summaries
    # ----------------------------------------------------------------------------------------
    def meta_data(
        self,
        data: pd.DataFrame | None = None,
        require_response: bool = True,
        require_variances: bool = True,
    ) -> MetaData:
        """Effect sizes, sampling variances and clusters of the fitted rows or of new ``data``."""
        if data is None:
            return self.training_rows
        return read_meta_data(
            data,
            self.meta_formula,
            self.cluster_levels,
            self.formula_namespace,
            require_response,
            data,
            require_variances,
        )

    def parameter_draws(
        self,
        posterior: xr.Dataset,
        rows: MetaData | None = None,
        parameters: tuple[str, ...] | None = None,
    ) -> dict:
        """Posterior draws of ``mu``, ``tau`` (and ``rho``) for each row, as NumPy arrays.

        Each array has shape (chain, draw, k) or (chain, draw, 1) when constant over rows.
        ``parameters`` restricts the result (e.g. ``("tau", "rho")``, for which new rows need
        only the scale moderators); all likelihood parameters by default.
        """
        frame = None if rows is None else rows.frame
        posterior = as_dataset(posterior)
        idata = xr.DataTree.from_dict({"posterior": to_sampled_scale(self, posterior)})
        draws = {}
        for name in parameters or self.family.likelihood.params:
            component = self.parameters[name]
            if name in self.conditional_parameters:
                values = component.predict(idata, frame).transpose("chain", "draw", "__obs__")
                draws[name] = values.to_numpy()
            elif isinstance(component.prior, (int, float)):
                draws[name] = np.full((1, 1, 1), float(component.prior))
            else:
                draws[name] = posterior[component.alias or name].to_numpy()[..., np.newaxis]
        return draws

    # ----------------------------------------------------------------------------------------
    # Construction steps
    # ----------------------------------------------------------------------------------------
    def _rename_priors(self, priors: dict) -> dict:
        return self.aliases.rename_priors(
            priors, self.scale_formulas, self.meta_formula.has_intercept
        )

    def _response_columns(self, effect_sizes, uncertainty, sd=False, cluster=None):
        """The response call: (effect size, sampling variance, cluster code) per row."""
        uncertainty = np.asarray(uncertainty, dtype=float)
        variances = uncertainty**2 if sd else uncertainty
        codes = np.zeros(len(variances))
        if cluster is not None:
            codes = match_cluster_labels(np.asarray(cluster), self.cluster_levels)[1]
        return np.column_stack([np.asarray(effect_sizes, dtype=float), variances, codes])

    def _check_designs_have_full_rank(self) -> None:
        """Every coefficient of the location and scale formulas must be identified by the data."""
        formulas = {"mu": self.meta_formula.fixed, **self.scale_formulas}
        for name, rhs in formulas.items():
            common = self.parameters[name].design.common
            if common is None:
                continue
            columns = [uncentred_name(column) for column in common.as_dataframe().columns]
            what = f"{name} ~ {rhs}" if name != "mu" else f"{self.meta_formula.response} ~ {rhs}"
            _validate.check_full_rank(common.design_matrix, columns, what)


def _split_formula(formula: str | bmb.Formula) -> tuple[str, tuple[str, ...]]:
    if isinstance(formula, bmb.Formula):
        return formula.main, tuple(formula.additionals)
    if isinstance(formula, str):
        return formula, ()
    raise TypeError(f"'formula' must be a string or a bambi.Formula; got {type(formula).__name__}.")
