"""plot_bubble: estimates against a moderator (area ~ 1/SE), with the fitted regression."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

import bambi_meta as bmm

matplotlib.use("Agg")


def test_bubble_plot(bcg_ablat_fit):
    model, idata = bcg_ablat_fit
    ax = bmm.plot_bubble(model, idata, "ablat", random_seed=1)
    points = ax.collections[0]
    np.testing.assert_allclose(points.get_offsets()[:, 0], model.data["ablat"])
    np.testing.assert_allclose(points.get_offsets()[:, 1], model.data["yi"])
    # marker area proportional to 1/SE: area * SE is the same for every point
    area_times_se = points.get_sizes() * np.sqrt(model.data["vi"].to_numpy())
    np.testing.assert_allclose(area_times_se, area_times_se[0])
    line = next(line for line in ax.lines if line.get_label() == "pooled effect")
    x, y = line.get_data()
    coefficients = bmm.coefficient_draws(model, idata.posterior)["mu"]
    pooled = coefficients["Intercept"][..., None] + coefficients["ablat"][..., None] * x
    np.testing.assert_allclose(y, pooled.mean(axis=(0, 1)), rtol=1e-10)
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="'year' is not a moderator of the location formula"):
        bmm.plot_bubble(model, idata, "year")
