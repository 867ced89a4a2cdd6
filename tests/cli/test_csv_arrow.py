"""CSV through the columnar path (``--reader auto`` with pyarrow) against the csv module's path.

The two readers must end alike: the same requests (bodies decoded), the same
rejects file (lines included), journal and ``--json`` summary, for generated
files with every trap of CSV (quoted line breaks, quotes, delimiters in cells,
blank lines, records with the wrong number of fields, empty cells, repeated
and missing ids, CRLF). Blocks are made tiny so that one file mixes blocks
pyarrow parses with blocks the csv module reads.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activatepro_async._cli import readers

from .conftest import Invoke, new_emulator, read_jsonl, summary

pytest.importorskip("pyarrow")

HEADER = ["id", "email", "firstName", "lastName"]


def comparable(data: dict[str, Any] | str) -> dict[str, Any] | str:
    if isinstance(data, str):  # the command refused the file: its one line of error
        return data
    return {
        k: v
        for k, v in data.items()
        if k not in ("elapsed_s", "rows_per_s", "journal", "rejects_file")
    }


def run_both(
    invoke: Invoke, path: Path, *options: str, backend: str = "asyncio", stdin: bytes | None = None
) -> list[tuple[Any, ...]]:
    """Each reader's exit code, summary, rejects, journal lines and decoded request bodies."""
    runs = []
    for reader in ("auto", "stdlib"):
        emulator = new_emulator()
        rejects, journal = path.with_suffix(f".{reader}.rejects"), path.with_suffix(f".{reader}.j")
        for leftover in (rejects, journal):
            leftover.unlink(missing_ok=True)
        args = ["-" if stdin is not None else str(path), "--reader", reader, "--json"]
        args += ["--rejects", str(rejects), "--concurrency", "1", "--chunk-size", "3", *options]
        if stdin is None:
            args += ["--journal", str(journal)]
        result = invoke(
            "import", *args, backend=backend, transport=emulator.transport(), input=stdin
        )
        bodies = [json.loads(r.body) for r in emulator.requests if r.method == "POST"]
        lines = journal_content(read_jsonl(journal)[1:]) if journal.exists() else {}
        data = summary(result) if result.stdout.strip() else result.output
        # In the order settled: the columnar path reads a block ahead, so a local
        # reject may come before an API reject of an earlier line.
        rejected = sorted(read_jsonl(rejects), key=lambda r: r["line"]) if rejects.exists() else []
        runs.append((result.exit_code, comparable(data), rejected, lines, bodies))
    return runs


