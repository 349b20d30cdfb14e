"""Meta-regression and a location-scale model with bambi_meta.

1. BCG vaccine trials (Colditz et al., 1994): does the log risk ratio depend on the absolute
   latitude of the trial? A random-effects meta-regression with a bubble plot.
2. Juvenile delinquency (Assink & Wibbelink, 2016; 100 estimates in 17 studies): the pooled
   effect and the heterogeneity both depend on the (centred) publication year, ``tau ~ year``.

Run: ``python examples/metaregression.py [--draws N] [--output DIR]``.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import bambi as bmb  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import bambi_meta as bmm  # noqa: E402


def main(draws: int, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    fit = {"draws": draws, "tune": draws, "random_seed": 1, "progressbar": False}

    # 1. Meta-regression: log risk ratio against absolute latitude
    bcg = bmm.load_dataset("dat.bcg")
    model = bmm.MetaModel("yi | se(vi) ~ 1 + ablat", bcg, measure="RR")
    print(model, end="\n\n")
    # target_accept 0.95: with 13 trials tau reaches 0, where the default step size diverges
    idata = model.fit(target_accept=0.95, **fit)
    print(bmm.summary(model, idata), end="\n\n")
    print("Residual heterogeneity")
    print(bmm.summary_heterogeneity(model, idata), end="\n\n")
    ax = bmm.plot_bubble(model, idata, "ablat", random_seed=1)
    ax.set_xlabel("absolute latitude (degrees)")
    ax.figure.tight_layout()
    ax.figure.savefig(output / "bcg_bubble.png", dpi=120)
    plt.close(ax.figure)

    # 2. Location-scale: the heterogeneity itself depends on the publication year
    assink = bmm.load_dataset("dat.assink2016")
    formula = bmb.Formula("yi | se(vi) ~ 1 + year + (1|study)", "tau ~ year")
    model = bmm.MetaModel(formula, assink, measure="SMD")
    print(model, end="\n\n")
    idata = model.fit(**fit)
    at = pd.DataFrame({"year": [-10.0, 0.0, 5.0]})
    print(bmm.summary(model, idata), end="\n\n")
    print("Heterogeneity, averaged over the estimates")
    print(bmm.summary_heterogeneity(model, idata), end="\n\n")
    print("Heterogeneity at given years (year is centred in the data set)")
    print(bmm.heterogeneity_at(model, idata, at), end="\n\n")

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bmm.plot_bubble(model, idata, "year", ax=left, random_seed=1)
    left.set_title("pooled effect (the prediction interval follows tau)")
    years = pd.DataFrame({"year": np.linspace(assink["year"].min(), assink["year"].max(), 40)})
    tau = bmm.heterogeneity_at(model, idata, years).xs("tau", level="quantity")
    right.fill_between(years["year"], tau["0.025"], tau["0.975"], color="C1", alpha=0.3)
    right.plot(years["year"], tau["0.5"], color="C1", label="tau (median, 95% interval)")
    right.set_xlabel("year")
    right.set_ylabel("tau")
    right.set_ylim(bottom=0)
    right.legend(frameon=False)
    right.set_title("heterogeneity: tau ~ year")
    figure.tight_layout()
    figure.savefig(output / "assink_location_scale.png", dpi=120)
    plt.close(figure)
    print(f"Wrote {output / 'bcg_bubble.png'} and {output / 'assink_location_scale.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2000, help="draws per chain")
    parser.add_argument("--output", type=Path, default=Path("examples/output"))
    arguments = parser.parse_args()
    main(arguments.draws, arguments.output)
