"""Rows per second of ``upsert_dataframe`` with 1 and 2 local Spark workers (issue 9).

One DataFrame of ``--rows`` valid profiles (id, email, businessUnit,
firstName, a DATE and a TIMESTAMP column) in ``--partitions`` partitions is
upserted with ``concurrency=--concurrency`` by a Spark in local mode, once per
master (``local[1]``, ``local[2]``). Each round starts a fresh SparkSession per
master (the masters take turns, in a rotated order), runs one small job first
so that the Python workers are up and the SDK imported (a cold first job pays
some seconds for that), then times the full job. Figures are the median of
the rounds with the min and max.

The server is, by ``--target``:

- ``sink`` (default): the benchmark sink (``sink.py``) in another process,
  which answers every batch 202 at almost no cost: the figures are what Spark
  and the SDK can push;
- ``emulator``: ``activatepro serve``, which validates and stores every user in
  one Python process: on 2 cores it competes with Spark for the CPU and is then
  the bottleneck.

    python -m benchmarks.bench_spark                          # 200,000 rows, 3 rounds
    python -m benchmarks.bench_spark --target emulator --rounds 2
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

from . import _harness

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

API_KEY = "bench-spark-key"
MASTERS = ("local[1]", "local[2]")


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
) -> float:
    """Upsert ``rows`` profiles; the job's wall time in seconds (checked: all accepted)."""
    from activatepro_async.integrations.spark import upsert_dataframe

    df = profiles(spark, rows, partitions)
    started = time.perf_counter()
    result = upsert_dataframe(df, api_key=api_key, base_url=base_url, concurrency=concurrency)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", choices=("sink", "emulator"), default="sink")
    parser.add_argument("--masters", default=",".join(MASTERS))
    args = parser.parse_args(argv)
    masters = [m.strip() for m in args.masters.split(",") if m.strip()]

    results = measure(
        masters, target=args.target, rows=args.rows, partitions=args.partitions,
        concurrency=args.concurrency, rounds=args.rounds,
    )  # fmt: skip
    base = _harness.Summary.of(results[masters[0]]).median
    table: list[Sequence[Any]] = []
    for master in masters:
        summary = _harness.Summary.of(results[master])
        table.append((master, summary.show(0), f"{summary.median / base:.2f}x"))
    command = "python -m benchmarks.bench_spark " + " ".join(argv or sys.argv[1:])
    print()
    extra = {"target": args.target, "pyspark": _harness.versions(["pyspark"]).get("pyspark", "?")}
    print(_harness.header(command.strip(), extra))
    print(
        f"\n{args.rows:,} rows in {args.partitions} partitions, concurrency {args.concurrency}, "
        f"{args.rounds} rounds (median, min-max)\n"
    )
    print(_harness.markdown_table(("master", "rows/s", f"vs {masters[0]}"), table))


if __name__ == "__main__":
    main()
