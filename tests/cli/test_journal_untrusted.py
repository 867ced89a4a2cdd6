"""The journal is untrusted input: a file that is not one is never written, and a
damaged one is refused in one line (exit 2), or resumed only when what it holds adds up."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from activatepro_async._cli.journal import Journal
from activatepro_async.emulator import Emulator

from .conftest import Invoke, assert_no_exception, assert_usage_error, summary, write
from .journals import (
    FailAfter,
    batch_requests,
    make_csv,
)

OPTIONS = ("--chunk-size", "10", "--concurrency", "1", "--json", "--quiet")


def stopped_run(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, batches: int = 6
) -> tuple[str, Path, set[str], set[int]]:
    """A run of 200 rows stopped by a 401 after ``batches`` batches; its input and journal."""
    path, valid, bad = make_csv(tmp_path / "u.csv")
    journal = tmp_path / "u.journal"
    result = invoke(
        "import", path, "--journal", str(journal), *OPTIONS,
        transport=FailAfter(emulator.transport(), batches=batches),
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    return path, journal, valid, bad


def rerun(invoke: Invoke, path: str, journal: Path) -> Any:
    return invoke("import", path, "--journal", str(journal), *OPTIONS)


def assert_resumed_to_a_clean_run(
    result: Any, emulator: Emulator, valid: set[str], bad: set[int]
) -> dict[str, Any]:
    assert_no_exception(result)
    assert result.exit_code == 1, result.output  # the invalid emails
    data = summary(result)
    assert (data["rows"], data["accepted"], data["rejected"], data["failed"]) == (
        200,
        len(valid),
        len(bad),
        0,
    )
    assert set(emulator.users) == valid
    return data


# -- a path that holds something else -------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"a,b\n1,2\n3,4",  # a CSV whose last line has no line break
        b"hello\n",
        b"\n",
        b"  \n\n",
        b"id\r\nu1\r\nu2",
        b"\x00\xff\xfe\xc3",
        b'{"a": 1}\n',
        b"[]\n",
        b'{"journal": "other"}\n{"chunks": []}\n',
        b"precious",
    ],
)
def test_a_file_that_is_not_a_journal_is_never_written(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, content: bytes
) -> None:
    path, _, _ = make_csv(tmp_path / "u.csv", rows=20)
    precious = tmp_path / "precious.csv"
    precious.write_bytes(content)
    result = invoke("import", path, "--journal", str(precious), *OPTIONS)
    assert_usage_error(
        result, str(precious), "is not an activatepro journal", "choose another path"
    )
    assert precious.read_bytes() == content
    assert batch_requests(emulator) == 0


def test_an_empty_file_is_a_new_journal(invoke: Invoke, emulator: Emulator, tmp_path: Path) -> None:
    path, valid, _ = make_csv(tmp_path / "u.csv", rows=20)
    journal = tmp_path / "made-by-mktemp"
    journal.write_bytes(b"")
    first = rerun(invoke, path, journal)
    assert first.exit_code == 1, first.output
    assert summary(first)["journal"]["resumed"] is False
    assert set(emulator.users) == valid
    second = rerun(invoke, path, journal)
    assert (summary(second)["sent"], summary(second)["skipped"]) == (0, 20)


def test_a_torn_header_starts_the_journal_over(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, journal, valid, bad = stopped_run(invoke, emulator, tmp_path)
    header = journal.read_bytes().split(b"\n")[0]
    journal.write_bytes(header[: len(header) // 2])  # killed while writing the header
    emulator.reset()
    data = assert_resumed_to_a_clean_run(rerun(invoke, path, journal), emulator, valid, bad)
    assert data["journal"]["resumed"] is False
    assert data["sent"] == 200


def test_a_journal_of_another_version_is_refused_untouched(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, _, _ = make_csv(tmp_path / "u.csv", rows=20)
    journal = tmp_path / "old.journal"
    content = (
        b'{"journal": "activatepro", "version": 1, "command": "upsert", "input": '
        b'{"name": "u.csv", "size": 1, "sha256": "ab"}, "options": {}}\n{"chunks": [{"lin'
    )
    journal.write_bytes(content)
    result = rerun(invoke, path, journal)
    assert_usage_error(result, str(journal), "version 1", "delete it to start over")
    assert journal.read_bytes() == content
    assert batch_requests(emulator) == 0


# -- a journal that does not add up ------------------------------------------------------


def test_a_chunk_span_changed_by_one_digit_is_refused(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, journal, _, _ = stopped_run(invoke, emulator, tmp_path)
    text = journal.read_text(encoding="utf-8")
    # The first chunk's last line, 11, becomes 91: it would skip 80 rows never sent.
    edited, count = re.subn(r'("lines": ?\[2, ?)11\]', r"\g<1>91]", text, count=1)
    assert count == 1
    journal.write_text(edited, encoding="utf-8")
    before = batch_requests(emulator)
    result = rerun(invoke, path, journal)
    assert_usage_error(result, str(journal), "damaged at line 2", "delete it to start over")
    assert batch_requests(emulator) == before
    assert journal.read_text(encoding="utf-8") == edited


def header_only(invoke: Invoke, emulator: Emulator, tmp_path: Path) -> tuple[str, Path]:
    """A run stopped before its first chunk: a journal that holds its header only."""
    path, journal, _, _ = stopped_run(invoke, emulator, tmp_path, batches=0)
    assert len(journal.read_bytes().splitlines()) == 1
    return path, journal


def append_with_valid_checks(journal: Path, *records: dict[str, Any]) -> None:
    """Append records as this version's writer would (so only what they claim is wrong)."""
    header = json.loads(journal.read_bytes().split(b"\n")[0])
    opened = Journal.open(
        str(journal), command=header["command"], input=header["input"], options=header["options"]
    )
    for record in records:
        opened.record(record["chunks"], record.get("rejects", []))
    opened.close()


