"""The documentation's code blocks, found and run as a reader would run them.

Every ```python block of README.md and docs/**/*.md runs as a script (``python
block.py``) in a temporary directory, and every ```console block runs its
``$ activatepro ...`` lines, each against a live emulator on 127.0.0.1 reached
through ACTIVATEPRO_API_KEY and ACTIVATEPRO_BASE_URL. The blocks of one page
share that directory and that emulator, in page order, so a later block can use
what an earlier one stored or wrote.

A Python block that defines a test (a top-level ``def test_...`` or ``async def
test_...``) runs under pytest instead, with the fixtures the package installs.

A block that cannot run here says why on the line right before its fence::

    <!-- example: skip: needs a Spark cluster -->

Our own collector rather than ``pytest-examples``: that plugin runs blocks
in-process with ``exec`` and reads its settings from the fence's info string,
while a page's examples here are whole scripts (each may call ``asyncio.run``,
``trio.run`` or start a ``Client`` thread), share a working directory and an
emulator with the page's other blocks, include shell sessions of the
``activatepro`` command, and give their skip reason in a comment that renders
as nothing on the site.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..helpers import child_env

#: The repository's root: the pages are found relative to it.
ROOT = Path(__file__).resolve().parents[2]

#: The fence languages that run.
RUN_LANGUAGES = frozenset({"python", "console"})

#: Seconds one block may take: a hung example fails instead of holding the suite.
BLOCK_TIMEOUT = 120

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*example:\s*(?P<body>.*?)\s*-->\s*$")
_TEST = re.compile(r"^(?:async )?def test_", re.M)


class ExampleError(Exception):
    """A block that failed, or that the collector cannot read; the message names file:line."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    path: Path
    #: 1-based line of the opening fence.
    line: int
    language: str
    code: str
    #: The reason given by a ``<!-- example: skip: ... -->`` marker, or None.
    skip: str | None

    @property
    def location(self) -> str:
        """``file:line`` of the fence, relative to the repository when it is inside it."""
        try:
            name = self.path.relative_to(ROOT).as_posix()
        except ValueError:
            name = self.path.as_posix()
        return f"{name}:{self.line}"


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every page of docs/, in a stable order."""
    found = [root / "README.md"] if (root / "README.md").exists() else []
    return found + sorted((root / "docs").rglob("*.md"))


def _skip_reason(marker_line: str, where: str) -> str | None:
    match = _MARKER.match(marker_line)
    if match is None:
        return None
    kind, _, reason = match["body"].partition(":")
    if kind.strip() != "skip" or not reason.strip():
        raise ExampleError(
            f"{where}: unknown example marker {marker_line.strip()!r}; "
            "write <!-- example: skip: <why it cannot run here> -->"
        )
    return reason.strip()


def blocks(path: Path) -> Iterator[Block]:
    """Every fenced block of ``path`` whose language runs (see :data:`RUN_LANGUAGES`)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, indent = opening["fence"], opening["indent"]
        language = opening["info"].strip().split(" ")[0].lower()
        start = index
        index += 1
        body: list[str] = []
        while index < len(lines):
            closing = _FENCE.match(lines[index])
            if (
                closing is not None
                and closing["fence"].startswith(fence)
                and not closing["info"].strip()
            ):
                break
            body.append(lines[index])
            index += 1
        else:
            raise ExampleError(f"{path}:{start + 1}: the block opened here is never closed")
        index += 1
        if language not in RUN_LANGUAGES:
            continue
        where = Block(path, start + 1, language, "", None).location
        marker = _skip_reason(lines[start - 1], where) if start > 0 else None
        code = textwrap.dedent("\n".join(line.removeprefix(indent) for line in body)) + "\n"
        yield Block(path, start + 1, language, code, marker)


def commands(block: Block) -> list[list[str]]:
    """The ``$ activatepro ...`` commands of a console block, as argument lists.

    Lines without ``$ `` are the output a reader would see; they are not
    compared (the figures of a run vary). Anything but ``activatepro`` after a
    ``$`` needs a skip marker: the collector runs the SDK's command only.
    """
    found = []
    lines = block.code.splitlines()
    index = 0
    while index < len(lines):
        where = f"{block.location.rsplit(':', 1)[0]}:{block.line + 1 + index}"
        text = lines[index]
        index += 1
        if not text.startswith("$ "):
            continue
        text = text[2:]
        while text.endswith("\\") and index < len(lines):  # a command continued on the next line
            text = text[:-1] + " " + lines[index].strip()
            index += 1
        try:
            argv = shlex.split(text, comments=True)
        except ValueError as error:
            raise ExampleError(f"{where}: cannot read the command: {error}") from None
        if not argv or argv[0] != "activatepro" or any(a in {"|", ">", "<", "&&"} for a in argv):
            raise ExampleError(
                f"{where}: only plain `$ activatepro ...` commands run here; "
                "put other commands in a ```bash block or mark the block "
                "<!-- example: skip: <why> -->"
            )
        found.append(argv)
    if not found:
        raise ExampleError(f"{block.location}: a console block with no `$ activatepro` line")
    return found


def _report(block: Block, what: str, result: subprocess.CompletedProcess[str]) -> ExampleError:
    return ExampleError(
        f"{block.location}: {what} exited with status {result.returncode}\n"
        f"--- stdout\n{result.stdout}--- stderr\n{result.stderr}"
    )


def run(block: Block, cwd: Path, env: Mapping[str, str]) -> None:
    """Run ``block`` in ``cwd`` with ``env``; raise :class:`ExampleError` if it fails.

    A Python block fails when its script exits non-zero (an exception, an
    assert). A console command fails when it exits non-zero: a page that shows
    a run with rejected rows (exit 1) shows a file with rejects on purpose and
    says so with a skip marker, or checks the outcome from a Python block.
    """
    runs: list[tuple[str, list[str]]] = []  # (what a failure names, argv)
    if block.language == "python":
        script = cwd / f"example_{block.path.stem}_{block.line}.py".replace("-", "_")
        script.write_text(block.code, encoding="utf-8")
        if _TEST.search(block.code):
            tested = script.rename(script.with_name(f"test_{script.name}"))
            pytest = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"]
            runs.append(("its tests", [sys.executable, *pytest, tested.name]))
        else:
            runs.append(("the script", [sys.executable, script.name]))
    else:
        # `python -m activatepro_async` is the command of this interpreter's install.
        command = [sys.executable, "-m", "activatepro_async"]
        runs += [(shlex.join(argv[1:]), [*command, *argv[1:]]) for argv in commands(block)]
    for shown, argv in runs:
        try:
            result = subprocess.run(
                argv,
                cwd=cwd,
                env=dict(env),
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ExampleError(f"{block.location}: still running after {BLOCK_TIMEOUT} s") from None
        if result.returncode != 0:
            raise _report(block, shown, result)


def example_env(base_url: str, api_key: str) -> dict[str, str]:
    """This process's environment with the emulator's address and key, nothing else of ours."""
    env = {k: v for k, v in child_env().items() if not k.startswith("ACTIVATEPRO_")}
    env.update(
        ACTIVATEPRO_API_KEY=api_key,
        ACTIVATEPRO_BASE_URL=base_url,
        COLUMNS="100",
    )
    return env
