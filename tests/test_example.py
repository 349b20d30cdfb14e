"""The README's example runs end to end (with fewer draws) and writes its figure."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[1] / "examples" / "konstantopoulos.py"


@pytest.mark.slow  # the whole README example: fits, REML, Bayes factors and a figure
def test_konstantopoulos_example(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("konstantopoulos_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(draws=300, output=tmp_path)
    printed = capsys.readouterr().out
    for text in [
        "Posterior summary",
        "I2 [between]",
        "metafor REML",
        "bambi_meta REML",
        "read as VARIANCES",
    ]:
        assert text in printed
    assert "Bayes factors" in printed and "Inclusion BF" in printed
    assert "Shrunken district effects" in printed and "PI lower" in printed
    for name in ["prior_posterior", "forest", "funnel"]:
        assert (tmp_path / f"konstantopoulos_{name}.png").stat().st_size > 10_000
