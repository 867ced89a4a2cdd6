"""Run the whole benchmark suite of issue 7 and write ``benchmarks/RESULTS.md``.

    pip install -e '.[dev]' -r benchmarks/requirements.txt
    python -m benchmarks.run_all                  # about 3-4 minutes on 2 cores
    python -m benchmarks.run_all --quick          # smaller sizes, about a minute
    python -m benchmarks.run_all --out /tmp/R.md  # somewhere else

The five measurements, each against its goal (the goals live here, never in the
test suite), with the median (min-max) of alternated rounds; ratios are taken
within a round. Everything talks to 127.0.0.1 only: ``sink.py`` and the emulator.

1. client CPU per user for ``upsert_many`` against the raw contenders
   (``bench_transport``), on asyncio and on trio;
2. wall-clock throughput with a 20 ms sink delay (``bench_throughput``);
3. peak RSS streaming 1,000,000 vs 100,000 users, in fresh processes (``bench_memory``);
4. sync facade overhead per call (``bench_sync``) and the emulator's apply rate
   (``bench_emulator``);
5. a cProfile of run 1's SDK contender: where its time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import attrs

from . import _harness, bench_emulator, bench_memory, bench_sync, bench_throughput
from . import bench_transport as bt
from .sink import running_sink

OUT = Path(__file__).resolve().parent / "RESULTS.md"
#: The bulk engine's `fill` loop per 7-field user, timed alone (PROFILE.md section 6).
FILL_US_PER_USER = 0.5


@attrs.frozen
class Size:
    """How big each run is; ``tiny`` is the test suite's, ``quick`` a fast look."""

    transport_users: int = 200_000
    transport_rounds: int = 7
    trio_rounds: int = 5
    throughput_users: int = 100_000
    throughput_rounds: int = 5
    memory_sizes: tuple[int, int] = (1_000_000, 100_000)
    memory_rounds: int = 3
    sync_calls: int = 2000
    sync_rounds: int = 7
    emulator_tiny: bool = False
    profile_users: int = 200_000


SIZES = {
    "full": Size(),
    "quick": Size(50_000, 3, 3, 30_000, 3, (200_000, 20_000), 1, 500, 3, False, 50_000),
    "tiny": Size(300, 1, 1, 2000, 1, (3000, 300), 1, 20, 1, True, 300),
}


def _verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def _goal_row(what: str, goal: str, value: _harness.Summary | None, met: bool) -> list[str]:
    shown = value.show() if value is not None else "-"
    return [what, goal, shown, _verdict(met)]


def section_cpu(size: Size) -> tuple[str, dict[str, Any]]:
    names = [
        "naive_httpx",
        "tuned_httpx",
        "httpx_aiohttp",
        "aiohttp",
        "orjson_only",
        "sdk_upsert_many",
        "sdk_httpx_transport",
    ]
    names = [c.name for c in bt.contenders_for("asyncio") if c.name in names]
    on_asyncio = bt.run_benchmark(
        users=size.transport_users, rounds=size.transport_rounds, contenders=names
    )
    trio_names = [
        c.name
        for c in bt.contenders_for("trio")
        if c.name in ("naive_httpx", "tuned_httpx", "sdk_upsert_many")
    ]
    on_trio = bt.run_benchmark(
        users=size.transport_users,
        rounds=size.trio_rounds,
        backend="trio",
        contenders=trio_names,
    )
    vs_naive = on_asyncio.ratio("sdk_upsert_many", "naive_httpx")
    vs_c = on_asyncio.ratio("sdk_upsert_many", "httpx_aiohttp")
    vs_before = on_asyncio.ratio("sdk_upsert_many", "sdk_httpx_transport")
    trio_vs_b = on_trio.ratio("sdk_upsert_many", "tuned_httpx")
    goals = [
        _goal_row(
            "asyncio: SDK / (a) naive httpx",
            "<= 0.35",
            vs_naive,
            vs_naive is not None and vs_naive.median <= 0.35,
        ),
        _goal_row(
            "asyncio: SDK / (c) httpx on aiohttp transport",
            "<= 1.2",
            vs_c,
            vs_c is not None and vs_c.median <= 1.2,
        ),
        _goal_row(
            "trio: SDK / (b) tuned httpx",
            "<= 1.15",
            trio_vs_b,
            trio_vs_b is not None and trio_vs_b.median <= 1.15,
        ),
    ]
    sdk = on_asyncio.cpu("sdk_upsert_many").median
    gaps = {}
    if "httpx_aiohttp" in on_asyncio.measures:
        gaps["c"] = sdk - on_asyncio.cpu("httpx_aiohttp").median
    if "naive_httpx" in on_asyncio.measures:
        gaps["a_goal"] = sdk - 0.35 * on_asyncio.cpu("naive_httpx").median
    text = "\n\n".join(
        [
            _harness.markdown_table(["ratio", "goal", "median (min-max)", "goal"], goals),
            (
                "The SDK now (`sdk_upsert_many`) over the SDK on httpx's default "
                "transport as it was before (`sdk_httpx_transport`), same run: "
                f"**{vs_before.show() if vs_before else '-'}**."
            ),
            "On asyncio:\n\n" + on_asyncio.markdown(),
            "On trio (aiohttp cannot run there; the SDK keeps httpx's transport):\n\n"
            + on_trio.markdown(),
        ]
    )
    facts = {
        "vs_naive": vs_naive,
        "vs_c": vs_c,
        "vs_before": vs_before,
        "trio_vs_b": trio_vs_b,
        "gaps": gaps,
        "sdk_cpu": on_asyncio.cpu("sdk_upsert_many"),
    }
    for key, name in (("c_cpu", "httpx_aiohttp"), ("naive_cpu", "naive_httpx")):
        if name in on_asyncio.measures:
            facts[key] = on_asyncio.cpu(name).median
    return text, facts


