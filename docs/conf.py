"""Sphinx configuration: user guide (MyST markdown) and API reference from numpydoc docstrings.

Built with ``make docs`` (``sphinx-build -W``: every warning fails the build). No inventories
are downloaded (no intersphinx): references to other libraries' types are not checked, while
every reference to bambi_meta's own objects must resolve (nitpicky mode).
"""

import json
from importlib.metadata import version as package_version
from pathlib import Path


def quoted_numbers(generated: Path) -> dict[str, str]:
    """The numbers the pages quote in prose, written by the example scripts (``make docs``)."""
    numbers: dict[str, str] = {}
    for path in sorted(generated.glob("*_numbers.json")):
        for name, value in json.loads(path.read_text()).items():
            if name in numbers:
                raise ValueError(f"{path} quotes {name!r} again")
            numbers[name] = value
    return numbers


project = "bambi_meta"
author = "bambi_meta developers"
release = package_version("bambi_meta")
# sphinx-mathjax-offline ships MathJax in the package, so formulas render without a CDN.
extensions = ["sphinx.ext.autodoc", "sphinx-mathjax-offline", "numpydoc", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
# furo keeps the navigation visible from 1024 px up (a drawer below that) and scrolls wide
# output blocks horizontally instead of clipping them.
html_theme = "furo"
html_title = f"bambi_meta {release}"
html_static_path = ["_static"]
html_css_files = ["wide.css"]
myst_enable_extensions = ["dollarmath", "substitution"]
myst_substitutions = quoted_numbers(Path(__file__).parent / "_generated")
myst_heading_anchors = 3

autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
nitpicky = True
# Types of other libraries are named in docstrings but not linked (no downloaded inventories).
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|pandas|xarray|matplotlib|scipy|bambi|pymc|pytensor|arviz|formulae)\..*"),
    (r"py:.*", r"(optional|array-like|callable|default|or|of|str|int|float|bool|dict|list|tuple)"),
]
