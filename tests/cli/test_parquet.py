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
        if k not in ("input", "elapsed_s", "rows_per_s", "rejects_file")
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
