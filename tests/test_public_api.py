"""The public surface: every exported name is documented and listed in the API reference."""

import inspect
from pathlib import Path

import bambi_meta as bmm

API_PAGE = (Path(__file__).parents[1] / "docs" / "api.md").read_text()


def test_every_public_name_has_a_docstring_and_an_api_entry():
    undocumented, unlisted = [], []
    for name in bmm.__all__:
        if name == "__version__":
            continue
        obj = getattr(bmm, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj):
            undocumented.append(name)
        if f"bambi_meta.{name}" not in API_PAGE:
            unlisted.append(name)
    assert not undocumented, f"public names without a docstring: {undocumented}"
    assert not unlisted, f"public names missing from docs/api.md: {unlisted}"


def test_version_comes_from_package_metadata():
    assert bmm.__version__.count(".") >= 2
