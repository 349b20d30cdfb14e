"""The exact engine (bambi_meta.engine.exact): fit + draws at k = 56 ... 10^6, log p(y), refits.

Run: ``.venv/bin/python benchmarks/exact_kernel.py [--skip-million] [--old-k 2000]``.
Every configuration is a fresh process (peak resident memory from wait4; tracemalloc's peak of
numpy allocations too). The first round runs with an empty numba cache (``NUMBA_CACHE_DIR`` set
to a new temporary directory: every kernel compiles), the second with the cache warm. Inside a
process, ``first`` is the first fit + draws (numba loads its cached kernels then) and ``warm``
the median of the next repeats. Simulated data as in benchmarks/_common.py: k estimates in
k/10 clusters, mu 0.2, tau 0.3, rho 0.5, vi ~ U[0.005, 0.2]; priors: the SMD defaults.

The engine imports nothing of Bambi; the child processes load it without running
``bambi_meta/__init__.py`` (which imports Bambi: ~4 s and ~200 MB), so that import time and
memory are the engine's. ``lml`` also times the quadrature this engine replaced (``git show
2fadaee:bambi_meta/marginal_likelihood.py``, dense rows x clusters arrays) at ``--old-k``.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import types
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown, run_child, simulate  # noqa: E402

SD_MU, SD_TAU = 2**-0.5, 2**-0.5 / 2  # SMD: N(0, UISD/2), HalfNormal(UISD/4), UISD = sqrt(2)
DRAWS = 4000


def _engine():
    """Import the engine without bambi_meta/__init__.py (see the module docstring)."""
    if "bambi_meta" not in sys.modules:
        package = types.ModuleType("bambi_meta")
        package.__path__ = [str(ROOT / "bambi_meta")]
        sys.modules["bambi_meta"] = package
    from bambi_meta.engine import exact

    return exact


def _data(config: str):
    import numpy as np
    import pandas as pd

    if config in ("readme", "refits"):
        df = pd.read_csv(ROOT / "bambi_meta" / "data" / "dat.konstantopoulos2011.csv")
        return df.yi.to_numpy(), df.vi.to_numpy(), df.district.to_numpy()
    k = int(config[1:])
    df = simulate(k, k // 10)
    return df.yi.to_numpy(), df.vi.to_numpy(), df.cluster.to_numpy(np.int64)


def _fit_and_draw(exact, y, v, cluster, seed=1, draws=DRAWS):
    import numpy as np

    clock = time.perf_counter
    start = clock()
    post = exact.fit_exact(
        y,
        v,
        None,
        cluster,
        beta_mean=0.0,
        beta_sd=SD_MU,
        tau_prior=exact.HalfNormalPrior(SD_TAU),
        rho_prior=exact.BetaPrior(1.0, 1.0),
    )
    middle = clock()
    sample = post.sample(draws, np.random.default_rng(seed)) if draws else None
    return post, sample, middle - start, clock() - middle


def child_fit(config: str, repeats: int) -> dict:
    """Fit + 4,000 draws: the first call, then the median of ``repeats`` more."""
    clock = time.perf_counter
    start = clock()
    exact = _engine()
    import_s = clock() - start
    y, v, cluster = _data(config)
    tracemalloc.start()
    post, draws, fit_s, draw_s = _fit_and_draw(exact, y, v, cluster)
    peak_traced = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    first = fit_s + draw_s
    warm = [_fit_and_draw(exact, y, v, cluster, seed=i + 2)[2:] for i in range(repeats)]
    out = {
        "config": config,
        "k": len(y),
        "import_s": import_s,
        "first_s": first,
        "nodes": "x".join(map(str, post.nodes_per_axis)),
        "evaluations": post.n_evaluations,
        "tau": f"{post.tau.mean:.4f} ({post.tau.sd:.4f})",
        "rho": f"{post.rho.mean:.4f} ({post.rho.sd:.4f})",
        "lml_error": post.log_marginal_likelihood_error,
        "traced_MB": peak_traced,
    }
    if warm:
        out["fit_s"] = statistics.median(w[0] for w in warm)
        out["draws_s"] = statistics.median(w[1] for w in warm)
        out["warm_s"] = out["fit_s"] + out["draws_s"]
    else:
        out.update(fit_s=fit_s, draws_s=draw_s)
    return out


def child_refits(n: int) -> dict:
    """n refits of the k = 56 model to simulated effect sizes (benchmarks/refit.py's design)."""
    import numpy as np

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    exact = _engine()
    y, v, district = _data("refits")
    codes = np.unique(district, return_inverse=True)[1]
    rng = np.random.default_rng(1)

    def simulated():
        u = rng.normal(0, 0.32 * np.sqrt(0.63), codes.max() + 1)[codes]
        e = rng.normal(0, 0.32 * np.sqrt(0.37), len(codes))
        return 0.18 + u + e + rng.normal(0, np.sqrt(v))

    _fit_and_draw(exact, y, v, district)  # load the cached kernels
    sets = [simulated() for _ in range(n)]
    out = {"config": "refits", "k": len(y), "refits": n}
    for label, draws in (("fit_only", 0), ("fit_and_4000_draws", DRAWS)):
        start = time.perf_counter()
        for i, yi in enumerate(sets):
            _fit_and_draw(exact, yi, v, district, seed=i, draws=draws)
        out[f"{label}_s"] = time.perf_counter() - start
    return out


OLD = "2fadaee:bambi_meta/marginal_likelihood.py"  # the last version before the exact engine


def _old_module():
    """The old marginal_likelihood.py (dense rows x clusters arrays), as a module."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", OLD],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    old = types.ModuleType("old_marginal_likelihood")
    sys.modules[old.__name__] = old  # dataclasses look their module up
    exec(compile(source, OLD, "exec"), old.__dict__)
    return old


def child_lml(k: int, implementation: str) -> dict:
    """Log marginal likelihood at k (k/10 clusters): the engine's or the old quadrature."""
    df = simulate(k, k // 10)
    args = (df.yi.to_numpy(), df.vi.to_numpy(), None, df.cluster.to_numpy())
    kw = {"beta_mean": 0.0, "beta_sd": SD_MU, "tau_sd": SD_TAU}
    if implementation == "new":
        _engine()
        from bambi_meta.stats import marginal_likelihood as module

        module.log_marginal_likelihood(*(a[:50] if a is not None else a for a in args), **kw)
    else:
        module = _old_module()
    start = time.perf_counter()
    result = module.log_marginal_likelihood(*args, **kw)
    return {
        "config": f"lml {implementation}",
        "k": k,
        "lml_s": time.perf_counter() - start,
        "value": result.value,
        "error": result.error,
        "nodes": result.n_points,
    }


def child(argv: list[str]) -> None:
    kind = argv[0]
    if kind == "fit":
        result = child_fit(argv[1], int(argv[2]))
    elif kind == "refits":
        result = child_refits(int(argv[1]))
    else:
        result = child_lml(int(argv[1]), argv[2])
    result["maxrss_self_MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)


def main(skip_million: bool, old_k: int, refits: int) -> None:
    script = str(Path(__file__).resolve())
    configs = [("readme", 20), ("k20000", 5), ("k200000", 2)]
    if not skip_million:
        configs.append(("k1000000", 1))
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["NUMBA_CACHE_DIR"] = cache  # the children inherit it: empty, then warm
        for label in ("cold numba cache", "warm numba cache"):
            for config, repeats in configs:
                if label.startswith("cold") and config != "readme":
                    continue
                row = run_child([script, "--child", "fit", config, str(repeats)])
                rows.append({"cache": label, **row})
                print(json.dumps(rows[-1]), flush=True)
        lml = [run_child([script, "--child", "lml", str(k), "new"]) for k in (old_k, 20_000)]
        lml.append(run_child([script, "--child", "lml", str(old_k), "old"]))
        for row in lml:
            print(json.dumps(row), flush=True)
        refit = run_child([script, "--child", "refits", str(refits)])
        print(json.dumps(refit), flush=True)
    columns = ["cache", "config", "k", "nodes", "evaluations", "import_s", "first_s", "fit_s"]
    columns += ["draws_s", "warm_s", "process_s", "peak_rss_MB", "traced_MB", "tau", "rho"]
    print("\n## Fit + 4,000 exact draws\n\n" + markdown(rows, columns))
    print("\n## Log marginal likelihood\n\n" + markdown(lml, ["config", "k", "nodes", "lml_s",
          "value", "error", "peak_rss_MB"]))  # fmt: skip
    ratio = lml[2]["lml_s"] / lml[0]["lml_s"]
    print(f"\nAt k = {old_k}: the old quadrature takes {ratio:.0f}x as long as the engine's.")
    print("\n## Refits (one core)\n\n" + markdown([refit], ["k", "refits", "fit_only_s",
          "fit_and_4000_draws_s", "peak_rss_MB"]))  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument("--old-k", type=int, default=2000)
    parser.add_argument("--refits", type=int, default=1000)
    args = parser.parse_args()
    if args.child:
        child(args.child)
    else:
        main(args.skip_million, args.old_k, args.refits)
