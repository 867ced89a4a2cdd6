"""benchmarks/bench_bulk.py at a tiny size, so that it cannot rot. No timing
assertions: the figures live in the benchmark's report."""

from __future__ import annotations

import pytest

from benchmarks import bench_bulk


@pytest.mark.parametrize("target", bench_bulk.TARGETS)
def test_the_bulk_benchmark_measures_every_contender_on_every_target(
    target: str, backend: str
) -> None:
    measures = bench_bulk.run(users=1500, rounds=2, target=target, backend=backend)
    assert "sdk" in measures
    for runs in measures.values():
        assert len(runs) == 2
        assert all(m.users_per_s > 0 and m.cpu_us_per_user > 0 for m in runs)


def test_the_bulk_benchmark_prints_its_command_and_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench_bulk.main(["--users", "1000", "--rounds", "1", "--target", "null"])
    out = capsys.readouterr().out
    assert "command: `python -m benchmarks.bench_bulk --users 1000 --rounds 1 --target null`" in out
    assert "| sdk_stdlib " in out or "| sdk " in out
    assert "client CPU us/user" in out


def test_the_stdlib_contender_leaves_the_orjson_path_on_afterwards() -> None:
    from activatepro_async import _wire

    before = _wire._orjson
    bench_bulk.run(users=100, rounds=1, target="null")
    assert _wire._orjson is before
