"""The emulator benchmark runs once at a tiny size, so it cannot rot (no timing asserted)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_emulator.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_emulator", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_emulator_benchmark_runs_at_a_tiny_size() -> None:
    results = load().run(tiny=True)
    assert results["batch_size"] == 10
    assert results["core_ms_per_batch"]["cpu_median"] >= 0
    for name in ("core_ms_per_batch", "in_process_users_per_s", "loopback_users_per_s"):
        figures = results[name]
        assert {"median", "min", "max"} <= set(figures)
        assert 0 < figures["min"] <= figures["median"] <= figures["max"]
