"""The issue-7 benchmark suite at a tiny size: each benchmark runs once and reports.

No timing assertions (the goals live in benchmarks/RESULTS.md); these only keep the
benchmarks from rotting.
"""

from __future__ import annotations

import importlib.util

import attrs
import pytest

from benchmarks import bench_memory, bench_throughput, run_all


def test_throughput_runs_every_available_contender() -> None:
    report = bench_throughput.run_benchmark(users=2000, rounds=1, delay_ms=1)
    assert list(report.rates) == bench_throughput.available()
    assert "sdk" in report.rates
    assert "raw_httpx" in report.rates
    for rates in report.rates.values():
        assert len(rates) == 1
        assert rates[0] > 0
    assert "| sdk " in report.markdown()


def test_requests_loop_is_a_contender_when_requests_is_installed() -> None:
    if importlib.util.find_spec("requests") is None:
        pytest.skip("requests is not installed (benchmarks/requirements.txt)")
    report = bench_throughput.run_benchmark(
        users=2000, rounds=1, delay_ms=1, contenders=["sdk", "requests_loop"]
    )
    ratio = report.ratio("sdk", "requests_loop")
    assert ratio is not None
    assert ratio.median > 0


def test_memory_runs_each_size_in_its_own_process() -> None:
    report = bench_memory.run_benchmark(sizes=(2000, 200), rounds=1)
    assert set(report.peaks) == {2000, 200}
    for peaks in report.peaks.values():
        assert len(peaks) == 1
        assert peaks[0] > 10  # MiB: a Python process with the SDK imported
    assert "difference" in report.markdown()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> str:
    """RESULTS.md of one tiny run_all, shared by the tests that read it (a run is a minute)."""
    out = tmp_path_factory.mktemp("run_all") / "RESULTS.md"
    run_all.main(["--tiny", "--out", str(out)])
    return out.read_text()


def test_run_all_writes_results_with_all_five_measurements(results: str) -> None:
    text = results
    for heading in (
        "## Goals at a glance",
        "## 1. Client CPU per user",
        "## 2. Wall-clock throughput",
        "## 3. Peak RSS",
        "## 4. Sync facade overhead",
        "## 5. Where the time of run 1 goes",
    ):
        assert heading in text
    assert "command: `python -m benchmarks.run_all --tiny" in text
    assert "versions: " in text
    assert "sdk_upsert_many" in text


ISSUE_14_GOALS = (
    "asyncio, dicts (generator): SDK / (c) tuned httpx on aiohttp, CPU",
    "asyncio, dicts (generator): SDK / (a) naive httpx, CPU",
    "trio, dicts (generator): SDK / (b) tuned httpx, CPU",
    "SDK over a pyarrow.Table of",
    "Parquet rows to the sink (rows/s)",
    "the same rows as CSV, with the arrow extra",
    "Spark `upsert_dataframe` to the sink on local[2]",
    "Arrow rows from Parquet minus",
)


def test_run_all_reports_every_goal_of_issue_14_with_a_verdict(results: str) -> None:
    glance = results.split("## Goals at a glance", 1)[1].split("## 1.", 1)[0]
    for goal in ISSUE_14_GOALS:
        [line] = [line for line in glance.splitlines() if goal in line]
        assert "**met**" in line or "**not met**" in line or "**not measured**: " in line
    for heading in ("## 6. ", "## 7. ", "## 8. ", "## 9. "):
        assert heading in results


def test_a_goal_without_a_figure_says_why_instead_of_met() -> None:
    goal = run_all.Goal("x", "<= 1", None, "<=", 1.0, "pyarrow is not installed")
    assert goal.met is None
    assert goal.row()[-1] == "**not measured**: pyarrow is not installed"
    measured = attrs.evolve(goal, value=run_all._harness.Summary(0.9, 0.8, 1.1, 3))
    assert measured.met is True
    assert measured.row()[-1] == "**met**"
    assert attrs.evolve(measured, op=">=").row()[-1] == "**not met**"


def test_the_columnar_sections_say_not_measured_without_pyarrow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmarks import _arrow

    monkeypatch.setattr(_arrow, "pyarrow_missing", lambda: "pyarrow is not installed (test)")
    _arrow.arrow_support.cache_clear()
    try:
        size = run_all.SIZES["tiny"]
        for section in (run_all.section_arrow_cpu, run_all.section_arrow_memory):
            text, facts = section(size)
            [goal] = facts["goals"]
            assert goal.met is None
            assert "pyarrow is not installed (test)" in text
            assert "pyarrow is not installed (test)" in goal.row()[-1]
    finally:
        _arrow.arrow_support.cache_clear()


def test_the_spark_goal_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import bench_spark

    monkeypatch.delattr(bench_spark, "measure_paths", raising=False)
    text, facts = run_all.section_spark(run_all.SIZES["tiny"])
    [goal] = facts["goals"]
    assert goal.met is None
    assert text.startswith("Not measured: ")


def _spark_size() -> run_all.Size:
    # A size that asks for the Spark run (the tiny one does not: it would start a JVM).
    return attrs.evolve(run_all.SIZES["tiny"], spark_rows=300, spark_rounds=2)


def test_the_spark_section_turns_the_paths_rates_into_its_goal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # run_all's glue (section_spark -> bench_spark.measure_paths -> compare_paths) on a
    # fake Spark run: tests/integrations run compare_paths itself; this keeps the glue
    # from rotting without a second JVM in the suite.
    import inspect

    from benchmarks import bench_spark

    real = bench_spark.compare_paths
    calls: list[dict[str, object]] = []

    def fake_compare(**options: object) -> bench_spark.PathComparison:
        inspect.signature(real).bind(**options)  # the call fits the real one
        calls.append(options)
        rates = {"arrow": [900.0, 1200.0], "rows": [300.0, 300.0]}
        return bench_spark.PathComparison(300, 8, 8, "local[2]", rates)

    monkeypatch.setattr(run_all, "spark_missing", lambda: None)
    monkeypatch.setattr(bench_spark, "compare_paths", fake_compare)
    text, facts = run_all.section_spark(_spark_size())
    assert calls == [{"master": "local[2]", "rows": 300, "rounds": 2}]
    [goal] = facts["goals"]
    assert goal.value == run_all._harness.Summary.of([3.0, 4.0])  # within each round
    assert goal.met is True
    assert "| arrow " in text
    assert "| rows " in text
    assert "**met**" in text


def test_a_failed_spark_run_is_reported_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import bench_spark

    def no_java(**options: object) -> bench_spark.PathComparison:
        raise RuntimeError("Java gateway process exited")

    monkeypatch.setattr(run_all, "spark_missing", lambda: None)
    monkeypatch.setattr(bench_spark, "compare_paths", no_java)
    text, facts = run_all.section_spark(_spark_size())
    [goal] = facts["goals"]
    assert goal.met is None
    assert text == (
        "Not measured: the Spark run failed: RuntimeError: Java gateway process exited."
    )