def journal_content(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """What a journal's lines settle, merged (their grouping follows the settling order).

    Tracking ids and line checksums differ from run to run: left out.
    """
    chunks = [
        {k: v for k, v in chunk.items() if k != "tracking_id"}
        for line in lines
        for chunk in line.get("chunks", ())
    ]
    rejects = [reject for line in lines for reject in line.get("rejects", ())]
    return {
        "chunks": sorted(chunks, key=lambda c: c["lines"]),
        "rejects": sorted(rejects, key=lambda r: r["line"]),
    }


def arrow_blocks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Spy: the rows of each block pyarrow parsed (a test sees the Arrow path was taken)."""
    seen: list[int] = []
    real = readers._CsvBlocks.arrow

    def arrow(self: Any, block: bytes, first: int, lines: int) -> Any:
        part = real(self, block, first, lines)
        if part is not None:
            seen.append(part.batch.num_rows)
        return part

    monkeypatch.setattr(readers._CsvBlocks, "arrow", arrow)
    return seen


cells = st.one_of(
    st.sampled_from(["", "0042", "a@example.com", "x", " padded ", "Z"]),
    st.text(alphabet='ab,;"\n\r \t', max_size=6),
)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str]:
    delimiter = draw(st.sampled_from([",", ";"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))

    def cell(value: str) -> str:
        if any(c in value for c in f'{delimiter}"\n\r') or draw(st.booleans()):
            return '"' + value.replace('"', '""') + '"' if value or draw(st.booleans()) else value
        return value

    lines = [delimiter.join(HEADER)]
    for number in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(["good"] * 6 + ["blank", "short", "long", "noid"]))
        if kind == "blank":
            lines.append("")
            continue
        values = [f"u{draw(st.integers(0, 6))}", *(draw(cells) for _ in HEADER[1:])]
        if kind == "noid":
            values[0] = ""
        elif kind == "short":
            values = values[:2]
        elif kind == "long":
            values.append("extra")
        lines.append(delimiter.join(cell(v) if i else v for i, v in enumerate(values)))
        del number
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    return text.encode("utf-8"), delimiter


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    generated=csv_files(),
    block=st.sampled_from([16, 64, 1 << 20]),
    backend=st.sampled_from(["asyncio", "trio"]),
)
def test_both_readers_send_reject_and_journal_alike(
    invoke: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    generated: tuple[bytes, str],
    block: int,
) -> None:
    content, _ = generated
    monkeypatch.setattr(readers, "_BLOCK", block)
    path = tmp_path / "users.csv"
    path.write_bytes(content)
    auto, stdlib = run_both(invoke, path, backend=backend)
    assert auto == stdlib


def test_plain_blocks_take_the_arrow_path_and_quoted_line_breaks_keep_their_lines(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "_BLOCK", 64)
    # More lines than the sniffer's sample (50), which the csv module reads.
    rows = [f"u{i},u{i}@example.com,Ada,0042" for i in range(60)]
    rows[54] = 'u54,bad-email,"two\nlines",0042'  # lines 56-57 of the file
    rows[56] = "u56,,Ada,0042"  # a local reject after the quoted line break: line 59
    path = tmp_path / "users.csv"
    path.write_text("id,email,firstName,lastName\n" + "\n".join(rows) + "\n", encoding="utf-8")
    seen = arrow_blocks(monkeypatch)
    auto, stdlib = run_both(invoke, path)
    assert auto == stdlib
    assert seen, "no block went through pyarrow"
    _exit_code, data, rejected, _, bodies = auto
    assert [(r["line"], r["stage"]) for r in rejected] == [(56, "api"), (59, "local")]
    assert rejected[0]["row"]["firstName"] == "two\nlines"
    assert data["rows"] == 60
    assert data["accepted"] == 58
    sent = [user for body in bodies for user in body["updated"]]
    assert {user["lastName"] for user in sent} == {"0042"}  # a string, as read


def test_empty_cells_are_left_out_and_leading_zeros_kept(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "users.csv"
    path.write_text("id,email,lastName\n0042,a@example.com,\n7,,00\n", encoding="utf-8")
    seen = arrow_blocks(monkeypatch)
    auto, stdlib = run_both(invoke, path)
    assert auto == stdlib
    assert seen == [2]
    [body] = auto[4]
    assert body["updated"] == [{"id": "0042", "email": "a@example.com"}]
    assert auto[2][0]["row"] == {"id": "7", "email": "", "lastName": "00"}


def test_gzip_stdin_and_types_end_alike(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readers, "_BLOCK", 40)
    text = "id;email;birthday\n" + "".join(
        f"u{i % 5};u{i}@example.com;{'1990-01-0' + str(i % 9 + 1) if i % 4 else '1990-13-01'}\n"
        for i in range(80)
    )
    path = tmp_path / "users.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    seen = arrow_blocks(monkeypatch)
    auto, stdlib = run_both(invoke, path, "--type", "birthday=date")
    assert auto == stdlib
    assert seen
    assert auto[1]["duplicate_ids"]["rows"] == 55  # 60 rows sent, 5 ids
    assert auto[1]["read_as"]["delimiter"] == ";"
    assert [r["line"] for r in auto[2]] == list(range(2, 82, 4))
    stdin_auto, stdin_stdlib = run_both(
        invoke, tmp_path / "stdin.csv", "--format", "csv", stdin=text.encode()
    )
    assert stdin_auto == stdin_stdlib
    assert stdin_auto[1]["accepted"] == 60


def test_a_run_resumes_from_the_other_readers_journal(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    rows = "".join(f"u{i},u{i}@example.com\n" for i in range(10)) + "u10,bad\n"
    path.write_text("id,email\n" + rows, encoding="utf-8")
    journal = str(tmp_path / "j")
    first = invoke("import", str(path), "--journal", journal, "--reader", "stdlib", "--json")
    assert first.exit_code == 1, first.output
    again = invoke("import", str(path), "--journal", journal, "--json", "--chunk-size", "1")
    data = summary(again)
    assert (data["rows"], data["skipped"], data["sent"], data["accepted"]) == (11, 11, 0, 10)


def test_bytes_that_are_not_utf8_name_their_line(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_bytes(b"id,email\nu1,a@example.com\nu2,b\xff@example.com\n")
    result = invoke("import", str(path))
    assert result.exit_code == 2
    assert "line 3 is not valid utf-8" in result.output


@pytest.mark.parametrize(
    "hostile",
    [
        "u70,a@example.com," + "x" * (readers._FIELD_LIMIT + 10) + ",L",  # over the cell limit
        "u70,a@example.com,nul\x00here,L",
        "u70,a@example.com,lone\rcr,L",
        "u70,a@example.com,   ,   ",
        "   ",
        "u70,a@example.com",  # too few fields
        'u70,a@example.com,ab"c,"d""e"f',  # quotes inside and after a quoted cell
    ],
)
def test_hostile_records_read_as_the_csv_module_reads_them(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hostile: str
) -> None:
    monkeypatch.setattr(readers, "_BLOCK", 200)
    rows = [f"u{i},u{i}@example.com,Ada,L" for i in range(120)]
    rows[70] = hostile
    path = tmp_path / "users.csv"
    path.write_text("id,email,firstName,lastName\n" + "\n".join(rows) + "\n", encoding="utf-8")
    seen = arrow_blocks(monkeypatch)
    auto, stdlib = run_both(invoke, path, "--chunk-size", "50")
    assert auto == stdlib
    assert seen  # the other blocks went through pyarrow
    assert auto[1]["rows"] + (1 if hostile.strip() == "" else 0) == 120


def test_sent_rows_settle_by_span_and_one_by_one() -> None:
    pa = pytest.importorskip("pyarrow")
    from activatepro_async._cli.columnar import SentRows
    from activatepro_async._cli.readers import Part

    def raw(part: Part, row: int) -> Any:
        return part.batch.column(0)[row].as_py()

    sent = SentRows(raw)
    first = Part(pa.record_batch({"id": [f"a{i}" for i in range(5)]}), 10, [])
    second = Part(pa.record_batch({"id": ["b0", "b1", "b2"]}), [40, 42, 47], [])
    sent.add(0, first, [0, 2, 3, 4])  # row 1 settled locally: positions 0-3
    sent.add(4, second, None)  # positions 4-6
    across = sent.take((2, 3, 4), {3})  # consecutive, across both parts
    assert (across.count, across.first, across.last) == (3, 13, 40)
    assert across.rejected[3].line == 14
    assert across.rejected[3].raw == "a4"
    scattered = sent.take((0, 6, 5, 1), {6})  # in any order, the last part, then the first
    assert (scattered.count, scattered.first, scattered.last) == (4, 10, 12)
    assert scattered.rejected[6].line == 47
    assert sent.segments == []  # every row settled: the batches let go
    left = sent.take((), set())
    assert left.count == 0


def test_an_in_process_run_leaves_pandas_importable(tmp_path: Path) -> None:
    """The command run in a process (a test, a user's CliRunner) leaves that process whole.

    A fresh interpreter, since pandas may already be imported in this one.
    """
    pytest.importorskip("pandas")
    path = tmp_path / "users.csv"
    path.write_text("id,email\n1,a@example.com\n2,b@example.com\n", encoding="utf-8")
    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from activatepro_async._cli.options import CliEnv\n"
        "from activatepro_async.cli import main\n"
        "from activatepro_async.emulator import Emulator\n"
        "env = CliEnv(transport=Emulator(('k',)).transport())\n"
        "args = ['import', sys.argv[1], '--quiet', '--api-key', 'k']\n"
        "result = CliRunner().invoke(main, args, obj=env)\n"
        "assert result.exit_code == 0, result.output\n"
        "import pandas\n"
        "import pyarrow\n"
        "print(pyarrow.table({'a': [1]}).to_pandas().shape)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 1)"
