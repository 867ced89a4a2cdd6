"""``activatepro sync`` killed with SIGKILL at several points, then rerun: it converges.

Two servers (``activatepro serve``, every request slowed by a latency fault so
a run lasts long enough to be killed): on one, two nightly exports are synced
cleanly; on the other, the same two, each run killed at a point the test
observes (never after a guessed time), then rerun until it ends. The servers'
dumped users and the two state files' rows must be the same.

Kill points: the first export's users appearing on the server (sent, not yet
confirmed); the second run holding its state open (before it sends: it holds
the changes for the delete guard); its first changed user appearing; its first
deleted user gone (the delete processed, not yet out of the state).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ..helpers import ServedEmulator
from .conftest import API_KEY, summary, write

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

COMMAND = [sys.executable, "-m", "activatepro_async"]
ROWS = 240


def export(path: Path, night: int) -> str:
    """Night 1: ROWS users (every 37th with a bad email). Night 2: some changed, gone, new."""
    lines = ["id,email,firstName"]
    for i in range(ROWS + (30 if night == 2 else 0)):
        if night == 2 and i % 10 == 3:
            continue  # left the CRM
        email = f"not-an-email-{i}" if i % 37 == 36 else f"k{i:03}@example.com"
        name = "Changed" if night == 2 and i % 7 == 0 else f"Name {i}"
        lines.append(f"k{i:03},{email},{name}")
    return write(path, "\n".join(lines) + "\n")


def sync_command(csv: str, state: Path, night: int) -> list[str]:
    command = [*COMMAND, "sync", csv, "--state", str(state), "--chunk-size", "5"]
    command += ["--concurrency", "1", "--quiet", "--json"]
    if night == 2:
        command += ["--delete-missing", "--max-delete", "50"]
    return command


def exists_on(base_url: str, user_id: str, name: str | None = None) -> bool:
    headers = {"X-XNG-AuthToken": API_KEY, "X-XNG-ApiVersion": "2"}
    response = httpx.get(f"{base_url}/users/{user_id}", headers=headers, timeout=10)
    if response.status_code != 200:
        return False
    return name is None or response.json().get("firstName") == name


def kill_when(command: list[str], env: dict[str, str], condition: Callable[[], bool]) -> None:
    """Start the sync, SIGKILL it once ``condition()`` holds (polled), while it still runs."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while not condition():
            assert process.poll() is None, "the sync ended before it could be killed"
            assert time.monotonic() < deadline, "the kill point was not reached within 60 s"
            time.sleep(0.002)  # polling a condition, not waiting for a time to pass
        assert process.poll() is None, "the sync ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL


def run_to_the_end(command: list[str], env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stderr  # the rows with a bad email
    data = summary(done)
    assert data["sync"]["unconfirmed"] == 0  # type: ignore[index]
    return data


def dumped(path: Path) -> list[dict[str, object]]:
    users = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for user in users:
        user.pop("xngId", None)  # random per server
    return users


def state_rows(path: Path) -> list[tuple[str, bytes]]:
    db = sqlite3.connect(path)
    try:
        return list(db.execute("SELECT id, hash FROM users ORDER BY id"))
    finally:
        db.close()


def serve(dump: Path) -> ServedEmulator:
    return ServedEmulator(
        "--fault-rate", "1", "--fault-kinds", "latency", "--fault-latency", "0.02",
        "--dump-on-exit", str(dump), api_key=API_KEY,
    )  # fmt: skip


def test_sigkill_at_several_points_then_rerun_ends_as_a_clean_run(tmp_path: Path) -> None:
    nights = {n: export(tmp_path / f"night{n}.csv", n) for n in (1, 2)}
    clean_dump, killed_dump = tmp_path / "clean.jsonl", tmp_path / "killed.jsonl"
    clean_state, killed_state = tmp_path / "clean.sync", tmp_path / "killed.sync"
    wal = Path(str(killed_state) + "-wal")

    clean = serve(clean_dump)
    try:
        env = {**os.environ, "ACTIVATEPRO_API_KEY": API_KEY, "ACTIVATEPRO_BASE_URL": clean.base_url}
        for night in (1, 2):
            run_to_the_end(sync_command(nights[night], clean_state, night), env)
    finally:
        clean.stop()

    server = serve(killed_dump)
    try:
        url = server.base_url
        env = {**os.environ, "ACTIVATEPRO_API_KEY": API_KEY, "ACTIVATEPRO_BASE_URL": url}
        night1 = sync_command(nights[1], killed_state, 1)
        kill_when(night1, env, lambda: exists_on(url, "k010"))
        first = run_to_the_end(night1, env)
        assert first["sync"]["new"] + first["sync"]["changed"] > 0  # type: ignore[index]

        night2 = sync_command(nights[2], killed_state, 2)
        kill_when(night2, env, wal.exists)
        kill_when(night2, env, lambda: exists_on(url, "k014", "Changed"))
        kill_when(night2, env, lambda: not exists_on(url, "k003"))
        last = run_to_the_end(night2, env)
        assert last["sync"]["missing"] == last["sync"]["deleted"]  # type: ignore[index]
    finally:
        server.stop()

    assert dumped(killed_dump) == dumped(clean_dump)
    assert state_rows(killed_state) == state_rows(clean_state)
    stored = {user["id"] for user in dumped(clean_dump)}
    assert "k003" not in stored
    assert "k004" in stored
    assert "k269" in stored
    assert [uid for uid, _ in state_rows(clean_state)] == sorted(stored)  # each one confirmed
