"""The issue-7 benchmark suite at a tiny size: each benchmark runs once and reports.

No timing assertions (the goals live in benchmarks/RESULTS.md); these only keep the
benchmarks from rotting.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

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


def test_run_all_writes_results_with_all_five_measurements(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    run_all.main(["--tiny", "--out", str(out)])
    text = out.read_text()
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
