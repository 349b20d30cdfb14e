"""Code shared by the test modules (fixtures live in conftest.py)."""

import json
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import multivariate_normal

DATA = Path(__file__).parent / "data"


def exact_reference(dataset: str, model: str = "intercept_only") -> dict:
    """A model block of ``tests/data/<dataset>.exact.json`` (shared/data, 2-D quadrature)."""
    with open(DATA / f"{dataset}.exact.json") as handle:
        return json.load(handle)["models"][model]


def metafor_reference(dataset: str) -> dict:
    """``tests/data/<dataset>.metafor.json`` (metafor 3.8-1 fits, see its ``software`` block)."""
    with open(DATA / f"{dataset}.metafor.json") as handle:
        return json.load(handle)


STATISTICS = {"mean": None, "sd": None, "q025": 0.025, "q50": 0.5, "q975": 0.975}
HETEROGENEITY_KEYS = {
    "tau": "tau",
    "rho": "rho",
    "tau [within]": "tau_within",
    "tau [between]": "tau_between",
    "tau2": "tau2",
    "tau2 [within]": "tau2_within",
    "tau2 [between]": "tau2_between",
    "I2": "I2",
    "I2 [within]": "I2_within",
    "I2 [between]": "I2_between",
    "H2": "H2",
}


def z_scores(draws: np.ndarray, exact: dict) -> dict[str, float]:
    """(MCMC - exact) / (MCSE + 1e-3/4) for mean, sd and the 2.5/50/97.5% quantiles."""
    dataset = xr.Dataset({"x": (("chain", "draw"), draws)})
    flat = draws.ravel()
    scores = {}
    for statistic, prob in STATISTICS.items():
        if statistic == "mean":
            value, mcse = flat.mean(), float(az.mcse(dataset)["x"])
        elif statistic == "sd":
            value, mcse = flat.std(ddof=1), float(az.mcse(dataset, method="sd")["x"])
        else:
            value = np.quantile(flat, prob)
            mcse = float(az.mcse(dataset, method="quantile", prob=prob)["x"])
        scores[statistic] = (value - exact[statistic]) / (mcse + 1e-3 / 4)
    return scores


def assert_agrees(draws: dict[str, np.ndarray], exact: dict[str, dict]) -> None:
    failures = []
    for name, reference in exact.items():
        for statistic, z in z_scores(draws[name], reference).items():
            if abs(z) > 4:
                failures.append(f"{name} {statistic}: z = {z:.2f}")
    assert not failures, "; ".join(failures)


def fake_posterior(model, seed: int = 0, chains: int = 2, draws: int = 5) -> xr.Dataset:
    """Random values for every free parameter, named and shaped as Bambi names them (no fit).

    For build-only tests of functions of the posterior draws: tau in (0, inf), rho in (0, 1),
    coefficients standard normal.
    """
    rng = np.random.default_rng(seed)
    variables = {}
    for name, component in model.parameters.items():
        if name not in model.conditional_parameters:
            if not isinstance(component.prior, (int, float)):
                values = rng.uniform(0.05, 0.95, size=(chains, draws))
                variables[component.alias or name] = xr.DataArray(values, dims=("chain", "draw"))
            continue
        for term in [component.intercept_term, *component.common_terms.values()]:
            if term is None:
                continue
            label = term.alias or term.name
            if term.coords:
                (levels,) = term.coords.values()
                values = rng.normal(size=(chains, draws, len(levels)))
                dims = ("chain", "draw", f"{label}_dim")
                variables[label] = xr.DataArray(values, dims=dims, coords={dims[-1]: levels})
            else:
                values = rng.normal(size=(chains, draws))
                variables[label] = xr.DataArray(values, dims=("chain", "draw"))
    return xr.Dataset(variables)


