"""plot_funnel: each estimate at (yi, SE), standard error growing downwards."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np

import bambi_meta as bmm

matplotlib.use("Agg")


def test_funnel_points_and_axes(konstantopoulos_fit, konstantopoulos):
    model, idata = konstantopoulos_fit
    k = len(konstantopoulos)
    funnel = bmm.plot_funnel(model, idata)
    points = [c for c in funnel.collections if c.get_offsets().shape == (k, 2)]
    assert len(points) == 1
    np.testing.assert_allclose(points[0].get_offsets()[:, 1], np.sqrt(konstantopoulos["vi"]))
    assert funnel.get_ylim()[0] > funnel.get_ylim()[1]  # standard error grows downwards
    assert funnel.get_ylabel() == "standard error"
    plt.close(funnel.figure)
