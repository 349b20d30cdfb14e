"""``MetaModel``: a ``bmb.Model`` for (multilevel) meta-analysis with known sampling variances."""

import warnings
from functools import partial

import bambi as bmb
import formulae as fm
import numpy as np
import pandas as pd
import xarray as xr

from bambi_meta import _upstream, _validate
from bambi_meta._datatree import as_dataset
from bambi_meta.bambi_ext import printout
from bambi_meta.bambi_ext.columns import MetaData, check_new_data, read_meta_data
from bambi_meta.bambi_ext.family import MetaAnalyticFamily
from bambi_meta.bambi_ext.formula import (
    RESPONSE_FUNCTION,
    SCALE_PARAMETERS,
    MetaFormula,
    center_continuous_moderators,
    expression_variables,
    formula_has_intercept,
    formula_variables,
    is_identifier,
    parse_meta_formula,
    parse_scale_formulas,
    uncentred_name,
)
from bambi_meta.bambi_ext.priors import (
    MEASURES,
    coefficient_scale,
    default_priors,
    default_scale_priors,
    unit_information_sd,
    warn_about_prior_data_conflict,
)
from bambi_meta.effect_sizes.escalc import ESCALC_MEASURES, model_arguments, prior_measure
from bambi_meta.engine import predictive, sampling
from bambi_meta.results.coefficients import to_raw_scale, to_sampled_scale
from bambi_meta.results.frequentist import fit_frequentist

FORMULA_NAMESPACE = {"sqrt": np.sqrt, "log": np.log, "exp": np.exp, "np": np}
# With PyMC's NUTS (``inference_method="pymc"``) chains run one after the other below this many
# estimates: starting and compiling worker processes takes longer than sampling small models.
# The default sampler runs chains one after the other at every k: on the 2-core test machine
# parallel chain threads were slower at k = 56, 2,000, 20,000 and 200,000 (benchmarks/README.md).
SEQUENTIAL_CHAINS_BELOW = 1000


