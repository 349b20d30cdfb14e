"""The exact engine (bambi_meta.engine.exact): kernel, quadrature, sampler (numpy, numba).

References: tests/data/dat.*.exact.json (shared/data, reference/exact_posterior.py: an
independent 2-D quadrature on 201 x 201 nodes with beta integrated analytically). Their own
accuracy, from their ``convergence_check`` block: log p(y) changes by <= 2e-14 from their half
grid; posterior means and sds are integrals of the same kind and as accurate; quantiles (they
interpolate a CDF) change by up to ``max_diff_relative_to_posterior_sd`` = 7e-7 ... 1.5e-5
posterior sds. So: log p(y) to 1e-8 (both sides converge below 1e-9), means and sds to 1e-8
relative (observed: <= 3e-13), quantiles within the reference's own half-grid change (observed:
<= 6e-7 posterior sds, i.e. <= 1.2e-7 relative).

The engine's default tolerance is 1e-6 for the half-grid changes (of log p(y), and of means
and sds relative to the sd). A half-grid change is the error of the half grid; the trapezoid
rule converges geometrically, so the returned values are far more accurate (observed against
the references: log p(y) within 3e-13 where the half-grid change was 1.5e-8). Tests compare
with independent integrations at 1e-9 (log p(y)) and 1e-8 (moments, relative).
"""

import json
import math
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from bambi_meta.engine.exact import kernel as exact_kernel
from bambi_meta.engine.exact import quadrature
from bambi_meta.engine.exact.fit import (
    BetaPrior,
    HalfNormalPrior,
    QuadratureError,
    fit_exact,
)
from bambi_meta.engine.exact.gaussian import prepare

DATA = Path(__file__).parents[1] / "data"
CSV = Path(__file__).parents[2] / "bambi_meta" / "data"
CASES = [
    (path.name, name)
    for path in sorted(DATA.glob("dat.*.exact.json"))
    for name in json.loads(path.read_text())["models"]
]
PROBS = (0.025, 0.05, 0.5, 0.95, 0.975)
KEYS = ("q025", "q05", "q50", "q95", "q975")


# ------------------------------------------------------------------------------ kernel vs dense

RNG = np.random.default_rng(20240601)
K_SMALL = 11
Y_SMALL = RNG.normal(0.2, 0.5, K_SMALL)
V_SMALL = RNG.uniform(0.01, 0.2, K_SMALL)
# cluster sizes 1, 3, 2, 1, 4 (two singletons), labels as strings and not sorted
CLUSTER_SMALL = np.array(["e", "b", "b", "b", "c", "c", "a", "d", "d", "d", "d"])
X_SMALL = np.column_stack([np.ones(K_SMALL), RNG.normal(size=K_SMALL), RNG.integers(0, 2, K_SMALL)])
POINTS = [(0.0, 0.0), (0.3, 0.0), (0.3, 0.5), (1.7, 0.95), (0.05, 1.0), (0.6, 1e-6), (40.0, 0.999)]


def dense(y, v, X, cluster, tau, rho, m, s):
    """log p(y | tau, rho), E and Cov of beta | tau, rho, y with k x k matrices (np.linalg)."""
    same = np.equal.outer(cluster, cluster) if cluster is not None else np.eye(len(y), dtype=bool)
    V = np.diag(v + tau**2 * (1 - rho)) + tau**2 * rho * same
    cov = V + X @ np.diag(np.square(s)) @ X.T
    sign, logdet = np.linalg.slogdet(cov)
    r = y - X @ m
    log_lik = -0.5 * (len(y) * math.log(2 * math.pi) + logdet + r @ np.linalg.solve(cov, r))
    A = np.diag(1 / np.square(s)) + X.T @ np.linalg.solve(V, X)
    mean = m + np.linalg.solve(A, X.T @ np.linalg.solve(V, r))
    return log_lik, mean, np.linalg.inv(A)


