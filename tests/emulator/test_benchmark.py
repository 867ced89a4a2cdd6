"""The emulator benchmark, run once at its tiny size on clocks the test drives.

The benchmark checks every answer (202) and that every user it sent was stored;
this checks that the figures it reports are those of what it ran: each timed
span read once from its clock, divided by the users sent in it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_emulator.py"
#: The tiny run: 2 rounds of 2 batches of 10 users, on each of the three paths.
BATCH_SIZE = 10
BATCHES = 2
ROUNDS = 2


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_emulator", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Ticks:
    """A clock that moves ``step`` seconds each time it is read, and counts its reads."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        self.now += self.step
        return self.now


def test_the_emulator_benchmark_reports_what_it_timed() -> None:
    wall, cpu = Ticks(0.004), Ticks(0.001)
    results = load().run(tiny=True, clock=wall, cpu_clock=cpu)

    assert results["batch_size"] == BATCH_SIZE
    # core: each batch timed alone, from one read of each clock to the next.
    assert results["core_ms_per_batch"] == pytest.approx(
        {"median": 4.0, "min": 4.0, "max": 4.0, "cpu_median": 1.0}
    )
    per_batch = BATCH_SIZE / 0.004
    assert results["core_users_per_s"] == pytest.approx(
        {"median": per_batch, "min": per_batch, "max": per_batch}
    )
    # in-process and loopback: one span a round, over all of its batches.
    per_round = BATCHES * BATCH_SIZE / 0.004
    for name in ("in_process_users_per_s", "loopback_users_per_s"):
        assert results[name] == pytest.approx(
            {"median": per_round, "min": per_round, "max": per_round}
        ), name
    # Two reads per timed span: every batch of core, every round of the other two.
    assert cpu.reads == 2 * ROUNDS * BATCHES
    assert wall.reads == 2 * ROUNDS * BATCHES + 2 * ROUNDS + 2 * ROUNDS
