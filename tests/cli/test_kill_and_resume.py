"""The real thing: ``activatepro import --journal`` killed with SIGKILL, then rerun.

Both the server (``activatepro serve``) and the import run as subprocesses on a
free port of 127.0.0.1. Every request of the server waits a little (a latency
fault on all of them), so the import is still running when the journal shows
its second window: that is when it is killed, whatever the machine's speed.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from ..helpers import ServedEmulator
from .conftest import API_KEY, read_jsonl, summary, write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

ROWS = 400
COMMAND = [sys.executable, "-m", "activatepro_async"]


def make_rows() -> tuple[str, dict[str, dict[str, str]], set[int]]:
    lines = ["id,email,firstName,businessUnit"]
    expected: dict[str, dict[str, str]] = {}
    bad: set[int] = set()
    for i in range(ROWS):
        if i % 37 == 36:
            lines.append(f"k{i},not-an-email-{i},Bad,DE")
            bad.add(i + 2)
        else:
            lines.append(f"k{i},k{i}@example.com,Name {i},DE")
            expected[f"k{i}"] = {
                "id": f"k{i}", "email": f"k{i}@example.com", "firstName": f"Name {i}",
                "businessUnit": "DE",
            }  # fmt: skip
    return "\n".join(lines) + "\n", expected, bad


def journal_windows(path: Path) -> int:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    return max(0, text.count("\n") - 1)  # whole lines after the header


async def stored_users(base_url: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    limit = anyio.Semaphore(32)
    headers = {"X-XNG-AuthToken": API_KEY, "X-XNG-ApiVersion": "2"}

    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as http:

        async def get(user_id: str) -> None:
            async with limit:
                response = await http.get(f"/users/{user_id}")
            if response.status_code == 200:
                user = response.json()
                user.pop("xngId", None)
                found[user_id] = user

        async with anyio.create_task_group() as tg:
            for user_id in ids:
                tg.start_soon(get, user_id)
    return found


def as_json_lines(
    text: str, expected: dict[str, dict[str, str]], bad: set[int]
) -> tuple[str, set[int]]:
    """``make_rows``'s rows as JSON Lines (no header: a row's line is one less).

    Padded past one block (1 MiB), the blocks pyarrow reads are mixed with
    one the row code reads (a surrogate pair escape in it), in one run.
    """
    lines = []
    for number, line in enumerate(text.splitlines()[1:]):
        user_id, email, first, unit = line.split(",")
        first += " " + "p" * 3000 + ("\U0001f600" if number == 300 else "")
        if user_id in expected:
            expected[user_id]["firstName"] = first
        # (json.dumps escapes the emoji as its surrogate pair.)
        lines.append(json.dumps({"id": user_id, "email": email, "firstName": first,
                                 "businessUnit": unit}))  # fmt: skip
    return "\n".join(lines) + "\n", {line - 1 for line in bad}


@pytest.mark.parametrize("name", ["users.csv", "users.csv.gz", "users.jsonl"])
def test_sigkill_midway_then_rerun_stores_every_row_as_a_clean_run(
    tmp_path: Path, name: str
) -> None:
    text, expected, bad = make_rows()
    if name.endswith(".jsonl"):
        text, bad = as_json_lines(text, expected, bad)
        assert len(text) > 1 << 20
        assert "\\ud83d" in text
    if name.endswith(".gz"):
        # The journal's chunks name lines of the text, not of the compressed bytes.
        (tmp_path / name).write_bytes(gzip.compress(text.encode()))
        csv_path = str(tmp_path / name)
    else:
        csv_path = write(tmp_path / name, text)
    journal = tmp_path / "users.journal"
    rejects = tmp_path / "rejects.jsonl"
    server = ServedEmulator(
        "--fault-rate", "1", "--fault-kinds", "latency", "--fault-latency", "0.02", api_key=API_KEY
    )  # fmt: skip
    base_url = server.base_url
    try:
        env = {**os.environ, "ACTIVATEPRO_API_KEY": API_KEY, "ACTIVATEPRO_BASE_URL": base_url}
        command = [
            *COMMAND, "import", csv_path, "--journal", str(journal), "--rejects", str(rejects),
            "--chunk-size", "5", "--concurrency", "2", "--quiet", "--json",
        ]  # fmt: skip
        # Windows of 5 * 2 * 4 = 40 rows: kill once two of the ten are journaled.
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while journal_windows(journal) < 2:
            assert first.poll() is None, "the import ended before it could be killed"
            assert time.monotonic() < deadline, "the journal did not grow within 60 s"
            time.sleep(0.005)  # polling the file, not waiting for a time to pass
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL
        killed_at = journal_windows(journal)
        assert killed_at < ROWS // 40

        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1, second.stderr  # the invalid rows
        data = summary(second)
        assert data["journal"]["resumed"] is True
        assert data["skipped"] >= killed_at * 40
        assert data["rows"] == ROWS
        assert (data["accepted"], data["rejected"], data["failed"]) == (
            len(expected),
            len(bad),
            0,
        )

        stored = anyio.run(stored_users, base_url, [f"k{i}" for i in range(ROWS)])
        assert stored == expected
        assert {record["line"] for record in read_jsonl(rejects)} == bad
    finally:
        server.stop()