@pytest.mark.parametrize("p", [0, 1, 3])
@pytest.mark.parametrize("clustered", [True, False])
def test_kernel_equals_dense_linear_algebra(p, clustered):
    X = X_SMALL[:, :p]
    m, s = np.array([0.1, -0.2, 0.3])[:p], np.array([0.7, 0.4, 0.25])[:p]
    cluster = CLUSTER_SMALL if clustered else None
    model = prepare(Y_SMALL, V_SMALL, X, cluster, m, s)
    points = POINTS if clustered else [(t, 0.0) for t, _ in POINTS]
    tau, rho = np.array(points).T
    cond = model.conditional(tau, rho)
    cov = cond.covariance()
    for g, (t, r) in enumerate(points):
        log_lik, mean, var = dense(Y_SMALL, V_SMALL, X, cluster, t, r, m, s)
        # two algebraically equal computations: they differ by floating-point rounding only
        assert cond.log_lik[g] == pytest.approx(log_lik, rel=1e-10, abs=1e-12)
        np.testing.assert_allclose(cond.mean[g], mean, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(cov[g], var, rtol=1e-10, atol=1e-15)


def test_flat_prior_is_the_limit_of_wide_priors():
    """beta_sd = inf: log p(y) + log(s sqrt(2 pi)) of the proper model as s grows (Lebesgue).

    The proper model at s = 1e2 is checked against dense algebra; at s = 1e7 (where dense
    algebra on V + X S X' loses 7 digits) the kernel is exact, and the flat limit is within
    O(1/s^2).
    """
    flat = prepare(Y_SMALL, V_SMALL, X_SMALL, CLUSTER_SMALL, 0.0, [np.inf, 0.4, np.inf])
    tau, rho = np.array([0.3]), np.array([0.5])
    cond = flat.conditional(tau, rho)
    assert flat.improper
    for s in (1e2, 1e7):
        sd = np.array([s, 0.4, s])
        wide = prepare(Y_SMALL, V_SMALL, X_SMALL, CLUSTER_SMALL, 0.0, sd).conditional(tau, rho)
        if s == 1e2:
            log_lik, mean, _ = dense(Y_SMALL, V_SMALL, X_SMALL, CLUSTER_SMALL, 0.3, 0.5, 0 * sd, sd)
            assert wide.log_lik[0] == pytest.approx(log_lik, rel=1e-10)
        limit = wide.log_lik[0] + 2 * math.log(s * math.sqrt(2 * math.pi))
        assert cond.log_lik[0] == pytest.approx(limit, abs=100 / s**2)
        np.testing.assert_allclose(cond.mean[0], wide.mean[0], atol=100 / s**2)


def test_points_do_not_interact():
    """A point's result is bitwise the same alone or in a batch (blocks are independent)."""
    model = prepare(Y_SMALL, V_SMALL, X_SMALL, CLUSTER_SMALL, 0.0, 1.0)
    tau = np.random.default_rng(1).uniform(0.01, 2.0, 3 * exact_kernel.BLOCK + 7)
    rho = np.random.default_rng(2).uniform(0.0, 1.0, len(tau))
    batch = model.conditional(tau, rho)
    for g in (0, exact_kernel.BLOCK, len(tau) - 1):
        alone = model.conditional(tau[g : g + 1], rho[g : g + 1])
        assert alone.log_lik[0] == batch.log_lik[g]
        assert (alone.factor[0] == batch.factor[g]).all()


def test_log_det_survives_extreme_scales():
    """Running products of d_i are flushed before they over/underflow (k = 5000, d ~ 1e-9)."""
    k = 5000
    y, v = np.zeros(k), np.full(k, 1e-9)
    cluster = np.arange(k) // 50
    model = prepare(y, v, np.zeros((k, 0)), cluster, [], [])
    for tau, rho in ((0.0, 0.0), (1e-3, 0.5), (1e4, 0.999)):
        d, b = 1e-9 + tau**2 * (1 - rho), tau**2 * rho
        want = -0.5 * (k * math.log(2 * math.pi) + k * math.log(d) + 100 * math.log1p(b * 50 / d))
        got = model.conditional(np.array([tau]), np.array([rho])).log_lik[0]
        assert got == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------------------ exact references


@cache
def reference(file: str) -> dict:
    return json.loads((DATA / file).read_text())


def design(df: pd.DataFrame, model: dict) -> np.ndarray:
    """The design the reference priors act on: continuous (x - mean)/sd, treatment dummies."""
    cols = [np.ones(len(df))]
    for name, spec in model["moderators"].items():
        if spec["type"] == "continuous":
            cols.append(((df[name] - spec["mean"]) / spec["sd"]).to_numpy())
        else:
            cols += [(df[name] == level).to_numpy(float) for level in spec["levels"][1:]]
    return np.column_stack(cols)


@cache
def fitted(file: str, name: str):
    ref = reference(file)
    m = ref["models"][name]
    df = pd.read_csv(CSV / f"{ref['dataset']}.csv")
    X = design(df, m["model"])
    pv = m["priors"]["values"]
    cluster = df[m["model"]["cluster"]].to_numpy() if m["model"]["cluster"] else None
    return fit_exact(
        df.yi.to_numpy(),
        df.vi.to_numpy(),
        X,
        cluster,
        beta_mean=pv["intercept_mean"],
        beta_sd=[pv["intercept_sd"]] + [pv["mods_sd"]] * (X.shape[1] - 1),
        tau_prior=HalfNormalPrior(pv["tau_sd"]),
        rho_prior=None if cluster is None else BetaPrior(pv["rho_a"], pv["rho_b"]),
    )


def exact_summaries(file: str, name: str):
    """(reference block, engine Summary) for tau, rho and each coefficient."""
    m = reference(file)["models"][name]
    post = fitted(file, name)
    out = [(m["heterogeneity"]["tau"], post.tau)]
    if "rho" in m["heterogeneity"]:
        out.append((m["heterogeneity"]["rho"], post.rho))
    else:
        assert post.rho is None
    coefs = m["coefficients_standardized"]
    out += [(coefs[c], post.beta[j]) for j, c in enumerate(m["model"]["design_columns"])]
    return out


@pytest.mark.parametrize(("file", "name"), CASES)
def test_quadrature_matches_exact_reference(file, name):
    m = reference(file)["models"][name]
    post = fitted(file, name)
    assert post.converged and not post.improper
    assert post.log_marginal_likelihood_error < 1e-6  # the default tol
    assert post.log_marginal_likelihood == pytest.approx(m["log_marginal_likelihood"], abs=1e-8)
    quantile_tol = m["convergence_check"]["max_diff_relative_to_posterior_sd"]
    for ref, got in exact_summaries(file, name):
        assert got.mean == pytest.approx(ref["mean"], rel=1e-8, abs=1e-12)
        assert got.sd == pytest.approx(ref["sd"], rel=1e-8)
        for prob, key in zip(PROBS, KEYS, strict=True):
            assert got.quantiles[prob] == pytest.approx(ref[key], abs=quantile_tol * ref["sd"])


def mcse(x: np.ndarray, statistic: str, prob: float | None) -> float:
    """Monte Carlo SE of a statistic of N independent draws.

    mean: sd / sqrt(N); sd: sqrt((m4 / sd^4 - 1) / (4 N)) sd (delta method); quantile:
    sqrt(p (1 - p) / N) / f(q) (binomial count below q, divided by the density at q, here the
    fraction of draws within 0.05 sd of q over 0.1 sd).
    """
    n, sd = len(x), x.std()
    if statistic == "mean":
        return sd / math.sqrt(n)
    if statistic == "sd":
        kurt = np.mean((x - x.mean()) ** 4) / sd**4
        return sd * math.sqrt((kurt - 1) / (4 * n))
    q = np.quantile(x, prob)
    dens = np.mean(np.abs(x - q) < 0.05 * sd) / (0.1 * sd)
    return math.sqrt(prob * (1 - prob) / n) / dens


@pytest.mark.parametrize(("file", "name"), CASES)
def test_draws_match_exact_reference(file, name):
    """4 x 25,000 independent draws (4 seeds): every statistic within 4 MCSE of the reference."""
    post = fitted(file, name)
    chains = [post.sample(25_000, np.random.default_rng(seed)) for seed in range(4)]
    draws = {key: np.concatenate([c[key] for c in chains]) for key in chains[0]}
    columns = [draws["tau"]] + ([draws["rho"]] if post.rho is not None else [])
    columns += list(draws["beta"].T)
    for x, (ref, _) in zip(columns, exact_summaries(file, name), strict=True):
        assert abs(x.mean() - ref["mean"]) < 4 * mcse(x, "mean", None)
        assert abs(x.std() - ref["sd"]) < 4 * mcse(x, "sd", None)
        for prob, key in zip(PROBS, KEYS, strict=True):
            if prob in (0.025, 0.5, 0.975):
                assert abs(np.quantile(x, prob) - ref[key]) < 4 * mcse(x, "quantile", prob)


# ------------------------------------------------------------------------------ the sampler

KONST = ("dat.konstantopoulos2011.exact.json", "intercept_only")
BCG = ("dat.bcg.exact.json", "intercept_only")


def sampler_distribution(post, a: int, n_draws: int):
    """Exact mean, sd and quantiles of the sampler's marginal on axis a (not of draws).

    The sampler draws t from a density that is linear in each fine cell (node values
    ``sampler.marginal(a)``): its moments by 6-point Gauss-Legendre per cell, its quantiles by
    solving the quadratic CDF in the cell.
    """
    ax, sampler = post.grid.axes[a], post.sampler(n_draws)
    m, h, t0 = sampler.marginal(a), sampler.step[a], sampler.start[a]
    xg, wg = np.polynomial.legendre.leggauss(6)
    frac = (xg + 1) / 2
    left = t0 + h * np.arange(len(m) - 1)
    weights = (m[:-1, None] * (1 - frac) + m[1:, None] * frac) * wg * h / 2
    x = ax.value(left[:, None] + frac * h)
    total = weights.sum()
    mean = (weights * x).sum() / total
    sd = math.sqrt((weights * x**2).sum() / total - mean**2)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * h * (m[1:] + m[:-1]))]) / total
    quantiles = []
    for p in PROBS:
        i = int(np.searchsorted(cum, p)) - 1
        f0, f1, r = m[i] / total, m[i + 1] / total, (p - cum[i]) / h
        frac_p = 2 * r / (f0 + math.sqrt(f0**2 + 2 * (f1 - f0) * r))
        quantiles.append(float(ax.value(t0 + h * (i + frac_p))))
    return mean, sd, quantiles


