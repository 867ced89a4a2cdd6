"""One run per journal: a second ``activatepro import`` on it is refused, and a
killed run leaves no lock behind (the OS lock goes with the process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from activatepro_async._cli.journal import Journal, JournalError

from ..helpers import ServedEmulator
from .conftest import API_KEY, summary, write
from .test_kill_and_resume import COMMAND, ROWS, journal_windows, make_rows

OPTIONS = {"format": "csv"}
INPUT = {"name": "users.csv", "size": 10, "sha256": "0" * 64, "lines": 3}


def test_a_second_open_of_one_journal_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = str(tmp_path / "run.journal")
    first = Journal.open(path, command="upsert", input=INPUT, options=OPTIONS)
    with pytest.raises(JournalError, match="another activatepro run is using the journal"):
        Journal.open(path, command="upsert", input=INPUT, options=OPTIONS)
    first.record([{"lines": [2, 3], "users": 2, "rejected": 0, "tracking_id": "t-1"}], [])
    first.close()
    again = Journal.open(path, command="upsert", input=INPUT, options=OPTIONS)
    try:
        assert again.resumed, "the refused open changed nothing"
        assert again.accepted == 2
    finally:
        again.close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_two_imports_on_one_journal_the_second_is_refused_and_a_killed_one_leaves_no_lock(
    tmp_path: Path,
) -> None:
    text, _, _ = make_rows()
    csv_path = write(tmp_path / "users.csv", text)
    journal = tmp_path / "users.journal"
    # Every request waits 0.2 s: the first run lasts long after its first window.
    server = ServedEmulator(
        "--fault-rate", "1", "--fault-kinds", "latency", "--fault-latency", "0.2", api_key=API_KEY
    )  # fmt: skip
    try:
        env = {**os.environ, "ACTIVATEPRO_API_KEY": API_KEY}
        env["ACTIVATEPRO_BASE_URL"] = server.base_url
        run = [*COMMAND, "import", csv_path, "--journal", str(journal), "--quiet", "--json"]
        command = [*run, "--chunk-size", "5", "--concurrency", "1"]
        first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while journal_windows(journal) < 1:
                assert first.poll() is None, "the first import ended before the second started"
                assert time.monotonic() < deadline, "the journal did not grow within 60 s"
                time.sleep(0.005)  # polling the file, not waiting for a time to pass
            before = journal.read_bytes()

            second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
            assert first.poll() is None, "the first import was still running"
            assert second.returncode == 2, second.stderr
            assert "Traceback" not in second.stderr
            lines = second.stderr.strip().splitlines()
            assert len(lines) == 1, second.stderr
            assert "another activatepro run is using the journal" in lines[0]
            assert "--journal" in lines[0], "it says what to do"
            assert second.stdout == ""
            assert journal.read_bytes().startswith(before), "the refused run wrote nothing"
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=30)
        assert first.returncode == -signal.SIGKILL

        # The killed run's lock died with it: the rerun resumes and finishes.
        third = subprocess.run(
            [*run, "--chunk-size", "50"], env=env, capture_output=True, text=True, timeout=120
        )
        assert third.returncode == 1, third.stderr  # the invalid rows
        data = summary(third)
        assert data["journal"]["resumed"] is True
        assert data["rows"] == ROWS
        assert data["skipped"] >= 5, "the killed run's first window was not sent again"
        assert data["failed"] == 0
    finally:
        server.stop()
