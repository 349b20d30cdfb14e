"""Refit a compiled ``MetaModel`` to new data without recompiling (simulation studies, LOCO).

The likelihood reads its data from named PyTensor shared variables
(``bambi_meta.engine.likelihood.DATA_NAMES``): effect sizes, sampling variances, cluster codes,
cluster sizes and row weights. A :class:`Refitter` compiles the model's log-density and gradient
once and then only swaps those values:

- new effect sizes and/or variances for the same rows (simulation studies, parametric bootstrap);
- new cluster labels for the same rows (clusters must be among the fitted ones);
- a subset of the rows (``keep``): the left-out rows get weight 0, which is exactly the model
  fitted without them (leave-one-cluster-out, leave-one-out), with the same design matrix.

What is fixed per compiled model: the number of rows k, the moderator design matrix and the
priors (a prior is part of the graph; changing one means building and compiling a new model).

With ``sampler="nutpie"`` (the default) every refit runs nutpie's sampler on the model's
``compiled_sampler()`` (``bambi_meta.engine.compile``, shared with ``fit()``), with the new data as
inputs of the compiled function; ``"nutpie-numba"`` compiles with nutpie's own numba path once
(slow) and then samples small models several times faster. With ``sampler="pymc"`` one PyMC
NUTS step (holding the compiled logp and gradient) is reused by every ``pm.sample`` call; PyMC
still compiles its small initial-point and trace functions per call.
"""

from contextlib import contextmanager

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from bambi_meta import _upstream, _validate
from bambi_meta.bambi_ext.centring import to_raw_scale
from bambi_meta.engine.compile import NutpieNumbaModel
from bambi_meta.engine.fit import check_fit_arguments, stored_variable_names
from bambi_meta.engine.likelihood import DATA_NAMES

SAMPLERS = ("nutpie", "nutpie-numba", "pymc")


