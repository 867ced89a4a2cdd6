"""The landing pages: README's first two commands, and the home page's shortest paths."""

from __future__ import annotations

import re

from .examples import ROOT

TWO_COMMANDS = """\
python -m pip install '.[cli]' && activatepro demo
python -m pip install -e '.[dev]' && bash scripts/test
"""


def test_the_two_commands_are_the_first_thing_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = re.search(r"^```\w*\n(.*?)^```$", readme, re.S | re.M)
    assert first_block is not None
    assert first_block[1] == TWO_COMMANDS
    # CI runs the second one.
    assert "bash scripts/test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_home_page_links_the_three_questions_asked_most() -> None:
    # One click from the home page to the page that answers each (the issue asks for two).
    home = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    for question, page in [
        ("bulk-import a CSV", "guides/bulk-imports.md"),
        ("use the SDK from sync code", "guides/sync-client.md"),
        ("test your code with the emulator", "guides/testing.md"),
    ]:
        row = next(line for line in home.splitlines() if question in line)
        assert f"]({page})" in row
        assert (ROOT / "docs" / page).is_file()
    answers = {
        "guides/bulk-imports.md": "## Import a CSV file",
        "guides/sync-client.md": "with Client() as client:",
        "guides/testing.md": "async def test_signup_stores_the_user(activatepro_client",
    }
    for page, answer in answers.items():
        assert answer in (ROOT / "docs" / page).read_text(encoding="utf-8")


def test_every_relative_link_of_the_readme_exists() -> None:
    # mkdocs checks the site's links; README is not in the site, so its links are checked here.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert targets
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert missing == []
