"""profile_transport at a tiny size: the experiments of PROFILE.md still run."""

from __future__ import annotations

import pytest

from benchmarks import profile_transport

TINY = ["--requests", "4", "--rounds", "1", "--concurrency", "2", "--users-per-body", "10"]


def test_httpx_only_variants_print_a_row_each(capsys: pytest.CaptureFixture[str]) -> None:
    variants = ["httpx_default", "httpx_default_direct", "httpcore_pool", "x_no_expiry_probe"]
    profile_transport.main([*TINY, "--variants", *variants, "httpx_default#3@trio"])
    out = capsys.readouterr().out
    for name in [*variants, "httpx_default#3@trio"]:
        assert f"| {name} " in out


def test_calls_option_counts_calls_per_request(capsys: pytest.CaptureFixture[str]) -> None:
    profile_transport.main([*TINY, "--variants", "httpx_default", "--calls"])
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("httpx_default: "))
    calls = int(line.split(": ", 1)[1].split(" ", 1)[0])
    assert calls > 100  # httpx + httpcore + h11 take hundreds of calls per request


def test_asyncio_variants_run_when_aiohttp_is_installed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for module in ("aiohttp", "httpx_aiohttp"):
        pytest.importorskip(module)
    variants = ["raw_asyncio", "aiohttp", "httpx_aiohttp", "httpx_aiohttp_direct"]
    profile_transport.main([*TINY, "--variants", *variants, "x_asyncio_backend"])
    out = capsys.readouterr().out
    for name in [*variants, "x_asyncio_backend"]:
        assert f"| {name} " in out


def test_uvloop_modifier_runs_when_uvloop_is_installed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("uvloop")
    profile_transport.main([*TINY, "--variants", "httpx_default@uvloop"])
    assert "| httpx_default@uvloop " in capsys.readouterr().out


def test_unknown_variant_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown variant"):
        profile_transport.main([*TINY, "--variants", "nope"])
