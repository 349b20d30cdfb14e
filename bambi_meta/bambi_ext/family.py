"""The known-variance, compound-symmetric meta-analytic ``bmb.Family``.

The response carries three columns (effect size, known sampling variance, cluster code), built by
``MetaModel``'s response call. ``transform_backend_kwargs`` splits them for the likelihood (as
Bambi's binomial family splits ``p(y, n)``); ``posterior_predictive`` and ``log_likelihood`` are
overridden because the defaults cannot see the sampling variances or the clusters.
"""

from functools import partial

import bambi as bmb
import numpy as np
import pandas as pd
import xarray as xr

from bambi_meta import _validate
from bambi_meta._datatree import as_dataset, draw_blocks
from bambi_meta.bambi_ext.formula import expression_variables
from bambi_meta.engine import predictive
from bambi_meta.engine.likelihood import meta_analytic_dist
from bambi_meta.stats.clusters import grouped_loglik


class MetaAnalyticFamily(bmb.Family):
    """Normal likelihood with known sampling variances and (tau, rho) heterogeneity.

    Parameters
    ----------
    n_clusters : int or None
        Number of clusters in the data; ``None`` for the ordinary random-effects model (the
        likelihood then has no ``rho``).
    """

    SUPPORTED_LINKS = {"mu": ["identity"], "tau": ["log"], "rho": ["logit"]}

    def __init__(self, n_clusters: int | None):
        self.n_clusters = n_clusters
        params = ["mu", "tau", "rho"] if self.has_clusters else ["mu", "tau"]
        dist = partial(meta_analytic_dist, n_clusters=n_clusters)
        likelihood = bmb.Likelihood("MetaAnalyticNormal", params=params, parent="mu", dist=dist)
        links = {"mu": "identity", "tau": "log", "rho": "logit"}
        super().__init__("meta_analytic", likelihood, {name: links[name] for name in params})
        self.log_likelihood_unit = "cluster" if self.has_clusters else "estimate"

    @property
    def auxiliary_parameters(self) -> list[str]:
        """The non-parent parameters in the likelihood's order (``tau``, then ``rho``).

        ``bambi.Family`` returns a set, whose iteration order follows ``PYTHONHASHSEED``; Bambi
        builds the PyMC variables in that order, so the sampler's flat vector (its initial point
        and adaptation) and hence the draws for a fixed ``random_seed`` would differ between
        processes. A list fixes the order.
        """
        return [name for name in self.likelihood.params if name != self.likelihood.parent]

    @property
    def has_clusters(self) -> bool:
        """Whether the model has a cluster level (a ``rho`` parameter)."""
        return self.n_clusters is not None

    def transform_backend_kwargs(self, kwargs: dict) -> dict:
        """Split the response matrix into effect sizes, variances and cluster codes."""
        observed = np.asarray(kwargs["observed"])
        kwargs["observed"] = observed[:, 0]
        kwargs["variances"] = observed[:, 1]
        kwargs["clusters"] = observed[:, 2].astype("int64") if self.has_clusters else None
        return kwargs

    def posterior_predictive(self, model, posterior, random_seed=None, **kwargs) -> xr.DataArray:
        """Replicated effect sizes, each with its own sampling variance.

        For the rows the model was fitted to, the cluster and estimate effects are drawn from
        their exact conditional posterior (as a latent-effects model would replicate them); new
        rows of a known cluster share that cluster's effect, rows of a new cluster get a fresh one.
        """
        data = kwargs.get("data")
        rng = np.random.default_rng(_validate.check_random_seed(random_seed))
        posterior = as_dataset(posterior)
        uncertainty = model.meta_formula.uncertainty
        if data is not None and not expression_variables(uncertainty) <= set(data.columns):
            raise ValueError(
                f"Predicting observed effect sizes for new data needs their sampling uncertainty "
                f"'{uncertainty}' (each new estimate has its own sampling error). For the true "
                "effects use kind='response_params' (or bmm.prediction_intervals)."
            )
        rows = model.meta_data(data, require_response=False)
        replicated = predictive.draw_replicates(model, posterior, rows, rng)
        return xr.DataArray(
            replicated,
            dims=("chain", "draw", "__obs__"),
            coords={
                "chain": posterior["chain"],
                "draw": posterior["draw"],
                "__obs__": np.arange(replicated.shape[-1]),
            },
        )

    def log_likelihood(self, model, posterior, data=None, **kwargs) -> xr.DataArray:
        """Pointwise log-likelihood per cluster (default with clusters), estimate or group.

        ``unit="cluster"`` gives the joint density of each cluster's rows (leave-one-cluster-out);
        ``unit="estimate"`` the density of each row given the rest of its cluster; the name of a
        column groups the rows by its values (``likelihood.grouped_loglik``).
        """
        unit = self._check_unit(model, kwargs.get("unit"), data)
        rows = model.meta_data(data, require_response=True)
        clusters = cluster_labels = None
        if self.has_clusters:
            clusters, cluster_labels = rows.cluster_codes_in_data()
        if unit == "estimate":
            groups, dim, labels = np.arange(len(rows.variances)), "__obs__", None
        elif unit == "cluster":
            groups, labels, dim = clusters, cluster_labels, model.cluster
        else:
            frame = model.data if data is None else data
            codes, labels = pd.factorize(frame[unit], sort=True)
            if (codes < 0).any():
                raise ValueError(
                    f"unit='{unit}': the column must have a value on every row; "
                    f"{_validate.describe_rows(codes < 0)} are missing (NaN)."
                )
            groups, dim = codes, unit
        n_groups = int(groups.max()) + 1
        values = np.empty((posterior.sizes["chain"], posterior.sizes["draw"], n_groups))
        for (chain, draws), block in draw_blocks(posterior, len(rows.variances)):
            parameters = model.parameter_draws(block, rows)
            residual = rows.effect_sizes - parameters["mu"]
            values[chain, draws] = grouped_loglik(
                residual,
                parameters["tau"],
                parameters.get("rho"),
                rows.variances,
                clusters,
                groups,
                n_groups,
            )[0]
        if labels is None:
            labels = np.arange(n_groups)
        return xr.DataArray(
            values,
            dims=("chain", "draw", dim),
            coords={
                "chain": posterior["chain"],
                "draw": posterior["draw"],
                dim: np.asarray(labels),
            },
        )

    def _check_unit(self, model, unit, data) -> str:
        """``unit`` as given, or the default; an error naming what is allowed."""
        if unit is None:
            return self.log_likelihood_unit
        columns = (model.data if data is None else data).columns
        if unit == "cluster" and model.cluster is None:
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
