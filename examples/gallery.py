"""Every figure of bambi_meta on the shipped data sets: the documentation's gallery.

Each figure is drawn by one call, at a journal's full width (7 inches), and saved as a PNG;
docs/gallery.md shows them with the call beside each.

Run: ``python examples/gallery.py [--output DIR]``.
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import bambi_meta as bmm  # noqa: E402

PARAMETERS = ["mu", "tau", "rho", "I2", "I2 [between]", "I2 [within]"]
DATA_SETS = ("dat.konstantopoulos2011", "dat.bcg", "dat.assink2016")


def fits() -> dict:
    """The models the gallery draws, fitted by the exact engine (milliseconds each)."""
    data = {name: bmm.load_dataset(name) for name in DATA_SETS}
    specifications = {
        "school": ("dat.konstantopoulos2011", "yi | se(vi) ~ 1 + (1|district)", "SMD"),
        "bcg": ("dat.bcg", "yi | se(vi) ~ 1", "RR"),
        "bcg_ablat": ("dat.bcg", "yi | se(vi) ~ 1 + ablat", "RR"),
        "bcg_alloc": ("dat.bcg", "yi | se(vi) ~ 1 + alloc", "RR"),
        "assink_deltype": ("dat.assink2016", "yi | se(vi) ~ 1 + deltype + (1|study)", "SMD"),
    }
    out = {}
    for name, (dataset, formula, measure) in specifications.items():
        model = bmm.MetaModel(formula, data[dataset], measure=measure)
        out[name] = model, model.fit(random_seed=1)
    return out


def main(output: Path) -> list[Path]:
    models = fits()
    bcg = bmm.load_dataset("dat.bcg")
    labels = bcg["author"].astype(str) + ", " + bcg["year"].astype(str)  # as metafor's slab
    figures = {
        "gallery_forest_school": lambda: bmm.plot_forest(*models["school"], random_seed=1),
        "gallery_forest_bcg": lambda: bmm.plot_forest(*models["bcg"], labels=labels),
        "gallery_forest_bcg_ablat": lambda: bmm.plot_forest(
            *models["bcg_ablat"], labels=labels, order="ablat"
        ),
        "gallery_orchard_assink": lambda: bmm.plot_orchard(
            *models["assink_deltype"], "deltype", random_seed=1
        ),
        "gallery_orchard_bcg": lambda: bmm.plot_orchard(*models["bcg_alloc"], "alloc"),
        "gallery_funnel_bcg": lambda: bmm.plot_funnel(*models["bcg"], contours=(0.9, 0.95, 0.99)),
        "gallery_funnel_school": lambda: bmm.plot_funnel(*models["school"]),
        "gallery_bubble_bcg": lambda: bmm.plot_bubble(*models["bcg_ablat"], "ablat", random_seed=1),
        "gallery_posterior_school": lambda: posterior_grid(*models["school"]),
    }
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in figures.items():
        figure = draw().figure
        path = output / f"{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(path)
        print(f"Wrote {path}")
    return written


def posterior_grid(model, idata):
    """Prior (dashed) and posterior of the pooled effect and the heterogeneity, in one figure."""
    figure, axes = plt.subplots(2, 3, figsize=(7, 4), layout="constrained")
    for ax, parameter in zip(axes.ravel(), PARAMETERS, strict=True):
        bmm.plot_posterior(model, idata, parameter, prior=True, ax=ax)
    return axes[0, 0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("examples/output"))
    main(parser.parse_args().output)
