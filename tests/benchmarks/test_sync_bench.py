"""bench_sync at a tiny size: it runs on both portal backends and reports sane
figures. No timing assertions (the figures live in benchmarks/README.md)."""

from __future__ import annotations

import pytest

from benchmarks import bench_sync


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_sync_benchmark_runs_at_a_tiny_size(backend: str) -> None:
    result = bench_sync.run(calls=3, rounds=2, backend=backend)
    assert result["async_us"].n == result["sync_us"].n == 2
    assert result["ratio"].min > 0


def test_the_sync_benchmark_prints_its_command_and_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench_sync.main(["--calls", "2", "--rounds", "1"])
    out = capsys.readouterr().out
    assert "command: `python -m benchmarks.bench_sync --calls 2 --rounds 1`" in out
    assert "| ratio sync / async " in out