# MCSE of n independent draws, times sqrt(n), in posterior sds, for a normal posterior:
# mean 1, sd 1/sqrt(2), quantiles sqrt(p (1 - p)) / phi(z_p).
MCSE_SCALE = [1.0, 2**-0.5] + [
    math.sqrt(p * (1 - p)) / stats.norm.pdf(stats.norm.ppf(p)) for p in PROBS
]


@pytest.mark.parametrize("n_draws", [4000, 100_000, 1_000_000])
@pytest.mark.parametrize("case", [KONST, BCG])
def test_sampler_error_is_far_below_monte_carlo_error(case, n_draws):
    """The sampler's own distribution vs the quadrature: < 1/10 of the MCSE of n draws.

    The table's resolution follows n (inverse_cdf.fine_step, aiming at 1/20). Measured: at most
    1/23 of the MCSE (the sd at 10^6 draws: 3.1e-5 posterior sds vs an MCSE of 7.1e-4).
    """
    post = fitted(*case)
    for a, ax in enumerate(post.grid.axes):
        summary = getattr(post, ax.name)
        mean, sd, quantiles = sampler_distribution(post, a, n_draws)
        got = [mean, sd, *quantiles]
        want = [summary.mean, summary.sd, *summary.quantiles.values()]
        for x, w, scale in zip(got, want, MCSE_SCALE, strict=True):
            assert abs(x - w) < 0.1 * scale / math.sqrt(n_draws) * summary.sd


@pytest.mark.slow  # 10^6 draws, k = 10^5 or a new Python process
@pytest.mark.parametrize("case", [KONST, BCG])
def test_million_draws_match_quadrature(case):
    """10^6 draws: within 4 MCSE of the quadrature; KS test against the quadrature's CDF."""
    post = fitted(*case)
    draws = post.sample(1_000_000, np.random.default_rng(11))
    for name in post.free:
        x, summary = draws[name], getattr(post, name)
        assert abs(x.mean() - summary.mean) < 4 * mcse(x, "mean", None)
        assert abs(x.std() - summary.sd) < 4 * mcse(x, "sd", None)
        for prob in (0.025, 0.5, 0.975):
            assert abs(np.quantile(x, prob) - summary.quantiles[prob]) < 4 * mcse(x, "q", prob)
        ks = stats.kstest(x[:100_000], lambda q, name=name: post.cdf(name, q))
        assert ks.pvalue > 1e-3
    beta = draws["beta"][:, 0]
    assert abs(beta.mean() - post.beta[0].mean) < 4 * mcse(beta, "mean", None)
    assert abs(beta.std() - post.beta[0].sd) < 4 * mcse(beta, "sd", None)


def test_cdf_inverts_quantiles():
    post = fitted(*KONST)
    for name in ("tau", "rho"):
        summary = getattr(post, name)
        got = post.cdf(name, list(summary.quantiles.values()))
        # the quantiles are the CDF's exact inverse on the same grid: rounding error only
        np.testing.assert_allclose(got, PROBS, atol=1e-12)
    assert post.cdf("rho", [-1.0, 0.0, 1.0, 2.0]).tolist() == [0.0, 0.0, 1.0, 1.0]