# ---------------------------------------------------------------------------------------------
# A small clustered data set and the dense multivariate-normal oracle of the likelihood
# ---------------------------------------------------------------------------------------------
RNG = np.random.default_rng(7)
K = 23
# clusters of sizes 1, 1, 2, 3, 4, 5, 7 in shuffled row order (not sorted by cluster)
CLUSTERS = RNG.permutation(np.repeat(np.arange(7), [1, 1, 2, 3, 4, 5, 7]))
VARIANCES = RNG.uniform(0.01, 0.3, K)
Y = RNG.normal(0.2, 0.5, K)
MU = RNG.normal(0.1, 0.1, K)


def dense_cluster_logps(y, mu, tau, rho, variances, clusters):
    tau = np.broadcast_to(tau, y.shape)
    rho = np.broadcast_to(rho, y.shape)
    out = []
    for cluster in range(clusters.max() + 1):
        rows = clusters == cluster
        b = tau[rows] * np.sqrt(rho[rows])
        cov = np.diag(variances[rows] + tau[rows] ** 2 * (1 - rho[rows])) + np.outer(b, b)
        out.append(multivariate_normal(mu[rows], cov).logpdf(y[rows]))
    return np.array(out)


POINTS = [
    (0.3, 0.5),
    (0.05, 0.01),
    (1.2, 0.99),
    (0.0, 0.4),  # tau = 0: the common-effect model
    (RNG.uniform(0.1, 0.6, K), 0.3),  # row-varying tau (location-scale model)
    (RNG.uniform(0.1, 0.6, K), RNG.uniform(0.05, 0.95, K)),  # row-varying tau and rho
]


# ---------------------------------------------------------------------------------------------
# Models of the session fits
# ---------------------------------------------------------------------------------------------
METAREGRESSION_MODELS = {
    # fixture name: (dataset, formula, measure, exact.json model block)
    "konstantopoulos_year": (
        "dat.konstantopoulos2011",
        "yi | se(vi) ~ 1 + year + (1|district)",
        "SMD",
        "metareg_year",
    ),
    "bcg_ablat": ("dat.bcg", "yi | se(vi) ~ 1 + ablat", "RR", "metareg_ablat"),
    "assink_deltype": (
        "dat.assink2016",
        "yi | se(vi) ~ 1 + deltype + (1|study)",
        "SMD",
        "metareg_deltype",
    ),
}


# Simulated location-scale data: tau doubles from z = 0 to z = 1, log tau = log(0.2) + log(2) z.
SIMULATED_SCALE = {"tau_Intercept": float(np.log(0.2)), "tau_z": float(np.log(2.0))}
SIMULATED_MU, SIMULATED_RHO = 0.3, 0.5


def simulate_location_scale(
    seed: int, n_clusters: int, per_cluster: int, rho_slope: float = 0.0
) -> pd.DataFrame:
    """Three-level data with tau_i = 0.2 * 2**z_i and logit rho_i = rho_slope * (w_i - 1/2).

    Row i of cluster j: y_i = 0.3 + tau_i sqrt(rho_i) z_j + tau_i sqrt(1 - rho_i) e_i + eps_i,
    z_j, e_i ~ N(0, 1), eps_i ~ N(0, v_i), v_i ~ U(0.005, 0.03); z, w ~ U(0, 1) per row.
    """
    rng = np.random.default_rng(seed)
    k = n_clusters * per_cluster
    cluster = np.repeat(np.arange(n_clusters), per_cluster)
    z, w = rng.uniform(0, 1, k), rng.uniform(0, 1, k)
    tau = np.exp(SIMULATED_SCALE["tau_Intercept"] + SIMULATED_SCALE["tau_z"] * z)
    rho = 1 / (1 + np.exp(-rho_slope * (w - 0.5)))
    vi = rng.uniform(0.005, 0.03, k)
    between = tau * np.sqrt(rho) * rng.standard_normal(n_clusters)[cluster]
    within = tau * np.sqrt(1 - rho) * rng.standard_normal(k)
    yi = SIMULATED_MU + between + within + np.sqrt(vi) * rng.standard_normal(k)
    return pd.DataFrame({"yi": yi, "vi": vi, "z": z, "w": w, "study": cluster})
