"""bench_transport at a tiny size: every contender runs and reports sane figures.

No timing assertions here (the goals live in benchmarks/); these only keep the
benchmark from rotting. CI installs only ``.[dev]``, so the httpx-only
contenders always run and the others skip when their packages are missing.
"""

from __future__ import annotations

import pytest

from benchmarks import bench_transport

TINY = {"users": 250, "rounds": 2, "chunk_size": 100, "concurrency": 2, "warmup": False}


def _assert_sane(report: bench_transport.Report, names: list[str]) -> None:
    assert list(report.measures) == names
    assert report.users == 250
    for name in names:
        measures = report.measures[name]
        assert len(measures) == 2
        for measure in measures:
            assert measure.cpu_us_per_user > 0
            assert measure.wall_s > 0
            if not name.endswith("_only"):
                assert measure.requests == 3  # 100 + 100 + 50 users
                assert measure.body_bytes > 250 * 100
    table = report.markdown()
    for name in names:
        assert f"| {name} " in table


def test_httpx_only_contenders_run_on_asyncio() -> None:
    names = ["naive_httpx", "json_only"]
    report = bench_transport.run_benchmark(contenders=names, **TINY)
    _assert_sane(report, names)
    ratio = report.ratio("naive_httpx", "naive_httpx")
    assert ratio is not None
    assert ratio.median == 1.0


def test_naive_httpx_runs_on_trio() -> None:
    report = bench_transport.run_benchmark(contenders=["naive_httpx"], backend="trio", **TINY)
    _assert_sane(report, ["naive_httpx"])


def test_all_raw_contenders_run_when_their_packages_are_installed() -> None:
    for module in ("orjson", "aiohttp", "httpx_aiohttp"):
        pytest.importorskip(module)
    names = ["naive_httpx", "tuned_httpx", "httpx_aiohttp", "aiohttp", "orjson_only"]
    report = bench_transport.run_benchmark(contenders=names, **TINY)
    _assert_sane(report, names)


def test_sdk_contender_runs_once_upsert_many_exists() -> None:
    if not bench_transport.sdk_available():
        pytest.skip("AsyncClient.upsert_many does not exist yet")
    report = bench_transport.run_benchmark(contenders=["sdk_upsert_many"], **TINY)
    _assert_sane(report, ["sdk_upsert_many"])


def test_command_line_prints_the_table_with_machine_and_versions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--users", "200", "--rounds", "1", "--chunk-size", "100", "--contenders", "json_only"]
    bench_transport.main(argv)
    out = capsys.readouterr().out
    assert "command: `python -m benchmarks.bench_transport --users 200" in out
    assert "versions: " in out
    assert "| json_only " in out


def test_sdk_and_sdk_on_httpx_transport_run_on_both_backends(backend: str) -> None:
    if not bench_transport.sdk_available():
        pytest.skip("AsyncClient.upsert_many does not exist yet")
    report = bench_transport.run_benchmark(
        contenders=["sdk_upsert_many", "sdk_httpx_transport"], backend=backend, **TINY
    )
    _assert_sane(report, ["sdk_upsert_many", "sdk_httpx_transport"])
