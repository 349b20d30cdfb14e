"""Convergence problems reach the user with a message that says what to do."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from bambi_meta.results.summary import ConvergenceWarning, warn_about_convergence


def fake_fit(divergent: int) -> xr.DataTree:
    diverging = np.zeros((4, 100), dtype=bool)
    diverging.flat[:divergent] = True
    stats = xr.Dataset({"diverging": (("chain", "draw"), diverging)})
    return xr.DataTree.from_dict({"sample_stats": stats})


def table(rhat: float, ess: float) -> pd.DataFrame:
    return pd.DataFrame({"R-hat": [1.0, rhat], "ESS": [3000.0, ess]}, index=["mu", "tau"])


def test_clean_fit_is_silent(recwarn):
    warn_about_convergence(fake_fit(0), table(1.001, 2500))
    assert not [w for w in recwarn if issubclass(w.category, ConvergenceWarning)]


@pytest.mark.parametrize(
    ("divergent", "rhat", "ess", "message"),
    [
        (0, 1.05, 2500, r"R-hat > 1.01 for tau \(chains disagree\)"),
        (0, 1.001, 150, "bulk ESS < 400 for tau"),
        (7, 1.001, 2500, "7 divergent transitions"),
    ],
)
def test_each_problem_is_named_with_a_remedy(divergent, rhat, ess, message):
    with pytest.warns(ConvergenceWarning, match=message) as caught:
        warn_about_convergence(fake_fit(divergent), table(rhat, ess))
    assert "target_accept" in str(caught[0].message)
