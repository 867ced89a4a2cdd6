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
