"""T2 and T4: scale in k, time per gradient, ESS/s, peak memory; the naive Bambi model as baseline.

Run: ``.venv/bin/python benchmarks/scale.py [--ks 56 2000 20000 200000] [--naive-ks 56 2000]``.
Every (k, method) is a fresh process; peak resident memory is that process's (wait4).
Simulated data: k estimates in k/10 clusters, mu 0.2, tau 0.3, rho 0.5, vi ~ U[0.005, 0.2].
Methods: ``default`` (``MetaModel.fit(inference_method="nutpie")``: NUTS on the PyTensor-compiled
marginal likelihood with the fused Op, chains one after the other), ``pymc``
(``inference_method="pymc"``, PyMC's NUTS, 2 worker processes), ``bambi-nutpie`` (Bambi's own nutpie
path, i.e. ``nutpie.compile_pymc_model``'s numba compilation) and ``naive`` (the Bambi model a user
writes first: latent ``(1|cluster)`` and ``(1|obs)`` with the known sampling SD as ``sigma ~ 0 +
offset(log(se))``, PyMC's NUTS). The ratio lines compare min ESS/s in the same run.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import bulk_ess, markdown, run_child, simulate  # noqa: E402

DRAWS, TUNE, CHAINS = 1000, 1000, 4


def gradient_seconds(pymc_model, repeats: int = 50) -> float:
    """Seconds per logp + gradient evaluation (PyTensor's default backend, numba)."""
    import pytensor
    import pytensor.tensor as pt

    values = pymc_model.value_vars
    logp = pymc_model.logp()
    function = pytensor.function(values, [logp, *pt.grad(logp, values)])
    start_point = pymc_model.initial_point()
    point = [start_point[value.name] for value in values]
    function(*point)
    start = time.perf_counter()
    for _ in range(repeats):
        function(*point)
    return (time.perf_counter() - start) / repeats


def child(k: int, method: str) -> None:
    clock = time.perf_counter
    import bambi as bmb

    import bambi_meta as bmm

    data = simulate(k, max(k // 10, 1))
    result = {"k": k, "method": method}
    t = clock()
    if method == "naive":
        data["se"] = np.sqrt(data["vi"])
        model = bmb.Model(
            bmb.Formula("yi ~ 1 + (1|cluster) + (1|obs)", "sigma ~ 0 + offset(log(se))"), data
        )
        model.build()
    else:
        model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|cluster)", data, measure="SMD")
        model.build()
    result["build_s"] = clock() - t
    result["grad_ms"] = 1e3 * gradient_seconds(model.backend.model)
    t = clock()
    settings = {"draws": DRAWS, "tune": TUNE, "chains": CHAINS, "random_seed": 1}
    if method == "default":
        model.compiled_sampler()
        result["compile_s"] = clock() - t
        t = clock()
        idata = model.fit(progressbar=False, inference_method="nutpie", **settings)
    elif method == "bambi-nutpie":
        idata = bmb.Model.fit(model, inference_method="nutpie", progressbar=False, **settings)
    elif method == "pymc":
        idata = model.fit(inference_method="pymc", progressbar=False, cores=2, **settings)
    else:
        idata = model.fit(progressbar=False, cores=2, **settings)
    result["sample_s"] = clock() - t  # pymc, naive, bambi-nutpie: include their compilation
    result["fit_s"] = result["sample_s"] + result.get("compile_s", 0.0)
    if method == "naive":
        posterior = idata["posterior"]
        between = posterior["1|cluster_sigma"] ** 2
        tau2 = between + posterior["1|obs_sigma"] ** 2
        posterior = posterior.to_dataset().assign(tau=np.sqrt(tau2), rho=between / tau2)
        idata["posterior"] = posterior
    ess = bulk_ess(idata)
    result.update({f"ESS {name}": value for name, value in ess.items()})
    result["min ESS/s"] = min(ess.values()) / result["fit_s"]
    print(json.dumps(result))


def main(ks, pymc_ks, bambi_nutpie_ks, naive_ks) -> None:
    rows = []
    jobs = [(k, "default") for k in ks] + [(k, "pymc") for k in pymc_ks]
    jobs += [(k, "bambi-nutpie") for k in bambi_nutpie_ks] + [(k, "naive") for k in naive_ks]
    for k, method in jobs:
        rows.append(run_child([__file__, "--child", str(k), method]))
        print(json.dumps(rows[-1]), flush=True)
    columns = [
        "k", "method", "process_s", "build_s", "grad_ms", "compile_s", "sample_s", "fit_s",
        "ESS Intercept", "ESS tau", "ESS rho", "min ESS/s", "peak_rss_MB",
    ]  # fmt: skip
    print(markdown(rows, columns))
    by_key = {(row["k"], row["method"]): row for row in rows}
    for baseline in ("naive", "pymc", "bambi-nutpie"):
        for k in ks:
            if (k, baseline) in by_key:
                ratio = by_key[(k, "default")]["min ESS/s"] / by_key[(k, baseline)]["min ESS/s"]
                print(f"k = {k}: min ESS/s of the default / {baseline} = {ratio:.1f}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        position = sys.argv.index("--child")
        child(int(sys.argv[position + 1]), sys.argv[position + 2])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--ks", type=int, nargs="+", default=[56, 2000, 20000, 200000])
        parser.add_argument("--pymc-ks", type=int, nargs="+", default=[56, 2000, 20000])
        parser.add_argument("--bambi-nutpie-ks", type=int, nargs="+", default=[56, 20000])
        parser.add_argument("--naive-ks", type=int, nargs="+", default=[56, 2000])
        arguments = parser.parse_args()
        main(arguments.ks, arguments.pymc_ks, arguments.bambi_nutpie_ks, arguments.naive_ks)
