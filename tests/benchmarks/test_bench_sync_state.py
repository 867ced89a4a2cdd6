"""bench_sync_state at a tiny size: it runs end to end (a served emulator, the
commands in subprocesses) and reports each goal's row. No timing assertions:
at this size the interpreter's start dominates (the figures that count are the
lead's, at 1,000,000 rows on a quiet machine)."""

from __future__ import annotations

from benchmarks import bench_sync_state


def test_the_sync_state_benchmark_runs_at_a_tiny_size() -> None:
    text, facts = bench_sync_state.section_sync_state(rows=300, rounds=1)
    assert facts["unchanged_requests"] == 0
    assert facts["one_pct_sent"] == 3  # every 100th of 300 rows changed
    assert facts["state_bytes"] > 0
    for row in ("(a) unchanged rerun / read+hash", "(b) 1% changed sync / full import"):
        assert f"| {row} " in text
    assert "MiB per million users" in text
