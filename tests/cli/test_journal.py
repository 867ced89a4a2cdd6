"""``--journal``: a stopped run, rerun, sends only what was not settled, and ends as a clean run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from activatepro_async import RetryPolicy
from activatepro_async._cli.journal import Journal, JournalError, file_identity
from activatepro_async.emulator import Emulator

from .conftest import API_KEY, Invoke, read_jsonl, summary
from .journals import FailAfter, FailBatches, make_csv

OPTIONS = ("--chunk-size", "10", "--concurrency", "1", "--json", "--wait")


def test_a_stopped_run_resumes_where_it_stopped(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, valid, bad = make_csv(tmp_path / "u.csv")
    journal = str(tmp_path / "u.journal")
    first = invoke(
        "import", path, "--journal", journal, "--rejects", str(tmp_path / "r1.jsonl"), *OPTIONS,
        transport=FailAfter(emulator.transport(), batches=7),
    )  # fmt: skip
    assert first.exit_code == 2
    assert "the API refused the key (401)" in first.output
    stored_before = set(emulator.users)
    assert 0 < len(stored_before) < len(valid)

    rejects = tmp_path / "r2.jsonl"
    second = invoke("import", path, "--journal", journal, "--rejects", str(rejects), *OPTIONS)
    assert second.exit_code == 1, second.output
    data = summary(second)
    assert data["rows"] == 200
    assert data["skipped"] == 70  # 7 chunks of 10 rows were accepted before the stop
    assert data["sent"] == 130
    assert (data["accepted"], data["rejected"], data["failed"]) == (len(valid), len(bad), 0)
    assert data["journal"]["resumed"] is True
    assert set(emulator.users) == valid
    assert {r["line"] for r in read_jsonl(rejects)} == bad

    third = invoke("import", path, "--journal", journal, "--rejects", str(rejects), *OPTIONS)
    data = summary(third)
    assert (data["sent"], data["skipped"], data["rejected"]) == (0, 200, len(bad))
    assert {r["line"] for r in read_jsonl(rejects)} == bad


def test_a_changed_file_is_refused_not_resumed(invoke: Invoke, tmp_path: Path) -> None:
    path, _, _ = make_csv(tmp_path / "u.csv", rows=20)
    journal = str(tmp_path / "u.journal")
    assert invoke("import", path, "--journal", journal).exit_code == 1
    make_csv(tmp_path / "u.csv", rows=21)
    result = invoke("import", path, "--journal", journal)
    assert result.exit_code == 2
    assert "it changed, or it is another file" in result.output


def test_other_options_are_refused_not_resumed(invoke: Invoke, tmp_path: Path) -> None:
    path, _, _ = make_csv(tmp_path / "u.csv", rows=20)
    journal = str(tmp_path / "u.journal")
    assert invoke("import", path, "--journal", journal).exit_code == 1
    result = invoke("import", path, "--journal", journal, "--map", "firstName=lastName")
    assert result.exit_code == 2
    assert "other options (map differ)" in result.output
    result = invoke("delete", path, "--journal", journal)
    assert result.exit_code == 2
    assert "belongs to an 'upsert' run" in result.output


def test_a_torn_last_line_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "j"
    identity = file_identity(make_csv(tmp_path / "u.csv", rows=30)[0])
    journal = Journal.open(str(path), command="upsert", input=identity, options={})
    journal.record([{"lines": [2, 11], "users": 10, "rejected": 0, "tracking_id": "t1"}], [])
    journal.close()
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"chunks": [{"lines": [12, 2')  # killed mid-write
    journal = Journal.open(str(path), command="upsert", input=identity, options={})
    assert journal.is_done(11)
    assert not journal.is_done(12)
    journal.record([{"lines": [12, 21], "users": 10, "rejected": 1, "tracking_id": "t2"}], [])
    journal.close()
    journal = Journal.open(str(path), command="upsert", input=identity, options={})
    assert journal.is_done(21)
    assert journal.accepted == 19
    assert journal.tracking_ids == ["t1", "t2"]
    journal.close()


def test_a_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")
    identity = file_identity(make_csv(tmp_path / "u.csv", rows=3)[0])
    with pytest.raises(JournalError, match="is not an activatepro journal"):
        Journal.open(str(path), command="upsert", input=identity, options={})
    assert path.read_text() == "hello\n"


def test_failed_chunks_are_reported_and_sent_again_by_a_rerun(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, valid, bad = make_csv(tmp_path / "u.csv", rows=60)
    journal = str(tmp_path / "u.journal")
    no_retries = RetryPolicy(max_retries=0)
    args = ("import", path, "--journal", journal, "--chunk-size", "10", "--concurrency", "1")
    first = invoke(
        *args, "--json", transport=FailBatches(emulator.transport(), {2}), retry=no_retries
    )
    assert first.exit_code == 1
    data = summary(first)
    assert data["failed"] == 10
    [chunk] = data["failed_chunks"]
    assert chunk["lines"] == [12, 21]
    assert chunk["error"].startswith("ServerError: 503")
    assert not {f"u{i}" for i in range(10, 20)} & set(emulator.users)

    second = invoke(*args, "--json", retry=no_retries)
    data = summary(second)
    assert (data["sent"], data["skipped"], data["failed"]) == (10, 50, 0)
    assert set(emulator.users) == valid
    assert data["rejected"] == len(bad)

    human = invoke(*args, transport=FailBatches(emulator.transport(), {1}), retry=no_retries)
    assert "Traceback" not in human.output


@pytest.mark.parametrize("reader", ["stdlib", "auto"])
def test_a_run_stops_sending_once_chunks_fail_in_a_row(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The columnar path stops between the blocks it read and the engine's
    # windows of rows: about 5 and 10 rows here (1 MiB and 8,000 rows by default).
    monkeypatch.setattr("activatepro_async._cli.readers._BLOCK", 256)
    monkeypatch.setattr("activatepro_async._columnar.WINDOW_ROWS", 10)
    path, _, _ = make_csv(tmp_path / "u.csv", rows=200)
    result = invoke(
        "import", path, "--chunk-size", "10", "--concurrency", "1", "--json", "--reader", reader,
        transport=FailBatches(emulator.transport(), set(range(1, 100))),
        retry=RetryPolicy(max_retries=0),
    )  # fmt: skip
    assert result.exit_code == 1
    data = summary(result)
    # 4 * concurrency chunks failed in a row, none accepted: the API is down. The
    # chunks read by then (at most concurrency + 1 more) go too, then nothing.
    assert 40 <= data["rows"] <= 60
    assert data["failed"] + data["rejected"] == data["rows"]
    assert re.match(r"\d+ chunks in a row failed \(ServerError: 503", data["stopped_by"])


def test_a_run_goes_on_while_some_chunks_get_through(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, _, _ = make_csv(tmp_path / "u.csv", rows=200)
    result = invoke(
        "import", path, "--chunk-size", "10", "--concurrency", "1", "--json",
        transport=FailBatches(emulator.transport(), {n for n in range(1, 100) if n % 4}),
        retry=RetryPolicy(max_retries=0),
    )  # fmt: skip
    data = summary(result)
    assert data["rows"] == 200  # three failed chunks, then one accepted: never four in a row
    assert data["stopped_by"] is None
    assert data["failed"] == 150


def test_an_earlier_runs_tracking_id_gone_404_counts_as_expired_not_failed(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, valid, bad = make_csv(tmp_path / "u.csv")
    journal = str(tmp_path / "u.journal")
    first = invoke(
        "import", path, "--journal", journal, *OPTIONS,
        transport=FailAfter(emulator.transport(), batches=3),
    )  # fmt: skip
    assert first.exit_code == 2
    # The resumed run talks to a server that has forgotten the first run's ids
    # (as the API does after 24 hours): those 3 are expired, not failures.
    later = Emulator((API_KEY,))
    second = invoke("import", path, "--journal", journal, *OPTIONS, transport=later.transport())
    data = summary(second)
    assert data["tracking_expired"] == 3
    assert data["tracking_not_followed"] == 0
    assert data["tracking"]["total"] == data["sent"] == 200 - 30  # this run's, all followed
    assert (data["accepted"], data["rejected"]) == (len(valid), len(bad))
