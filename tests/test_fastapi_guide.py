"""The FastAPI guide's import example runs: its handler's code, against an emulator.

The work is a plain function of the client and the upload's bytes, which the
guide's block runs for real; here it is also driven with a refused key and a
clean upload.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from activatepro_async import AsyncClient
from activatepro_async.emulator import Emulator

GUIDE = Path(__file__).parent.parent / "docs" / "guides" / "fastapi.md"


def handler_block() -> str:
    """The first python block after the guide's "In a FastAPI handler" heading."""
    text = GUIDE.read_text(encoding="utf-8")
    section = text[text.index("## In a FastAPI handler") :]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None
    return found.group(1)


@pytest.mark.anyio
async def test_the_guide_block_runs_as_a_script_against_an_emulator(tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(handler_block(), encoding="utf-8")
    emulator = Emulator(("example-key",))
    async with emulator.serve() as url:
        env = {**os.environ, "ACTIVATEPRO_API_KEY": "example-key", "ACTIVATEPRO_BASE_URL": url}
        done = await anyio.run_process([sys.executable, str(script)], env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.startswith(b"400 ")
    assert set(emulator.users) == {"u1", "u3"}  # written before the broken line stopped it


def handler() -> Any:
    """The guide's ``import_upload``, without the block's own demo run."""
    code = handler_block().replace("\nanyio.run(main)\n", "\n")
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(code, "fastapi.md", "exec"), namespace)
    return namespace["import_upload"]


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.mark.anyio
async def test_a_refused_key_answers_502_with_nothing_written() -> None:
    emulator = Emulator(("right-key",))
    async with AsyncClient("wrong-key", transport=emulator.transport()) as client:
        status, body = await handler()(client, chunks(b'{"id": "u1", "email": "a@example.com"}\n'))
    assert status == 502
    assert "401" in body["error"] or "key" in body["error"].lower()
    assert (body["accepted"], body["tracking_ids"]) == (0, [])


@pytest.mark.anyio
async def test_a_clean_upload_answers_200_with_the_rejects_by_line() -> None:
    emulator = Emulator(("k",))
    upload = chunks(
        b'{"id": "a", "email": "a@example.com"}\n\n\n{"id": "b", "email": "bad"}',
        b'\n{"id": "c", "email": "c@example.com"}',  # no line break at the end
    )
    async with AsyncClient("k", transport=emulator.transport()) as client:
        status, body = await handler()(client, upload)
    assert status == 200
    assert body["accepted"] == 2
    assert [(r["line"], r["id"]) for r in body["rejected"]] == [(4, "b")]
    assert set(emulator.users) == {"a", "c"}
