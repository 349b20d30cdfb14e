"""plot_orchard: one trunk per moderator level, its estimates, pooled effect, CI and PI."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from figure_checks import assert_no_overlaps, column, legend_texts, printed

import bambi_meta as bmm

matplotlib.use("Agg")

LEVELS = ["covert", "general", "overt"]


@pytest.fixture(scope="module")
def unfitted_two_moderators():
    data = bmm.load_dataset("dat.assink2016")
    return bmm.MetaModel("yi | se(vi) ~ 1 + deltype + year + (1|study)", data, measure="SMD")


def by_gid(ax, gid: str) -> list:
    return [item for item in [*ax.collections, *ax.lines] if item.get_gid() == gid]


def test_trunks_by_level_with_pooled_effect_credible_and_prediction_intervals(assink_deltype_fit):
    model, idata = assink_deltype_fit
    ax = bmm.plot_orchard(model, idata, "deltype", random_seed=1)
    assert [label.get_text() for label in ax.get_yticklabels()] == LEVELS  # top to bottom
    assert list(ax.get_yticks()) == [2.0, 1.0, 0.0]
    data = model.data
    se = np.sqrt(data["vi"].to_numpy())
    area_times_se = []
    for level in LEVELS:
        (trunk,) = by_gid(ax, f"estimates:{level}")
        rows = (data["deltype"] == level).to_numpy()
        np.testing.assert_allclose(trunk.get_offsets()[:, 0], data["yi"].to_numpy()[rows])
        area_times_se.append(trunk.get_sizes() * se[rows])
    area_times_se = np.concatenate(area_times_se)  # area proportional to 1/SE, across trunks
    np.testing.assert_allclose(area_times_se, area_times_se[0])

    table = bmm.prediction_intervals(model, idata, pd.DataFrame({"deltype": LEVELS}),
                                     random_seed=1)  # fmt: skip
    means = [points.get_offsets()[0] for points in by_gid(ax, "mean")]
    np.testing.assert_allclose([x for x, _ in means], table["Mean"])
    credible = [lines.get_segments()[0][:, 0] for lines in by_gid(ax, "credible")]
    np.testing.assert_allclose(credible, table[["CI lower", "CI upper"]])
    prediction = [lines.get_segments()[0][:, 0] for lines in by_gid(ax, "prediction")]
    np.testing.assert_allclose(prediction, table[["PI lower", "PI upper"]])
    assert [line.get_xdata()[0] for line in by_gid(ax, "null")] == [0.0]

    assert column(ax, "k") == ["k = 9 (1 study)", "k = 78 (17 studies)", "k = 13 (3 studies)"]
    expected = [printed(*row) for row in table[["Mean", "CI lower", "CI upper"]].to_numpy()]
    assert column(ax, "estimate") == ["SMD [95% CrI]", *expected]
    assert legend_texts(ax)[:3] == [
        "pooled effect (posterior mean)",
        "95% credible interval",
        "95% prediction interval",
    ]
    assert all(text.startswith("1/SE = ") for text in legend_texts(ax)[3:])
    assert ax.get_xlabel() == "Standardised mean difference (SMD)"
    assert_no_overlaps(ax, left=())
    plt.close(ax.figure)


def test_ratio_measure_one_column_wide_and_overall_trunk(bcg_fit):
    data = bmm.load_dataset("dat.bcg")
    model = bmm.MetaModel("yi | se(vi) ~ 1 + alloc", data, measure="RR")
    idata = model.fit(draws=500, random_seed=1)
    ax = bmm.plot_orchard(model, idata, "alloc", figsize=(3.5, 3.0), random_seed=1)
    assert [label.get_text() for label in ax.get_yticklabels()] == [
        "alternate",
        "random",
        "systematic",
    ]
    assert column(ax, "k") == ["k = 2", "k = 7", "k = 4"]  # no clusters: no cluster counts
    assert column(ax, "estimate")[0] == "Risk ratio [95% CrI]"
    assert ax.get_xlabel() == "Risk ratio (log scale)"
    ax.figure.get_layout_engine().execute(ax.figure)
    ticks = dict(zip(ax.get_xticks(), [t.get_text() for t in ax.get_xticklabels()], strict=True))
    assert ticks[0.0] == "1"
    assert_no_overlaps(ax, left=())
    plt.close(ax.figure)
    # without moderators: one trunk for all estimates, at the pooled effect
    model, idata = bcg_fit
    ax = bmm.plot_orchard(model, idata, random_seed=1)
    assert [label.get_text() for label in ax.get_yticklabels()] == ["all estimates"]
    pooled = bmm.prediction_intervals(model, idata, random_seed=1).iloc[0]
    assert by_gid(ax, "mean")[0].get_offsets()[0, 0] == pytest.approx(pooled["Mean"])
    plt.close(ax.figure)


@pytest.mark.parametrize(
    ("moderator", "message"),
    [
        ("year", r"'moderator' must be a categorical moderator of the location formula "
                 r"\(deltype\); 'year' is numeric: draw it with plot_bubble"),
        ("pubstatus", r"\(deltype\); 'pubstatus' is not a moderator of the location formula"),
        (None, r"'moderator' is needed for a meta-regression: one of the categorical moderators "
               r"of the location formula \(deltype\)"),
    ],
)  # fmt: skip
def test_bad_moderators_name_what_is_allowed(unfitted_two_moderators, moderator, message):
    with pytest.raises(ValueError, match=message):  # checked before the posterior is read
        bmm.plot_orchard(unfitted_two_moderators, None, moderator)
