"""JSON Lines under ``--reader auto`` against ``--reader stdlib``: they must end alike.

With the ``arrow`` extra, ``--reader auto`` reads a block of lines with
pyarrow when that is safe, and every other block with the row code
(``readers._JsonBlocks``; docs/decisions.md, "JSON Lines goes through Arrow
block by block"). These files hold what Arrow's JSON reader reads with another
meaning than the row path (1 beside 1.5, ISO date strings, an explicit
``null``, nested objects with other keys, integers past int64, NaN, a repeated
key, two objects on one line, blank lines, lone surrogates): both readers end
with the same exit code, requests (bodies decoded), rejects (lines included),
journal and ``--json`` summary, on both backends, whatever the block size.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activatepro_async._cli import readers

from .conftest import Invoke, new_emulator, read_jsonl, summary
from .test_csv_arrow import run_both

pytest.importorskip("pyarrow")

# Raw JSON text per value: each is a trap for inferring one type per column.
values = st.sampled_from(
    [
        '"x"',
        '"0042"',
        '"2024-01-01T08:00:53Z"',
        '"1950-02-03"',
        "1",
        "1.5",
        "1.0",
        "-7",
        "18446744073709551616",
        "true",
        "null",
        "NaN",
        "Infinity",
        '"\\u00e9"',
        '"\\ud800"',
        '{"a": 1}',
        '{"b": "y"}',
        "[1, 2]",
        '""',
    ]
)


@st.composite
def jsonl_files(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(
            st.sampled_from(["good"] * 6 + ["blank", "array", "broken", "twice", "dupkey", "noid"])
        )
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", "  "])))
            continue
        if kind == "array":
            lines.append("[1]")
            continue
        if kind == "broken":
            lines.append('{"id": "u1",')
            continue
        fields = [] if kind == "noid" else [f'"id": "u{draw(st.integers(0, 5))}"']
        fields.append('"email": "a@example.com"')
        for key in draw(st.lists(st.sampled_from(["age", "note", "email", "vip"]), max_size=3)):
            fields.append(f'"{key}": {draw(values)}')
        if kind == "dupkey":
            fields.append('"id": "u9"')
        line = "{" + ", ".join(fields) + "}"
        lines.append(line + " " + line if kind == "twice" else line)
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return (newline.join(lines) + (newline if draw(st.booleans()) else "")).encode("utf-8")


def arrow_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy: the rows of each block pyarrow read (a test sees the Arrow path was taken)."""
    seen: list[int] = []
    real = readers._JsonBlocks.arrow

    def arrow(self: Any, block: bytes, first: int, lines: int) -> Any:
        part = real(self, block, first, lines)
        if part is not None:
            seen.append(part.batch.num_rows)
        return part

    monkeypatch.setattr(readers._JsonBlocks, "arrow", arrow)
    return seen


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=jsonl_files(),
    backend=st.sampled_from(["asyncio", "trio"]),
    block=st.sampled_from([16, 64, 200, 1 << 20]),
)
def test_both_readers_send_reject_and_journal_json_lines_alike(
    invoke: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    content: bytes,
    block: int,
) -> None:
    monkeypatch.setattr(readers, "_BLOCK", block)  # small blocks: both kinds in one file
    path = tmp_path / "users.jsonl"
    path.write_bytes(content)
    auto, stdlib = run_both(invoke, path, backend=backend)
    assert auto == stdlib


def test_values_arrow_would_retype_reach_the_api_as_written(invoke: Invoke, tmp_path: Path) -> None:
    # What a column-typed reader would change: 1 beside 1.5 (1.0), an ISO string
    # (a timestamp), an explicit null (absent), a nested key one line lacks (null).
    users = [
        {"id": "u1", "email": "a@example.com", "age": 1, "at": "2024-01-01T08:00:53Z"},
        {"id": "u2", "email": "b@example.com", "age": 1.5, "at": "2024-01-01"},
    ]
    users[0].update(pet={"a": 1}, x=None)
    users[1].update(pet={"b": "y"})
    path = tmp_path / "users.jsonl"
    path.write_text("".join(json.dumps(user) + "\n" for user in users), encoding="utf-8")
    auto, stdlib = run_both(invoke, path)
    assert auto == stdlib
    bodies = auto[-1]  # the emulator rejects the unknown attributes: the bodies count
    assert [user for body in bodies for user in body["updated"]] == users


