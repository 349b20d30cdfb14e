"""The exact engine through MetaModel.fit: the README example, scale, log p(y) and many refits.

Run: ``.venv/bin/python benchmarks/exact.py [--repeat N] [--skip-large]``. Every configuration
is a fresh Python process (timed from outside; peak resident memory from wait4); phases inside
are timed with perf_counter. Baselines in the same run: ``import bambi`` (the floor of any
whole-process time), the MCMC default of the last release (nutpie's NUTS, 4 x 1000 draws) and,
where ``Rscript`` with rjags is installed (Debian: r-base-core, jags, r-cran-rjags), the same
model in JAGS set up like RoBMA's (benchmarks/jags_three_level.R). ESS: ArviZ's bulk ESS for
MCMC, coda's effectiveSize for JAGS, the number of draws for the exact engine (independent
draws).
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import bulk_ess, markdown, run_child, simulate  # noqa: E402

HERE = Path(__file__).parent
README = ("dat.konstantopoulos2011", "yi | se(vi) ~ 1 + (1|district)")
SCALE = {20_000: 2_000, 200_000: 20_000, 1_000_000: 100_000}


def child(args: list[str]) -> None:
    clock = time.perf_counter
    start = clock()
    if args[0] == "import-bambi":
        import bambi  # noqa: F401

        print(json.dumps({"import_s": clock() - start}))
        return
    import bambi_meta as bmm

    phases = {}
    if args[0] in ("readme-exact", "readme-nutpie"):
        import bambi  # noqa: F401  (what the README's imports load)

        phases["import_s"] = clock() - start
        t = clock()
        data = bmm.load_dataset(README[0])
        model = bmm.MetaModel(README[1], data, measure="SMD")
        engine = "exact" if args[0] == "readme-exact" else "nutpie"
        idata = model.fit(random_seed=1, progressbar=False, inference_method=engine)
        bmm.summary(model, idata)
        bmm.summary_heterogeneity(model, idata)
        phases["fit_and_tables_s"] = clock() - t
        if engine == "exact":  # a second fit in the same process: caches warm
            t = clock()
            idata = model.fit(random_seed=2)
            bmm.summary(model, idata)
            bmm.summary_heterogeneity(model, idata)
            phases["again_s"] = clock() - t
            phases["min_ess"] = float(
                idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
            )
        else:
            phases["min_ess"] = min(bulk_ess(idata).values())
        print(json.dumps(phases))
        return
    if args[0] == "scale":
        k, n_clusters = int(args[1]), int(args[2])
        data = simulate(k, n_clusters)
        t = clock()
        model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|cluster)", data, measure="SMD")
        phases["model_s"] = clock() - t
        t = clock()
        idata = model.fit(random_seed=1)
        phases["fit_s"] = clock() - t
        phases["nodes"] = "x".join(map(str, idata.posterior.attrs["quadrature_nodes_per_axis"]))
        t = clock()
        lml = bmm.marginal_likelihood(model)
        phases["log_ml_s"] = clock() - t
        phases["log_ml_error"] = lml.error
        print(json.dumps(phases))
        return
    if args[0] == "refits":
        import numpy as np

        n = int(args[1])
        data = bmm.load_dataset(README[0])
        model = bmm.MetaModel(README[1], data, measure="SMD")
        model.fit(draws=10, random_seed=1)  # load the compiled kernels once
        rng = np.random.default_rng(1)
        simulated = data["yi"].to_numpy() + rng.normal(0, 0.05, (n, len(data)))
        t = clock()
        bmm.fit_many(model, effect_sizes=simulated, draws=1000, chains=4, random_seed=1)
        phases["refits_s"] = clock() - t
        print(json.dumps(phases))
        return
    raise ValueError(args)


def jags(csv: Path) -> dict | None:
    """Time the JAGS model as a whole Rscript process (None without R and rjags)."""
    if shutil.which("Rscript") is None:
        return None
    start = time.perf_counter()
    done = subprocess.run(
        ["Rscript", str(HERE / "jags_three_level.R"), str(csv)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - start
    return result


def readme(repeat: int) -> list[dict]:
    rows = []
    for label, args in (
        ("import bambi", ["import-bambi"]),
        ("README, exact engine (default)", ["readme-exact"]),
        ("README, MCMC (nutpie, the previous default)", ["readme-nutpie"]),
    ):
        best = min(
            (run_child([__file__, "--child", *args]) for _ in range(repeat)),
            key=lambda row: row["process_s"],
        )
        rows.append({"configuration": label, **best})
    with tempfile.TemporaryDirectory() as folder:
        import bambi_meta as bmm

        csv = Path(folder) / "data.csv"
        bmm.load_dataset(README[0]).rename(columns={"district": "cluster"}).to_csv(csv)
        results = [jags(csv) for _ in range(repeat)]
    results = [result for result in results if result is not None]
    if results:
        best = min(results, key=lambda row: row["process_s"])
        best["fit_and_tables_s"] = best["sampling_s"]
        best["min_ess"] = min(best["ess_mu"], best["ess_tau"], best["ess_rho"])
        rows.append({"configuration": f"JAGS {best['jags']} (RoBMA-style, 3 x 5000)", **best})
    for row in rows:
        if "min_ess" in row:
            row["ESS/s (process)"] = row["min_ess"] / row["process_s"]
            row["ESS/s (fit)"] = row["min_ess"] / row["fit_and_tables_s"]
    return rows


def main(repeat: int, skip_large: bool) -> None:
    rows = readme(repeat)
    print(
        markdown(
            rows,
            [
                "configuration",
                "process_s",
                "import_s",
                "fit_and_tables_s",
                "again_s",
                "min_ess",
                "ESS/s (process)",
                "ESS/s (fit)",
                "peak_rss_MB",
            ],
        )
    )
    by = {row["configuration"]: row for row in rows}
    exact = by["README, exact engine (default)"]
    mcmc = by["README, MCMC (nutpie, the previous default)"]
    floor = by["import bambi"]["process_s"]
    print(f"\nexact whole process - import bambi: {exact['process_s'] - floor:.2f} s")
    print(
        f"fit + both tables after imports: exact {exact['fit_and_tables_s']:.3f} s (warm "
        f"{exact['again_s']:.3f} s), MCMC {mcmc['fit_and_tables_s']:.2f} s: ratio "
        f"{mcmc['fit_and_tables_s'] / exact['fit_and_tables_s']:.1f}x"
    )
    for row in rows[1:]:
        if row is not exact and "ESS/s (process)" in row:
            print(
                f"ESS/s, whole process, exact / {row['configuration']}: "
                f"{exact['ESS/s (process)'] / row['ESS/s (process)']:.1f}x"
            )
    scale_rows = []
    for k, clusters in SCALE.items():
        if skip_large and k > 200_000:
            continue
        result = run_child([__file__, "--child", "scale", str(k), str(clusters)])
        scale_rows.append({"k": k, "clusters": clusters, **result})
    print()
    print(
        markdown(
            scale_rows,
            [
                "k",
                "clusters",
                "model_s",
                "fit_s",
                "nodes",
                "log_ml_s",
                "log_ml_error",
                "process_s",
                "peak_rss_MB",
            ],
        )
    )
    refits = run_child([__file__, "--child", "refits", "1000"])
    print(
        f"\n1,000 exact refits of the k = 56 model (4 x 1000 draws each, one core): "
        f"{refits['refits_s']:.1f} s"
    )


if __name__ == "__main__":
    if "--child" in sys.argv:
        child(sys.argv[sys.argv.index("--child") + 1 :])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--repeat", type=int, default=3)
        parser.add_argument("--skip-large", action="store_true", help="no k = 10^6")
        arguments = parser.parse_args()
        main(arguments.repeat, arguments.skip_large)
