"""plot_funnel: each estimate at (yi, SE), SE growing downwards; significance contours."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from figure_checks import assert_legend_clear_of_points
from scipy.stats import norm

import bambi_meta as bmm

matplotlib.use("Agg")


def points_of(ax, k: int):
    (points,) = [c for c in ax.collections if c.get_offsets().shape == (k, 2)]
    return points


def legend_texts(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def assert_points_clear_of_the_frame(ax, offsets) -> None:
    """Every point strictly inside both axis ranges, at least 2% of the range from the frame."""
    for values, limits in ((offsets[:, 0], ax.get_xlim()), (offsets[:, 1], ax.get_ylim())):
        low, high = sorted(limits)
        margin = 0.02 * (high - low)
        assert np.all(values > low + margin) and np.all(values < high - margin)


def test_funnel_points_region_and_axes(konstantopoulos_fit, konstantopoulos):
    model, idata = konstantopoulos_fit
    k = len(konstantopoulos)
    ax = bmm.plot_funnel(model, idata)
    points = points_of(ax, k)
    np.testing.assert_allclose(points.get_offsets()[:, 0], konstantopoulos["yi"])
    np.testing.assert_allclose(points.get_offsets()[:, 1], np.sqrt(konstantopoulos["vi"]))
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # standard error grows downwards
    assert ax.get_ylabel() == "Standard error"
    assert ax.get_xlabel() == "Standardised mean difference (SMD)"
    assert legend_texts(ax) == [
        "estimates",
        "95% model-implied region",
        "mean ± 1.96·SE",
        "pooled mean",
    ]
    (null,) = [line for line in ax.get_lines() if line.get_gid() == "null"]
    assert set(null.get_xdata()) == {0.0}
    assert not [line for line in ax.get_lines() if (line.get_gid() or "").startswith("contour")]
    assert_points_clear_of_the_frame(ax, points.get_offsets())
    assert_legend_clear_of_points(ax, points)
    plt.close(ax.figure)


def test_contour_enhanced_funnel_on_a_ratio_measure(bcg_fit):
    model, idata = bcg_fit
    k = model.n_estimates
    _, ax = plt.subplots(figsize=(3.5, 3.4))
    assert bmm.plot_funnel(model, idata, contours=(0.99, 0.90, 0.95), ax=ax) is ax
    # each contour: |yi| = z_(1 - alpha/2) * SE around the null 0 (two-sided p = alpha)
    for level in (0.90, 0.95, 0.99):
        lines = [line for line in ax.get_lines() if line.get_gid() == f"contour {level:g}"]
        assert len(lines) == 2
        for line in lines:
            x, se = (np.asarray(values) for values in line.get_data())
            positive = se > 0
            np.testing.assert_allclose(
                np.abs(x[positive]) / se[positive], norm.ppf(0.5 + level / 2)
            )
        assert {np.sign(line.get_xdata()[-1]) for line in lines} == {-1.0, 1.0}
    assert legend_texts(ax) == [
        "p > 0.10",
        "0.05 < p ≤ 0.10",
        "0.01 < p ≤ 0.05",
        "p ≤ 0.01",
        "estimates",
        "pooled mean",
    ]
    # more significant regions are darker (white where p > 0.10)
    shades = [patch.get_facecolor()[0] for patch in ax.get_legend().get_patches()[:4]]
    assert shades[0] == 1.0 and np.all(np.diff(shades) < 0)
    # metafor's funnel: the measure on the axis, ratios at round values (log scale), null at 0
    assert ax.get_xlabel() == "Risk ratio (log scale)"
    ax.figure.canvas.draw()
    ticks = zip(ax.get_xticklabels(), ax.get_xticks(), strict=True)
    labels = {text.get_text(): tick for text, tick in ticks}
    assert labels["1"] == 0.0 and labels["0.5"] == pytest.approx(np.log(0.5))
    (null,) = [line for line in ax.get_lines() if line.get_gid() == "null"]
    assert set(null.get_xdata()) == {0.0}
    points = points_of(ax, k)
    assert_points_clear_of_the_frame(ax, points.get_offsets())
    assert_legend_clear_of_points(ax, points)
    plt.close(ax.figure)
    # on a 3.5 in axis the ratio ladder leaves room for every label: 0.25, 0.5, 1, 2, not the
    # denser 0.2, 0.25, 0.5, 0.75, 1, 1.5, 2 whose "0.2" and "0.25" run into each other
    _, narrow = plt.subplots(figsize=(3.5, 3.4))
    bmm.plot_funnel(model, idata, ax=narrow)
    ticks = narrow.get_xticks()
    at = narrow.transData.transform(np.column_stack([ticks, np.zeros_like(ticks)]))[:, 0]
    assert np.all(np.diff(at) / narrow.figure.dpi >= 0.42) and len(ticks) >= 3
    plt.close(narrow.figure)
    both = bmm.plot_funnel(model, idata, contours=True, model_region=True, transform=None)
    assert "95% model-implied region" in legend_texts(both)
    assert both.get_xlabel() == "Log risk ratio (RR)"
    plt.close(both.figure)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"contours": (0.9, 1.2)}, r"'contours' must be None, True or distinct confidence levels"),
        ({"contours": (0.95, 0.95)}, r"'contours' must be .* in \(0, 1\).*got \(0.95, 0.95\)"),
        ({"contours": "0.95"}, r"'contours' must be"),
        ({"transform": "log"}, r"'transform' must be 'auto', None, a function or one of exp"),
        ({"level": 0}, r"'level' must be a number in \(0, 1\)"),
    ],
)
def test_bad_arguments_name_what_is_allowed(bcg_fit, arguments, message):
    model, idata = bcg_fit
    with pytest.raises(ValueError, match=message):
        bmm.plot_funnel(model, idata, **arguments)
    plt.close("all")