ROOT = Path(__file__).parents[2]
# The engine imports nothing of Bambi; a child process loads it without running
# bambi_meta/__init__.py (which imports bambi, ~5 s) by registering a bare package first.
ENGINE_ONLY = (
    "import sys, types; pkg = types.ModuleType('bambi_meta'); "
    f"pkg.__path__ = [{str(ROOT / 'bambi_meta')!r}]; sys.modules['bambi_meta'] = pkg\n"
)


def run_child(code: str, **env) -> str:
    out = subprocess.run(
        [sys.executable, "-c", ENGINE_ONLY + code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.slow  # 10^6 draws, k = 10^5 or a new Python process
def test_engine_imports_no_bambi_pymc_or_pytensor():
    code = (
        "import sys\n"
        "import bambi_meta.engine.exact\n"
        "print(sorted(m for m in ('bambi', 'pymc', 'pytensor', 'arviz') if m in sys.modules))"
    )
    assert run_child(code) == "[]"


@pytest.mark.slow  # 10^6 draws, k = 10^5 or a new Python process
def test_same_seed_same_draws_in_any_process():
    post = fitted(*KONST)
    first = post.sample(1000, np.random.default_rng(5))
    again = post.sample(1000, np.random.default_rng(5))
    for key in first:
        assert np.array_equal(first[key], again[key])
    code = (
        "import numpy as np, pandas as pd\n"
        "from bambi_meta.engine.exact import fit_exact, HalfNormalPrior, BetaPrior\n"
        "df = pd.read_csv('bambi_meta/data/dat.konstantopoulos2011.csv')\n"
        "post = fit_exact(df.yi.to_numpy(), df.vi.to_numpy(), None, df.district.to_numpy(), "
        "beta_mean=0.0, beta_sd=2**-0.5, tau_prior=HalfNormalPrior(2**-0.5 / 2), "
        "rho_prior=BetaPrior(1.0, 1.0))\n"
        "d = post.sample(1000, np.random.default_rng(5))\n"
        "print(np.concatenate([d['tau'], d['rho'], d['beta'].ravel()]).tobytes().hex())"
    )
    mine = np.concatenate([first["tau"], first["rho"], first["beta"].ravel()]).tobytes().hex()
    assert run_child(code, PYTHONHASHSEED="123") == mine


# ------------------------------------------------------------------------------ reliability


def simulate(k, n_clusters, tau, rho, v_range=(0.005, 0.2), seed=1):
    rng = np.random.default_rng(seed)
    cluster = np.arange(k) % n_clusters
    v = rng.uniform(*v_range, k)
    u = rng.normal(0.0, tau * math.sqrt(rho), n_clusters)[cluster]
    y = 0.2 + u + rng.normal(0.0, tau * math.sqrt(1 - rho), k) + rng.normal(0.0, np.sqrt(v))
    return y, v, cluster


def quad_tau(y, v, log_prior, support=(0.0, np.inf), split=()):
    """Independent check, no clusters: scipy's adaptive quad over tau itself.

    Returns log p(y), E[tau], sd(tau) (beta ~ N(0, 1)).
    """
    model = prepare(y, v, None, None, 0.0, 1.0)

    def log_f(t):
        return (
            model.conditional(np.array([t]), np.zeros(1)).log_lik[0] + log_prior(np.array([t]))[0]
        )

    edges = [support[0], *split, support[1]]
    peak = max(log_f(t) for t in np.geomspace(max(edges[0], 1e-8), min(edges[-1], 1e3), 400))
    parts = [
        [
            integrate.quad(
                lambda t, j=j: t**j * math.exp(log_f(t) - peak),
                a,
                b,
                epsabs=0,
                epsrel=1e-13,
                limit=500,
            )[0]
            for j in range(3)
        ]
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    ]
    i0, i1, i2 = np.sum(parts, axis=0)
    return math.log(i0) + peak, i1 / i0, math.sqrt(i2 / i0 - (i1 / i0) ** 2)


def brute_2d(
    y, v, cluster, log_prior_tau, prior_rho, log_tau=(-37.0, 3.5), logit_rho=(-45.0, 45.0)
):
    """Independent check: a uniform trapezoid in (log tau, logit rho) over a fixed wide box.

    No mode, no sinh map, no adaptivity: steps 0.04 and 0.1 (about 1,000 x 900 nodes); the
    box must hold all but 1e-13 of the mass (Beta(0.3, 0.3) decays like exp(-0.3 |logit rho|):
    +-150). Returns log p(y), E and sd of tau, E and sd of rho (beta ~ N(0, 1)).
    """
    model = prepare(y, v, None, cluster, 0.0, 1.0)
    step = 0.04
    u = np.arange(*log_tau, step)
    w = np.arange(*logit_rho, 0.1)
    U, W = (a.ravel() for a in np.meshgrid(u, w, indexing="ij"))
    tau, rho = np.exp(U), special.expit(W)
    log_f = model.conditional(tau, rho).log_lik + log_prior_tau(tau) + U
    log_f += prior_rho.logit_log_density(W)  # prior of rho times rho (1 - rho)
    peak = log_f.max()
    f = np.exp(log_f - peak)
    total = f.sum()
    out = [math.log(total * step * 0.1) + peak]
    for x in (tau, rho):
        mean = f @ x / total
        out += [mean, math.sqrt(f @ x**2 / total - mean**2)]
    return out


HN = HalfNormalPrior(0.5)
B11 = BetaPrior(1.0, 1.0)
FIT = {"beta_mean": 0.0, "beta_sd": 1.0}


def assert_matches_brute(post, y, v, cluster, **kw):
    want = brute_2d(y, v, cluster, HN, B11, **kw)
    got = [post.log_marginal_likelihood, post.tau.mean, post.tau.sd, post.rho.mean, post.rho.sd]
    # the engine's tolerance is 1e-9 (relative); the brute-force trapezoid's own error is below
    # 1e-10 at these steps, so 1e-8 leaves room for both without hiding a real difference
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


def test_mass_at_tau_zero():
    """Homogeneous data (tau = 0, small v): I2 ~ 0, the posterior of tau piles up at 0."""
    y, v, cluster = simulate(40, 10, 0.0, 0.5, v_range=(0.001, 0.002))
    post = fit_exact(y, v, None, None, tau_prior=HN, **FIT)
    assert post.tau.quantiles[0.5] < 0.5 * math.sqrt(v.min())
    lml, mean, sd = quad_tau(y, v, HN, split=(0.01, 0.1))
    assert post.log_marginal_likelihood == pytest.approx(lml, abs=1e-9)
    assert (post.tau.mean, post.tau.sd) == pytest.approx((mean, sd), rel=1e-8)
    post = fit_exact(y, v, None, cluster, tau_prior=HN, rho_prior=B11, **FIT)
    assert_matches_brute(post, y, v, cluster)


@pytest.mark.parametrize("rho", [0.0, 1.0])
def test_mass_at_rho_boundaries(rho):
    y, v, cluster = simulate(200, 20, 0.4, rho, v_range=(0.005, 0.02))
    post = fit_exact(y, v, None, cluster, tau_prior=HN, rho_prior=B11, **FIT)
    assert post.rho.quantiles[0.5] < 0.05 if rho == 0.0 else post.rho.quantiles[0.5] > 0.95
    assert_matches_brute(post, y, v, cluster)


def test_two_estimates():
    y, v, cluster = simulate(2, 2, 0.3, 0.5)
    post = fit_exact(y, v, None, None, tau_prior=HN, **FIT)
    lml, mean, sd = quad_tau(y, v, HN, split=(0.1, 1.0))
    assert post.log_marginal_likelihood == pytest.approx(lml, abs=1e-9)
    assert (post.tau.mean, post.tau.sd) == pytest.approx((mean, sd), rel=1e-8)


def test_singleton_clusters_leave_rho_at_its_prior():
    """All clusters of size 1: rho is not identified, its posterior is exactly its prior."""
    y, v, cluster = simulate(200, 200, 0.4, 0.5)
    post = fit_exact(y, v, None, cluster, tau_prior=HN, rho_prior=BetaPrior(2.0, 3.0), **FIT)
    prior = stats.beta(2, 3)
    assert (post.rho.mean, post.rho.sd) == pytest.approx((prior.mean(), prior.std()), rel=1e-9)
    np.testing.assert_allclose(list(post.rho.quantiles.values()), prior.ppf(PROBS), rtol=1e-8)
    flat = fit_exact(y, v, None, None, tau_prior=HN, **FIT)
    assert post.log_marginal_likelihood == pytest.approx(flat.log_marginal_likelihood, abs=1e-9)
    assert post.tau.mean == pytest.approx(flat.tau.mean, rel=1e-9)


def test_wide_half_cauchy_prior():
    y, v, cluster = simulate(56, 11, 0.3, 0.6)
    cauchy = stats.halfcauchy(scale=10.0).logpdf
    post = fit_exact(y, v, None, None, tau_prior=cauchy, **FIT)
    lml, mean, sd = quad_tau(y, v, cauchy, split=(0.1, 1.0))
    assert post.log_marginal_likelihood == pytest.approx(lml, abs=1e-9)
    assert (post.tau.mean, post.tau.sd) == pytest.approx((mean, sd), rel=1e-8)
    post = fit_exact(y, v, None, cluster, tau_prior=cauchy, rho_prior=B11, **FIT)
    want = brute_2d(y, v, cluster, cauchy, B11, log_tau=(-37.0, 6.0))
    got = [post.log_marginal_likelihood, post.tau.mean, post.tau.sd, post.rho.mean, post.rho.sd]
    np.testing.assert_allclose(got, want, rtol=1e-8)


@pytest.mark.slow
def test_narrow_posterior_needs_no_more_nodes():
    """k = 200,000 in 20,000 clusters: sd of log tau ~ 0.004, far narrower than any coarse box.

    Checked against a trapezoid rule in whitened coordinates (the grid's own mean and
    covariance define only the change of variables, 81 x 81 nodes over +-10 sds).
    """
    y, v, cluster = simulate(200_000, 20_000, 0.3, 0.5, seed=3)
    post = fit_exact(y, v, None, cluster, tau_prior=HN, rho_prior=B11, **FIT)
    wide = fitted(*KONST)
    assert np.prod(post.nodes_per_axis) <= np.prod(wide.nodes_per_axis) * 1.5
    assert post.tau.sd / post.tau.mean < 0.01
    g = post.grid
    uv = np.column_stack([np.log(g.tau), special.logit(g.rho)])
    center = g.weights @ uv
    chol = np.linalg.cholesky(np.cov(uv.T, aweights=g.weights))
    z = np.arange(-10.0, 10.01, 0.25)
    Z = np.stack(np.meshgrid(z, z, indexing="ij"), -1).reshape(-1, 2)
    pts = center + Z @ chol.T
    model = prepare(y, v, None, cluster, 0.0, 1.0)
    tau, rho = np.exp(pts[:, 0]), special.expit(pts[:, 1])
    log_f = model.conditional(tau, rho).log_lik + HN(tau) + pts[:, 0]
    log_f += -np.logaddexp(0, -pts[:, 1]) - np.logaddexp(0, pts[:, 1])
    peak = log_f.max()
    f = np.exp(log_f - peak)
    lml = math.log(f.sum() * 0.25**2 * np.linalg.det(chol)) + peak
    assert post.log_marginal_likelihood == pytest.approx(lml, abs=1e-8)
    for x, summary in ((tau, post.tau), (rho, post.rho)):
        mean = f @ x / f.sum()
        assert summary.mean == pytest.approx(mean, rel=1e-9)
        assert summary.sd == pytest.approx(math.sqrt(f @ x**2 / f.sum() - mean**2), rel=1e-6)


# ------------------------------------------------------------------------------ priors


def truncated(logpdf, lo, hi):
    return lambda x: np.where((x >= lo) & (x <= hi), logpdf(x), -np.inf)


TAU_PRIORS = {  # name: (log-density, support (None: (0, inf)), break points for scipy's quad)
    "HalfStudentT(3, 0.5)": (lambda t: math.log(2) + stats.t(3, scale=0.5).logpdf(t), None),
    "Exponential(2)": (stats.expon(scale=0.5).logpdf, None),
    "Gamma(2, 0.1)": (stats.gamma(2, scale=0.1).logpdf, None),
    "InverseGamma(1, 0.1)": (stats.invgamma(1, scale=0.1).logpdf, None),
    "Uniform(0, 2)": (stats.uniform(0, 2).logpdf, (0.0, 2.0)),
    "Uniform(0, 0.2), mass at its edge": (stats.uniform(0, 0.2).logpdf, (0.0, 0.2)),
    "Uniform(0.1, 0.5)": (stats.uniform(0.1, 0.4).logpdf, (0.1, 0.5)),
    "TruncatedNormal(0.3, 0.5) on (0.1, inf)": (
        stats.truncnorm((0.1 - 0.3) / 0.5, np.inf, 0.3, 0.5).logpdf,
        (0.1, np.inf),
    ),
}


@pytest.mark.parametrize("name", list(TAU_PRIORS))
def test_tau_priors_against_adaptive_quadrature(name):
    """Any proper prior, bounded supports included (mapped whole, so no edge in the grid)."""
    log_prior, support = TAU_PRIORS[name]
    y, v, _ = simulate(30, 30, 0.3, 0.0)
    post = fit_exact(y, v, None, None, tau_prior=log_prior, **FIT)
    assert post.converged and post.log_marginal_likelihood_error < 1e-6
    assert post.grid.axes[0].support == pytest.approx(support or (0.0, np.inf))
    support = support or (0.0, np.inf)
    split = [x for x in (0.05, 0.3, 1.0) if support[0] < x < support[1]]
    lml, mean, sd = quad_tau(y, v, log_prior, support, split)
    assert post.log_marginal_likelihood == pytest.approx(lml, abs=1e-9)
    assert (post.tau.mean, post.tau.sd) == pytest.approx((mean, sd), rel=1e-8)


def test_truncated_rho_prior_with_tau_fixed():
    """tau fixed: a 1-D integral over rho; Beta(2, 2) truncated to [0.2, 0.9] vs quad."""
    y, v, cluster = simulate(60, 12, 0.4, 0.7)
    beta = stats.beta(2, 2)
    log_prior = truncated(
        lambda r: beta.logpdf(r) - math.log(beta.cdf(0.9) - beta.cdf(0.2)), 0.2, 0.9
    )
    post = fit_exact(y, v, None, cluster, tau_prior=0.4, rho_prior=log_prior, **FIT)
    assert post.free == ("rho",) and post.grid.axes[0].support == pytest.approx((0.2, 0.9))
    model = prepare(y, v, None, cluster, 0.0, 1.0)

    def f(r, j):
        log_lik = model.conditional(np.array([0.4]), np.array([r])).log_lik[0]
        return r**j * math.exp(log_lik + log_prior(np.array([r]))[0] - post.log_marginal_likelihood)

    i0, i1 = (integrate.quad(f, 0.2, 0.9, args=(j,), epsrel=1e-13)[0] for j in (0, 1))
    assert i0 == pytest.approx(1.0, abs=1e-9)
    assert post.rho.mean == pytest.approx(i1, rel=1e-8)


@pytest.mark.slow  # the callable prior at tol = 1e-9 refines the grid until it gives up
def test_beta_prior_near_one_and_callables_that_cannot_be_evaluated_there():
    """Beta(0.3, 0.3): e^-11 of its density sits where 1 - rho is lost to rounding (logit rho
    > 37). BetaPrior is evaluated on the logit scale and is exact; the same density as a
    callable of rho is noisy there: within its own error estimate at the default tol, and
    refused (it cannot converge) at tol = 1e-9."""
    y, v, cluster = simulate(56, 11, 0.3, 0.6)
    post = fit_exact(y, v, None, cluster, tau_prior=HN, rho_prior=BetaPrior(0.3, 0.3), **FIT)
    want = brute_2d(y, v, cluster, HN, BetaPrior(0.3, 0.3), logit_rho=(-150.0, 150.0))
    assert post.log_marginal_likelihood == pytest.approx(want[0], abs=1e-8)
    callable_prior = stats.beta(0.3, 0.3).logpdf
    noisy = fit_exact(y, v, None, cluster, tau_prior=HN, rho_prior=callable_prior, **FIT)
    error = noisy.log_marginal_likelihood - post.log_marginal_likelihood
    assert 1e-9 < abs(error) < noisy.log_marginal_likelihood_error
    with pytest.raises(QuadratureError, match="nutpie"):
        fit_exact(y, v, None, cluster, tau_prior=HN, rho_prior=callable_prior, tol=1e-9, **FIT)


# ------------------------------------------------------------------------------ special cases


def test_fixed_parameters_and_common_effect():
    y, v, cluster = simulate(20, 5, 0.3, 0.5)
    common = fit_exact(y, v, None, cluster, tau_prior=0.0, rho_prior=B11, **FIT)
    log_lik, mean, var = dense(y, v, np.ones((20, 1)), None, 0.0, 0.0, np.zeros(1), np.ones(1))
    assert (common.free, common.rho, common.log_marginal_likelihood_error) == ((), None, 0.0)
    assert common.log_marginal_likelihood == pytest.approx(log_lik, rel=1e-12)
    assert common.beta[0].mean == pytest.approx(mean[0], rel=1e-12)
    assert common.beta[0].quantiles[0.975] == pytest.approx(
        mean[0] + 1.959963984540054 * math.sqrt(var[0, 0]), rel=1e-12
    )
    draws = common.sample(10, np.random.default_rng(0))
    assert set(draws) == {"tau", "beta"} and (draws["tau"] == 0).all()
    fixed = fit_exact(y, v, None, cluster, tau_prior=0.3, rho_prior=0.4, **FIT)
    assert fixed.log_marginal_likelihood == pytest.approx(
        dense(y, v, np.ones((20, 1)), cluster, 0.3, 0.4, np.zeros(1), np.ones(1))[0], rel=1e-12
    )
    assert fixed.sample(3, np.random.default_rng(0))["rho"].tolist() == [0.4] * 3
    no_level = fit_exact(y, v, None, cluster, tau_prior=HN, rho_prior=0.0, **FIT)
    without = fit_exact(y, v, None, None, tau_prior=HN, **FIT)
    assert no_level.log_marginal_likelihood == without.log_marginal_likelihood
    assert no_level.rho is None and no_level.free == ("tau",)


def test_flat_coefficient_prior_is_flagged_improper():
    y, v, cluster = simulate(56, 11, 0.3, 0.6)
    X = np.column_stack([np.ones(56), np.linspace(-1, 1, 56)])
    post = fit_exact(
        y, v, X, cluster, beta_mean=0.0, beta_sd=[np.inf, 1.0], tau_prior=HN, rho_prior=B11
    )
    assert post.improper and post.converged
    wide = fit_exact(
        y, v, X, cluster, beta_mean=0.0, beta_sd=[1e6, 1.0], tau_prior=HN, rho_prior=B11
    )
    assert post.log_marginal_likelihood == pytest.approx(
        wide.log_marginal_likelihood + math.log(1e6 * math.sqrt(2 * math.pi)), abs=1e-6
    )
    assert post.beta[0].mean == pytest.approx(wide.beta[0].mean, abs=1e-8)
    with pytest.raises(ValueError, match="linearly independent"):
        fit_exact(
            y,
            v,
            np.column_stack([X, X[:, 1]]),
            cluster,
            beta_mean=0.0,
            beta_sd=[np.inf, np.inf, np.inf],
            tau_prior=HN,
            rho_prior=B11,
        )


# ------------------------------------------------------------------------------ failures


def test_improper_posterior_is_refused():
    """p(tau) ~ 1/tau: the likelihood is flat as tau -> 0, the posterior has infinite mass."""
    y, v, _ = simulate(20, 20, 0.3, 0.0)
    with pytest.raises(QuadratureError, match=r'inference_method="nutpie"'):
        fit_exact(y, v, None, None, tau_prior=lambda t: -np.log(t), **FIT)


def two_peaks(low: float, high: float, width: float):
    """A prior on tau with two log-normal peaks (log-sd ``width``) of equal mass."""
    first, second = stats.lognorm(width, scale=low), stats.lognorm(width, scale=high)
    return lambda t: np.logaddexp(first.logpdf(t), second.logpdf(t)) - math.log(2)


HOMOGENEOUS = (np.full(6, 0.2) + np.random.default_rng(3).normal(0, 0.001, 6), np.full(6, 0.01))


def test_two_modes_joined_by_the_box_are_integrated():
    """Both peaks of tau << sqrt(v), where the likelihood is flat: the posterior is the
    bimodal prior; the box search reaches across the valley (-46 log units) and the rule
    integrates both modes."""
    prior = two_peaks(0.001, 0.01, 0.12)
    post = fit_exact(*HOMOGENEOUS, tau_prior=prior, **FIT)
    lml, mean, sd = quad_tau(*HOMOGENEOUS, prior, split=(0.0005, 0.002, 0.005, 0.02))
    assert post.log_marginal_likelihood == pytest.approx(lml, abs=1e-8)
    assert (post.tau.mean, post.tau.sd) == pytest.approx((mean, sd), rel=1e-7)


def test_a_second_mode_outside_the_box_is_refused():
    """Peaks 46 log-sds apart: the box around the first stops in the valley; the coarse scan
    sees the second, and the engine refuses instead of returning half the posterior."""
    with pytest.raises(QuadratureError, match="multimodal"):
        fit_exact(*HOMOGENEOUS, tau_prior=two_peaks(1e-4, 1e-2, 0.1), **FIT)


def test_unmet_tolerance_raises_or_warns(monkeypatch):
    """Refinement capped at level 1 (spacing 1/4 in t): the default tol = 1e-6 is not met."""
    monkeypatch.setattr(quadrature, "MAX_LEVEL", 1)
    y, v, cluster = simulate(20, 5, 0.3, 0.5)
    with pytest.raises(QuadratureError, match=r"quadrature stopped at \(\d+, \d+\) nodes"):
        fit_exact(y, v, None, cluster, tau_prior=HN, rho_prior=B11, **FIT)
    with pytest.warns(RuntimeWarning, match="quadrature stopped at"):
        post = fit_exact(y, v, None, cluster, tau_prior=HN, rho_prior=B11, on_failure="warn", **FIT)
    assert not post.converged and post.log_marginal_likelihood_error > 1e-6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tau_prior": -0.1}, r"'tau_prior' fixed at -0.1: must lie in \[0, inf\)"),
        ({"tau_prior": np.inf}, r"'tau_prior' fixed at inf: must lie in \[0, inf\)"),
        ({"tau_prior": "wide"}, r"'tau_prior' must be a log-density callable or a number"),
        ({"rho_prior": None}, r"'rho_prior' must be a log-density callable or a value in \[0, 1\]"),
        ({"rho_prior": 1.5}, r"'rho_prior' fixed at 1.5"),
        ({"tau_prior": lambda t: 0.0}, r"must be a vectorised log-density"),
        ({"tau_prior": lambda t: np.full_like(t, -np.inf)}, r"has no finite log-density"),
        (
            {"tau_prior": lambda t: np.where(np.abs(t - 1) < 0.5, -np.inf, 0.0)},
            r"must be positive on one interval",
        ),
        ({"vi": -np.ones(20)}, r"'vi' must be finite and > 0; row 1 has -1.0"),
        ({"beta_sd": 0.0}, r"'beta_sd' must be > 0 \(inf: a flat prior\)"),
        ({"on_failure": "ignore"}, r"'on_failure' must be 'raise' or 'warn'"),
        ({"cluster": None, "rho_prior": 0.5}, r"'rho_prior' must be None \(or 0\) without"),
    ],
)
def test_input_errors(change, message):
    y, v, cluster = simulate(20, 5, 0.3, 0.5)
    args = {"yi": y, "vi": v, "X": None, "cluster": cluster, "tau_prior": HN, "rho_prior": B11}
    with pytest.raises(ValueError, match=message):
        fit_exact(**{**args, **FIT, **change})