def section_throughput(size: Size) -> tuple[str, dict[str, Any]]:
    report = bench_throughput.run_benchmark(
        users=size.throughput_users, rounds=size.throughput_rounds
    )
    vs_requests = report.ratio("sdk", "requests_loop")
    vs_raw = report.ratio("sdk", "raw_httpx")
    vs_tuned = report.ratio("sdk", "tuned_httpx")
    goals = [
        _goal_row(
            "SDK / sequential requests loop",
            ">= 5",
            vs_requests,
            vs_requests is not None and vs_requests.median >= 5,
        ),
        _goal_row(
            "SDK / raw httpx loop (naive, 8 in flight)",
            ">= 0.95",
            vs_raw,
            vs_raw is not None and vs_raw.median >= 0.95,
        ),
        _goal_row(
            "SDK / tuned raw httpx loop (orjson, 8 in flight)",
            ">= 0.95",
            vs_tuned,
            vs_tuned is not None and vs_tuned.median >= 0.95,
        ),
    ]
    text = (
        _harness.markdown_table(["ratio", "goal", "median (min-max)", "goal"], goals)
        + "\n\n"
        + report.markdown()
    )
    return text, {"vs_requests": vs_requests, "vs_raw": vs_raw, "vs_tuned": vs_tuned}


def section_memory(size: Size) -> tuple[str, dict[str, Any]]:
    report = bench_memory.run_benchmark(sizes=size.memory_sizes, rounds=size.memory_rounds)
    difference = report.difference()
    large, small = size.memory_sizes
    goals = [
        _goal_row(
            f"peak RSS, {large:,} users minus {small:,} users (MiB)",
            "< 20",
            difference,
            difference.median < 20,
        )
    ]
    text = (
        _harness.markdown_table(["measure", "goal", "median (min-max)", "goal"], goals)
        + "\n\n"
        + report.markdown()
    )
    return text, {"difference": difference}