def chunk(first: int, last: int, users: int | None = None, **changes: Any) -> dict[str, Any]:
    span = last - first + 1
    value = {"lines": [first, last], "users": span if users is None else users, "rejected": 0}
    return {**value, "tracking_id": "t", **changes}


def reject(line: int, **changes: Any) -> dict[str, Any]:
    return {"line": line, "id": None, "stage": "local", "row": "x", "errors": [], **changes}


@pytest.mark.parametrize(
    ("records", "line"),
    [
        pytest.param([{"chunks": [chunk(2, 9999)]}], 2, id="past-the-end-of-the-input"),
        pytest.param([{"chunks": [chunk(2, 5, users=10)]}], 2, id="more-users-than-lines"),
        pytest.param([{"chunks": [chunk(2, 11, rejected=11)]}], 2, id="more-rejected-than-users"),
        pytest.param([{"chunks": [chunk(0, 11, users=10)]}], 2, id="line-zero"),
        pytest.param(
            [{"chunks": [chunk(2, 11)]}, {"chunks": [chunk(5, 15)]}], 3, id="overlaps-earlier"
        ),
        pytest.param(
            [{"chunks": [chunk(2, 41)]}, {"chunks": [chunk(12, 21)]}], 3, id="inside-earlier"
        ),
        pytest.param([{"chunks": [chunk(2, 11), chunk(11, 20)]}], 2, id="overlap-in-a-window"),
        pytest.param(
            [{"chunks": [chunk(2, 11)]}, {"chunks": [], "rejects": [reject(5)]}],
            3,
            id="reject-of-a-settled-row",
        ),
        pytest.param([{"chunks": [], "rejects": [reject(5), reject(5)]}], 2, id="reject-twice"),
        pytest.param(
            [{"chunks": [], "rejects": [reject(5)]}, {"chunks": [chunk(5, 5)]}],
            3,
            id="chunk-of-a-rejected-row",
        ),
    ],
)
def test_a_journal_whose_records_do_not_add_up_is_refused(
    invoke: Invoke,
    emulator: Emulator,
    tmp_path: Path,
    records: list[dict[str, Any]],
    line: int,
) -> None:
    path, journal = header_only(invoke, emulator, tmp_path)
    append_with_valid_checks(journal, *records)
    content = journal.read_bytes()
    before = batch_requests(emulator)
    result = rerun(invoke, path, journal)
    assert_usage_error(result, str(journal), f"damaged at line {line}", "delete it to start over")
    assert batch_requests(emulator) == before
    assert journal.read_bytes() == content


@pytest.mark.parametrize(
    "record",
    [
        pytest.param({"chunks": [{"lines": [2]}]}, id="chunk-lines-short"),
        pytest.param({"chunks": [chunk(2, 11, lines=["2", "11"])]}, id="lines-as-strings"),
        pytest.param({"chunks": [chunk(2, 11, users=True)]}, id="users-a-bool"),
        pytest.param({"chunks": [chunk(2, 11, tracking_id=None)]}, id="no-tracking-id"),
        pytest.param({"chunks": [chunk(2, 11, tracking_id="")]}, id="empty-tracking-id"),
        pytest.param({"chunks": [chunk(2, 11, extra=1)]}, id="chunk-extra-key"),
        pytest.param({"chunks": [[2, 11]]}, id="chunk-a-list"),
        pytest.param({"chunks": {"lines": [2, 11]}}, id="chunks-an-object"),
        pytest.param(
            {"chunks": [], "rejects": [{**reject(3), "line": "3"}]}, id="reject-line-string"
        ),
        pytest.param({"chunks": [], "rejects": [reject(3, errors=[1])]}, id="error-not-object"),
        pytest.param({"chunks": [], "rejects": [reject(3, stage="dry")]}, id="unknown-stage"),
        pytest.param(
            {"chunks": [], "rejects": [{"line": 3, "errors": []}]}, id="reject-missing-keys"
        ),
        pytest.param(
            {
                "chunks": [],
                "rejects": [reject(3, errors=[{"code": "4", "title": "", "details": ""}])],
            },
            id="error-code-a-string",
        ),
    ],
)
def test_a_record_of_the_wrong_shape_is_refused(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, record: dict[str, Any]
) -> None:
    path, journal = header_only(invoke, emulator, tmp_path)
    append_with_valid_checks(journal, record)
    result = rerun(invoke, path, journal)
    assert_usage_error(result, str(journal), "damaged at line 2", "delete it to start over")
    assert batch_requests(emulator) == 0


