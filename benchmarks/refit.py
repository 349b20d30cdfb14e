"""T3: 100 refits of the k = 56 school model on simulated effect sizes, without recompiling.

Run: ``.venv/bin/python benchmarks/refit.py [--refits 100]``. One process: compile once
(``model.refitter()``), then refit to effect sizes drawn from the fitted model's posterior mean
(a simulation study), timing compile and refits separately, with the default refitter (nutpie
on the PyTensor function) and ``sampler="nutpie-numba"`` (nutpie's own numba compile). For
comparison, a few refits with the PyMC refitter and a few rebuild-and-fit rounds (what a loop
over ``MetaModel(...).fit()`` costs).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import bulk_ess, markdown  # noqa: E402


def main(refits: int, others: int) -> None:
    import bambi_meta as bmm

    clock = time.perf_counter
    data = bmm.load_dataset("dat.konstantopoulos2011")
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", data, measure="SMD")
    codes = np.unique(data["district"], return_inverse=True)[1]
    rng = np.random.default_rng(1)

    def simulated():
        u = rng.normal(0, 0.32 * np.sqrt(0.63), codes.max() + 1)[codes]
        e = rng.normal(0, 0.32 * np.sqrt(0.37), len(codes))
        return 0.18 + u + e + rng.normal(0, np.sqrt(data["vi"].to_numpy()))

    rows = []
    plan = (("nutpie", refits, 300), ("nutpie-numba", refits, 300), ("pymc", others, 1000))
    for sampler, n, tune in plan:
        t = clock()
        refitter = model.refitter(sampler)
        compile_s = clock() - t
        t = clock()
        ess = []
        for i in range(n):
            idata = refitter.fit(effect_sizes=simulated(), tune=tune, random_seed=i)
            ess.append(min(bulk_ess(idata).values()))
        refit_s = clock() - t
        rows.append(
            {"method": f"{sampler} refitter (tune {tune})", "refits": n, "compile_s": compile_s,
             "refits_s": refit_s, "per_refit_s": refit_s / n, "total_s": compile_s + refit_s,
             "min ESS (median over refits)": float(np.median(ess))}
        )  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    t = clock()
    for i in range(others):
        fresh = bmm.MetaModel(
            "yi | se(vi) ~ 1 + (1|district)", data.assign(yi=simulated()), measure="SMD"
        )
        fresh.fit(random_seed=i, progressbar=False, inference_method="nutpie")
    rebuild_s = clock() - t
    rows.append(
        {"method": "rebuild + MetaModel.fit", "refits": others, "refits_s": rebuild_s,
         "per_refit_s": rebuild_s / others}
    )  # fmt: skip
    columns = ["method", "refits", "compile_s", "refits_s", "per_refit_s", "total_s",
               "min ESS (median over refits)"]  # fmt: skip
    print(markdown(rows, columns))
    for row in rows[:2]:
        total = row["compile_s"] + 100 * row["per_refit_s"]
        print(f"100 refits, {row['method']}: {total:.1f} s including the compile")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refits", type=int, default=100)
    parser.add_argument("--others", type=int, default=3)
    arguments = parser.parse_args()
    main(arguments.refits, arguments.others)
