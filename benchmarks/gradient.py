"""Time per log-density + gradient evaluation: the fused Op against the plain PyTensor graph.

Run: ``.venv/bin/python benchmarks/gradient.py [--ks 56 2000 20000 200000]``. One process; for
each k (k/10 clusters, issue 6's simulation) both functions are compiled with PyTensor's default
(numba) backend from the same inputs and timed alternately, so the ratio is measured under the same
machine load. The plain graph is ``bambi_meta.engine.likelihood.clustered_logp`` differentiated by
PyTensor (what the model used before the fused Op); "ns/row" shows whether the cost is linear in k.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import markdown, simulate  # noqa: E402


def functions(k: int, scalar: bool):
    """(plain, fused) compiled functions of (mu, tau, rho) -> (logp, gradients), and inputs."""
    import pytensor
    import pytensor.tensor as pt

    from bambi_meta.engine.fused import clustered_logp_op
    from bambi_meta.engine.likelihood import clustered_logp

    data = simulate(k, max(k // 10, 1))
    clusters = data["cluster"].to_numpy().astype("int64")
    arrays = (
        data["vi"].to_numpy(),
        clusters,
        np.bincount(clusters).astype(float),
        np.ones(k),
    )
    y = data["yi"].to_numpy()
    mu = pt.dscalar("mu")
    tau, rho = (pt.dscalar(n) if scalar else pt.dvector(n) for n in ("tau", "rho"))
    plain = clustered_logp(y, mu, tau, rho, *arrays)
    fused = clustered_logp_op(y, mu, tau, rho, *arrays)[0]
    compiled = [
        pytensor.function([mu, tau, rho], [out, *pytensor.grad(out, [mu, tau, rho])])
        for out in (plain, fused)
    ]
    point = (np.array(0.2), *(np.full(() if scalar else k, v) for v in (0.3, 0.5)))
    return compiled, point


def seconds_per_call(function, point, budget: float = 1.0) -> float:
    function(*point)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < budget:
        function(*point)
        calls += 1
    return (time.perf_counter() - start) / calls


def main(ks: list[int]) -> None:
    rows = []
    for scalar in (True, False):
        for k in ks:
            (plain, fused), point = functions(k, scalar)
            np.testing.assert_allclose(plain(*point)[0], fused(*point)[0], rtol=1e-10)
            times = {"plain": 0.0, "fused": 0.0}
            for _ in range(3):  # alternate, so both see the same machine load
                times["plain"] += seconds_per_call(plain, point) / 3
                times["fused"] += seconds_per_call(fused, point) / 3
            rows.append(
                {"tau, rho": "scalars" if scalar else "per row (scale formulas)", "k": k,
                 "plain ms": 1e3 * times["plain"], "fused ms": 1e3 * times["fused"],
                 "fused ns/row": 1e9 * times["fused"] / k,
                 "speed-up": times["plain"] / times["fused"]}
            )  # fmt: skip
            print(rows[-1], flush=True)
    print(markdown(rows, list(rows[0])))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[56, 2000, 20000, 200000])
    main(parser.parse_args().ks)
