"""plot_forest: rows, labels, the numbers printed beside them, back-transforms and layout.

The figures are checked through their artists: texts by column (``gid``), markers and diamonds
against the functions that compute them, and bounding boxes from the renderer for overlaps.
"""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from figure_checks import artist, assert_no_overlaps, column, diamond_x, legend_texts, printed
from scipy.stats import norm

import bambi_meta as bmm

matplotlib.use("Agg")

Z = norm.ppf(0.975)


def test_multilevel_rows_clusters_pooled_effect_and_numbers(konstantopoulos_fit, konstantopoulos):
    model, idata = konstantopoulos_fit
    ax = bmm.plot_forest(model, idata, random_seed=1)
    labels = column(ax, "label")
    # header, 56 schools, a row per district (11), the pooled effect and its prediction interval
    assert len(labels) == 1 + 56 + 11 + 2 and labels[0] == "Estimate"
    assert labels[1:6] == [f"district 11, estimate {j}" for j in range(1, 5)] + ["district 11"]
    assert labels[-2:] == ["Pooled effect", "Prediction interval, new district"]
    np.testing.assert_allclose(artist(ax, "observed").get_offsets()[:, 0], konstantopoulos["yi"])
    null = artist(ax, "null").get_segments()[0]
    assert null[0, 0] == null[1, 0] == 0.0  # no effect, at 0 on the SMD scale

    pooled = bmm.prediction_intervals(model, idata, random_seed=1).iloc[0]
    np.testing.assert_allclose(diamond_x(ax, "pooled")[0], pooled[["CI lower", "Mean", "CI upper"]])
    prediction = artist(ax, "prediction:interval").get_segments()[0][:, 0]
    np.testing.assert_allclose(prediction, pooled[["PI lower", "PI upper"]])
    districts = bmm.cluster_effects(model, idata, random_seed=1, relative=False).table
    np.testing.assert_allclose(diamond_x(ax, "cluster")[:, 1], districts["Mean"])

    values = column(ax, "observed")
    assert values[0] == "SMD [95% CI]"
    assert values[1] == "-0.18 [-0.85, 0.49]"  # metafor's forest prints the same for school 1
    assert values[5] == printed(*districts.loc[11, ["Mean", "0.025", "0.975"]])
    assert values[-2] == printed(*pooled[["Mean", "CI lower", "CI upper"]])
    assert values[-1] == printed(None, *pooled[["PI lower", "PI upper"]])
    assert legend_texts(ax) == [
        "observed",
        "shrunken estimate",
        "district effect (shrunken)",
        "pooled effect",
        "prediction interval",
    ]
    assert ax.get_xlabel() == "Standardised mean difference (SMD)"
    assert_no_overlaps(ax)
    plt.close(ax.figure)


def test_ratio_measure_on_a_back_transformed_axis_one_column_wide(bcg_fit):
    model, idata = bcg_fit
    data = model.data
    study = (data["author"].astype(str) + ", " + data["year"].astype(str)).rename("Author(s), year")
    ax = bmm.plot_forest(model, idata, labels=study, figsize=(3.5, None), random_seed=1)
    assert ax.figure.get_figwidth() == 3.5
    labels = column(ax, "label")
    assert labels[:2] == ["Author(s), year", "Aronson, 1948"]
    assert labels[-1] == "Prediction interval"  # no clusters: nothing about clusters anywhere
    assert not any("cluster" in text for text in [*labels, *legend_texts(ax)])
    # numbers and ticks are risk ratios; the reference line sits at RR 1 (log RR 0)
    values = column(ax, "observed")
    assert values[0] == "Risk ratio [95% CI]"
    yi, vi = data["yi"].to_numpy(), data["vi"].to_numpy()
    expected = [printed(*np.exp([y, y - Z * np.sqrt(v), y + Z * np.sqrt(v)])) for y, v in
                zip(yi, vi, strict=True)]  # fmt: skip
    assert values[1:14] == expected and values[1] == "0.41 [0.13, 1.26]"  # as metafor prints
    pooled = bmm.prediction_intervals(model, idata, random_seed=1).iloc[0]
    assert values[14] == printed(*np.exp(pooled[["Mean", "CI lower", "CI upper"]]))
    assert artist(ax, "null").get_segments()[0][0, 0] == 0.0
    ax.figure.canvas.draw()
    ticks = dict(zip(ax.get_xticks(), [t.get_text() for t in ax.get_xticklabels()], strict=True))
    assert ticks[0.0] == "1" and len(ticks) >= 2
    assert ax.get_xlabel() == "Risk ratio (log scale)"
    assert_no_overlaps(ax)
    plt.close(ax.figure)


