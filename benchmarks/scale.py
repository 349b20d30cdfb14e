"""T2 and T4: scale in k, time per gradient, ESS/s, peak memory; the naive Bambi model as baseline.

Run: ``.venv/bin/python benchmarks/scale.py [--ks 56 2000 20000 200000] [--naive-ks 56 2000]``.
Every (k, method) is a fresh process; peak resident memory is that process's (wait4).
Simulated data: k estimates in k/10 clusters, mu 0.2, tau 0.3, rho 0.5, vi ~ U[0.005, 0.2].
Methods: ``nutpie`` (Refitter: numba-compiled marginal likelihood, nutpie's NUTS),
``pymc`` (``MetaModel.fit()``: C-compiled marginal likelihood, PyMC's NUTS) and ``naive``
(the Bambi model a user writes first: latent ``(1|cluster)`` and ``(1|obs)`` with the known
sampling SD as ``sigma ~ 0 + offset(log(se))``, PyMC's NUTS).
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
    """Seconds per logp + gradient evaluation (PyTensor's default C backend)."""
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
    if method == "nutpie":
        refitter = model.refitter("nutpie")
        result["compile_s"] = clock() - t
        t = clock()
        idata = refitter.fit(draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=1)
    else:
        idata = model.fit(
            draws=DRAWS, tune=TUNE, chains=CHAINS, random_seed=1, progressbar=False, cores=2
        )
    result["sample_s"] = clock() - t  # PyMC: includes compiling logp/dlogp (~1-2 s)
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


def main(ks: list[int], pymc_ks: list[int], naive_ks: list[int]) -> None:
    rows = []
    jobs = [(k, "nutpie") for k in ks] + [(k, "pymc") for k in pymc_ks]
    jobs += [(k, "naive") for k in naive_ks]
    for k, method in jobs:
        rows.append(run_child([__file__, "--child", str(k), method]))
        print(json.dumps(rows[-1]), flush=True)
    columns = [
        "k", "method", "process_s", "build_s", "grad_ms", "compile_s", "sample_s", "fit_s",
        "ESS Intercept", "ESS tau", "ESS rho", "min ESS/s", "peak_rss_MB",
    ]  # fmt: skip
    print(markdown(rows, columns))
    by_key = {(row["k"], row["method"]): row for row in rows}
    for k in naive_ks:
        for method in ("nutpie", "pymc"):
            if (k, method) in by_key:
                ratio = by_key[(k, method)]["min ESS/s"] / by_key[(k, "naive")]["min ESS/s"]
                print(f"k = {k}: min ESS/s of {method} marginal / naive latent Bambi = {ratio:.1f}")


if __name__ == "__main__":
    if "--child" in sys.argv:
        position = sys.argv.index("--child")
        child(int(sys.argv[position + 1]), sys.argv[position + 2])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--ks", type=int, nargs="+", default=[56, 2000, 20000, 200000])
        parser.add_argument("--pymc-ks", type=int, nargs="+", default=[56, 2000, 20000])
        parser.add_argument("--naive-ks", type=int, nargs="+", default=[56, 2000])
        arguments = parser.parse_args()
        main(arguments.ks, arguments.pymc_ks, arguments.naive_ks)
