"""benchmarks/bench_spark.py runs (at a tiny size, so that it cannot rot)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._support import API_KEY, ServedEmulator, require_spark

require_spark()

from benchmarks import bench_spark  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_the_spark_benchmark_job_pushes_every_row(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    seconds = bench_spark.run_job(
        spark, emulator.base_url, rows=2000, partitions=4, concurrency=4, api_key=API_KEY
    )
    assert seconds > 0
