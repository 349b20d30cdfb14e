"""The documentation's example scripts run (with few draws) and print what the docs show."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[1] / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prior_sensitivity(tmp_path, capsys):
    result = load("prior_sensitivity").main(draws=200, output=tmp_path)
    assert len(result) == 9  # 3 priors x (mu, tau, rho)
    # a wider or heavier-tailed tau prior moves tau's posterior mean up a little, not a lot
    means = result["Mean"].xs("tau", level="parameter")
    assert means.max() - means.min() < 0.05
    assert "HalfCauchy(0.5)" in capsys.readouterr().out
    assert (tmp_path / "prior_sensitivity_tau.png").stat().st_size > 10_000


def test_coming_from(capsys):
    table = load("coming_from").main(draws=300)
    # REML: ours equals metafor's to the printed digits; Bayes: near RoBMA's (its MCMC error)
    assert abs(table.loc["tau", "bambi_meta REML"] - table.loc["tau", "metafor REML"]) < 1e-4
    assert abs(table.loc["rho", "bambi_meta REML"] - table.loc["rho", "metafor REML"]) < 1e-4
    # metafor's H2 is given to 2 decimals
    assert abs(table.loc["H2", "bambi_meta REML"] - table.loc["H2", "metafor REML"]) < 0.005
    assert abs(table.loc["I2", "bambi_meta"] - 95.09) < 0.5
    assert "RoBMA 4" in capsys.readouterr().out
    assert not table.isna().any().any()  # every cell filled: no NaN in the comparison


@pytest.mark.slow  # draws all nine figures
def test_gallery_draws_every_figure_function(tmp_path):
    written = load("gallery").main(output=tmp_path)
    names = {path.stem for path in written}
    for function in ("forest", "orchard", "funnel", "bubble", "posterior"):
        assert any(f"_{function}_" in name for name in names)
    gallery = (EXAMPLES.parent / "docs" / "gallery.md").read_text()
    for path in written:  # the page shows every figure the script draws
        assert f"_generated/{path.name}" in gallery
