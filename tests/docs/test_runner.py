"""The example runner itself: it finds the blocks, reads the markers, and can fail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ..helpers import child_env
from .examples import ROOT, Block, ExampleError, blocks, commands

BROKEN = Path(__file__).parent / "fixtures" / "broken"


def write(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    return page


def test_a_broken_block_fails_the_suite_with_its_file_and_line() -> None:
    env = child_env(ACTIVATEPRO_DOCS_ROOT=str(BROKEN))
    pytest_argv = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/docs/test_examples.py"]
    result = subprocess.run(
        [sys.executable, *pytest_argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 1, out
    assert "tests/docs/fixtures/broken/README.md:18: the script exited with status 1" in out
    assert "ImportError: cannot import name 'NoSuchName'" in out
    # A console command that fails is reported with the command as the reader wrote it.
    assert "docs/cli.md:3: get no-such-user exited with status 1" in out
    # A block that defines a test runs under pytest, with the package's fixtures.
    assert "docs/testing.md:3: its tests exited with status 1" in out
    assert "assert {} == {'nobody': {}}" in out
    assert "3 failed, 1 passed, 1 skipped" in out
    assert "4 examples ran (3 failed), 1 skipped" in out
    assert "skipped tests/docs/fixtures/broken/README.md:12: needs a production key" in out


def test_the_skip_marker_is_read_from_the_line_before_the_fence(tmp_path: Path) -> None:
    page = write(
        tmp_path,
        "<!-- example: skip: needs Spark -->\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n",
    )
    found = list(blocks(page))
    assert [(b.line, b.skip) for b in found] == [(2, "needs Spark"), (6, None)]


def test_a_marker_that_is_not_a_skip_with_a_reason_is_refused(tmp_path: Path) -> None:
    page = write(tmp_path, "<!-- example: skip -->\n```python\nx = 1\n```\n")
    with pytest.raises(ExampleError, match=r"page.md:2: unknown example marker"):
        list(blocks(page))


def test_an_indented_block_in_a_list_is_dedented(tmp_path: Path) -> None:
    page = write(tmp_path, "- a step:\n\n  ```python\n  if True:\n      x = 1\n  ```\n")
    (block,) = blocks(page)
    assert block.code == "if True:\n    x = 1\n"


def test_other_languages_and_an_unclosed_fence(tmp_path: Path) -> None:
    assert list(blocks(write(tmp_path, "```bash\npip install x\n```\n"))) == []
    with pytest.raises(ExampleError, match=r"page.md:1: the block opened here is never closed"):
        list(blocks(write(tmp_path, "```python\nx = 1\n")))


def test_console_blocks_run_only_plain_activatepro_commands() -> None:
    def block(code: str) -> Block:
        return Block(Path("page.md"), 1, "console", code, None)

    assert commands(block("$ activatepro get 42  # a user\n{...}\n")) == [
        ["activatepro", "get", "42"]
    ]
    with pytest.raises(ExampleError, match=r"page.md:2: only plain `\$ activatepro"):
        commands(block("$ pip install x\n"))
    with pytest.raises(ExampleError, match="only plain"):
        commands(block("$ activatepro get 42 | jq .\n"))
    assert commands(block("$ activatepro import users.csv \\\n    --dry-run\n")) == [
        ["activatepro", "import", "users.csv", "--dry-run"]
    ]
    with pytest.raises(ExampleError, match="no `\\$ activatepro` line"):
        commands(block("just output\n"))
