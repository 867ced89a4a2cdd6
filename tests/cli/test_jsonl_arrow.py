"""JSON Lines under ``--reader auto`` against ``--reader stdlib``: they must end alike.

JSON Lines stays on the standard-library reader with the ``arrow`` extra too
(docs/decisions.md, "JSON Lines stays on the standard-library reader"). These
files hold what Arrow's JSON reader reads with another meaning than the row
path (1 beside 1.5, ISO date strings, an explicit ``null``, nested objects
with other keys, integers past int64, NaN, a repeated key, two objects on one
line, blank lines, lone surrogates), so a columnar JSON Lines path, if one is
added, must pass this as it is: the same exit code, requests (bodies decoded),
rejects (lines included), journal and ``--json`` summary, on both backends.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(content=jsonl_files(), backend=st.sampled_from(["asyncio", "trio"]))
def test_both_readers_send_reject_and_journal_json_lines_alike(
    invoke: Invoke, tmp_path: Path, backend: str, content: bytes
) -> None:
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
