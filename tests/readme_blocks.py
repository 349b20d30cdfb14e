"""The README's examples that show their output: run them, compare, or rewrite the README.

A ```python block followed directly by a ```text block is an example with its output. The code
runs as it stands, with ``bmm``, ``bmb``, ``pd`` and ``np`` imported (the README's convention),
and what it prints must be the text block, character for character: the README shows what the
current code prints. ``python tests/readme_blocks.py`` rewrites the text blocks from a fresh run.
Examples whose output depends on MCMC are not given a text block (they would differ across
machines); the docs show theirs, generated at build time.
"""

import contextlib
import io
import re
import sys
import warnings
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"
EXAMPLE = re.compile(
    r"```python\n(?P<code>(?:(?!```).)*)```\n```text\n(?P<output>(?:(?!```).)*)```\n", re.S
)


def examples(text: str) -> list[re.Match]:
    """The README's examples that have an output block."""
    return list(EXAMPLE.finditer(text))


def run(code: str) -> str:
    """What ``code`` prints, run in a fresh namespace with the README's imports."""
    import bambi as bmb
    import numpy as np
    import pandas as pd

    import bambi_meta as bmm

    namespace = {"bmm": bmm, "bmb": bmb, "pd": pd, "np": np}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # warnings go to stderr, never into the README
        exec(compile(code, str(README), "exec"), namespace)
    return printed.getvalue()


def rewrite(path: Path = README) -> None:
    """Replace every output block of ``path`` with what its code prints now."""
    text = path.read_text()

    def fresh(match: re.Match) -> str:
        return f"```python\n{match['code']}```\n```text\n{run(match['code'])}```\n"

    path.write_text(EXAMPLE.sub(fresh, text))


if __name__ == "__main__":
    rewrite(Path(sys.argv[1]) if len(sys.argv) > 1 else README)
    print(f"Rewrote the output blocks of {README}")