@pytest.mark.slow  # the child process compiles every kernel in memory: ~10 s
def test_unwritable_numba_cache_does_not_break_import():
    """numba raises at decoration when no cache dir is writable; the engine compiles in memory.

    (Simulated: every cache locator's writability check fails, as with a read-only
    site-packages and HOME.)
    """
    code = (
        "import warnings, numba.core.caching as c\n"
        "def deny(self): raise PermissionError('read-only (simulated)')\n"
        "c._CacheLocator.ensure_cache_path = deny\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    from bambi_meta.engine import exact, _numba\n"
        "post = exact.fit_exact([0.1, 0.3], [0.01, 0.02], beta_mean=0.0, beta_sd=1.0, "
        "tau_prior=exact.HalfNormalPrior(0.5))\n"
        "warned = any('numba cannot cache' in str(x.message) for x in w)\n"
        "print(_numba.CACHE_ENABLED, warned, repr(post.tau.mean))\n"
    )
    want = fit_exact([0.1, 0.3], [0.01, 0.02], beta_mean=0.0, beta_sd=1.0, tau_prior=HN)
    assert run_child(code) == f"False True {want.tau.mean!r}"


# ------------------------------------------------------------------------------ marginal_likelihood


def test_marginal_likelihood_takes_callable_priors():
    from bambi_meta.engine.exact.evidence import log_marginal_likelihood, savage_dickey

    y, v, cluster = simulate(56, 11, 0.3, 0.6)
    base = log_marginal_likelihood(y, v, None, cluster, beta_mean=0.0, beta_sd=1.0, tau_sd=0.5)
    same = log_marginal_likelihood(
        y, v, None, cluster, beta_mean=0.0, beta_sd=1.0, tau_prior=HalfNormalPrior(0.5)
    )
    assert same.value == base.value and same.details["free"] == ["log_tau", "logit_rho"]
    cauchy = stats.halfcauchy(scale=10.0).logpdf
    beta = stats.beta(2, 3).logpdf
    got = log_marginal_likelihood(
        y, v, None, cluster, beta_mean=0.0, beta_sd=1.0, tau_prior=cauchy, rho_prior=beta
    )
    want = fit_exact(y, v, None, cluster, tau_prior=cauchy, rho_prior=BetaPrior(2, 3), **FIT)
    assert got.value == pytest.approx(want.log_marginal_likelihood, abs=1e-9)
    assert got.details["exact"].rho.mean == pytest.approx(want.rho.mean, rel=1e-8)
    sd = savage_dickey(y, v, None, cluster, beta_mean=0.0, beta_sd=1.0, tau_prior=cauchy)
    assert math.isfinite(sd.log_bf01)
    bounded = log_marginal_likelihood(
        y, v, None, None, beta_mean=0.0, beta_sd=1.0, tau_prior=stats.uniform(0, 2).logpdf
    )
    assert bounded.details["free"] == ["logit_tau"]
    with pytest.raises(ValueError, match="'tau_sd' \\(HalfNormal\\) or 'tau_prior'"):
        log_marginal_likelihood(y, v, None, None, beta_mean=0.0, beta_sd=1.0, tau_sd=0.5,
                                tau_prior=cauchy)  # fmt: skip
    with pytest.raises(ValueError, match="'tau_sd' or 'tau_prior' is required"):
        log_marginal_likelihood(y, v, None, None, beta_mean=0.0, beta_sd=1.0)
    with pytest.raises(ValueError, match="'rho_a'/'rho_b' \\(Beta\\) or 'rho_prior'"):
        log_marginal_likelihood(y, v, None, cluster, beta_mean=0.0, beta_sd=1.0, tau_sd=0.5,
                                rho_a=2.0, rho_prior=beta)  # fmt: skip


@pytest.mark.slow  # 10^6 draws, k = 10^5 or a new Python process
def test_marginal_likelihood_at_k_100000_in_10000_clusters():
    """main's quadrature built rows x clusters arrays: MemoryError here. Now O(points + k)."""
    import tracemalloc

    from bambi_meta.engine.exact.evidence import log_marginal_likelihood

    y, v, cluster = simulate(100_000, 10_000, 0.3, 0.5, seed=5)
    tracemalloc.start()
    result = log_marginal_likelihood(y, v, None, cluster, beta_mean=0.0, beta_sd=1.0, tau_sd=0.5)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.details["converged"] and result.error < 1e-9
    assert peak < 100 * 2**20  # bytes: the rows alone are 100,000 x 3 doubles = 2.4 MB
