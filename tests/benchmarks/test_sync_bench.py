"""bench_sync at a tiny size: it runs on both portal backends and prints its
command and figures. No timing assertions (the figures live in
benchmarks/README.md). One round only: the harness collects garbage before each
contender, which is slow in a process as full as the test suite's."""

from __future__ import annotations

import pytest

from benchmarks import bench_sync


def test_the_sync_benchmark_runs_at_a_tiny_size(
    backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bench_sync.main(["--calls", "2", "--rounds", "1", "--backend", backend])
    out = capsys.readouterr().out
    command = f"python -m benchmarks.bench_sync --calls 2 --rounds 1 --backend {backend}"
    assert f"command: `{command}`" in out
    assert f"backend: {backend}" in out
    for row in ("AsyncClient", "Client (sync facade)", "facade overhead", "ratio sync / async"):
        assert f"| {row} " in out