@pytest.mark.parametrize("reader", ["auto", "stdlib"])
def test_a_lone_surrogate_escape_is_rejected_and_written_to_the_rejects_file(
    invoke: Invoke, tmp_path: Path, reader: str
) -> None:
    # "\ud800" is valid JSON but no character: the user cannot be sent, and the
    # rejects file (UTF-8) must still show the row, escaped as the file had it.
    path = tmp_path / "users.jsonl"
    path.write_text(
        '{"id": "u1", "email": "a@example.com", "note": "\\ud800"}\n'
        '{"id": "u2", "email": "b@example.com"}\n',
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.jsonl"
    emulator = new_emulator()
    result = invoke(
        "import",
        str(path),
        "--reader",
        reader,
        "--json",
        "--rejects",
        str(rejects),
        transport=emulator.transport(),
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    data = summary(result)
    assert (data["accepted"], data["rejected"]) == (1, 1)
    assert '"note": "\\ud800"' in rejects.read_text(encoding="utf-8")
    (reject,) = read_jsonl(rejects)
    assert (reject["line"], reject["stage"], reject["row"]["note"]) == (1, "local", "\ud800")
    assert "cannot be sent as JSON" in reject["errors"][0]["details"]


@pytest.mark.parametrize(
    "hostile",
    [
        '{"id": "u70", "email": "a@example.com", "age": 1.5}',  # the block's age: double
        '{"id": "u70", "email": "a@example.com", "age": null}',  # sent as null: clears
        '{"id": "u70", "email": "a@example.com", "age": "seven"}',  # number then string
        '{"id": "u70", "email": "a@example.com", "pet": {"a": 1}}',  # nested
        '{"id": "u70", "email": "a@example.com", "age": 18446744073709551616}',
        '{"id": "u70", "email": "a@example.com", "age": NaN}',
        '{"id": "u70", "id": "u71", "email": "a@example.com"}',  # a repeated key
        '{"id": "u70", "email": "a@example.com", "note": "\\ud800"}',  # a lone surrogate
        '{"id": "u70", "email": "a@example.com"} {"id": "u71", "email": "b@example.com"}',
        "",
        "   ",
        '  {"id": "u70", "email": "a@example.com"}',
        '{"id": "u70", "email": "a@example.com",',  # broken
        "[1, 2]",
        '{"id": 70, "email": "a@example.com"}',  # an id that is no string
        '{"email": "a@example.com"}',  # no id (the block's id column has a null)
        '{"id": "u70", "email": "a@example.com", "at": 5}',  # a number where times were
        '{"id": "u70", "email": "a@example.com", "at": "2024-01-01"}',  # a date-only string
    ],
)
def test_hostile_lines_end_alike_and_the_other_blocks_go_through_arrow(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: str
) -> None:
    monkeypatch.setattr(readers, "_BLOCK", 600)
    lines = [
        f'{{"id": "u{i}", "email": "u{i}@example.com", "age": {i}, "vip": true, '
        f'"at": "2024-01-01T08:00:{i % 60:02}Z"}}'
        for i in range(120)
    ]
    lines[70] = hostile
    path = tmp_path / "users.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    seen = arrow_blocks(monkeypatch)
    auto, stdlib = run_both(invoke, path, "--chunk-size", "7")
    assert auto == stdlib
    assert seen  # the other blocks went through pyarrow


def test_a_uniform_file_goes_through_arrow_and_ends_as_the_row_path(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "_BLOCK", 300)
    text = "".join(
        json.dumps({"id": f"u{i % 50}", "email": f"u{i}@example.com", "firstName": "0042"}) + "\n"
        for i in range(200)
    )
    path = tmp_path / "users.jsonl.gz"  # the blocks of a decompressed stream
    path.write_bytes(gzip.compress(text.encode()))
    seen = arrow_blocks(monkeypatch)
    auto, stdlib = run_both(invoke, path, "--chunk-size", "9")
    assert auto == stdlib
    assert sum(seen) == 200
    assert auto[1]["duplicate_ids"]["rows"] == 150
    assert [len(body["updated"]) for body in auto[-1]] == [9] * 22 + [2]


def test_a_run_resumes_from_the_other_readers_journal(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "_BLOCK", 100)
    path = tmp_path / "users.jsonl"
    rows = [json.dumps({"id": f"u{i}", "email": f"u{i}@example.com"}) for i in range(10)]
    rows.append('{"id": "u10", "email": null}')
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    journal = str(tmp_path / "j")
    first = invoke("import", str(path), "--journal", journal, "--reader", "stdlib", "--json")
    assert first.exit_code == 1, first.output
    seen = arrow_blocks(monkeypatch)
    again = invoke("import", str(path), "--journal", journal, "--json", "--chunk-size", "1")
    data = summary(again)
    assert (data["rows"], data["skipped"], data["sent"], data["accepted"]) == (11, 11, 0, 10)
    assert seen


def test_bytes_that_are_not_utf8_name_their_line_under_both_readers(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = tmp_path / "users.jsonl"
    path.write_bytes(
        b'{"id": "u1", "email": "a@example.com"}\n{"id": "u2", "email": "b\xff@example.com"}\n'
    )
    ends = []
    for reader in ("auto", "stdlib"):
        emulator = new_emulator()
        result = invoke("import", str(path), "--reader", reader, transport=emulator.transport())
        assert result.exit_code == 2
        assert "line 2 is not valid utf-8" in result.output
        ends.append([r.body for r in emulator.requests if r.method == "POST"])
    assert ends[0] == ends[1] == []  # the row path reads in batches: the error drops its batch
