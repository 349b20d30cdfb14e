"""School calendars and achievement: a three-level meta-analysis with bambi_meta.

56 standardised mean differences (schools) nested in 11 districts (Konstantopoulos, 2011).
Fits the multilevel random-effects model, prints the summary and heterogeneity tables next to
metafor's REML fit, the shrunken district effects and the prediction interval, and writes
prior-vs-posterior, forest and funnel figures.

Run: ``make example`` (or ``python examples/konstantopoulos.py [--draws N] [--output DIR]``).
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

import bambi_meta as bmm  # noqa: E402

# metafor 3.8-1: rma.mv(yi, vi, random = ~ 1 | district/school, data = dat, method = "REML")
METAFOR_REML = {"mu": 0.1847, "tau": 0.3127, "rho": 0.6653, "I2": 95.19}


def main(draws: int, output: Path) -> None:
    data = bmm.load_dataset("dat.konstantopoulos2011")
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", data, measure="SMD")
    print(model, end="\n\n")
    idata = model.fit(draws=draws, tune=draws, chains=4, random_seed=1, progressbar=False)

    print("Posterior summary")
    print(bmm.summary(model, idata), end="\n\n")
    print("Heterogeneity")
    print(bmm.summary_heterogeneity(model, idata), end="\n\n")
    reml = model.fit_frequentist("REML")
    print("REML fit of the same model (metafor's rma.mv)")
    print(reml, end="\n\n")
    ours = {
        "mu": reml.coefficients.loc["Intercept", "estimate"],
        "tau": reml.tau,
        "rho": reml.rho,
        "I2": reml.I2,
    }
    comparison = pd.DataFrame({"bambi_meta REML": ours, "metafor REML": METAFOR_REML})
    print("bambi_meta REML next to metafor's rma.mv REML")
    print(comparison.to_string(float_format="{:.4f}".format), end="\n\n")

    print("Bayes factors (exact, by quadrature): effect? heterogeneity? a district level?")
    print(bmm.inclusion_bayes_factors(model), end="\n\n")
    print("Shrunken district effects (deviation from the pooled effect)")
    print(bmm.cluster_effects(model, idata, random_seed=1), end="\n\n")
    print("Pooled effect and prediction interval for a new school in a new district")
    print(bmm.prediction_intervals(model, idata, random_seed=1), end="\n\n")

    output.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, parameter in zip(axes, ["mu", "tau", "rho"], strict=True):
        bmm.plot_posterior(model, idata, parameter, prior=True, ax=ax)
    figure.suptitle("dat.konstantopoulos2011: prior (dashed) vs posterior")
    figure.tight_layout()
    _save(figure, output / "konstantopoulos_prior_posterior.png")
    _save(
        bmm.plot_forest(model, idata, random_seed=1).figure, output / "konstantopoulos_forest.png"
    )
    _save(bmm.plot_funnel(model, idata).figure, output / "konstantopoulos_funnel.png")
    numbers = output / "konstantopoulos_numbers.json"
    numbers.write_text(json.dumps(quoted_numbers(model, idata), indent=1))
    print(f"Wrote {numbers}")


def quoted_numbers(model, idata) -> dict[str, str]:
    """The numbers the user guide's prose quotes (docs/guide.md), as this run computed them.

    ``make docs`` turns them into MyST substitutions (``{{ tau_mean }}``), so no number in the
    prose is typed by hand; tests/test_docs_numbers.py checks the names against the pages.
    """
    summary = bmm.summary(model, idata, include_mcmc_diagnostics=False)
    heterogeneity = bmm.summary_heterogeneity(model, idata)["Mean"]
    inclusion = bmm.inclusion_bayes_factors(model).inclusion.set_index("component")
    pooled = bmm.prediction_intervals(model, idata, random_seed=1).iloc[0]
    return {
        "mu_mean": f"{summary.loc['mu', 'Mean']:.2f}",
        "mu_ci": f"{summary.loc['mu', '0.025']:.2f} to {summary.loc['mu', '0.975']:.2f}",
        "tau_mean": f"{heterogeneity['tau']:.2f}",
        "rho_mean": f"{heterogeneity['rho']:.2f}",
        "I2": f"{heterogeneity['I2']:.0f}%",
        "I2_between": f"{heterogeneity['I2 [between]']:.0f}%",
        "I2_within": f"{heterogeneity['I2 [within]']:.0f}%",
        "bf_effect": f"{inclusion.loc['effect', 'inclusion_bf']:.1f}",
        "bf_cluster": f"{inclusion.loc['cluster_level', 'inclusion_bf']:,.0f}",
        "pi": f"{pooled['PI lower']:.2f} to {pooled['PI upper']:.2f}".replace("-", "\u2212"),
    }


def _save(figure, path: Path) -> None:
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    print(f"Wrote {path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--draws", type=int, default=2000, help="draws (and tuning steps) per chain"
    )
    parser.add_argument("--output", type=Path, default=Path("examples/output"))
    arguments = parser.parse_args()
    main(arguments.draws, arguments.output)
