"""``activatepro import`` and ``delete`` of Parquet files: the CSV reader's meaning, row numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest

from activatepro_async.emulator import Emulator

from .conftest import Invoke, assert_usage_error, new_emulator, read_jsonl, summary, write

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

CSV = (
    "id,email,businessUnit,firstName,birthday\n"
    "u1,ada@example.com,UK,Ada,1815-12-10\n"
    'u2,grace@example.com,,"Hopper, Grace",1906-12-09\n'
    "u3,not-an-email,DE,Bad,1990-01-01\n"
    ",nobody@example.com,UK,NoId,1990-01-01\n"
    "u5,alan@example.com,UK,Alan,12.06.1912\n"
    "u6,joan@example.com,UK,Joan,1917-11-30\n"
)


def csv_as_parquet(text: str, path: Path, row_group_size: int = 2) -> str:
    """The CSV's rows as a Parquet file of string columns, empty cells as nulls."""
    rows = list(csv.DictReader(io.StringIO(text)))
    columns = {name: [row[name] or None for row in rows] for name in rows[0]}
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)
    return str(path)


def stored(emulator: Emulator) -> dict[str, Any]:
    """The users as the file set them (the emulator adds its own ids and times)."""
    keys = CSV.splitlines()[0].split(",")
    return {uid: {k: user.get(k) for k in keys} for uid, user in emulator.users.items()}


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in data.items()
        if k not in ("input", "elapsed_s", "rows_per_s", "rejects_file", "journal", "read_as")
    }


@pytest.mark.parametrize("operation", ["import", "delete"])
def test_parquet_and_csv_of_the_same_rows_end_alike(
    invoke: Invoke, tmp_path: Path, operation: str
) -> None:
    runs = []
    for path in (write(tmp_path / "u.csv", CSV), csv_as_parquet(CSV, tmp_path / "u.parquet")):
        emulator = new_emulator()
        rejects = tmp_path / f"{Path(path).suffix}.rejects"
        result = invoke(
            operation,
            path,
            "--type",
            "birthday=date",
            "--rejects",
            str(rejects),
            "--json",
            "--wait",
            transport=emulator.transport(),
        )
        runs.append((result.exit_code, comparable(summary(result)), read_jsonl(rejects), emulator))
    (csv_code, csv_summary, csv_rejects, csv_api), (pq_code, pq_summary, pq_rejects, pq_api) = runs
    assert pq_code == csv_code == 1
    assert pq_summary == csv_summary
    # A CSV row's line counts the header; a Parquet row's line is its number;
    # an empty CSV cell is a null in Parquet.
    assert pq_rejects == [
        {**r, "line": r["line"] - 1, "row": {k: v or None for k, v in r["row"].items()}}
        for r in csv_rejects
    ]
    assert stored(pq_api) == stored(csv_api)
    if operation == "import":
        assert sorted(pq_api.users) == ["u1", "u2", "u6"]
        assert pq_api.users["u1"]["birthday"] == "1815-12-10"