def section_sync_and_emulator(size: Size) -> tuple[str, dict[str, Any]]:
    sync = bench_sync.run(size.sync_calls, size.sync_rounds, "asyncio")
    emulator = bench_emulator.run(tiny=size.emulator_tiny)
    core = emulator["core_ms_per_batch"]
    batch = emulator["batch_size"]
    core_summary = _harness.Summary(core["median"], core["min"], core["max"], 0)
    rows = [
        ["AsyncClient.get_user, in-process emulator", sync["async_us"].show(1) + " µs"],
        ["Client.get_user (sync facade), same", sync["sync_us"].show(1) + " µs"],
        ["facade overhead per call", sync["overhead_us"].show(1) + " µs"],
        ["ratio sync / async", sync["ratio"].show(2) + " x"],
    ]

    def rate(key: str) -> str:
        figures = emulator[key]
        return f"{figures['median']:,.0f} ({figures['min']:,.0f}-{figures['max']:,.0f})"

    goals = [
        [
            "sync facade overhead per call (µs)",
            "none set (issue 5 asks for the figure)",
            sync["overhead_us"].show(),
            f"{sync['overhead_us'].median / 300:.1f} % of a 30 ms API round trip",
        ],
        _goal_row(
            f"emulator: apply one {batch}-user batch, validation included (ms)",
            "well under 10 (issue 3)",
            core_summary,
            core["median"] < 10,
        ),
    ]
    emulator_rows = [
        [f"core: one {batch}-user batch, parse + validate + apply", core_summary.show() + " ms"],
        ["in-process transport, users/s", rate("in_process_users_per_s")],
        ["loopback (uvicorn on 127.0.0.1, 4 connections), users/s", rate("loopback_users_per_s")],
    ]
    text = "\n\n".join(
        [
            _harness.markdown_table(["measure", "goal", "median (min-max)", "goal"], goals),
            f"Sync facade (`bench_sync`, asyncio portal, {sync['calls']} calls per contender, "
            f"{sync['rounds']} rounds):\n\n"
            + _harness.markdown_table(["per call", "median (min-max)"], rows),
            "Emulator (`bench_emulator`):\n\n"
            + _harness.markdown_table(["measure", "median (min-max)"], emulator_rows),
        ]
    )
    return text, {"sync": sync, "emulator": emulator}


def _package(filename: str) -> str:
    if "activatepro_async" in filename:
        return "activatepro_async"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if filename.startswith(("~", "<")):
        return "builtins (C)"
    if "/benchmarks/" in filename:
        return "benchmarks (the input generator)"
    return "stdlib (" + Path(filename).name + ")" if "asyncio" not in filename else "asyncio"


def section_profile(size: Size) -> tuple[str, dict[str, Any]]:
    """cProfile of one SDK run of run 1 (asyncio): own time by package, top functions."""
    chunks = bt.chunked(bt.make_users(size.profile_users), 1000)
    profiler = cProfile.Profile()
    with _harness.frozen_heap(), running_sink() as sink:
        run = bt.Run(sink.url, chunks, 8)
        anyio.run(bt.sdk_upsert_many, bt.Run(sink.url, chunks[:16], 8))  # warm up
        gc.collect()
        profiler.enable()
        anyio.run(bt.sdk_upsert_many, run)
        profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in entries.values())
    by_package: dict[str, float] = {}
    functions = []
    for (filename, line, name), (_cc, calls, tt, _ct, _callers) in entries.items():
        package = _package(filename)
        by_package[package] = by_package.get(package, 0.0) + tt
        where = f"{Path(filename).name}:{line}" if line else "(C)"
        functions.append((tt, calls, f"`{name}` {where}", package))
    functions.sort(reverse=True)
    users = run.users
    package_rows = [
        [package, f"{tt / total * 100:.0f} %", f"{tt * 1e6 / users:.2f}"]
        for package, tt in sorted(by_package.items(), key=lambda kv: -kv[1])[:8]
    ]
    function_rows = [
        [what, package, f"{calls:,}", f"{tt / total * 100:.0f} %"]
        for tt, calls, what, package in functions[:12]
    ]
    text = "\n\n".join(
        [
            f"cProfile of one `sdk_upsert_many` run of run 1 ({users:,} users, asyncio, "
            f"own time; the profiler itself inflates per-call costs, so read shares, not "
            f"absolute times). Total own time {total:.2f} s.",
            _harness.markdown_table(["package", "share", "µs/user, profiled"], package_rows),
            _harness.markdown_table(["function", "package", "calls", "share"], function_rows),
        ]
    )
    share = {package: tt / total for package, tt in by_package.items()}
    return text, {"share": share}


