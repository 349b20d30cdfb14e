"""What the printed results look like: headers, column names, digits, never truncated.

The tables are DataFrames that keep full precision; only their text is rounded. Each printed
object is also printed under deliberately tight pandas display options (40 characters wide, 3
columns, 2 rows, precision 1), which must not change a character: the text is laid out by the
package, not by pandas' display settings.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bambi_meta as bmm
from bambi_meta.results.printing import ResultTable, format_cells

EXAMPLES = Path(__file__).parents[2] / "examples"
TIGHT = (
    "display.width", 40, "display.max_columns", 3, "display.max_rows", 2,
    "display.min_rows", 2, "display.precision", 1, "display.max_colwidth", 6,
)  # fmt: skip


def printed(obj) -> str:
    """``str(obj)`` under tight display options, checked equal to ``str`` and ``repr``."""
    with pd.option_context(*TIGHT):
        tight, tight_repr = str(obj), repr(obj)
    assert tight == str(obj) == tight_repr
    assert "..." not in tight and not re.search(r"\[\d+ rows x \d+ columns\]", tight)
    return tight


def table_lines(text: str) -> list[str]:
    """The lines after the header (the first blank line)."""
    return text.split("\n\n", 1)[1].splitlines()


@pytest.fixture(scope="module")
def exact_fit(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", konstantopoulos, measure="SMD")
    return model, model.fit(random_seed=1)


@pytest.fixture(scope="module")
def year_fit(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + year + (1|district)", konstantopoulos, measure="SMD")
    return model, model.fit(random_seed=1)


# ---------------------------------------------------------------------------------------------
# summary and summary_heterogeneity
# ---------------------------------------------------------------------------------------------
def test_summary_prints_a_header_three_decimals_and_integer_ess(exact_fit):
    model, idata = exact_fit
    table = bmm.summary(model, idata)
    text = printed(table)
    lines = text.splitlines()
    assert lines[0] == model.header
    assert lines[1].startswith("Exact posterior: 4 x 1000 independent draws")
    rows = table_lines(text)
    assert rows[0].split() == ["Mean", "SD", "0.025", "0.5", "0.975", "MCSE", "ESS", "R-hat"]
    cells = {row.split()[0]: row.split()[1:] for row in rows[1:]}
    assert list(cells) == ["mu", "tau", "rho"]
    for name, values in cells.items():
        assert values[:5] == [f"{table.loc[name, column]:.3f}" for column in table.columns[:5]]
        assert values[6] == "4000"  # ESS: an integer, no ".0"
        assert re.fullmatch(r"\d\.\d{3}", values[7])  # R-hat: 3 decimals
        mcse = table.loc[name, "MCSE"]  # two significant digits
        assert float(values[5]) == pytest.approx(float(f"{mcse:.2g}"))


def test_either_engine_prints_integer_ess_and_says_how_the_draws_were_made(konstantopoulos_fit):
    model, idata = konstantopoulos_fit
    for table in [bmm.summary(model, idata), bmm.summary_heterogeneity(model, idata)]:
        text = printed(table)
        assert text.splitlines()[1].startswith(("Exact posterior: 4 x", "MCMC (nutpie): 4 chains"))
        rows = [row.split() for row in table_lines(text)[1:]]
        ess = [row[-2] for row in rows]
        assert ess == [f"{value:.0f}" for value in table["ESS"]] and all(map(str.isdigit, ess))
        assert all(re.fullmatch(r"\d\.\d{3}", row[-1]) for row in rows)


def test_summary_keeps_full_precision_and_behaves_as_a_dataframe(exact_fit):
    model, idata = exact_fit
    table = bmm.summary(model, idata)
    tau = idata.posterior["tau"].to_numpy()
    assert table.loc["tau", "Mean"] == tau.mean()  # not rounded
    assert isinstance(table, pd.DataFrame)
    assert repr(float(table.loc["tau", "SD"])) in table.to_csv()
    assert (table * 2).loc["tau", "Mean"] == 2 * tau.mean()
    assert table[["Mean", "SD"]].header == table.header  # the header travels with the table
    more = bmm.summary(model, idata, digits=5)
    pd.testing.assert_frame_equal(pd.DataFrame(more), pd.DataFrame(table))
    assert f"{tau.mean():.5f}" in str(more) and f"{tau.mean():.5f}" not in str(table)
    html = table._repr_html_()
    assert f"<p>{model.header}</p>" in html and f"{tau.mean():.3f}" in html
    assert f"{tau.mean():.5f}" not in html and "<table" in html
    with pytest.raises(ValueError, match="'digits' must be an integer between 0 and 10"):
        bmm.summary(model, idata, digits=11)


def test_heterogeneity_has_the_columns_of_summary_and_says_i2_is_in_percent(exact_fit):
    model, idata = exact_fit
    summary = bmm.summary(model, idata)
    table = bmm.summary_heterogeneity(model, idata)
    assert list(table.columns) == list(summary.columns)
    draws = bmm.heterogeneity_posterior(model, idata)
    n = draws["I2"].size
    assert (table["ESS"] == n).all()  # the exact engine's independent draws
    for name in ["tau", "I2", "H2"]:
        sd = np.std(draws[name], ddof=1)
        assert table.loc[name, "MCSE"] == pytest.approx(sd / np.sqrt(n), rel=1e-12)
        assert table.loc[name, "0.5"] == np.quantile(draws[name], 0.5)
    pd.testing.assert_series_equal(table.loc["tau"], summary.loc["tau"])
    text = printed(table)
    assert text.splitlines()[0] == model.header
    assert "I2 in percent: 100 tau2 / (tau2 + v~)" in text.splitlines()[2]
    i2 = next(row.split() for row in table_lines(text) if row.startswith("I2 "))
    assert i2[1] == f"{table.loc['I2', 'Mean']:.3f}" and 90 < float(i2[1]) < 100
    bare = bmm.summary_heterogeneity(model, idata, include_mcmc_diagnostics=False)
    assert list(bare.columns) == ["Mean", "SD", "0.025", "0.5", "0.975"]


def test_a_row_with_a_small_sd_gets_the_decimals_its_sd_needs(year_fit):
    model, idata = year_fit
    table = bmm.summary(model, idata)
    year = next(row.split() for row in table_lines(printed(table)) if row.startswith("year"))
    # SD ~0.0093: four decimals show two significant digits (three would print 0.009)
    assert table.loc["year", "SD"] < 0.01 and year[2] == f"{table.loc['year', 'SD']:.4f}"
    small = pd.DataFrame({"Mean": [1e-5, 1e-5], "SD": [2e-7, 2e-12], "vi": [3e-5, 0.25]})
    cells = format_cells(small, digits=3)
    assert cells.iloc[0].tolist() == ["0.00001000", "0.00000020", "0.000030"]
    assert cells.iloc[1].tolist() == ["0.000010000", "0.000000000", "0.250"]  # at most 3 + 6
    cells = format_cells(pd.DataFrame({"Mean": [np.nan], "ESS": [12.6], "n": [3]}), digits=2)
    assert cells.iloc[0].tolist() == ["NaN", "13", "3"]


# ---------------------------------------------------------------------------------------------
# Bayes factors, prediction intervals, effects, frequentist fits
# ---------------------------------------------------------------------------------------------
def test_inclusion_bayes_factors_print_robma_components_and_the_models(exact_fit):
    model, _ = exact_fit
    ensemble = bmm.inclusion_bayes_factors(model)
    text = printed(ensemble)
    assert model.header in text.splitlines()[:2]
    components = text.split("Components summary\n", 1)[1].splitlines()
    assert components[0].split() == [
        "Models", "Prior", "prob.", "Post.", "prob.", "Inclusion", "BF", "log(BF)"
    ]  # fmt: skip
    rows = {line.split()[0]: line.split() for line in components[1:4]}
    inclusion = ensemble.inclusion.set_index("component")
    assert rows["Effect"][1:4] == [
        "3/6",
        "0.500",
        f"{inclusion.loc['effect', 'posterior_incl_prob']:.3f}",
    ]
    assert rows["Heterogeneity"][4] == "2.00e+90"  # scientific beyond 1e5
    assert rows["Cluster"][1:3] == ["level", "2/4"]  # among the tau > 0 models
    models = text.split("\nModels\n", 1)[1].splitlines()
    labels = [re.split(r"\s{2,}", line)[0] for line in models[1:]]
    assert labels == ensemble.models["model"].tolist()
    assert ensemble.models["log_ml"].iloc[-1] == pytest.approx(-13.4466, abs=1e-4)  # unrounded
    assert "<b>Components summary</b>" in ensemble._repr_html_()


def test_prediction_intervals_are_labelled_by_the_moderator_values(year_fit, exact_fit):
    model, idata = year_fit
    new = pd.DataFrame({"year": [1980.0, 1990.0, 2000.0], "district": [11, 71, 58]})
    table = bmm.prediction_intervals(model, idata, new, random_seed=1)
    assert table.index.names == ["year", "district"]
    assert table.index.tolist() == [(1980.0, 11), (1990.0, 71), (2000.0, 58)]
    assert list(table.columns)[:5] == ["Mean", "CI lower", "CI upper", "PI lower", "PI upper"]
    assert table.loc[(1990.0, 71), "Mean"] == table.iloc[1]["Mean"]
    text = printed(table)
    assert text.splitlines()[0] == model.header and "PI [cluster]" in text
    assert table_lines(text)[-1].split()[:3] == [
        "2000.0", "58", f"{table.iloc[2]['Mean']:.3f}"
    ]  # fmt: skip
    by_year = bmm.prediction_intervals(model, idata, new[["year"]], random_seed=1)
    assert by_year.index.name == "year" and by_year.loc[2000.0, "Mean"] > 0
    model, idata = exact_fit
    pooled = bmm.prediction_intervals(model, idata, random_seed=1)
    assert pooled.index.tolist() == ["mu"]
    assert pooled.iloc[0]["Mean"] == bmm.summary(model, idata).loc["mu", "Mean"]
    assert table_lines(printed(pooled))[1].split()[0] == "mu"


def test_effects_print_every_row_under_a_header(exact_fit):
    model, idata = exact_fit
    effects = bmm.true_effects(model, idata, random_seed=1)
    text = printed(effects)
    assert text.splitlines()[0] == model.header and "Shrunken true effects" in text
    rows = table_lines(text)
    assert rows[0].split() == ["district", "yi", "vi", "Mean", "SD", "0.025", "0.5", "0.975"]
    assert len(rows) == 2 + 56 and rows[-1].split()[:2] == ["56", "644"]
    assert isinstance(effects.table, ResultTable) and effects._repr_html_().count("<tr") == 58
    clusters = printed(bmm.cluster_effects(model, idata, random_seed=1))
    assert "Shrunken district effects: u_j, the deviation from the pooled effect" in clusters
    assert len(table_lines(clusters)) == 2 + 11


def test_frequentist_fit_names_variance_components_by_factor_as_metafor(konstantopoulos):
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district/school)", konstantopoulos, measure="SMD")
    text = printed(model.fit_frequentist())
    metafor = _metafor("dat.konstantopoulos2011")["nested_REML"]
    sigma2, sigma = metafor["sigma2"], metafor["sigma"]
    # metafor 3.8: "sigma^2.1  0.0651  0.2551     11     no         district"
    lines = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert lines["sigma^2.1"] == [
        "sigma^2.1", f"{sigma2['sigma2_cluster']:.4f}", f"{sigma['sigma_cluster']:.4f}", "11",
        "63.32", "district",
    ]  # fmt: skip
    assert lines["sigma^2.2"][1:4] == [f"{sigma2['sigma2_estimate']:.4f}", "0.1809", "56"]
    assert lines["sigma^2.2"][-1] == "district/school"
    assert lines["tau^2"][1] == f"{metafor['tau2_total']:.4f}"
    assert lines["rho"][1] == f"{metafor['rho_implied']:.4f}"
    assert "metafor: rma.mv(yi, vi, random = ~ 1 | district/school)" in text
    assert "QE(df = 55) = 578.8640, p-val < .0001" in text
    assert lines["Intercept"][1:] == ["0.1847", "0.0846", "2.1845", "0.0289", "0.0190", "0.3504"]
    assert "sigma2_cluster" not in text and "sigma2_estimate" not in text
    # the standalone function takes the names from a named Series, or from 'factors'
    data = konstantopoulos
    cs = bmm.fit_frequentist(data["yi"], data["vi"], cluster=data["district"], struct="CS")
    assert "outer factor: district, nlvls = 11" in printed(cs)
    named = bmm.fit_frequentist(data["yi"], data["vi"], cluster=data["district"].to_numpy(),
                                factors=("district", "school"))  # fmt: skip
    assert "district/school" in str(named) and repr(named) == str(named)
    with pytest.raises(ValueError, match="'factors' must be two names"):
        bmm.fit_frequentist(data["yi"], data["vi"], cluster=data["district"], factors="district")


def _metafor(dataset: str) -> dict:
    return json.loads((Path(__file__).parents[1] / "data" / f"{dataset}.metafor.json").read_text())


# ---------------------------------------------------------------------------------------------
# Piped, as `python examples/konstantopoulos.py | cat` runs it
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow  # a Python process that imports Bambi and PyMC, fits and draws figures
def test_example_output_is_whole_when_piped(tmp_path):
    script = EXAMPLES / "konstantopoulos.py"
    result = subprocess.run(
        [sys.executable, str(script), "--draws", "300", "--output", str(tmp_path)],
        capture_output=True,  # stdout is a pipe, as in `python examples/konstantopoulos.py | cat`
        text=True,
        check=True,
        timeout=600,
    )
    out = result.stdout
    assert "..." not in out and not re.search(r"\[\d+ rows x \d+ columns\]", out)
    for text in ["MCSE", "ESS", "I2 [between]", "Components summary", "sigma^2.1", "PI upper"]:
        assert text in out
    assert re.search(r"^mu +0\.\d{3} +0\.\d{3} .* 1200 +\d\.\d{3}$", out, re.MULTILINE)
