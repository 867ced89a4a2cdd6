"""The API reference covers every public name, and every public name has a docstring.

The site's reference is rendered by mkdocstrings from griffe's reading of the
sources, so these tests read them through griffe too: a name they pass is a
name the site shows with its docstring.
"""

from __future__ import annotations

import re

import griffe
import pytest

from .examples import ROOT

#: The public modules and the reference page each is rendered on.
PUBLIC = {
    "activatepro_async": None,
    "activatepro_async.emulator": "emulator.md",
    "activatepro_async.integrations.spark": "spark.md",
    "activatepro_async.pytest_plugin": "pytest-fixtures.md",
}


@pytest.fixture(scope="module")
def package() -> griffe.Module:
    # With the site's extension, which reads a constant's `#:` comment as its docstring.
    extensions = griffe.load_extensions(f"{ROOT}/scripts/griffe_docstrings.py:ReSTHabits")
    loaded = griffe.load(
        "activatepro_async",
        search_paths=[ROOT / "src"],
        resolve_aliases=True,
        extensions=extensions,
    )
    assert isinstance(loaded, griffe.Module)
    return loaded


def exported(package: griffe.Module) -> list[tuple[str, griffe.Object]]:
    found = []
    for path in PUBLIC:
        module = package if path == package.path else package[path.split(".", 1)[1]]
        assert module.exports, f"{path} has no __all__"
        for name in module.exports:
            obj = module[name]
            found.append((f"{path}.{name}", obj.final_target if obj.is_alias else obj))
    return found


def test_every_public_name_has_a_docstring(package: griffe.Module) -> None:
    missing = [name for name, obj in exported(package) if not _documented(obj)]
    assert missing == [], "add a docstring (for a constant, a `#:` comment above it)"


def test_every_public_method_and_property_has_a_docstring(package: griffe.Module) -> None:
    missing = [
        member.path
        for _, obj in exported(package)
        if obj.is_class
        for name, member in obj.members.items()
        if not name.startswith("_") and member.is_function and not _documented(member)
    ]
    assert missing == []


def test_the_reference_renders_every_public_name(package: griffe.Module) -> None:
    rendered = set()
    for page in (ROOT / "docs" / "reference").glob("*.md"):
        rendered |= set(re.findall(r"^::: (\S+)$", page.read_text(encoding="utf-8"), re.M))
    missing = [name for name, _ in exported(package) if name not in rendered]
    assert missing == [], "add a `::: name` line to a page of docs/reference/"


def _documented(obj: griffe.Object | griffe.Alias) -> bool:
    return obj.docstring is not None and bool(obj.docstring.value.strip())


def test_the_reference_names_every_method_of_the_sync_client() -> None:
    # Client's methods are made at import time from AsyncClient's, so the site's static
    # reading does not list them; the clients page names them, and must name them all.
    from activatepro_async import Client

    twins = [name for name, value in vars(Client).items() if hasattr(value, "__wrapped__")]
    page = (ROOT / "docs" / "reference" / "clients.md").read_text(encoding="utf-8")
    assert twins
    assert [name for name in twins if f"`{name}`" not in page] == []
