"""Rows per second of ``upsert_dataframe``: the Arrow path against the Row path (issue 14),
or 1 against 2 local Spark workers (issue 9).

One DataFrame of ``--rows`` valid profiles (id, email, businessUnit,
firstName, a DATE and a TIMESTAMP column) in ``--partitions`` partitions is
upserted with ``concurrency=--concurrency`` by a Spark in local mode.

- ``--compare paths`` (default): one ``local[2]`` SparkSession runs the job
  with ``arrow=True`` (``mapInArrow``, Arrow batches on the executors) and
  ``arrow=False`` (Spark's Python rows), alternated, each warmed up once
  first; the ratio Arrow / Rows is taken within each round. The goal is 3x.
  :func:`compare_paths` is what ``run_all.py`` calls, at 1,000,000 rows: each
  job pays a fixed part that does not depend on the path's cost per row
  (Spark's scheduling of the tasks, a Python worker per task, and
  ``mapInArrow``'s own start per task, which is dearer than a Python-row
  task's), so at 100,000 rows or fewer the ratio shows that fixed part, not
  the paths (benchmarks/PROFILE.md, section 12).
- ``--compare masters``: each round starts a fresh SparkSession per master
  (``local[1]``, ``local[2]``, in a rotated order), runs one small job first
  so that the Python workers are up and the SDK imported (a cold first job
  pays some seconds for that), then times the full job.

Figures are the median of the rounds with the min and max.

The server is, by ``--target``:

- ``sink`` (default): the benchmark sink (``sink.py``) in another process,
  which answers every batch 202 at almost no cost: the figures are what Spark
  and the SDK can push;
- ``emulator``: ``activatepro serve``, which validates and stores every user in
  one Python process: on 2 cores it competes with Spark for the CPU and is then
  the bottleneck.

    python -m benchmarks.bench_spark                          # 1,000,000 rows, 3 rounds
    python -m benchmarks.bench_spark --compare masters --target emulator --rounds 2
    python -m benchmarks.bench_spark --rows 20000 --rounds 1  # a quick look

Needs the ``spark`` extra (pyspark) and java 17+.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from . import _harness

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

API_KEY = "bench-spark-key"
MASTERS = ("local[1]", "local[2]")
#: The contenders of ``--compare paths``: the value of ``upsert_dataframe(arrow=...)``.
PATHS = {"arrow": True, "rows": False}
#: Issue 14: the Arrow path moves at least this many times the Row path's rows/s.
GOAL_ARROW_VS_ROWS = 3.0


def profiles(spark: SparkSession, rows: int, partitions: int) -> DataFrame:
    """``rows`` valid profiles, made in the JVM (no Python in the input's path)."""
    from pyspark.sql import functions as F

    n = F.col("id")
    text = n.cast("string")
    return spark.range(0, rows, 1, partitions).select(
        F.concat(F.lit("bench-"), text).alias("id"),
        F.concat(F.lit("bench-"), text, F.lit("@example.com")).alias("email"),
        F.when(n % 2 == 0, F.lit("DE")).otherwise(F.lit("UK")).alias("businessUnit"),
        F.concat(F.lit("Ada "), text).alias("firstName"),
        F.date_add(F.lit("1980-01-01").cast("date"), (n % 10_000).cast("int")).alias("birthday"),
        F.timestamp_seconds(F.lit(1_600_000_000) + n).alias("createdAt"),
    )


def run_job(
    spark: SparkSession,
    base_url: str,
    *,
    rows: int,
    partitions: int,
    concurrency: int,
    api_key: str = API_KEY,
    arrow: bool | None = None,
) -> float:
    """Upsert ``rows`` profiles; the job's wall time in seconds (checked: all accepted)."""
    from activatepro_async.integrations.spark import upsert_dataframe

    df = profiles(spark, rows, partitions)
    started = time.perf_counter()
    result = upsert_dataframe(
        df, api_key=api_key, base_url=base_url, concurrency=concurrency, arrow=arrow
    )
    seconds = time.perf_counter() - started
    if result.accepted != rows:
        raise RuntimeError(f"not every row was accepted: {result.summary()}")
    return seconds


@contextlib.contextmanager
def local_spark(master: str) -> Iterator[SparkSession]:
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # The workers run this Python (PySpark reads PYSPARK_PYTHON when the session
    # starts; the builder's spark.pyspark.python does nothing outside spark-submit).
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master(master)
        .appName("bench_spark")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


@contextlib.contextmanager
def target_server(target: str) -> Iterator[str]:
    if target == "sink":
        from .sink import running_sink

        with running_sink() as sink:
            yield sink.url
        return
    from tests.integrations._support import ServedEmulator

    server = ServedEmulator(api_key=API_KEY)
    try:
        yield server.base_url
    finally:
        server.stop()


def measure(
    masters: Sequence[str], *, target: str, rows: int, partitions: int, concurrency: int,
    rounds: int,
) -> dict[str, list[float]]:  # fmt: skip
    """Rows per second of each master, one figure per round."""
    with target_server(target) as base_url:

        def one(master: str) -> float:
            with local_spark(master) as spark:
                # Python workers up, the SDK imported, the JVM's code warm.
                run_job(spark, base_url, rows=2000, partitions=partitions, concurrency=concurrency)
                seconds = run_job(
                    spark, base_url, rows=rows, partitions=partitions, concurrency=concurrency
                )
            print(f"  {master}: {rows / seconds:,.0f} rows/s ({seconds:.2f} s)", flush=True)
            return rows / seconds

        return _harness.alternate(list(masters), rounds, one)


@attrs.frozen
class PathComparison:
    """Rows per second of each path, one figure per round, and Arrow / Rows within each round."""

    rows: int
    partitions: int
    concurrency: int
    master: str
    rows_per_second: dict[str, list[float]]

    @property
    def ratio(self) -> _harness.Summary:
        arrow, rows = self.rows_per_second["arrow"], self.rows_per_second["rows"]
        return _harness.Summary.of([a / r for a, r in zip(arrow, rows, strict=True)])

    @property
    def met(self) -> bool:
        return self.ratio.median >= GOAL_ARROW_VS_ROWS

    def markdown(self) -> str:
        table = [
            (path, _harness.Summary.of(values).show(0))
            for path, values in self.rows_per_second.items()
        ]
        table.append(("arrow / rows", self.ratio.show(2)))
        verdict = "met" if self.met else "not met"
        return (
            f"{self.rows:,} rows in {self.partitions} partitions on {self.master}, "
            f"concurrency {self.concurrency}, {len(self.rows_per_second['arrow'])} rounds "
            f"(median, min-max); goal arrow / rows >= {GOAL_ARROW_VS_ROWS:g}: **{verdict}**\n\n"
            + _harness.markdown_table(("path", "rows/s"), table)
        )


#: The size of the path comparison (see the module's docstring).
PATHS_ROWS = 1_000_000


def compare_paths(
    *,
    rows: int = PATHS_ROWS,
    partitions: int = 8,
    concurrency: int = 8,
    rounds: int = 3,
    target: str = "sink",
    master: str = "local[2]",
    spark: SparkSession | None = None,
    base_url: str | None = None,
    api_key: str = API_KEY,
) -> PathComparison:
    """The Arrow path against the Row path, alternated on one SparkSession (for ``run_all``).

    ``spark`` and ``base_url`` (with its ``api_key``) use a session and a
    server that exist already (the test suite's); else a ``master`` session
    and a ``target`` server are started and stopped here.
    """
    with contextlib.ExitStack() as stack:
        if base_url is None:
            base_url = stack.enter_context(target_server(target))
        if spark is None:
            spark = stack.enter_context(local_spark(master))
        url, session = base_url, spark

        def job(path: str, size: int) -> float:
            return run_job(
                session, url, rows=size, partitions=partitions, concurrency=concurrency,
                api_key=api_key, arrow=PATHS[path],
            )  # fmt: skip

        for path in PATHS:  # Python workers up, the SDK imported, the JVM's code warm.
            job(path, min(rows, 2000))

        def one(path: str) -> float:
            # Spark ends a Python worker idle for a minute (PythonWorkerFactory):
            # on a loaded machine the other path's job can take longer, and this
            # one would then time its workers' start (the SDK's import, a client).
            job(path, min(rows, 2000))
            seconds = job(path, rows)
            print(f"  {path}: {rows / seconds:,.0f} rows/s ({seconds:.2f} s)", flush=True)
            return rows / seconds

        found = _harness.alternate(list(PATHS), rounds, one)
    return PathComparison(rows, partitions, concurrency, master, found)


def measure_paths(
    *, master: str = "local[2]", rows: int = PATHS_ROWS, rounds: int = 3, **options: Any
) -> dict[str, list[float]]:
    """Rows/s of each path (``"arrow"``, ``"rows"``), one figure per round, alternated.

    What ``run_all.py`` calls (its ratio is taken within each round, as
    :attr:`PathComparison.ratio`); ``options`` as in :func:`compare_paths`.
    """
    return compare_paths(master=master, rows=rows, rounds=rounds, **options).rows_per_second


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=PATHS_ROWS)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", choices=("sink", "emulator"), default="sink")
    parser.add_argument("--compare", choices=("paths", "masters"), default="paths")
    parser.add_argument("--masters", default=",".join(MASTERS))
    args = parser.parse_args(argv)
    masters = [m.strip() for m in args.masters.split(",") if m.strip()]
    extra = {"target": args.target, "pyspark": _harness.versions(["pyspark"]).get("pyspark", "?")}
    command = "python -m benchmarks.bench_spark " + " ".join(argv or sys.argv[1:])
    if args.compare == "paths":
        comparison = compare_paths(
            rows=args.rows, partitions=args.partitions, concurrency=args.concurrency,
            rounds=args.rounds, target=args.target,
        )  # fmt: skip
        print()
        print(_harness.header(command.strip(), extra))
        print("\n" + comparison.markdown())
        return

    results = measure(
        masters, target=args.target, rows=args.rows, partitions=args.partitions,
        concurrency=args.concurrency, rounds=args.rounds,
    )  # fmt: skip
    base = _harness.Summary.of(results[masters[0]]).median
    table: list[Sequence[Any]] = []
    for master in masters:
        summary = _harness.Summary.of(results[master])
        table.append((master, summary.show(0), f"{summary.median / base:.2f}x"))
    print()
    print(_harness.header(command.strip(), extra))
    print(
        f"\n{args.rows:,} rows in {args.partitions} partitions, concurrency {args.concurrency}, "
        f"{args.rounds} rounds (median, min-max)\n"
    )
    print(_harness.markdown_table(("master", "rows/s", f"vs {masters[0]}"), table))


if __name__ == "__main__":
    main()
