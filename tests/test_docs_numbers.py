"""No number in the docs' or README's prose is typed by hand.

Results quoted in the docs' prose are MyST substitutions (``{{ tau_mean }}``) that the example
scripts compute when ``make docs`` runs; the README's output blocks are what their code prints
(tests/readme_blocks.py). What remains in prose are constants, each derived here, and timings,
which must be the ones benchmarks/README.md records.
"""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import readme_blocks
from scipy.stats import norm

from bambi_meta.bambi_ext.priors import SCALE_COEFFICIENT_SD
from bambi_meta.results.summary import RHAT_LIMIT

ROOT = Path(__file__).parents[1]
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
z = norm.ppf(0.975)
# Every decimal number or percentage allowed in prose, with where it comes from.
CONSTANTS = {
    "1.96": f"{z:.2f}",  # the normal quantile of a 95% interval
    "1.01": f"{RHAT_LIMIT:.2f}",  # the R-hat limit summary() warns at
    "0.5": f"{SCALE_COEFFICIENT_SD:.1f}",  # the default prior SD of scale-model slopes
    # a 1-SD change in z multiplies tau by exp(+-1.96 * 0.5) with 95% prior probability
    "0.38": f"{np.exp(-z * SCALE_COEFFICIENT_SD):.2f}",
    "2.7": f"{np.exp(z * SCALE_COEFFICIENT_SD):.1f}",
    "95%": "95%",  # the interval level the examples use
    # the p-values at the funnel's contours (0.90, 0.95, 0.99), the gallery's call
    "0.10": f"{1 - 0.90:.2f}",
    "0.05": f"{1 - 0.95:.2f}",
    "0.01": f"{1 - 0.99:.2f}",
    "2.5": "2.5",  # the quantiles summary() reports (2.5/50/97.5%)
    "97.5%": "97.5%",
}
VERSIONED = re.compile(r"(metafor|metadat|RoBMA|R) $")  # "metafor 3.8-1": a version, not a result
NUMBER = re.compile(r"(?<![\w.])[-−]?\d[\d,]*(?:\.\d+)?\s?%|(?<![\w.])[-−]?\d+\.\d+(?:e-?\d+)?")


def prose(text: str) -> str:
    """``text`` without code, math, link targets and substitutions."""
    for pattern in (r"```.*?```", r"\$\$.*?\$\$", r"`[^`]*`", r"\$[^$\n]*\$", r"\]\([^)]*\)"):
        text = re.sub(pattern, "", text, flags=re.S)
    return re.sub(r"\{\{[^}]*\}\}", "", text)


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.name)
def test_prose_quotes_no_hand_typed_results(page):
    text = prose(page.read_text())
    benchmarks = (ROOT / "benchmarks" / "README.md").read_text()
    for match in NUMBER.finditer(text):
        number = match.group(0).replace(" ", "")
        before = text[max(0, match.start() - 12) : match.start()]
        if VERSIONED.search(before):
            continue
        if number in CONSTANTS:
            assert CONSTANTS[number] == number, f"{page.name}: {number} is not {CONSTANTS[number]}"
            continue
        context = text[max(0, match.start() - 60) : match.end() + 20].replace("\n", " ")
        # a timing ("0.57 s") must be one benchmarks/README.md records
        recorded = re.search(rf"(?<![\d.]){re.escape(number)}(?!\d)", benchmarks)
        if text[match.end() : match.end() + 2] == " s" and recorded:
            continue
        pytest.fail(f"{page.name}: hand-typed number {number!r} in '...{context}...'")


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_substitution_is_computed_by_an_example(tmp_path, capsys):
    used = set()
    for page in PAGES:
        used |= set(re.findall(r"\{\{\s*(\w+)\s*\}\}", page.read_text()))
    example = load_example("konstantopoulos")
    import bambi_meta as bmm

    data = bmm.load_dataset("dat.konstantopoulos2011")
    model = bmm.MetaModel("yi | se(vi) ~ 1 + (1|district)", data, measure="SMD")
    computed = set(example.quoted_numbers(model, model.fit(draws=100, random_seed=1)))
    load_example("prior_sensitivity").main(draws=100, output=tmp_path)
    computed |= set(json_keys(tmp_path / "prior_sensitivity_numbers.json"))
    assert used and used <= computed, f"not computed by any example: {used - computed}"


def json_keys(path: Path) -> list[str]:
    import json

    return list(json.loads(path.read_text()))


@pytest.mark.parametrize(
    "example", readme_blocks.examples(readme_blocks.README.read_text()), ids=lambda m: m.start()
)
def test_readme_output_blocks_are_what_the_code_prints(example):
    assert readme_blocks.run(example["code"]) == example["output"], (
        "The README shows outdated output: run `python tests/readme_blocks.py` and review the diff."
    )
