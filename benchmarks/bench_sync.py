"""What does the sync facade cost per call, against the async client it wraps?

Both contenders make the same sequential ``get_user`` calls on the same
in-process emulator (no socket), so the difference is the facade's own work:
handing each call to the portal's thread and waiting for the answer.

    python -m benchmarks.bench_sync                    # asyncio portal
    python -m benchmarks.bench_sync --backend trio     # trio portal

Contenders alternate within each round (``_harness.alternate`` rotates their
order); the figures are the median, min and max over the rounds of the time per
call, and of the ratio sync / async measured in the same round.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio

from activatepro_async import AsyncClient, Client, User
from activatepro_async.emulator import Emulator

from . import _harness

KEY = "bench-key"


def _async_per_call(emulator: Emulator, backend: str, calls: int) -> float:
    async def main() -> float:
        async with AsyncClient(KEY, transport=emulator.transport()) as client:
            await client.get_user("ada")  # warm up: the first call builds the pool
            started = time.perf_counter()
            for _ in range(calls):
                await client.get_user("ada")
            return (time.perf_counter() - started) / calls

    result: float = anyio.run(main, backend=backend)
    return result


def _sync_per_call(client: Client, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        client.get_user("ada")
    return (time.perf_counter() - started) / calls


def run(calls: int = 2000, rounds: int = 7, backend: str = "asyncio") -> dict[str, Any]:
    """Measure; per-call microseconds of each contender, overhead and ratio (Summaries)."""
    emulator = Emulator(api_keys=(KEY,))
    with Client(KEY, transport=emulator.transport(), backend=backend) as client:
        client.wait_for_tracking(client.upsert_user(User("ada", "ada@example.com")).tracking_id)
        client.get_user("ada")  # warm up: starts the portal thread
        contenders: dict[str, Callable[[], float]] = {
            "async": lambda: _async_per_call(emulator, backend, calls) * 1e6,
            "sync": lambda: _sync_per_call(client, calls) * 1e6,
        }
        times = _harness.alternate(list(contenders), rounds, lambda name: contenders[name]())
    pairs = list(zip(times["sync"], times["async"], strict=True))
    return {
        "backend": backend,
        "calls": calls,
        "rounds": rounds,
        "async_us": _harness.Summary.of(times["async"]),
        "sync_us": _harness.Summary.of(times["sync"]),
        "overhead_us": _harness.Summary.of([s - a for s, a in pairs]),
        "ratio": _harness.Summary.of([s / a for s, a in pairs]),
    }


def _format(result: dict[str, Any]) -> str:
    return _harness.markdown_table(
        ["per call", "median (min-max)"],
        [
            ["AsyncClient", result["async_us"].show(1) + " µs"],
            ["Client (sync facade)", result["sync_us"].show(1) + " µs"],
            ["facade overhead", result["overhead_us"].show(1) + " µs"],
            ["ratio sync / async", result["ratio"].show(2) + " x"],
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=2000, help="calls per contender per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m benchmarks.bench_sync", *given])
    print(_harness.header(command, {"backend": args.backend, "calls": str(args.calls)}))
    print()
    print(_format(run(args.calls, args.rounds, args.backend)))


if __name__ == "__main__":
    main()
