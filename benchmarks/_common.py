"""Helpers shared by the benchmark scripts: simulated data, child processes, peak memory."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd

# The simulation of issue 6: mu 0.2, tau 0.3, rho 0.5, vi uniform in [0.005, 0.2].
MU, TAU, RHO = 0.2, 0.3, 0.5


def simulate(k: int, n_clusters: int, seed: int = 20261122) -> pd.DataFrame:
    """k estimates in n_clusters equal-sized clusters from the three-level model."""
    rng = np.random.default_rng(seed)
    cluster = np.arange(k) % n_clusters
    vi = rng.uniform(0.005, 0.2, k)
    u = rng.normal(0.0, TAU * np.sqrt(RHO), n_clusters)[cluster]
    e = rng.normal(0.0, TAU * np.sqrt(1 - RHO), k)
    yi = MU + u + e + rng.normal(0.0, np.sqrt(vi))
    return pd.DataFrame({"yi": yi, "vi": vi, "cluster": cluster, "obs": np.arange(k)})


def run_child(args: list[str]) -> dict:
    """Run ``python <args>`` as a fresh process; its last stdout line is JSON.

    Adds the whole-process wall time and the child's peak resident memory (wait4 rusage).
    """
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{args} failed with status {status}:\n{out}")
    result = json.loads(out.strip().splitlines()[-1])
    result["process_s"] = wall
    result["peak_rss_MB"] = usage.ru_maxrss / 1024
    return result


def bulk_ess(idata, names=("Intercept", "tau", "rho")) -> dict:
    """Bulk ESS (ArviZ) of the named posterior variables."""
    import arviz as az

    ess = az.ess(idata["posterior"].to_dataset(), var_names=list(names), method="bulk")
    return {name: float(ess[name].values) for name in names}


def markdown(rows: list[dict], columns: list[str]) -> str:
    """A markdown table of ``rows`` (floats to 3 significant digits)."""

    def cell(value):
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
