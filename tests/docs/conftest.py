"""A live emulator per documentation page, and the count of examples run and skipped."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import anyio.from_thread
import pytest

from activatepro_async.emulator import Emulator

from .examples import Block, example_env

#: Files a page's examples read (``users.csv``, ``leavers.txt``, ...), copied
#: into the page's working directory before its first block runs.
FILES = Path(__file__).parent / "files"

API_KEY = "docs-example-key"


class Pages:
    """The working directory and the live emulator of the page being run.

    Blocks are run in page order, so one page is open at a time: moving on to
    the next page stops the previous page's emulator.
    """

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self._tmp = tmp
        self._page: Path | None = None
        self._stack = ExitStack()
        self.cwd = Path()
        self.env: dict[str, str] = {}

    def open(self, block: Block) -> None:
        if block.path == self._page:
            return
        self.close()
        self.cwd = self._tmp.mktemp(block.path.stem)
        shutil.copytree(FILES, self.cwd, dirs_exist_ok=True)
        portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        emulator = Emulator(api_keys=(API_KEY,))
        base_url = self._stack.enter_context(portal.wrap_async_context_manager(emulator.serve()))
        self.env = example_env(base_url, API_KEY)
        self._page = block.path

    def close(self) -> None:
        self._stack.close()
        self._page = None


@pytest.fixture(scope="session")
def pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pages]:
    opened = Pages(tmp_path_factory)
    try:
        yield opened
    finally:
        opened.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many examples ran, failed and were skipped (with why), from the test reports.

    Read from the reports, not from this process's state: under pytest-xdist the
    examples run in a worker and only their reports reach this process.
    """
    ran, failed, skipped = 0, 0, []
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, ()):
            nodeid = getattr(report, "nodeid", "")
            if "test_examples.py::test_example_runs[" not in nodeid or report.when != "call":
                continue
            where = nodeid.split("[", 1)[1].rstrip("]")
            if outcome == "skipped":
                why = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
                skipped.append((where, str(why).removeprefix("Skipped: ")))
            else:
                ran += 1
                failed += outcome == "failed"
    if not ran and not skipped:
        return
    terminalreporter.section("documentation examples")
    terminalreporter.write_line(f"{ran} examples ran ({failed} failed), {len(skipped)} skipped")
    for where, why in skipped:
        terminalreporter.write_line(f"  skipped {where}: {why}")
