"""Prior sensitivity: how much do tau and rho depend on the heterogeneity prior?

Refits the school-calendar model (dat.konstantopoulos2011) under the measure-based default
tau ~ HalfNormal(UISD/4), a wider HalfNormal(1) and a heavy-tailed HalfCauchy(0.5), and prints
the posterior of mu, tau and rho side by side, plus a figure of the three tau posteriors.

Run: ``python examples/prior_sensitivity.py [--draws N] [--output DIR]``.
"""

import argparse
import json
from pathlib import Path

import bambi as bmb
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import bambi_meta as bmm  # noqa: E402

TAU_PRIORS = {
    "default HalfNormal(UISD/4 = 0.354)": None,
    "HalfNormal(1)": bmb.Prior("HalfNormal", sigma=1.0),
    "HalfCauchy(0.5)": bmb.Prior("HalfCauchy", beta=0.5),
}


def main(draws: int, output: Path) -> pd.DataFrame:
    data = bmm.load_dataset("dat.konstantopoulos2011")
    rows = {}
    output.mkdir(parents=True, exist_ok=True)
    figure, ax = plt.subplots(figsize=(5.5, 3.4))
    for label, prior in TAU_PRIORS.items():
        priors = None if prior is None else {"tau": prior}
        model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", data, measure="SMD", priors=priors)
        idata = model.fit(draws=draws, tune=draws, random_seed=1, progressbar=False)
        table = bmm.summary(model, idata, include_mcmc_diagnostics=False)
        for parameter in ["mu", "tau", "rho"]:
            mean, low, high = table.loc[parameter, ["Mean", "0.025", "0.975"]]
            rows[(label, parameter)] = {"Mean": mean, "0.025": low, "0.975": high}
        tau = idata.posterior["tau"].to_numpy().ravel()
        ax.hist(tau, bins=60, density=True, histtype="step", label=label)
    ax.set_xlabel("tau")
    ax.set_ylabel("posterior density")
    ax.legend(fontsize=7, frameon=False)
    path = output / "prior_sensitivity_tau.png"
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    result = pd.DataFrame.from_dict(rows, orient="index")
    result.index = result.index.set_names(["tau prior", "parameter"])
    print("Posterior of mu, tau and rho under three tau priors (dat.konstantopoulos2011)")
    print(result.to_string(float_format="{:.3f}".format))
    print(f"Wrote {path}")
    tau_means = result.xs("tau", level="parameter")["Mean"]
    # quoted by docs/priors.md (a MyST substitution, see examples/konstantopoulos.py)
    numbers = {"tau_prior_shift": f"{tau_means.max() - tau_means.min():.2f}"}
    (output / "prior_sensitivity_numbers.json").write_text(json.dumps(numbers, indent=1))
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--draws", type=int, default=1000, help="draws (and tuning steps) per chain"
    )
    parser.add_argument("--output", type=Path, default=Path("examples/output"))
    arguments = parser.parse_args()
    main(arguments.draws, arguments.output)
