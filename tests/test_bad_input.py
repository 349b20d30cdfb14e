"""One bad input at every public entry point: a ValueError/TypeError raised by bambi_meta itself,
whose message names the argument (and the row, for rows of data) and what is allowed.
"""

import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import fake_posterior

import bambi_meta as bmm
from bambi_meta.bambi_ext.centring import to_raw_scale

PACKAGE = Path(bmm.__file__).parent
FORMULA = "yi | se(vi) ~ 1 + year + (1|district)"


@pytest.fixture(scope="module")
def fitted(konstantopoulos):
    model = bmm.MetaModel(FORMULA, konstantopoulos, measure="SMD")
    return model, model.fit(draws=50, random_seed=1)


def bad_vi(data):
    return data.assign(vi=np.where(np.arange(len(data)) == 6, -0.02, data["vi"]))


def new_rows(**columns):
    return pd.DataFrame({"year": [1990.0, 2000.0], "district": [11, 71], **columns})


# (entry point, call, message): each call gets (model, idata, data) and makes one mistake.
CASES = [
    ("MetaModel", lambda m, i, d: bmm.MetaModel(FORMULA, bad_vi(d), measure="SMD"),
     r"'vi' \(sampling variances\) must be finite and > 0; row 7"),
    ("MetaModel", lambda m, i, d: bmm.MetaModel(FORMULA, d, measure="d"),
     r"'measure' must be one of"),
    ("MetaModel.fit", lambda m, i, d: m.fit(draws=0), r"'draws' must be an integer >= 1"),
    ("MetaModel.fit", lambda m, i, d: m.fit(random_seed=-3), r"'random_seed' must be"),
    ("MetaModel.predict", lambda m, i, d: m.predict(i, data=new_rows(year=[1990.0, np.nan])),
     r"'data' column 'year' must have a value on every row; row 2"),
    ("MetaModel.compute_log_likelihood", lambda m, i, d: m.compute_log_likelihood(i, unit="x"),
     r"'unit' must be 'cluster', 'estimate' or a column"),
    ("MetaModel.prior_predictive", lambda m, i, d: m.prior_predictive(draws=0),
     r"'draws' must be an integer >= 1"),
    ("fit_many", lambda m, i, d: bmm.fit_many(m, variances=bad_vi(d)["vi"]),
     r"'variances' must be finite and > 0; refit 1, row 7"),
    ("summary", lambda m, i, d: bmm.summary(m, "idata"), r"'idata' must be what model.fit"),
    ("summary_heterogeneity", lambda m, i, d: bmm.summary_heterogeneity(m, i.posterior),
     r"'idata' must be what model.fit"),
    ("heterogeneity_posterior", lambda m, i, d: bmm.heterogeneity_posterior(m, None),
     r"'idata' must be what model.fit"),
    ("cluster_effects", lambda m, i, d: bmm.cluster_effects(m, i, random_seed=-1),
     r"'random_seed' must be an integer"),
    ("true_effects", lambda m, i, d: bmm.true_effects(m, {}), r"'idata' must be what model.fit"),
    ("prediction_intervals", lambda m, i, d: bmm.prediction_intervals(m, i, new_rows(), level=2),
     r"'level' must be a number in \(0, 1\)"),
    ("prediction_intervals",
     lambda m, i, d: bmm.prediction_intervals(m, i, new_rows(year=[-1.0, "x"])),
     r"'data' column 'year' must be numeric; row 2"),
    ("heterogeneity_at", lambda m, i, d: bmm.heterogeneity_at(m, i, new_rows()),
     r"needs a location-scale model"),
    ("coefficient_draws", lambda m, i, d: bmm.coefficient_draws(m, "posterior"),
     r"'posterior' must be"),
    ("plot_posterior", lambda m, i, d: bmm.plot_posterior(m, i, "sigma"),
     r"'parameter' must be one of"),
    ("plot_forest", lambda m, i, d: bmm.plot_forest(m, i, level=1.5),
     r"'level' must be a number in \(0, 1\)"),
    ("plot_funnel", lambda m, i, d: bmm.plot_funnel(m, i, level=0), r"'level' must be a number"),
    ("plot_orchard", lambda m, i, d: bmm.plot_orchard(m, i, "year"),
     r"'moderator' must be a categorical moderator of the location formula"),
    ("plot_bubble", lambda m, i, d: bmm.plot_bubble(m, i, "district"),
     r"'moderator' must be a numeric moderator"),
    ("marginal_likelihood", lambda m, i, d: bmm.marginal_likelihood("model"),
     r"'model' must be a bambi_meta.MetaModel"),
    ("bayes_factor", lambda m, i, d: bmm.bayes_factor(m, bmm.MetaModel("yi | se(vi) ~ 1",
     bmm.load_dataset("dat.bcg"), measure="RR")), r"same effect sizes"),
    ("inclusion_bayes_factors", lambda m, i, d: bmm.inclusion_bayes_factors(m, [1, 2]),
     r"'prior_model_probs' must give a weight to each of"),
    ("fit_frequentist", lambda m, i, d: bmm.fit_frequentist(d["yi"], bad_vi(d)["vi"]),
     r"'vi' must be finite and > 0; row 7"),
    ("MetaModel.fit_frequentist", lambda m, i, d: m.fit_frequentist("EB"),
     r"'method' must be 'REML' or 'ML'"),
    ("lrt", lambda m, i, d: bmm.lrt(m.fit_frequentist("ML"), m.fit_frequentist("REML")),
     r"'fit_full' and 'fit_reduced' must use the same method"),
    ("escalc", lambda m, i, d: bmm.escalc("OR", bmm.load_dataset("dat.bcg").assign(
     tpos=lambda b: np.where(np.arange(len(b)) == 2, -1, b["tpos"])), ai="tpos", bi="tneg",
     ci="cpos", di="cneg"), r"'ai' \(column 'tpos'\) must be a count >= 0; row 3"),
    ("load_dataset", lambda m, i, d: bmm.load_dataset("dat.nope"), r"'name' must be one of"),
    ("unit_information_sd", lambda m, i, d: bmm.unit_information_sd("GEN"),
     r"'sample_sizes'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "call", "message"), CASES, ids=[f"{c[0]}-{n}" for n, c in enumerate(CASES)]
)
def test_every_entry_point_names_the_problem(fitted, konstantopoulos, entry, call, message):
    model, idata = fitted
    with pytest.raises((ValueError, TypeError), match=message) as caught:
        call(model, idata, konstantopoulos)
    # raised by bambi_meta's own checks, not deep inside an upstream package
    origin = Path(traceback.extract_tb(caught.value.__traceback__)[-1].filename)
    assert PACKAGE in origin.parents, f"{entry}: raised in {origin}"


def test_every_public_callable_is_probed():
    probed = {entry.split(".")[0] for entry, *_ in CASES}
    callables = {
        name
        for name in bmm.__all__
        if callable(getattr(bmm, name)) and not isinstance(getattr(bmm, name), type)
    }
    callables.discard("prior_density")  # a helper of plot_posterior, probed through it
    assert callables - probed == set()


def test_location_scale_entry_point(konstantopoulos):
    import bambi as bmb

    formula = bmb.Formula("yi | se(vi) ~ 1 + (1|district)", "tau ~ year")
    model = bmm.MetaModel(formula, konstantopoulos, measure="SMD")
    idata = xr.DataTree.from_dict({"posterior": to_raw_scale(model, fake_posterior(model))})
    with pytest.raises(ValueError, match="must give the scale moderators 'year'.*lacks 'year'"):
        bmm.heterogeneity_at(model, idata, pd.DataFrame({"x": [1.0]}))