class Refitter:
    """A ``MetaModel`` compiled once and refitted to new effect sizes, variances or row subsets.

    Parameters
    ----------
    model : MetaModel
        The model whose data and priors define the compiled graph (built if needed).
    sampler : {"nutpie", "nutpie-numba", "pymc"}, default "nutpie"
        ``"nutpie"``: compile once (shared with ``model.fit()``), then a Python call per
        gradient; ``"nutpie-numba"``: nutpie's own, much slower compile once, then the fastest
        refits of a small model (for hundreds of refits); ``"pymc"``: PyMC's NUTS (slowest).
        Timings: benchmarks/README.md.

    Examples
    --------
    >>> import numpy as np, bambi_meta as bmm
    >>> dat = bmm.load_dataset("dat.konstantopoulos2011")
    >>> model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", dat, measure="SMD")
    >>> refitter = model.refitter()  # doctest: +SKIP
    >>> idata = refitter.fit(effect_sizes=np.zeros(56), random_seed=1)  # doctest: +SKIP
    >>> loco = refitter.fit(keep=dat["district"] != 11, random_seed=1)  # doctest: +SKIP
    """

    def __init__(self, model, sampler: str = "nutpie"):
        self.sampler = _validate.check_choice(sampler, "sampler", SAMPLERS)
        if not model.built:
            model.build()
        self.model = model
        pymc_model = model.backend.model
        self._shared = _shared_data_variables(pymc_model)
        self._training = {key: var.get_value() for key, var in self._shared.items()}
        self.var_names = stored_variable_names(model)
        self.n_compilations = 0
        if self.sampler == "nutpie":
            self._compiled = model.compiled_sampler()
        elif self.sampler == "nutpie-numba":
            self._compiled = NutpieNumbaModel(pymc_model, self.var_names)
        else:
            with pymc_model:
                self._step = pm.NUTS()
        self.n_compilations += 1

    @property
    def n_estimates(self) -> int:
        """Number of rows k of the compiled model (fixed)."""
        return len(self._training["variances"])

    def fit(
        self,
        data: pd.DataFrame | None = None,
        *,
        effect_sizes=None,
        variances=None,
        keep=None,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        random_seed=None,
        **kwargs,
    ) -> xr.DataTree:
        """Sample the posterior for new data with the already compiled model.

        Parameters
        ----------
        data : pandas.DataFrame, optional
            The same k rows with new effect sizes, variances or cluster labels (read with the
            model's formula; moderators must be the fitted ones, as the design is compiled).
        effect_sizes, variances : array-like of length k, optional
            New effect sizes / sampling VARIANCES for the fitted rows (override ``data``).
        keep : array-like of bool, length k, optional
            Rows to fit; the others are left out exactly (weight 0). Default: all rows.
        draws, tune, chains : int
            Draws and tuning steps per chain, number of chains.
        random_seed : int, optional
            Seed of the sampler.
        **kwargs
            Passed to ``nutpie.sample`` or ``pymc.sample``.

        Returns
        -------
        xarray.DataTree
            With a ``posterior`` group named as in ``model.fit()``, so ``bmm.summary`` works.
        """
        options = dict(kwargs, random_seed=random_seed)
        check_fit_arguments(
            "pymc" if self.sampler == "pymc" else "nutpie",
            draws=draws,
            tune=tune,
            chains=chains,
            options=options,
        )
        random_seed = options.pop("random_seed")
        kwargs = options
        values = self._new_values(data, effect_sizes, variances, keep)
        if self.sampler != "pymc":
            idata = self._compiled.sample(
                draws=draws,
                tune=tune,
                chains=chains,
                random_seed=random_seed,
                data={self._shared[key].name: value for key, value in values.items()},
                **kwargs,
            )
        else:
            kwargs.setdefault("progressbar", False)
            kwargs.setdefault("cores", 1)
            with self.data(values), self.model.backend.model:
                idata = pm.sample(
                    draws=draws,
                    tune=tune,
                    chains=chains,
                    step=self._step,
                    random_seed=random_seed,
                    var_names=self.var_names,
                    **kwargs,
                )
        idata = _upstream.clean_results(self.model, idata, True, False)
        idata["posterior"] = to_raw_scale(self.model, idata["posterior"])
        return idata

    @contextmanager
    def data(self, values: dict):
        """Temporarily set the model's shared data (keys of ``DATA_NAMES``); restored on exit."""
        try:
            for key, value in values.items():
                self._shared[key].set_value(value)
            yield self
        finally:
            for key, value in self._training.items():
                self._shared[key].set_value(value)

    def _new_values(self, data, effect_sizes, variances, keep) -> dict:
        k = self.n_estimates
        values = {}
        if data is not None:
            rows = self.model.meta_data(data, require_response=True)
            _check_length(rows.effect_sizes, k, "data")
            values["effect_sizes"] = rows.effect_sizes
            values["variances"] = rows.variances
            if "clusters" in self._shared:
                codes = rows.cluster_codes
                if (codes < 0).any():
                    raise ValueError(
                        f"'data' has clusters the compiled model was not fitted with: "
                        f"{_validate.describe_rows(codes < 0)}. Build a new MetaModel instead."
                    )
                values["clusters"] = codes
        if effect_sizes is not None:
            values["effect_sizes"] = _finite(effect_sizes, k, "effect_sizes")
        if variances is not None:
            values["variances"] = _finite(variances, k, "variances")
            if (values["variances"] <= 0).any():
                raise ValueError("'variances' must be > 0 (they are sampling VARIANCES).")
        weights = np.ones(k)
        if keep is not None:
            keep = np.asarray(keep)
            if keep.dtype != bool or keep.shape != (k,):
                raise ValueError(f"'keep' must be a boolean mask of length {k}; got {keep!r}.")
            if not keep.any():
                raise ValueError("'keep' leaves no rows to fit.")
            weights = keep.astype(float)
        values["weights"] = weights
        if "clusters" in self._shared:
            codes = values.get("clusters", self._training["clusters"])
            n_clusters = len(self._training["cluster_sizes"])
            values["cluster_sizes"] = np.bincount(codes, weights, minlength=n_clusters)
        return values


def _shared_data_variables(pymc_model) -> dict:
    """The likelihood's shared data variables of a built model, by ``DATA_NAMES`` key."""
    from pytensor.compile.sharedvalue import SharedVariable
    from pytensor.graph.traversal import ancestors

    observed = pymc_model.observed_RVs
    by_name = {
        var.name: var
        for var in ancestors([*observed, *(pymc_model.rvs_to_values[rv] for rv in observed)])
        if isinstance(var, SharedVariable)
    }
    return {key: by_name[name] for key, name in DATA_NAMES.items() if name in by_name}


def _check_length(values: np.ndarray, k: int, name: str) -> None:
    if len(values) != k:
        raise ValueError(
            f"'{name}' must have the {k} rows of the compiled model; got {len(values)}. "
            "For a subset of the rows use keep=; for other data build a new MetaModel."
        )


def _finite(values, k: int, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    _check_length(values, k, name)
    if not np.isfinite(values).all():
        raise ValueError(
            f"'{name}' must be finite; {_validate.describe_rows(~np.isfinite(values))}"
        )
    return values