# -- corrupted bytes: never a traceback ----------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"[]", id="a-list"),
        pytest.param(b'{"chunks": [{"lines": [2]}]}', id="missing-keys"),
        pytest.param(b'{"chunks": [{"lines": ["2", "x"], "users": 1}]}', id="wrong-types"),
        pytest.param(b'{"chunks": [], "rejects": [{"line": 3, "errors": [1]}]}', id="bad-error"),
        pytest.param(b'{"chunks": [\xc3\x28]}', id="not-utf-8"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested"),
        pytest.param(b'{"chunks": [], "rejects": [], "check": "0000000000000000"}', id="bad-check"),
    ],
)
def test_a_damaged_middle_line_is_refused_in_one_line(
    invoke: Invoke, emulator: Emulator, tmp_path: Path, line: bytes
) -> None:
    path, journal, _, _ = stopped_run(invoke, emulator, tmp_path)
    lines = journal.read_bytes().split(b"\n")
    content = b"\n".join([lines[0], line, *lines[1:]])
    journal.write_bytes(content)
    before = batch_requests(emulator)
    result = rerun(invoke, path, journal)
    assert_usage_error(result, str(journal), "damaged at line 2", "delete it to start over")
    assert batch_requests(emulator) == before
    assert journal.read_bytes() == content


def test_a_last_line_torn_inside_a_utf8_character_is_dropped(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, journal, valid, bad = stopped_run(invoke, emulator, tmp_path)
    with journal.open("ab") as f:
        f.write('{"chunks": [], "rejects": [{"line": 7, "row": "Zoë'.encode()[:-1])  # disk full
    data = assert_resumed_to_a_clean_run(rerun(invoke, path, journal), emulator, valid, bad)
    assert data["journal"]["resumed"] is True
    assert data["skipped"] == 60  # the six chunks the first run journaled


def test_a_crlf_journal_with_a_torn_line_keeps_its_last_record(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, journal, valid, bad = stopped_run(invoke, emulator, tmp_path)
    journal.write_bytes(journal.read_bytes().replace(b"\n", b"\r\n") + b'{"chunks": [{"li')
    second = rerun(invoke, path, journal)
    data = assert_resumed_to_a_clean_run(second, emulator, valid, bad)
    assert data["skipped"] == 60
    third = rerun(invoke, path, journal)  # reads what the repair and the second run left
    data = assert_resumed_to_a_clean_run(third, emulator, valid, bad)
    assert (data["sent"], data["skipped"]) == (0, 200)


def test_a_journal_path_that_is_not_a_regular_file_is_refused(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, _, _ = make_csv(tmp_path / "u.csv", rows=20)
    result = invoke("import", path, "--journal", "/dev/null", *OPTIONS)
    assert_usage_error(result, "/dev/null is not a regular file")
    assert batch_requests(emulator) == 0


def test_a_journal_is_ascii_with_a_check_on_every_line(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, _, _ = make_csv(tmp_path / "u.csv", rows=20)
    write(tmp_path / "u.csv", Path(path).read_text() + "z1,broken-ë,Zoë\n")
    journal = tmp_path / "u.journal"
    rerun(invoke, path, journal)
    content = journal.read_bytes()
    assert content.isascii()
    lines = [json.loads(line) for line in content.splitlines()]
    assert lines[0]["version"] == 2
    assert all(re.fullmatch(r"[0-9a-f]{16}", line["check"]) for line in lines)


def test_a_journal_that_is_also_the_rejects_file_is_refused(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path, _, _ = make_csv(tmp_path / "u.csv", rows=20)
    journal = tmp_path / "run.out"
    same = str(tmp_path / "." / "run.out")
    result = invoke("import", path, "--journal", str(journal), "--rejects", same, *OPTIONS)
    assert_usage_error(result, "--journal and --rejects name the same file")
    assert not journal.exists()
    assert batch_requests(emulator) == 0


def test_a_stopped_delete_run_resumes_to_every_user_deleted(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.seed(*({"id": f"d{i}", "email": f"d{i}@example.com"} for i in range(100)))
    ids = write(tmp_path / "leavers.txt", "".join(f"d{i}\n" for i in range(100)))
    journal = str(tmp_path / "delete.journal")
    args = ("delete", ids, "--journal", journal, *OPTIONS)
    first = invoke(*args, transport=FailAfter(emulator.transport(), batches=5))
    assert first.exit_code == 2, first.output
    assert 0 < len(emulator.users) < 100
    second = invoke(*args)
    assert second.exit_code == 0, second.output
    data = summary(second)
    assert (data["rows"], data["skipped"], data["accepted"]) == (100, 50, 100)
    assert emulator.users == {}
