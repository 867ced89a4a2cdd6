"""Every code example of README.md and docs/ runs, against a live emulator.

``ACTIVATEPRO_DOCS_ROOT`` points the collector at another tree (the runner's own
tests use it to check that a broken block fails the suite).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import Pages
from .examples import ROOT, Block, ExampleError, blocks, pages, run

_ROOT = Path(os.environ.get("ACTIVATEPRO_DOCS_ROOT", ROOT))
EXAMPLES = [block for page in pages(_ROOT) for block in blocks(page)]


@pytest.mark.parametrize("block", EXAMPLES, ids=[block.location for block in EXAMPLES])
def test_example_runs(block: Block, pages: Pages) -> None:
    if block.skip is not None:
        pytest.skip(block.skip)
    pages.open(block)
    try:
        run(block, pages.cwd, pages.env)
    except ExampleError as error:
        failure = str(error)
    else:
        return
    # Outside the except block: the report is the page's location and output, no chain.
    pytest.fail(failure, pytrace=False)
