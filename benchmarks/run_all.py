"""Run the whole benchmark suite (issues 7 and 14) and write ``benchmarks/RESULTS.md``.

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
5. a cProfile of run 1's SDK contender: where its time goes;
6. issue 14's columnar goals: client CPU of ``upsert_many`` over a ``pyarrow.Table``
   against the raw loop over pre-built dicts (``bench_transport``), ``activatepro
   import`` of Parquet and CSV against a ten-line script (``bench_import``), peak RSS
   streaming Parquet (``bench_memory --arrow``), and Spark's Arrow path against its
   Row path (``bench_spark``). Where pyarrow, pyspark or the columnar path is
   missing, the goal says "not measured" and why.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import io
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import attrs

from . import (
    _arrow,
    _harness,
    bench_emulator,
    bench_import,
    bench_memory,
    bench_spark,
    bench_sync,
    bench_throughput,
)
from . import bench_transport as bt
from .sink import running_sink

OUT = Path(__file__).resolve().parent / "RESULTS.md"


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
    # Issue 14: the columnar goals (their sizes are the issue's).
    arrow_users: int = 1_000_000
    arrow_rounds: int = 3
    import_rows: int = 1_000_000
    import_rounds: int = 3
    arrow_memory_sizes: tuple[int, int] = (10_000_000, 1_000_000)
    arrow_memory_rounds: int = 2
    # bench_spark.PATHS_ROWS: below it each job's fixed part hides the paths. 0: not run
    # (the tiny size: the suite runs the Spark benchmark in tests/integrations/).
    spark_rows: int = 1_000_000
    spark_rounds: int = 3
    # Issue 15: incremental sync over an export of this many rows.
    sync_state_rows: int = 1_000_000
    sync_state_rounds: int = 3


SIZES = {
    "full": Size(),
    "quick": Size(
        50_000, 3, 3, 30_000, 3, (200_000, 20_000), 1, 500, 3, False, 50_000,
        100_000, 2, 100_000, 2, (1_000_000, 100_000), 1, 200_000, 1, 100_000, 1,
    ),
    "tiny": Size(
        300, 1, 1, 2000, 1, (3000, 300), 1, 20, 1, True, 300,
        300, 1, 300, 1, (3000, 300), 1, 0, 1, 300, 1,
    ),
}  # fmt: skip


def _verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def _goal_row(what: str, goal: str, value: _harness.Summary | None, met: bool) -> list[str]:
    shown = value.show() if value is not None else "-"
    return [what, goal, shown, _verdict(met)]


@attrs.frozen
class Goal:
    """One goal of an issue: its figure in this run, or why it was not measured."""

    what: str
    goal: str
    #: the figure compared against the goal
    value: _harness.Summary | None
    #: "<=", ">=" or "<"
    op: str
    bound: float
    why_not: str | None = None
    digits: int = 2

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        v = self.value.median
        return {"<=": v <= self.bound, ">=": v >= self.bound, "<": v < self.bound}[self.op]

    def verdict(self) -> str:
        if self.met is None:
            return f"**not measured**: {self.why_not or 'no figure in this run'}"
        return _verdict(self.met)

    def row(self) -> list[str]:
        shown = self.value.show(self.digits) if self.value is not None else "-"
        return [self.what, self.goal, shown, self.verdict()]


def _goal_table(goals: list[Goal]) -> str:
    return _harness.markdown_table(
        ["measure", "goal", "median (min-max)", "goal"], [g.row() for g in goals]
    )


def section_cpu(size: Size) -> tuple[str, dict[str, Any]]:
    names = [
        "naive_httpx",
        "tuned_httpx",
        "httpx_aiohttp",
        "aiohttp",
        "orjson_only",
        "sdk_upsert_many",
        "sdk_upsert_many_list",
        "sdk_httpx_transport",
    ]
    names = [c.name for c in bt.contenders_for("asyncio") if c.name in names]
    on_asyncio = bt.run_benchmark(
        users=size.transport_users, rounds=size.transport_rounds, contenders=names
    )
    trio_names = [
        c.name
        for c in bt.contenders_for("trio")
        if c.name in ("naive_httpx", "tuned_httpx", "sdk_upsert_many", "sdk_upsert_many_list")
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
    list_vs_c = on_asyncio.ratio("sdk_upsert_many_list", "httpx_aiohttp")
    list_vs_naive = on_asyncio.ratio("sdk_upsert_many_list", "naive_httpx")
    trio_list_vs_b = on_trio.ratio("sdk_upsert_many_list", "tuned_httpx")
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
        "list_vs_c": list_vs_c,
        "list_vs_naive": list_vs_naive,
        "trio_list_vs_b": trio_list_vs_b,
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


# -- issue 14: the columnar goals ---------------------------------------------


def section_arrow_cpu(size: Size) -> tuple[str, dict[str, Any]]:
    """Client CPU per user of upsert_many over a pyarrow.Table vs (c) over pre-built dicts."""
    why = _arrow.arrow_support()
    if why is None and not bt.CONTENDERS["httpx_aiohttp"].available("asyncio"):
        why = "the raw loop (c) needs aiohttp and httpx-aiohttp (benchmarks/requirements.txt)"
    goal = Goal(
        f"asyncio: SDK over a pyarrow.Table of {size.arrow_users:,} x 7 / (c) over "
        "pre-built dicts, client CPU",
        "<= 1.0",
        None,
        "<=",
        1.0,
        why,
    )
    if why is not None:
        return f"Not measured: {why}.", {"goals": [goal]}
    report = bt.run_benchmark(
        users=size.arrow_users,
        rounds=size.arrow_rounds,
        contenders=["httpx_aiohttp", "sdk_arrow", "orjson_only"],
    )
    goal = attrs.evolve(goal, value=report.ratio("sdk_arrow", "httpx_aiohttp"))
    return _goal_table([goal]) + "\n\n" + report.markdown(), {"goals": [goal]}


def section_import(size: Size) -> tuple[str, dict[str, Any]]:
    """activatepro import of Parquet (rows/s) and of CSV (wall vs a ten-line script)."""
    report = bench_import.run_benchmark(rows=size.import_rows, rounds=size.import_rounds)
    arrow_why = _arrow.arrow_support()
    goals = [
        Goal(
            f"`activatepro import` of {size.import_rows:,} Parquet rows to the sink (rows/s)",
            ">= 250,000",
            report.rate("cli_parquet"),
            ">=",
            250_000,
            report.not_measured.get("cli_parquet"),
            digits=0,
        ),
        Goal(
            "`activatepro import` of the same rows as CSV, with the arrow extra / "
            "ten-line `csv.DictReader` script (wall)",
            "<= 1.0",
            report.ratio("cli_csv", "script_csv") if arrow_why is None else None,
            "<=",
            1.0,
            None
            if arrow_why is None
            else f"{arrow_why}; without it the CLI reads CSV with the standard library, "
            "whose figure is in the table below",
        ),
    ]
    return _goal_table(goals) + "\n\n" + report.markdown(), {"goals": goals}


def section_arrow_memory(size: Size) -> tuple[str, dict[str, Any]]:
    """Peak RSS streaming a large vs a small Parquet file through the columnar path."""
    large, small = size.arrow_memory_sizes
    why = _arrow.arrow_support()
    goal = Goal(
        f"peak RSS, {large:,} Arrow rows from Parquet minus {small:,} (MiB)",
        "< 30",
        None,
        "<",
        30,
        why,
        digits=1,
    )
    if why is not None:
        return f"Not measured: {why}.", {"goals": [goal]}
    with tempfile.TemporaryDirectory(prefix="run-all-arrow-") as where:
        report = bench_memory.run_benchmark(
            sizes=size.arrow_memory_sizes, rounds=size.arrow_memory_rounds, arrow_dir=Path(where)
        )
    goal = attrs.evolve(goal, value=report.difference())
    return _goal_table([goal]) + "\n\n" + report.markdown(), {"goals": [goal]}


def spark_missing() -> str | None:
    """Why the Spark goal cannot be measured here, or None."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (the spark extra)"
    if not callable(getattr(bench_spark, "measure_paths", None)):
        return (
            "benchmarks/bench_spark.py has no measure_paths(master=, rows=, rounds=) yet "
            "(the Arrow and Row contenders of upsert_dataframe)"
        )
    return None


