"""plot_forest: one row per estimate, grouped by cluster, the pooled effect at the bottom."""

import matplotlib
import matplotlib.pyplot as plt

import bambi_meta as bmm

matplotlib.use("Agg")


def test_forest_rows_labels_and_legend(konstantopoulos_fit, konstantopoulos):
    model, idata = konstantopoulos_fit
    k = len(konstantopoulos)
    forest = bmm.plot_forest(model, idata, random_seed=1)
    labels = [label.get_text() for label in forest.get_yticklabels()]
    assert len(labels) == k + 1 and labels[-1] == "pooled"  # one row per school, then pooled
    assert labels[0].startswith("11 / ")  # grouped by district, labelled district / school
    # observed squares (one per school) and the shrunken estimates with their intervals
    assert any(collection.get_offsets().shape == (k, 2) for collection in forest.collections)
    legend = [text.get_text() for text in forest.get_legend().get_texts()]
    assert "pooled effect" in legend
    plt.close(forest.figure)