class MetaModel(bmb.Model):
    r"""Bayesian meta-analysis with Bambi: known sampling variances, (tau, rho) heterogeneity.

    Row i (an estimate) in cluster j with known sampling variance :math:`v_i`:

    .. math::

        y_i = X_i\beta + u_j + e_i + \varepsilon_i,\quad
        u_j \sim N(0, \tau^2\rho),\quad e_i \sim N(0, \tau^2(1-\rho)),\quad
        \varepsilon_i \sim N(0, v_i).

    The cluster and estimate effects are integrated out analytically (``likelihood.py``), so the
    sampler only sees the moderators, ``tau`` and ``rho``.

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
        ``RR``, ``HR``, ``IRR``, ``RD``, ``GEN`` (see ``bambi_meta.bambi_ext.priors``).
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
        # A data frame made by bmm.escalc records its measure (and sample-size column).
        recorded = model_arguments(data, measure, effect_sizes=self.meta_formula.response)
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
        self.measure = _validate.check_choice(measure, "measure", MEASURES)
        data = self._drop_or_reject_missing(data, additionals, dropna)
        data = _with_numeric_response_columns(data, self.meta_formula)
        moderators = self._moderator_variables(data)
        _validate.check_reserved_names(moderators)
        _validate.check_moderators_vary(data, moderators)
        _validate.check_number_of_estimates(len(data))

        self.formula_namespace = dict(FORMULA_NAMESPACE)
        self._training = self._read_training_rows(data)
        sizes = None if sample_sizes is None else _sample_sizes(data, sample_sizes)
        self.uisd = unit_information_sd(self.measure, self._training.variances, sizes, uisd)
        if uisd is None:
            warn_about_prior_data_conflict(self._training, self.measure, self.uisd, priors or {})

        family = MetaAnalyticFamily(None if self.cluster is None else len(self.cluster_levels))
        family.set_default_priors(default_priors(self.uisd, {}, False, family.has_clusters))
        formulas = self._centred_moderators(data)
        self.formula_namespace[RESPONSE_FUNCTION] = self._response_columns
        user_priors = self._rename_user_priors(priors or {})
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
        self._set_default_priors(user_priors)
        self.set_alias({self._response_component.response.name: self.meta_formula.response})
        self._set_moderator_aliases()

    def fit(
        self,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        inference_method: str | None = None,
        **kwargs,
    ):
        """Sample the posterior; returns an xarray DataTree like ``bambi.Model.fit``.

        By default (``inference_method=None`` or ``"nutpie"``) nutpie's NUTS runs on the log-density
        compiled once per model by PyTensor (``bambi_meta.engine.sampling``): about 1 s to compile
        (cached on disk) instead of nutpie's own 11-14 s, and several times PyMC's sampling speed.
        Any other ``inference_method`` (``"pymc"``, ``"vi"``, ...) goes to Bambi unchanged. Chains
        run one after the other (``cores=1``) unless ``cores``
        is given, with PyMC's NUTS only below ``SEQUENTIAL_CHAINS_BELOW`` estimates.

        Parameters
        ----------
        draws, tune, chains : int
            Draws kept and tuning steps per chain (Bambi's defaults), and 4 chains.
        inference_method : str, optional
            ``None``/``"nutpie"`` (default sampler) or a Bambi inference method.
        **kwargs
            Bambi's ``fit`` arguments. With the default sampler: ``random_seed``, ``cores``,
            ``progressbar``, ``omit_offsets``, ``include_response_params``, ``nuts`` (its
            ``target_accept`` and ``max_treedepth``) and ``idata_kwargs``; PyMC-only options
            (``init``, ``discard_tuned_samples``, ...) raise an error that points to
            ``inference_method="pymc"``; anything else is passed to ``nutpie.sample``. With
            ``idata_kwargs={"log_likelihood": True}`` the pointwise log-likelihood is this
            family's (per cluster when the model has clusters), not PyMC's single joint value.
        """
        inference_method = sampling.check_fit_arguments(
            inference_method, draws=draws, tune=tune, chains=chains, options=kwargs
        )
        default_sampler = inference_method == "nutpie"
        if default_sampler or self.n_estimates < SEQUENTIAL_CHAINS_BELOW:
            kwargs.setdefault("cores", 1)
        idata_kwargs = dict(kwargs.pop("idata_kwargs", None) or {})
        wants_log_likelihood = idata_kwargs.pop("log_likelihood", False)
        if default_sampler:
            if idata_kwargs:
                raise ValueError(
                    f"idata_kwargs {sorted(idata_kwargs)} are PyMC's; the default sampler "
                    "takes only log_likelihood. Use inference_method='pymc' for the others."
                )
            idata = sampling.fit(self, draws=draws, tune=tune, chains=chains, **kwargs)
        else:
            if idata_kwargs:
                kwargs["idata_kwargs"] = idata_kwargs
            bambi_fit = _upstream.with_compile_cache_fallback(super().fit)
            idata = bambi_fit(
                draws=draws, tune=tune, chains=chains, inference_method=inference_method, **kwargs
            )
        if not isinstance(idata, xr.DataTree):  # e.g. the approximation of inference_method="vi"
            return idata
        idata["posterior"] = to_raw_scale(self, idata["posterior"])
        if wants_log_likelihood:
            self.compute_log_likelihood(idata)
        return idata

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
        if data is not None:
            data = check_new_data(self, data, "data", self.conditional_parameters)
        rows = self.meta_data(data, require_response=False, require_variances=False)
        sampled = idata.copy()
        sampled["posterior"] = to_sampled_scale(self, idata["posterior"])
        predicted = super().predict(
            sampled,
            kind=kind,
            data=data,
            inplace=False,
            include_group_specific=include_group_specific,
            sample_new_groups=sample_new_groups,
            random_seed=random_seed,
        )
        posterior = as_dataset(idata["posterior"])
        new_variables = {
            name: values
            for name, values in as_dataset(predicted["posterior"]).data_vars.items()
            if name not in posterior
        }
        if include_group_specific and self.family.has_clusters:
            rng = np.random.default_rng(random_seed)
            shift = predictive.known_cluster_shift(self, posterior, rows, rng)
            new_variables["mu"] = new_variables["mu"] + xr.DataArray(
                shift, dims=("chain", "draw", "__obs__")
            ).transpose(*new_variables["mu"].dims)
        target = idata if inplace else idata.copy()
        target["posterior"] = posterior.assign(new_variables)
        if "posterior_predictive" in predicted.children:
            target["posterior_predictive"] = predicted["posterior_predictive"]
        return None if inplace else target

    def prior_predictive(
        self, draws: int = 500, var_names=None, omit_offsets: bool = True, random_seed=None
    ):
        """Bambi's prior predictive, with the coefficients on the raw scale (as the posterior)."""
        draws = _validate.check_integer(draws, "draws", 1)
        idata = _upstream.with_compile_cache_fallback(super().prior_predictive)(
            draws=draws,
            var_names=var_names,
            omit_offsets=omit_offsets,
            random_seed=_validate.check_random_seed(random_seed),
        )
        if "prior" in idata.children:
            idata["prior"] = to_raw_scale(self, idata["prior"])
        return idata

    def compiled_sampler(self):
        """The model compiled for nutpie (``bambi_meta.engine.sampling.CompiledModel``), made once.

        ``fit()`` and :meth:`refitter` share it; rebuilding the model compiles it again.
        """
        return sampling.compiled_model(self)

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
            (11-14 s to compile, then the fastest refits of small models) or PyMC's NUTS.

        Returns
        -------
        bambi_meta.engine.refit.Refitter
        """
        from bambi_meta.engine.refit import Refitter

        return Refitter(self, sampler)

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
        unit = self._check_log_likelihood_unit(unit, data)
        if not inplace:
            idata = idata.copy()
        posterior = as_dataset(idata["posterior"])
        values = self.family.log_likelihood(self, posterior, data, unit=unit)
        idata["log_likelihood"] = xr.Dataset({self.meta_formula.response: values})
        return None if inplace else idata

    def _check_log_likelihood_unit(self, unit, data) -> str:
        if unit is None:
            return self.family.log_likelihood_unit
        columns = (self.data if data is None else data).columns
        if unit == "cluster" and self.cluster is None:
            raise ValueError(
                "unit='cluster': this model has no cluster level. Use unit='estimate', or the "
                "name of a column that groups the rows (e.g. the cluster column of the "
                "three-level model you compare it with); columns: "
                f"{', '.join(map(str, columns))}."
            )
        if unit not in ("cluster", "estimate") and unit not in columns:
            raise ValueError(
                f"'unit' must be 'cluster', 'estimate' or a column of the data; got {unit!r}. "
                f"Columns: {', '.join(map(str, columns))}."
            )
        return unit

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
        if self.scale_formulas:
            raise NotImplementedError(
                "fit_frequentist() fits constant tau and rho; this model has the scale formula(s) "
                + ", ".join(f"'{name} ~ {rhs}'" for name, rhs in self.scale_formulas.items())
                + ". Fit the model without them, or use the Bayesian fit()."
            )
        design = fm.design_matrices(
            f"{self.meta_formula.response} ~ {self.meta_formula.fixed}", self.data
        )
        columns = design.common.as_dataframe()
        rows = self.meta_data()
        return fit_frequentist(
            rows.effect_sizes,
            rows.variances,
            columns.to_numpy(dtype=float),
            cluster=rows.cluster_labels,
            method=method,
            X_names=list(columns.columns),
            level=level,
        )

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
        return len(self._training.variances)

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
            return self._training
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
    def _read_training_rows(self, data: pd.DataFrame) -> MetaData:
        form = self.meta_formula
        rows = read_meta_data(data, form, None, self.formula_namespace, True)
        self.cluster_levels = None
        if form.cluster is not None:
            labels = pd.Series(rows.cluster_labels)
            _validate.check_cluster_labels(labels, form.cluster)
            if form.estimate_id is not None:
                _validate.require_columns(data, [form.estimate_id], "estimate id")
                pairs = labels.astype(str) + ":" + data[form.estimate_id].astype(str).to_numpy()
                _validate.check_unique_within(pairs, form.cluster, form.estimate_id)
            self.cluster_levels = np.unique(rows.cluster_labels)
            if len(self.cluster_levels) == len(labels):
                warnings.warn(
                    f"Every cluster of '{form.cluster}' has a single estimate, so the cluster and "
                    "estimate levels cannot be told apart: rho is not identified (its posterior "
                    f"is its prior, and REML reports no rho). Drop '(1|{form.cluster})' for the "
                    "random-effects model, which has the same tau.",
                    UserWarning,
                    stacklevel=4,
                )
        return read_meta_data(data, form, self.cluster_levels, self.formula_namespace, True)

    def _response_columns(self, effect_sizes, uncertainty, sd=False, cluster=None):
        """The response call: (effect size, sampling variance, cluster code) per row."""
        uncertainty = np.asarray(uncertainty, dtype=float)
        variances = uncertainty**2 if sd else uncertainty
        codes = np.zeros(len(variances))
        if cluster is not None:
            codes = pd.Categorical(np.asarray(cluster), categories=self.cluster_levels).codes
        return np.column_stack([np.asarray(effect_sizes, dtype=float), variances, codes])

    def _centred_moderators(self, data: pd.DataFrame) -> dict[str, str]:
        """Centre continuous moderators (so each intercept prior acts at their means).

        Returns the right-hand side Bambi gets for ``mu`` and for every scale formula, and sets
        ``_moderator_aliases`` (location terms) and ``_scale_aliases`` (per scale parameter),
        which map centred term names back to what the user wrote.
        """
        formulas = {"mu": self.meta_formula.fixed, **self.scale_formulas}
        aliases = {}
        for name, rhs in formulas.items():
            if formula_has_intercept(rhs):
                formulas[name], aliases[name] = center_continuous_moderators(
                    rhs, partial(is_continuous_moderator, data, self.formula_namespace)
                )
            else:
                aliases[name] = {}
        self._moderator_aliases: dict[str, str] = aliases.pop("mu")
        self._scale_aliases: dict[str, dict[str, str]] = aliases
        return formulas

    def _set_moderator_aliases(self) -> None:
        """Name centred terms as the user wrote them (``year``, ``tau_z``) in the posterior."""
        if len(self.conditional_parameters) == 1:
            if self._moderator_aliases:
                self.set_alias(self._moderator_aliases)
            return
        # With several distributional parameters Bambi takes aliases per parameter.
        aliases = {
            name: {term: f"{name}_{alias}" for term, alias in terms.items()}
            for name, terms in self._scale_aliases.items()
            if terms
        }
        if self._moderator_aliases:
            aliases["mu"] = self._moderator_aliases
        if aliases:
            self.set_alias(aliases)

    def _rename_user_priors(self, priors: dict) -> dict:
        """Let users name moderators as they wrote them (``year``, not ``center(year)``)."""
        if not isinstance(priors, dict):
            raise TypeError(
                f"'priors' must be a dict of Bambi priors; got {type(priors).__name__}."
            )
        by_user_name = {alias: term for term, alias in self._moderator_aliases.items()}
        renamed = {}
        for name, prior in priors.items():
            if name in self.scale_formulas:
                renamed[name] = self._rename_scale_priors(name, prior)
                continue
            _validate.check_prior(name, prior)
            if name == "mu" and not isinstance(prior, dict):
                # ``mu`` is what summary() calls the pooled effect of an intercept-only model.
                if not self.meta_formula.has_intercept:
                    raise ValueError(
                        "priors={'mu': ...}: 'mu' is the intercept (pooled effect), and this "
                        "model has none; give priors per moderator, e.g. {'year': bmb.Prior(...)}."
                    )
                name = "Intercept"
            renamed[by_user_name.get(name, name)] = prior
        return renamed

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
            priors = self._rename_user_priors(priors)
        return super().set_priors(priors=priors, common=common, group_specific=group_specific)

    def _rename_scale_priors(self, parameter: str, priors: object) -> dict:
        """Priors of a scale formula's terms: ``{"Intercept": ..., "z": ...}``."""
        rhs = self.scale_formulas[parameter]
        if not isinstance(priors, dict):
            raise TypeError(
                f"'{parameter}' is modelled by the scale formula '{parameter} ~ {rhs}', so its "
                f"priors are given per term, e.g. priors={{'{parameter}': {{'Intercept': "
                f"bmb.Prior(...), ...}}}} (the intercept on the {SCALE_PARAMETERS[parameter]} "
                f"scale); got {priors!r}. To hold {parameter} at a value, drop the scale formula."
            )
        by_user_name = {alias: term for term, alias in self._scale_aliases[parameter].items()}
        return {by_user_name.get(name, name): prior for name, prior in priors.items()}

    def _set_default_priors(self, user_priors: dict) -> None:
        """Default priors for every term the user left alone (location and scale formulas)."""
        mu = self.parameters["mu"]
        scales = {name: coefficient_scale(term.term) for name, term in mu.common_terms.items()}
        defaults = default_priors(self.uisd, scales, mu.intercept_term is not None, False)
        location = {name: prior for name, prior in defaults.items() if name in mu.terms}
        chosen = {name: prior for name, prior in location.items() if name not in user_priors}
        for parameter in self.scale_formulas:
            component = self.parameters[parameter]
            scales = {
                name: coefficient_scale(term.term) for name, term in component.common_terms.items()
            }
            defaults = default_scale_priors(
                parameter, self.uisd, scales, component.intercept_term is not None
            )
            given = user_priors.get(parameter, {})
            missing = {name: prior for name, prior in defaults.items() if name not in given}
            if missing:
                chosen[parameter] = missing
        if chosen:
            self.set_priors(priors=chosen)

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

    def _moderator_variables(self, data: pd.DataFrame) -> list[str]:
        """Columns used as moderators in the location and scale formulas."""
        names = set()
        for rhs in (self.meta_formula.fixed, *self.scale_formulas.values()):
            names |= formula_variables(rhs)
        return sorted(name for name in names if name in data.columns)

    def _drop_or_reject_missing(
        self, data: pd.DataFrame, additionals: tuple, dropna: bool
    ) -> pd.DataFrame:
        """Rows with NaN in a used variable: error naming them, or drop them with a warning."""
        used = _used_variables(self.meta_formula, additionals, data)
        missing = data[used].isna().any(axis=1).to_numpy()
        if not missing.any():
            return data
        columns = [name for name in used if data[name].isna().any()]
        rows = _validate.describe_rows(missing)
        if not dropna:
            raise ValueError(
                f"Missing values (NaN) in {', '.join(map(repr, columns))}: {rows}. Nothing is "
                "dropped silently: remove or impute them, or pass dropna=True to drop these rows."
            )
        warnings.warn(
            f"dropna=True: dropped {int(missing.sum())} of {len(data)} rows with missing values in "
            f"{', '.join(map(repr, columns))}: {rows}.",
            UserWarning,
            stacklevel=3,
        )
        return data.loc[~missing].reset_index(drop=True)


def _split_formula(formula: str | bmb.Formula) -> tuple[str, tuple[str, ...]]:
    if isinstance(formula, bmb.Formula):
        return formula.main, tuple(formula.additionals)
    if isinstance(formula, str):
        return formula, ()
    raise TypeError(f"'formula' must be a string or a bambi.Formula; got {type(formula).__name__}.")


def _used_variables(form: MetaFormula, additionals: tuple, data: pd.DataFrame) -> list[str]:
    names = expression_variables(form.response) | expression_variables(form.uncertainty)
    for rhs in (form.fixed, *(extra.split("~", 1)[1] for extra in additionals)):
        names |= formula_variables(rhs)
    for name in (form.cluster, form.estimate_id):
        if name is not None:
            names.add(name)
    _validate.require_columns(data, sorted(names), "formula")
    return sorted(names)


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


def _with_numeric_response_columns(data: pd.DataFrame, form: MetaFormula) -> pd.DataFrame:
    """A copy of ``data`` whose effect-size and uncertainty columns are float64.

    They are checked to hold numbers; columns read from text (``"0.118"``) or of object dtype
    would otherwise reach formulae as categorical variables.
    """
    names = sorted(expression_variables(form.response) | expression_variables(form.uncertainty))
    roles = {name: "Effect sizes" for name in expression_variables(form.response)}
    data = data.copy()
    for name in names:
        data[name] = _validate.numeric_column(
            data[name], name, roles.get(name, "Sampling uncertainty")
        )
    return data


def _sample_sizes(data: pd.DataFrame, column: str) -> np.ndarray:
    _validate.require_columns(data, [column], "sample size")
    return _validate.numeric_column(data[column], column, "Sample sizes")
