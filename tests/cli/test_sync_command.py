"""``activatepro sync`` in-process against the emulator: each point of issue 15's "Done when"."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from activatepro_async._syncstate import SyncState
from activatepro_async.emulator import Emulator

from ..helpers import posted_batches, sync_state_rows
from .conftest import Invoke, assert_usage_error, read_jsonl, summary, write


def export(path: Path, n: int, changed: set[int] = frozenset(), bad: set[int] = frozenset()) -> str:  # type: ignore[assignment]
    lines = ["customer,mail,firstName"]
    for i in range(n):
        mail = "not-an-email" if i in bad else f"c{i}@example.com"
        lines.append(f"c{i},{mail},{'B' if i in changed else 'A'}")
    return write(path, "\n".join(lines) + "\n")


MAP = ("--map", "customer=id", "--map", "mail=email", "--chunk-size", "10")


def run_sync(invoke: Invoke, csv: str, state: Path, *args: str, **kwargs: Any) -> Any:
    return invoke("sync", csv, "--state", str(state), *MAP, "--json", *args, **kwargs)


def test_first_run_sends_all_then_unchanged_sends_nothing_then_a_change_alone(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, backend: str
) -> None:
    state = tmp_path / "crm.sync"
    csv = export(tmp_path / "crm.csv", 35)
    first = run_sync(invoke, csv, state, backend=backend)
    assert first.exit_code == 0, first.output
    data = summary(first)
    assert data["command"] == "sync"
    assert data["ok"] is True
    assert data["sync"] == {
        "new": 35, "changed": 0, "unchanged": 0, "sent": 35, "confirmed": 35,
        "unconfirmed": 0, "missing": 0, "deleted": 0, "not_deleted": 0,
    }  # fmt: skip
    assert len(sync_state_rows(state)) == 35

    before = len(emulator.requests)
    again = run_sync(invoke, csv, state, backend=backend)
    assert again.exit_code == 0, again.output
    assert len(emulator.requests) == before
    assert summary(again)["sync"]["unchanged"] == 35
    assert summary(again)["rows"] == 35

    export(tmp_path / "crm.csv", 35, changed={20})
    changed = run_sync(invoke, csv, state, backend=backend)
    assert posted_batches(emulator, before) == [["c20"]]
    assert (summary(changed)["sync"]["changed"], summary(changed)["sync"]["confirmed"]) == (1, 1)


def test_the_text_summary_shows_the_sync_counts(invoke: Invoke, tmp_path: Path) -> None:
    state = tmp_path / "crm.sync"
    csv = export(tmp_path / "crm.csv", 12)
    invoke("sync", csv, "--state", str(state), *MAP)
    result = invoke("sync", csv, "--state", str(state), *MAP)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Synced ")
    for label, count in (("new", 0), ("unchanged", 12), ("sent", 0), ("confirmed", 0)):
        assert any(line.split()[:2] == [label, str(count)] for line in result.output.splitlines())


def test_the_text_summary_of_a_sync_names_no_wait_option(invoke: Invoke, tmp_path: Path) -> None:
    # import's "processed: not followed: --wait shows..." line was shown by
    # sync too, which has no --wait and follows every tracking id itself.
    csv = export(tmp_path / "crm.csv", 12)
    result = invoke("sync", csv, "--state", str(tmp_path / "crm.sync"), *MAP)
    assert result.exit_code == 0, result.output
    assert any(line.split()[:2] == ["confirmed", "12"] for line in result.output.splitlines())
    assert "--wait" not in result.output
    assert "not followed" not in result.output


def test_a_batch_processed_with_errors_is_sent_again(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.seed({"id": "owner", "email": "c14@example.com"})  # c14's email is taken
    state = tmp_path / "crm.sync"
    csv = export(tmp_path / "crm.csv", 30)
    first = run_sync(invoke, csv, state)
    assert first.exit_code == 1
    assert summary(first)["sync"]["unconfirmed"] == 10
    assert summary(first)["ok"] is False
    before = len(emulator.requests)
    run_sync(invoke, csv, state)
    assert posted_batches(emulator, before) == [[f"c{i}" for i in range(10, 20)]]


def test_rejected_rows_go_to_the_rejects_file_and_are_not_confirmed(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    state = tmp_path / "crm.sync"
    rejects = tmp_path / "rejects.jsonl"
    csv = export(tmp_path / "crm.csv", 20, bad={6})
    result = run_sync(invoke, csv, state, "--rejects", str(rejects))
    assert result.exit_code == 1
    assert [(r["line"], r["id"], r["stage"]) for r in read_jsonl(rejects)] == [(8, "c6", "api")]
    assert "c6" not in sync_state_rows(state)
    assert len(sync_state_rows(state)) == 19
    before = len(emulator.requests)
    again = run_sync(invoke, csv, state, "--rejects", str(rejects))
    assert posted_batches(emulator, before) == [["c6"]]
    assert [r["line"] for r in read_jsonl(rejects)] == [8]
    assert summary(again)["rejected"] == 1


def test_delete_missing_deletes_exactly_the_missing_ids(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    state = tmp_path / "crm.sync"
    run_sync(invoke, export(tmp_path / "crm.csv", 40), state)
    emulator.seed({"id": "someone-else", "email": "else@example.com"})
    text = (tmp_path / "crm.csv").read_text().splitlines()
    kept = [line for line in text if not line.startswith(("c3,", "c33,"))]
    csv = write(tmp_path / "crm.csv", "\n".join(kept) + "\n")
    before = len(emulator.requests)
    result = run_sync(invoke, csv, state, "--delete-missing")
    assert result.exit_code == 0, result.output
    assert posted_batches(emulator, before) == [["c3", "c33"]]
    assert (summary(result)["sync"]["missing"], summary(result)["sync"]["deleted"]) == (2, 2)
    assert "c3" not in emulator.users
    assert "c33" not in emulator.users
    assert "someone-else" in emulator.users
    assert set(sync_state_rows(state)) == {f"c{i}" for i in range(40)} - {"c3", "c33"}


@pytest.mark.parametrize("keep", [0, 5])
def test_the_guard_refuses_a_mass_delete_in_one_line(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, keep: int
) -> None:
    state = tmp_path / "crm.sync"
    run_sync(invoke, export(tmp_path / "crm.csv", 30), state)
    before_rows = sync_state_rows(state)
    csv = export(tmp_path / "crm.csv", keep, changed=set(range(keep)))
    before = len(emulator.requests)
    result = invoke("sync", csv, "--state", str(state), *MAP, "--delete-missing")
    assert_usage_error(result, f"would delete {30 - keep} of the 30 users", "--max-delete")
    assert len(emulator.requests) == before
    assert sync_state_rows(state) == before_rows
    allowed = run_sync(invoke, csv, state, "--delete-missing", "--max-delete", "100%")
    assert allowed.exit_code == 0, allowed.output
    assert summary(allowed)["sync"]["deleted"] == 30 - keep


def test_a_state_of_another_base_url_or_options_is_refused_in_one_line(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    state = tmp_path / "crm.sync"
    csv = export(tmp_path / "crm.csv", 5)
    run_sync(invoke, csv, state)
    before = len(emulator.requests)
    other_url = invoke("sync", csv, "--state", str(state), *MAP, "--base-url", "http://elsewhere")
    assert_usage_error(other_url, "belongs to base URL", "http://elsewhere", "another state file")
    other_map = invoke("sync", csv, "--state", str(state), *MAP, "--type", "firstName=string")
    assert_usage_error(other_map, "belongs to base URL", '"firstName": "string"')
    assert len(emulator.requests) == before


def test_a_state_that_is_not_ours_corrupt_or_locked_is_refused_in_one_line(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    csv = export(tmp_path / "crm.csv", 5)
    junk = tmp_path / "junk.sync"
    junk.write_text("hello")
    assert_usage_error(invoke("sync", csv, "--state", str(junk), *MAP), "is not a sync state")
    other = tmp_path / "other.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    assert_usage_error(invoke("sync", csv, "--state", str(other), *MAP), "another program's")
    state = tmp_path / "crm.sync"
    run_sync(invoke, csv, state)
    sent = len(emulator.requests)
    db = sqlite3.connect(state)
    db.execute("INSERT INTO users VALUES ('x', 'not a hash')")
    db.commit()
    db.close()
    assert_usage_error(invoke("sync", csv, "--state", str(state), *MAP), "damaged")
    fresh = tmp_path / "fresh.sync"
    held = SyncState.open(fresh, base_url="https://api.crossengage.io", options={})
    try:
        result = invoke("sync", csv, "--state", str(fresh), *MAP)
        assert_usage_error(result, "in use by another running sync")
    finally:
        held.close()
    assert len(emulator.requests) == sent


def test_usage_mistakes_are_one_line(invoke: Invoke, tmp_path: Path) -> None:
    csv = export(tmp_path / "crm.csv", 3)
    state = str(tmp_path / "s.sync")
    assert_usage_error(
        invoke("sync", csv, "--state", state, "--max-delete", "many"), "--max-delete takes"
    )
    assert_usage_error(
        invoke("sync", csv, "--state", state, "--rejects", state), "name the same file"
    )
    directory = invoke("sync", csv, "--state", str(tmp_path))  # click's own check
    assert directory.exit_code == 2
    assert "is a directory" in directory.output
    missing = invoke("sync", csv)
    assert missing.exit_code == 2
    assert "--state" in missing.output
    assert not Path(state).exists()


def test_jsonl_from_stdin_syncs_too(invoke: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    state = tmp_path / "s.sync"
    text = "".join(
        json.dumps({"id": f"j{i}", "email": f"j{i}@example.com", "firstName": "A"}) + "\n"
        for i in range(7)
    )
    args = ("sync", "-", "--format", "jsonl", "--state", str(state), "--json")
    assert summary(invoke(*args, input=text))["sync"]["confirmed"] == 7
    before = len(emulator.requests)
    # The same users with their keys in another order: unchanged.
    reordered = "".join(
        json.dumps({"firstName": "A", "email": f"j{i}@example.com", "id": f"j{i}"}) + "\n"
        for i in range(7)
    )
    assert summary(invoke(*args, input=reordered))["sync"]["unchanged"] == 7
    assert len(emulator.requests) == before


def test_a_required_column_mapped_away_is_refused_in_words_that_fit(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    csv = write(tmp_path / "crm.csv", "id,email\n1,a@example.com\n")
    result = invoke("sync", csv, "--state", str(tmp_path / "crm.sync"), "--map", "email=")
    assert_usage_error(
        result, "--map email= leaves out column 'email', but every user needs 'email'"
    )
    assert "has no 'email' column" not in result.output
    assert emulator.requests == []
