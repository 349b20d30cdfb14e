"""plot_bubble: estimates against a moderator (area ~ 1/SE), with the fitted regression."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from figure_checks import assert_legend_clear_of_points

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


@pytest.mark.parametrize("width", [3.5, 7.0])
def test_bubble_axis_null_line_and_legend_outside(bcg_ablat_fit, width):
    model, idata = bcg_ablat_fit
    _, ax = plt.subplots(figsize=(width, 0.8 * width))
    assert bmm.plot_bubble(model, idata, "ablat", ax=ax, random_seed=1) is ax
    # the measure on the axis, ratios at round values of the log scale (metafor's transf = exp)
    assert ax.get_ylabel() == "Risk ratio (log scale)" and ax.get_xlabel() == "ablat"
    ax.figure.canvas.draw()
    ticks = zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)
    labels = {text.get_text(): tick for text, tick in ticks}
    assert labels["1"] == 0.0 and labels["0.5"] == pytest.approx(np.log(0.5))
    (null,) = [line for line in ax.get_lines() if line.get_gid() == "null"]
    assert set(null.get_ydata()) == {0.0}  # horizontal, at no effect
    assert [text.get_text() for text in ax.get_legend().get_texts()] == [
        "estimates (area ∝ 1/SE)",
        "95% credible interval",
        "pooled effect",
        "95% prediction interval",
    ]
    assert_legend_clear_of_points(ax, ax.collections[0])
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= 0 and legend.x1 <= ax.figure.bbox.width  # not cut off at 3.5 in
    assert legend.y1 < ax.get_window_extent().y0  # under the axes
    plt.close(ax.figure)
    plain = bmm.plot_bubble(model, idata, "ablat", transform=None, random_seed=1)
    assert plain.get_ylabel() == "Log risk ratio (RR)"
    plt.close(plain.figure)
