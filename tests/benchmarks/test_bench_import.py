"""bench_import and the columnar inputs at a tiny size: they run, or say why not.

No timing assertions (the goals live in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

from benchmarks import _arrow, bench_import, bench_transport

needs_pyarrow = pytest.mark.skipif(
    importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed"
)


def test_the_csv_contenders_import_every_row_and_parquet_says_why_it_did_not(
    tmp_path: Path,
) -> None:
    report = bench_import.run_benchmark(rows=50, rounds=1, workdir=tmp_path)
    assert {"cli_csv", "script_csv"} <= set(report.seconds)
    assert all(s > 0 for seconds in report.seconds.values() for s in seconds)
    ratio = report.ratio("cli_csv", "script_csv")
    assert ratio is not None
    assert ratio.median > 0
    if "cli_parquet" not in report.seconds:
        assert report.not_measured["cli_parquet"]
        assert "cli_parquet | not measured: " in report.markdown()
    with (tmp_path / "users-50.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 50
    assert list(rows[0]) == list(_arrow.COLUMNS)


def test_the_script_contender_is_at_most_ten_lines() -> None:
    assert len(bench_import.SCRIPT.splitlines()) <= 10


@needs_pyarrow
def test_the_parquet_file_holds_the_rows_of_the_csv_file(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    parquet = _arrow.write_parquet(tmp_path / "u.parquet", 250)
    written = bench_import.write_csv(tmp_path / "u.csv", 250)
    with written.open(newline="") as file:
        assert pq.read_table(parquet).to_pylist() == list(csv.DictReader(file))


def test_the_sdk_list_contender_runs_on_both_backends(backend: str) -> None:
    if not bench_transport.sdk_available():
        pytest.skip("no upsert_many")
    report = bench_transport.run_benchmark(
        users=250, rounds=1, chunk_size=100, concurrency=2, warmup=False, backend=backend,
        contenders=["sdk_upsert_many_list"],
    )  # fmt: skip
    [measure] = report.measures["sdk_upsert_many_list"]
    assert measure.requests == 3
    assert measure.cpu_us_per_user > 0


def test_the_arrow_contender_is_listed_only_where_the_sdk_takes_a_table() -> None:
    names = [c.name for c in bench_transport.contenders_for("asyncio")]
    assert ("sdk_arrow" in names) == (_arrow.arrow_support() is None)


@pytest.mark.parametrize(("what", "contenders"), [("pair", 3), ("engine", 3), ("request", 2)])
def test_profile_bulk_measures_every_contender(what: str, contenders: int, backend: str) -> None:
    from benchmarks import profile_bulk

    if (
        what != "engine"
        and backend == "asyncio"
        and importlib.util.find_spec("httpx_aiohttp") is None
    ):
        pytest.skip("the raw loop (c) needs httpx-aiohttp")
    measure = getattr(profile_bulk, what)
    results = measure(2000, 1, backend, False)
    assert len(results) == contenders
    assert all(len(v) == 1 and v[0] > 0 for v in results.values())
