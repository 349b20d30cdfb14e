"""plot_posterior: the posterior density inside the support, with the prior overlaid."""

import matplotlib
import matplotlib.pyplot as plt
import pytest

import bambi_meta as bmm

matplotlib.use("Agg")


@pytest.mark.parametrize("parameter", ["tau", "rho"])
def test_posterior_and_prior_inside_the_support(konstantopoulos_fit, parameter):
    model, idata = konstantopoulos_fit
    posterior = bmm.plot_posterior(model, idata, parameter)
    lines = {line.get_label(): line for line in posterior.get_lines()}
    assert set(lines) == {"posterior", "prior"}
    x = lines["posterior"].get_xdata()
    assert x.min() >= 0 and (parameter != "rho" or x.max() <= 1)  # inside the support
    assert posterior.get_xlabel() == parameter
    plt.close(posterior.figure)
