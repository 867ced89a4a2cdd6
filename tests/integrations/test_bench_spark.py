"""benchmarks/bench_spark.py runs (at a tiny size, so that it cannot rot)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._support import API_KEY, ServedEmulator, require_spark

require_spark()

from benchmarks import _harness, bench_spark  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_the_spark_benchmark_job_pushes_every_row(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    seconds = bench_spark.run_job(
        spark, emulator.base_url, rows=2000, partitions=4, concurrency=4, api_key=API_KEY
    )
    assert seconds > 0


def test_the_path_comparison_times_both_paths_alternated_and_reports_their_ratio(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    comparison = bench_spark.compare_paths(
        rows=300, partitions=2, concurrency=2, rounds=2, spark=spark,
        base_url=emulator.base_url, api_key=API_KEY,
    )  # fmt: skip
    assert {path: len(v) for path, v in comparison.rows_per_second.items()} == {
        "arrow": 2,
        "rows": 2,
    }
    arrow, rows = comparison.rows_per_second["arrow"], comparison.rows_per_second["rows"]
    # Within each round, not of the medians.
    ratios = [a / r for a, r in zip(arrow, rows, strict=True)]
    assert comparison.ratio == _harness.Summary.of(ratios)
    assert comparison.met == (comparison.ratio.median >= bench_spark.GOAL_ARROW_VS_ROWS)
    text = comparison.markdown()
    assert "arrow / rows" in text
    assert ("**met**" in text) == comparison.met