def section_spark(size: Size) -> tuple[str, dict[str, Any]]:
    """Spark upsert_dataframe on local[2]: the Arrow path's rows/s over the Row path's."""
    why = spark_missing() or (
        None if size.spark_rows else "not at this size (tests/integrations/ run bench_spark)"
    )
    goal = Goal(
        "Spark `upsert_dataframe` to the sink on local[2]: Arrow path / Row path (rows/s)",
        ">= 3",
        None,
        ">=",
        3.0,
        why,
    )
    if why is None:
        try:
            rates = bench_spark.measure_paths(  # type: ignore[attr-defined]
                master="local[2]", rows=size.spark_rows, rounds=size.spark_rounds
            )
            pairs = zip(rates["arrow"], rates["rows"], strict=True)
            goal = attrs.evolve(goal, value=_harness.Summary.of([a / r for a, r in pairs]))
        except Exception as exc:  # no java, no Spark: said, not raised
            goal = attrs.evolve(goal, why_not=f"the Spark run failed: {type(exc).__name__}: {exc}")
            return f"Not measured: {goal.why_not}.", {"goals": [goal]}
        rows = [[path, _harness.Summary.of(values).show(0)] for path, values in rates.items()]
        text = _goal_table([goal]) + "\n\n" + _harness.markdown_table(["path", "rows/s"], rows)
        return text, {"goals": [goal]}
    return f"Not measured: {why}.", {"goals": [goal]}


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
        "(the transport switch of PROFILE.md section 5)."
    ]
    gaps = facts["gaps"]
    if "c" in gaps:
        lines.append(
            f"Against (c), the raw loop on the same transport, the gap is {gaps['c']:.2f} µs "
            "per user: the work no raw loop does (PROFILE.md section 7). Per user, the copy of "
            "each dict a generator yields (so a reused dict still sends what it yielded; a "
            "list is read without copies, `sdk_upsert_many_list`) and the garbage collections "
            "those copies cause, the scan of each body for `null` (orjson writes NaN as "
            "null; the scan costs about half of orjson's own encoding), and the ids and "
            "positions kept for the result. Per request, the SDK's request path over a bare "
            "`client.post` (retries, the try deadline, the 202 read into a `BatchAccepted`) "
            "and the engine's hand-over between its producer and workers."
        )
    lines.append(
        "On trio the SDK keeps httpx's default transport (about 1 ms per request, "
        "PROFILE.md), and pays the same engine cost over (b)."
    )
    return "\n\n".join(lines)


