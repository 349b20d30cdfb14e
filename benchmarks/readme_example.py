"""T1: the README example as a whole process (imports, build, compile, sample, both tables).

Run: ``.venv/bin/python benchmarks/readme_example.py [--repeat N]``. Each configuration is a fresh
Python process (timed from outside, peak memory from wait4); inside, phases are timed with
perf_counter. ``import bambi`` alone is measured too: it is the floor of any whole-process time.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import bulk_ess, markdown, run_child  # noqa: E402

CONFIGURATIONS = {
    "python -c pass": [],
    "import bambi": ["bambi"],
    "import bambi_meta": ["bambi_meta"],
    "README, nutpie on PyTensor's function (MCMC default)": ["fit", "default"],
    "README, PyMC NUTS (inference_method='pymc')": ["fit", "pymc"],
    "README, nutpie's own compile (Bambi's 'nutpie')": ["fit", "bambi-nutpie"],
}


def child(args: list[str]) -> None:
    clock = time.perf_counter
    start = clock()
    if not args:
        print(json.dumps({}))
        return
    if args[0] != "fit":
        __import__(args[0])
        print(json.dumps({"import_s": clock() - start}))
        return
    import bambi_meta as bmm

    phases = {"import_s": clock() - start}
    t = clock()
    data = bmm.load_dataset("dat.konstantopoulos2011")
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", data, measure="SMD")
    model.build()
    phases["build_s"] = clock() - t
    t = clock()
    if args[1] == "default":
        model.compiled_sampler()
        phases["compile_s"] = clock() - t
        t = clock()
        idata = model.fit(random_seed=1, progressbar=False, inference_method="nutpie")
    elif args[1] == "pymc":
        idata = model.fit(random_seed=1, progressbar=False, inference_method="pymc")
    else:  # Bambi's own nutpie path: nutpie.compile_pymc_model (numba) + nutpie.sample
        import bambi as bmb

        idata = bmb.Model.fit(model, random_seed=1, progressbar=False, inference_method="nutpie")
    phases["sample_s"] = clock() - t  # PyMC and Bambi's nutpie: compile + sample
    t = clock()
    bmm.summary(model, idata)
    bmm.summary_heterogeneity(model, idata)
    phases["tables_s"] = clock() - t
    phases["in_process_s"] = clock() - start
    phases.update({f"ESS {k}": v for k, v in bulk_ess(idata).items()})
    print(json.dumps(phases))


def main(repeat: int) -> None:
    rows = []
    for label, args in CONFIGURATIONS.items():
        for _ in range(repeat):
            result = run_child([__file__, "--child", *args])
            rows.append({"configuration": label, **result})
            print(json.dumps(rows[-1]), flush=True)
    columns = [
        "configuration", "process_s", "import_s", "build_s", "compile_s", "sample_s",
        "tables_s", "ESS Intercept", "ESS tau", "ESS rho", "peak_rss_MB",
    ]  # fmt: skip
    print(markdown(rows, columns))
    process = {}
    for row in rows:
        process.setdefault(row["configuration"], []).append(row["process_s"])
    default = min(process["README, nutpie on PyTensor's function (MCMC default)"])
    for label, times in process.items():
        if label.startswith("README"):
            print(f"{label}: {min(times):.1f} s, {min(times) / default:.2f} x the default")


if __name__ == "__main__":
    if "--child" in sys.argv:
        child(sys.argv[sys.argv.index("--child") + 1 :])
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--repeat", type=int, default=2)
        main(parser.parse_args().repeat)
