"""The effect-size axis: measure names, the default back-transform and its tick positions."""

import types

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

import bambi_meta as bmm
from bambi_meta.results.figures.scales import effect_scale

matplotlib.use("Agg")


def fake_model(measure: str, effect_measure: str | None = None):
    return types.SimpleNamespace(measure=measure, effect_measure=effect_measure or measure)


def tick_labels(scale, low: float, high: float) -> tuple[np.ndarray, list[str]]:
    figure, ax = plt.subplots()
    ax.set_xlim(low, high)
    scale.apply(ax)
    figure.canvas.draw()
    ticks = ax.get_xticks()
    labels = [label.get_text() for label in ax.get_xticklabels()]
    plt.close(figure)
    return ticks, labels


def test_ratio_measures_show_ratios_at_round_values_on_a_log_axis():
    scale = effect_scale(fake_model("RR"))
    assert scale.label == "Risk ratio (log scale)" and scale.null == 0.0
    ticks, labels = tick_labels(scale, np.log(0.1), np.log(3.0))  # dat.bcg's range
    np.testing.assert_allclose(np.exp(ticks), [0.1, 0.25, 0.5, 1, 2])
    assert labels[0] == "0.1" and "1" in labels and labels[-1] == "2"
    # a wide axis gets a sparser ladder, a narrow one a denser, never more than 7 ticks
    wide, _ = tick_labels(scale, np.log(0.005), np.log(200.0))
    narrow, _ = tick_labels(scale, np.log(0.55), np.log(1.9))
    assert 3 <= len(wide) <= 7 and 3 <= len(narrow) <= 7
    np.testing.assert_allclose(np.exp(narrow), [0.67, 0.8, 1, 1.25, 1.5], rtol=1e-12)


def test_measures_named_by_escalc_and_transforms_asked_for():
    assert effect_scale(fake_model("SMD")).label == "Standardised mean difference (SMD)"
    assert effect_scale(fake_model("SMD")).transform is None
    assert effect_scale(fake_model("OR", "PETO")).label == "Odds ratio (log scale)"
    assert effect_scale(fake_model("OR"), transform=None).label == "Log odds ratio (OR)"
    correlation = effect_scale(fake_model("ZCOR"), transform=bmm.transf.ztor)
    assert correlation.label == "Correlation (from ZCOR)"
    ticks, labels = tick_labels(correlation, -0.5, 1.2)
    # the labels print the correlation to 2 decimals: half a unit in the last place
    np.testing.assert_allclose(np.tanh(ticks), [float(text) for text in labels], atol=5e-3)
    custom = effect_scale(fake_model("GEN"), transform=np.square)
    assert custom.label.endswith("transformed by square") and custom.values(3.0) == 9.0
    with pytest.raises(ValueError, match=r"'transform' must be 'auto', None, a function or one"):
        effect_scale(fake_model("SMD"), transform="log")