def test_parquet_types_are_sent_as_the_dict_path_sends_them(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    at = dt.datetime(2015, 10, 2, 8, 23, 53, tzinfo=dt.timezone.utc)
    aware = pa.table(
        {
            "id": ["a", "b"],
            "email": ["a@example.com", "b@example.com"],
            "birthday": [dt.date(1982, 8, 30), None],
            "createdAt": pa.array([at, None], pa.timestamp("us", tz="Europe/Berlin")),
            "lastName": ["A", None],
        }
    )
    pq.write_table(aware, tmp_path / "aware.parquet")
    result = invoke("import", str(tmp_path / "aware.parquet"), "--json")
    assert result.exit_code == 0, result.output
    assert emulator.users["a"]["birthday"] == "1982-08-30"
    assert emulator.users["a"]["createdAt"] == "2015-10-02T08:23:53Z"
    assert emulator.users["b"]["email"] == "b@example.com"

    naive = pa.table(
        {"id": ["n"], "email": ["n@example.com"], "createdAt": [dt.datetime(2020, 1, 1)]}
    )
    pq.write_table(naive, tmp_path / "naive.parquet")
    rejects = tmp_path / "rejects.jsonl"
    result = invoke("import", str(tmp_path / "naive.parquet"), "--rejects", str(rejects))
    assert result.exit_code == 1, result.output
    [record] = read_jsonl(rejects)
    assert (record["line"], record["stage"]) == (1, "local")
    assert "time zone" in record["errors"][0]["details"]
    assert "n" not in emulator.users


def test_a_parquet_import_resumes_from_its_journal(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    path = csv_as_parquet(CSV, tmp_path / "u.parquet")
    journal = str(tmp_path / "u.journal")
    first = invoke("import", path, "--journal", journal, "--json", "--chunk-size", "1")
    assert first.exit_code == 1, first.output
    again = invoke("import", path, "--journal", journal, "--json", "--chunk-size", "1")
    data = summary(again)
    assert (data["rows"], data["skipped"], data["sent"]) == (6, 6, 0)
    assert (data["accepted"], data["rejected"]) == (3, 3)
    assert (summary(first)["accepted"], summary(first)["rejected"]) == (3, 3)


def test_parquet_problems_are_one_line(invoke: Invoke, tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.parquet", "not parquet at all\n")
    assert_usage_error(invoke("import", broken), "broken.parquet is not a readable Parquet file")
    assert_usage_error(
        invoke("import", "-", "--format", "parquet", input=b""), "Parquet cannot be read from stdin"
    )
    path = csv_as_parquet(CSV, tmp_path / "u.parquet")
    assert_usage_error(invoke("import", path, "--map", "nope=id"), "'nope'")


def test_without_pyarrow_a_parquet_file_names_the_extra(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = csv_as_parquet(CSV, tmp_path / "u.parquet")
    real = __import__("importlib").import_module

    def no_pyarrow(name: str, *args: Any) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr("importlib.import_module", no_pyarrow)
    assert_usage_error(invoke("import", path), "pip install 'activatepro-async[arrow]'")


@pytest.mark.parametrize("operation", ["import", "delete"])
def test_the_columnar_and_the_row_reader_end_alike(
    invoke: Invoke, tmp_path: Path, operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from activatepro_async._cli import columnar

    batches: list[int] = []
    real = columnar.SentRows.add

    def add(self: Any, start: int, part: Any, *args: Any) -> None:
        batches.append(part.batch.num_rows)
        real(self, start, part, *args)

    monkeypatch.setattr(columnar.SentRows, "add", add)
    monkeypatch.setattr("activatepro_async._cli.readers._READ_ROWS", 4)
    path = csv_as_parquet(CSV, tmp_path / "u.parquet", row_group_size=4)
    runs = []
    for reader in ("auto", "stdlib"):
        emulator = new_emulator()
        journal, rejects = tmp_path / f"{reader}.journal", tmp_path / f"{reader}.rejects"
        options = ["--type", "birthday=date", "--json", "--wait", "--chunk-size", "2"]
        options += ["--journal", str(journal), "--rejects", str(rejects), "--reader", reader]
        result = invoke(operation, path, *options, transport=emulator.transport())
        journal_lines = [
            {k: v for k, v in line.items() if k not in ("created", "options")}
            for line in read_jsonl(journal)
        ]
        runs.append(
            (result.exit_code, comparable(summary(result)), read_jsonl(rejects), stored(emulator))
        )
        runs[-1] += (len(journal_lines),)
    assert runs[0] == runs[1]
    assert batches == [4, 2]  # the auto run went by record batch


def test_a_columnar_run_resumes_from_a_row_run_journal(invoke: Invoke, tmp_path: Path) -> None:
    path = csv_as_parquet(CSV, tmp_path / "u.parquet")
    journal = str(tmp_path / "u.journal")
    first = invoke("import", path, "--journal", journal, "--json", "--reader", "stdlib")
    assert first.exit_code == 1, first.output
    again = invoke("import", path, "--journal", journal, "--json", "--chunk-size", "1")
    data = summary(again)
    assert (data["rows"], data["skipped"], data["sent"], data["accepted"]) == (6, 6, 0, 3)


def test_columnar_casts_and_rejects_match_the_row_path(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "ids.parquet"
    pq.write_table(
        pa.table(
            {
                "customer": pa.array([1, 2, None, 4], pa.int64()),
                "email": ["a@example.com", "", "c@example.com", "d@example.com"],
                "businessUnit": ["UK", "DE", None, "UK"],
                "birthday": ["1990-01-01", "1990-13-01", None, "1991-02-03"],
            }
        ),
        path,
    )
    results = []
    for reader in ("auto", "stdlib"):
        emulator = new_emulator()
        rejects = tmp_path / f"{reader}.rejects"
        options = ["--map", "customer=id", "--type", "id=string", "--type", "birthday=date"]
        result = invoke(
            "import", str(path), *options, "--rejects", str(rejects), "--reader", reader,
            "--json", transport=emulator.transport(),
        )  # fmt: skip
        results.append((comparable(summary(result)), read_jsonl(rejects), emulator.users))
    assert results[0][:2] == results[1][:2]
    assert sorted(results[0][2]) == ["1", "4"]
    assert [r["line"] for r in results[0][1]] == [2, 3]


def test_a_columnar_run_stops_sending_when_the_api_is_down(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx

    from activatepro_async import RetryPolicy

    monkeypatch.setattr("activatepro_async._cli.readers._READ_ROWS", 3)
    monkeypatch.setattr("activatepro_async._columnar.WINDOW_ROWS", 3)  # else 8000 rows a window
    rows = "".join(f"u{i},u{i}@example.com\n" for i in range(30))
    path = csv_as_parquet("id,email\n" + rows, tmp_path / "u.parquet")
    down = httpx.MockTransport(lambda _request: httpx.Response(503, json={}))
    result = invoke(
        "import", path, "--json", "--chunk-size", "1", "--concurrency", "1",
        transport=down, retry=RetryPolicy(max_retries=0),
    )  # fmt: skip
    data = summary(result)
    assert result.exit_code == 1
    assert "stopped sending" in data["stopped_by"]
    assert data["rows"] == data["failed"] < 30  # stopped at a batch's end, every row read failed


@pytest.mark.parametrize("operation", ["import", "delete"])
def test_repeated_ids_are_counted_on_the_columnar_path_too(
    invoke: Invoke, tmp_path: Path, operation: str
) -> None:
    # The columnar path used to report no repeated id at all ("rows": 0).
    text = CSV + "u1,ada@example.com,UK,Ada,1815-12-10\nu3,x@example.com,DE,Bad,1990-01-01\n"
    path = csv_as_parquet(text, tmp_path / "u.parquet", row_group_size=3)
    found = []
    for reader in ("auto", "stdlib"):
        result = invoke(operation, path, "--json", "--reader", reader, "--type", "birthday=date")
        found.append(summary(result)["duplicate_ids"])
    # The last two rows repeat u1 and u3 (row numbers as the rejects file gives them).
    assert found == [{"rows": 2, "lines": [7, 8]}] * 2


def test_reading_a_parquet_file_holds_no_more_memory_as_it_goes_on(tmp_path: Path) -> None:
    """Arrow's memory while reading stays what one row group needs, not the file so far.

    pyarrow's pre-buffered reads (its default) kept the bytes of every row group
    read, so streaming a large file grew by about 1.2 MiB per 100,000 rows.
    """
    from activatepro_async._cli.readers import open_source

    def peak_while_reading(groups: int) -> int:
        path = tmp_path / f"groups-{groups}.parquet"
        with pq.ParquetWriter(path, pa.schema([("id", pa.string()), ("email", pa.string())])) as w:
            for group in range(groups):
                ids = [f"user-{group}-{i}" for i in range(5000)]
                w.write_batch(pa.record_batch({"id": ids, "email": [f"{u}@x.org" for u in ids]}))
        peak, rows = 0, 0
        with open_source(str(path)) as source:
            for part in source.arrow_parts():
                rows += part.batch.num_rows
                peak = max(peak, pa.total_allocated_bytes())
        assert rows == groups * 5000
        return peak

    few, many = peak_while_reading(4), peak_while_reading(40)
    assert many - few < 512 * 1024, (few, many)  # it was about 2.3 MiB more