def cpu_goals(c: dict[str, Any]) -> list[Goal]:
    """Issue 14's dict goals (and the issue-7 goals they replace), from section 1's facts."""
    return [
        Goal("asyncio, dicts (generator): SDK / (c) tuned httpx on aiohttp, CPU", "<= 1.2",
             c["vs_c"], "<=", 1.2),
        Goal("asyncio, dicts (one list): SDK / (c), CPU", "<= 1.2", c["list_vs_c"], "<=", 1.2),
        Goal("asyncio, dicts (generator): SDK / (a) naive httpx, CPU", "<= 0.35",
             c["vs_naive"], "<=", 0.35),
        Goal("asyncio, dicts (one list): SDK / (a), CPU", "<= 0.35", c["list_vs_naive"], "<=",
             0.35),
        Goal("trio, dicts (generator): SDK / (b) tuned httpx, CPU", "<= 1.15", c["trio_vs_b"],
             "<=", 1.15),
        Goal("trio, dicts (one list): SDK / (b), CPU", "<= 1.15", c["trio_list_vs_b"], "<=",
             1.15),
    ]  # fmt: skip


def render(
    command: str, parts: dict[str, tuple[str, dict[str, Any], float]], took: float, size: Size
) -> str:
    """RESULTS.md: how it was made, the goals at a glance, then each measurement."""
    cpu, throughput, memory, sync, profile = (
        parts[k] for k in ("cpu", "throughput", "memory", "sync", "profile")
    )
    arrow_cpu, imports, arrow_memory, spark = (
        parts[k] for k in ("arrow_cpu", "import", "arrow_memory", "spark")
    )
    c, t, m, s = cpu[1], throughput[1], memory[1], sync[1]
    issue14 = [
        *[["1", *g.row()] for g in cpu_goals(c)],
        *[["6", *g.row()] for g in arrow_cpu[1]["goals"]],
        *[["7", *g.row()] for g in imports[1]["goals"]],
        *[["8", *g.row()] for g in spark[1]["goals"]],
        *[["9", *g.row()] for g in arrow_memory[1]["goals"]],
    ]
    goals = [
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
        "## Goals at a glance\n\nIssue 14 (the columnar path and the lean dict path):\n\n"
        + _harness.markdown_table(["run", "measure", "goal", "median (min-max)", "goal"], issue14)
        + "\n\nIssue 15 (incremental sync): its goals head [section 10](#10-incremental-sync-over-"
        + f"{size.sync_state_rows:,}".replace(",", "")
        + "-rows-issue-15).\n\nIssues 3-7:\n\n"
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
        "## 6. Client CPU per user, `upsert_many` of a pyarrow.Table\n\n"
        f"{size.arrow_users:,} users of 7 string columns as one Table (built before the "
        "clock starts), against (c) over the same users as pre-built dicts, same run. "
        f"Took {arrow_cpu[2]:.0f} s.\n\n" + arrow_cpu[0],
        "## 7. `activatepro import` of Parquet and CSV\n\n"
        f"Took {imports[2]:.0f} s.\n\n" + imports[0],
        "## 8. Spark `upsert_dataframe`, Arrow path against Row path\n\n"
        f"Took {spark[2]:.0f} s.\n\n" + spark[0],
        f"## 9. Peak RSS streaming {size.arrow_memory_sizes[0]:,} vs "
        f"{size.arrow_memory_sizes[1]:,} Arrow rows from Parquet\n\n"
        f"One fresh process per run. Took {arrow_memory[2]:.0f} s.\n\n" + arrow_memory[0],
        f"## 10. Incremental sync over {size.sync_state_rows:,} rows (issue 15)\n\n"
        f"Took {parts['sync_state'][2]:.0f} s.\n\n" + parts["sync_state"][0],
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
2. **The bulk engine's `fill` loop** (`_engine.py`): it was the largest single cost,
   about 0.5 µs per user (a type check of every value, a copy, the id and position
   appended one by one). **Changed (issue 14):** a plain dict is only copied, a list
   is read in slices without copies, a User becomes the dict of its fields; the values
   are converted and checked by the one encoder call per chunk, the ids in one pass,
   and a chunk that fails either goes the per-user way (PROFILE.md section 7).
3. **JSON encoding** (`_wire.encode_json_telling`: `orjson.dumps` once per chunk, then a scan
   of the body for `null`, which guards against orjson writing NaN as null). A
   py-spy sample of five SDK runs put the scan level with orjson itself: `b"null" in
   body` took 93 µs per 173 KB body. **Changed:** the scan uses re's literal search
   (58 µs); a chunk's encoding went from 175 to 139 µs (9 alternated rounds).
"""


def section_sync_state(size: Size) -> tuple[str, dict[str, Any]]:
    """Issue 15's goals (benchmarks/bench_sync_state.py), at the run's size."""
    from .bench_sync_state import section_sync_state as measure

    return measure(rows=size.sync_state_rows, rounds=size.sync_state_rounds)


def run(size: Size, command: str) -> str:
    """Run every section and return the text of RESULTS.md."""
    started = time.perf_counter()
    parts = {
        "cpu": _timed("1. client CPU per user", lambda: section_cpu(size)),
        "throughput": _timed("2. throughput, 20 ms sink", lambda: section_throughput(size)),
        "memory": _timed("3. peak RSS", lambda: section_memory(size)),
        "sync": _timed("4. sync facade, emulator", lambda: section_sync_and_emulator(size)),
        "profile": _timed("5. profile of run 1", lambda: section_profile(size)),
        "arrow_cpu": _timed("6. Arrow client CPU", lambda: section_arrow_cpu(size)),
        "import": _timed("7. activatepro import", lambda: section_import(size)),
        "spark": _timed("8. Spark Arrow vs Row", lambda: section_spark(size)),
        "arrow_memory": _timed("9. peak RSS, Parquet", lambda: section_arrow_memory(size)),
        "sync_state": _timed("10. incremental sync", lambda: section_sync_state(size)),
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