def test_metaregression_draws_fitted_values_instead_of_a_pooled_effect(bcg_ablat_fit):
    model, idata = bcg_ablat_fit
    ax = bmm.plot_forest(model, idata, labels="author", order="ablat", random_seed=1)
    order = np.argsort(model.data["ablat"].to_numpy(), kind="stable")
    coefficients = bmm.coefficient_draws(model, idata.posterior)["mu"]
    fitted = coefficients["Intercept"][..., None] + coefficients["ablat"][..., None] * (
        model.data["ablat"].to_numpy()
    )
    np.testing.assert_allclose(diamond_x(ax, "fitted")[:, 1], fitted.mean(axis=(0, 1))[order])
    observed = artist(ax, "observed").get_offsets()
    np.testing.assert_allclose(observed[:, 0], model.data["yi"].to_numpy()[order])
    assert np.all(np.diff(observed[:, 1]) < 0)  # top to bottom by latitude
    assert column(ax, "ablat")[0] == "ablat"  # the moderator is printed (metafor's ilab)
    assert column(ax, "ablat")[1:] == [str(v) for v in np.sort(model.data["ablat"])]
    assert column(ax, "label")[1:3] == list(model.data["author"].to_numpy()[order][:2])
    assert not [c for c in ax.collections if c.get_gid() in ("pooled", "prediction")]
    assert legend_texts(ax) == ["observed", "shrunken estimate", "fitted value"]
    plt.close(ax.figure)


def test_orders_columns_and_options(bcg_fit):
    model, idata = bcg_fit
    yi, vi = model.data["yi"].to_numpy(), model.data["vi"].to_numpy()
    by_effect = bmm.plot_forest(model, idata, order="effect", transform=None,
                                estimates=("observed", "shrunken"), random_seed=1)  # fmt: skip
    np.testing.assert_allclose(artist(by_effect, "observed").get_offsets()[:, 0], np.sort(yi))
    assert by_effect.get_xlabel() == "Log risk ratio (RR)"
    assert column(by_effect, "observed")[1] == printed(
        yi.min(), yi.min() - Z * np.sqrt(vi[yi.argmin()]), yi.min() + Z * np.sqrt(vi[yi.argmin()])
    )
    shrunken = column(by_effect, "shrunken")
    true = bmm.true_effects(model, idata, random_seed=1).table
    assert shrunken[0] == "Shrunken [95% CrI]" and len(shrunken) == 1 + 13  # no summary values
    assert shrunken[1] == printed(
        true["Mean"].iloc[yi.argmin()],
        *np.quantile(
            bmm.true_effects(model, idata, random_seed=1).draws[..., yi.argmin()], [0.025, 0.975]
        ),
    )
    by_precision = bmm.plot_forest(model, idata, order="precision", shrunken=False)
    np.testing.assert_allclose(
        artist(by_precision, "observed").get_offsets()[:, 0], yi[np.argsort(vi)]
    )
    assert not [c for c in by_precision.collections if c.get_gid().startswith("shrunken")]
    assert "shrunken estimate" not in legend_texts(by_precision)
    # a user's axes: the same axes comes back; intervals beyond xlim end in arrows
    figure, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    assert bmm.plot_forest(model, idata, ax=ax, xlim=(-1.0, 0.5)) is ax
    assert ax.get_xlim() == (-1.0, 0.5)
    arrows = [c for c in ax.collections if c.get_gid() == "observed:arrow"]
    arrow_x = np.concatenate([c.get_offsets()[:, 0] for c in arrows])
    low, high = yi - Z * np.sqrt(vi), yi + Z * np.sqrt(vi)
    assert len(arrow_x) == (low < -1.0).sum() + (high > 0.5).sum()
    assert set(arrow_x) <= {-1.0, 0.5}
    for each in (by_effect.figure, by_precision.figure, figure):
        plt.close(each)


def test_two_hundred_rows_stay_readable():
    rng = np.random.default_rng(4)
    data = pd.DataFrame({"vi": rng.uniform(0.005, 0.2, 200)})
    data["yi"] = 0.2 + rng.normal(0, np.sqrt(data["vi"] + 0.04))
    model = bmm.MetaModel("yi | se(vi) ~ 1", data, measure="SMD")
    idata = model.fit(draws=250, random_seed=1)
    ax = bmm.plot_forest(model, idata, random_seed=1)
    assert len(column(ax, "label")) == 1 + 200 + 2
    # the figure grows with the rows: about 1/8 inch per row, text of 6.5 pt
    assert ax.figure.get_figheight() > 200 * 0.125
    assert {text.get_fontsize() for text in ax.texts} == {6.5}
    assert_no_overlaps(ax)
    plt.close(ax.figure)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": "authors"}, r"'labels' must be a column of the data \(trial, author"),
        ({"labels": ["a", "b"]}, r"'labels' must have one label per estimate \(13.*got 2"),
        ({"labels": 3}, r"'labels' must be a column name or a sequence of 13 labels; got int"),
        ({"order": "size"}, r"'order' must be None, 'effect', 'precision' or a column"),
        ({"transform": "log"}, r"'transform' must be 'auto', None, a function or one of"),
        ({"estimates": "blup"}, r"'estimates' must be one or more of observed, shrunken, fit"),
        ({"columns": ["lat"]}, r"'columns' must be 'auto', None or columns of the data"),
        ({"xlim": (1, 0)}, r"'xlim' must be two finite numbers with low < high"),
        ({"figsize": 7}, r"'figsize' must be \(width, height\) in inches"),
        ({"digits": -1}, r"'digits' must be an integer between 0 and 6"),
    ],
)
def test_bad_arguments_name_what_is_allowed(bcg_fit, kwargs, message):
    model, idata = bcg_fit
    with pytest.raises(ValueError, match=message):
        bmm.plot_forest(model, idata, **kwargs)