def _timed(name: str, step: Callable[[], tuple[str, dict[str, Any]]]) -> tuple[str, dict, float]:
    print(f"-- {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    text, facts = step()
    took = time.perf_counter() - started
    print(f"   {took:.0f} s", file=sys.stderr, flush=True)
    return text, facts, took


def _show(value: _harness.Summary | None) -> str:
    return value.show() if value is not None else "-"


def _cpu_reading(facts: dict[str, Any]) -> str:
    """Why the CPU goals are or are not met, from this run's figures."""
    lines = [
        f"The SDK costs {facts['sdk_cpu'].show()} client CPU µs per user on asyncio, "
        f"{_show(facts['vs_before'])} of what it cost on httpx's default transport "
        "before this change (the transport switch of PROFILE.md section 5)."
    ]
    gaps = facts["gaps"]
    if "c" in gaps:
        lines.append(
            f"Against (c), the raw loop on the same transport, the gap is {gaps['c']:.2f} µs "
            "per user. It is the bulk engine's own work per user, which no raw loop does: "
            "`fill` in `_engine.py` checks that every value of every user is a plain JSON value "
            "(about 0.27 µs), copies the dict (0.1 µs) and records its id and input position "
            "(about 0.1 µs), so that a user the API cannot take is rejected with its reason "
            "and position, and a caller's later change to a dict it yielded cannot reach the "
            "body (measured with timeit on the same 7-field users; about 0.5 µs per user in "
            "all, see section 5). The rest is the SDK's request path (retries, the try "
            "deadline, the 202's parsing) and the result it keeps."
        )
    if "a_goal" in gaps and "c_cpu" in facts and "naive_cpu" in facts:
        floor = facts["c_cpu"] + FILL_US_PER_USER
        lines.append(
            f"To reach SDK / naive httpx <= 0.35 the SDK would need {gaps['a_goal']:.2f} µs "
            f"per user less. The raw loop on the SDK's transport, (c), plus only the engine's "
            f"`fill` (about {FILL_US_PER_USER} µs per user) comes to {floor:.2f} µs, "
            f"{floor / facts['naive_cpu']:.2f}x naive httpx in this run: with its checks, "
            "the engine cannot reach 0.35 on this transport. Plain aiohttp, (d), would take "
            "the transport part lower, but the SDK is built on httpx (its users' "
            "`http_client=`, `transport=`, event hooks and mounts)."
        )
    lines.append(
        "On trio the SDK keeps httpx's default transport (about 1 ms per request, "
        "PROFILE.md), and pays the same engine cost over (b), so it stays near 2x (b)."
    )
    return "\n\n".join(lines)


def render(
    command: str, parts: dict[str, tuple[str, dict[str, Any], float]], took: float, size: Size
) -> str:
    """RESULTS.md: how it was made, the goals at a glance, then each measurement."""
    cpu, throughput, memory, sync, profile = (
        parts[k] for k in ("cpu", "throughput", "memory", "sync", "profile")
    )
    c, t, m, s = cpu[1], throughput[1], memory[1], sync[1]
    goals = [
        ["1", "asyncio: SDK / naive httpx CPU", "<= 0.35", _show(c["vs_naive"]),
         _verdict(c["vs_naive"] is not None and c["vs_naive"].median <= 0.35)],
        ["1", "asyncio: SDK / httpx-on-aiohttp CPU", "<= 1.2", _show(c["vs_c"]),
         _verdict(c["vs_c"] is not None and c["vs_c"].median <= 1.2)],
        ["1", "trio: SDK / tuned httpx CPU", "<= 1.15", _show(c["trio_vs_b"]),
         _verdict(c["trio_vs_b"] is not None and c["trio_vs_b"].median <= 1.15)],
        ["1", "asyncio: SDK now / SDK before (httpx transport)", "(lower is better)",
         _show(c["vs_before"]), "-"],
        ["2", "throughput: SDK / sequential requests", ">= 5", _show(t["vs_requests"]),
         _verdict(t["vs_requests"] is not None and t["vs_requests"].median >= 5)],
        ["2", "throughput: SDK / raw httpx", ">= 0.95", _show(t["vs_raw"]),
         _verdict(t["vs_raw"] is not None and t["vs_raw"].median >= 0.95)],
        ["3", "peak RSS: {:,} minus {:,} users (MiB)".format(*size.memory_sizes), "< 20",
         m["difference"].show(1),
         _verdict(m["difference"].median < 20)],
        ["4", "sync facade overhead per call (µs)", "none set", s["sync"]["overhead_us"].show(1),
         "-"],
        ["4", "emulator: one 1000-user batch (ms)", "< 10",
         f"{s['emulator']['core_ms_per_batch']['median']:.2f}",
         _verdict(s["emulator"]["core_ms_per_batch"]["median"] < 10)],
    ]  # fmt: skip
    header = _harness.header(command, {"duration": f"{took:.0f} s"})
    sections = [
        "# Benchmark results\n\n"
        "Written by `python -m benchmarks.run_all` (do not edit by hand; rerun it). "
        "Every figure is the median (min-max) of rounds in which the contenders took turns; "
        "ratios are taken within a round. The machine is shared and noisy: compare ratios "
        "of one run, not absolute figures across runs. Why httpx's transport costs what it "
        "does: [PROFILE.md](PROFILE.md).",
        "```\n" + header + "\n```",
        "## Goals at a glance\n\n"
        + _harness.markdown_table(["run", "measure", "goal", "median (min-max)", "goal"], goals),
        "## 1. Client CPU per user, `upsert_many` against the raw loops\n\n"
        f"{size.transport_users:,} users of 7 fields, chunks of 1000, 8 in flight, to "
        "`sink.py` in another "
        "process on 127.0.0.1. Only the client's CPU (`time.process_time`) is counted. "
        f"Took {cpu[2]:.0f} s.\n\n" + cpu[0] + "\n\n### Reading\n\n" + _cpu_reading(c),
        "## 2. Wall-clock throughput with a 20 ms sink delay\n\n"
        "Every answer of the sink waits 20 ms, as an API across a network does. "
        f"Took {throughput[2]:.0f} s.\n\n" + throughput[0],
        f"## 3. Peak RSS streaming {size.memory_sizes[0]:,} vs {size.memory_sizes[1]:,} users\n\n"
        "One fresh process per run; the users come from a generator, one at a time. "
        f"Took {memory[2]:.0f} s.\n\n" + memory[0],
        "## 4. Sync facade overhead and emulator apply rate\n\n"
        "Both against the in-process emulator (no socket), except the loopback rate. "
        f"Took {sync[2]:.0f} s.\n\n" + sync[0],
        "## 5. Where the time of run 1 goes\n\n"
        f"Took {profile[2]:.0f} s.\n\n" + profile[0] + "\n\n" + PROFILE_READING,
    ]
    return "\n\n".join(sections) + "\n"


PROFILE_READING = """\
Top costs, and what was done about each:

1. **httpx's default transport** (httpcore's pool bookkeeping, h11, an AnyIO cancel
   scope around every read and write: about 1 ms and 60 system calls per request,
   PROFILE.md). **Changed:** on asyncio with the `[fast]` extra the SDK's own client
   now sends through httpx-aiohttp's transport (`src/activatepro_async/_transport.py`);
   aiohttp's parser and writer are in C. In this profile `aiohttp`, `httpx` and
   `httpx_aiohttp` together are what is left of the transport.
2. **The bulk engine's `fill` loop** (`_engine.py`): the largest single cost, one
   pass per user. Its parts, timed alone on the same users: the check that every
   value is a plain JSON value (`frozenset.issuperset(map(type, values))`, about
   0.27 µs), the copy of the dict (0.1 µs), the id and position (0.1 µs). **Tried and
   not kept:** counting in locals instead of attributes and splitting the loop by
   operation measured 0.985x (15 alternated rounds): within noise. The check and the
   copy are the contract (a user that cannot be sent is rejected with its reason and
   input position; a dict the caller changes later cannot reach the body), so they stay.
3. **JSON encoding** (`_wire.encode_json_telling`: `orjson.dumps` once per chunk, then a scan
   of the body for `null`, which guards against orjson writing NaN as null). A
   py-spy sample of five SDK runs put the scan level with orjson itself: `b"null" in
   body` took 93 µs per 173 KB body. **Changed:** the scan uses re's literal search
   (58 µs); a chunk's encoding went from 175 to 139 µs (9 alternated rounds).
"""


def run(size: Size, command: str) -> str:
    """Run every section and return the text of RESULTS.md."""
    started = time.perf_counter()
    parts = {
        "cpu": _timed("1. client CPU per user", lambda: section_cpu(size)),
        "throughput": _timed("2. throughput, 20 ms sink", lambda: section_throughput(size)),
        "memory": _timed("3. peak RSS", lambda: section_memory(size)),
        "sync": _timed("4. sync facade, emulator", lambda: section_sync_and_emulator(size)),
        "profile": _timed("5. profile of run 1", lambda: section_profile(size)),
    }
    return render(command, parts, time.perf_counter() - started, size)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="smaller sizes, about a minute")
    group.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=OUT, help="where to write (RESULTS.md)")
    args = parser.parse_args(argv)
    size = SIZES["tiny" if args.tiny else "quick" if args.quick else "full"]
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m benchmarks.run_all", *given])
    text = run(size, command)
    args.out.write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
