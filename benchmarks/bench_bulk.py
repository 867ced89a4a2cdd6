"""How fast does ``upsert_many`` push users, and what does it cost per user?

One run streams N users (7 fields, wire form, built before the clock starts and
handed over as an iterator, as a file reader would) through
``AsyncClient.upsert_many`` to a target, and measures wall-clock users per second
and the client's CPU microseconds per user.

Targets (``--target``):

- ``sink`` (default): the minimal HTTP sink of ``sink.py`` in another process on
  127.0.0.1, so the figure is the client's own cost over a real socket;
- ``emulator``: the emulator in-process (no socket); its validation and
  storage count as client CPU here, so this is an upper bound;
- ``null``: an in-process transport answering 202 at once: the engine and
  httpx's request/response objects alone.

Contenders alternate within each round (``_harness.alternate``):

- ``sdk``: ``upsert_many`` as shipped (orjson when installed);
- ``sdk_stdlib``: the same with the standard library's JSON encoder, to show
  what the optional orjson path buys (only if orjson is installed).

    python -m benchmarks.bench_bulk                        # 200,000 users, 5 rounds, sink
    python -m benchmarks.bench_bulk --target null --backend trio
    python -m benchmarks.bench_bulk --users 20000 --rounds 3 --target emulator
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import attrs
import httpx

from activatepro_async import AsyncClient
from activatepro_async import _wire as wire
from activatepro_async.emulator import Emulator

from . import _harness
from .bench_transport import make_users
from .sink import running_sink

KEY = "bench-key"
TARGETS = ("sink", "emulator", "null")


class NullTransport(httpx.AsyncBaseTransport):
    """Answers every request 202 with a tracking id, at once."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        return httpx.Response(
            202,
            content=b'{"trackingId":"00000000-0000-4000-8000-000000000000"}',
            headers={"Content-Type": "application/json"},
        )


@attrs.frozen
class Measure:
    """One run of one contender."""

    users_per_s: float
    cpu_us_per_user: float


@contextlib.contextmanager
def _encoder(contender: str) -> Iterator[None]:
    """The JSON encoder of a contender: ``sdk_stdlib`` turns orjson off for the run."""
    saved = wire._orjson
    if contender == "sdk_stdlib":
        wire._orjson = None
    try:
        yield
    finally:
        wire._orjson = saved


def _measure_once(
    contender: str,
    users: list[dict[str, Any]],
    client_factory: Callable[[], AsyncClient],
    chunk_size: int,
    concurrency: int,
    backend: str,
) -> Measure:
    async def main() -> None:
        async with client_factory() as client:
            result = await client.upsert_many(
                iter(users), chunk_size=chunk_size, concurrency=concurrency
            )
        if result.accepted != len(users):
            raise RuntimeError(f"{contender}: {result.summary()}")

    with _encoder(contender):
        wall, cpu = time.perf_counter(), _harness.cpu_seconds()
        anyio.run(main, backend=backend)
        cpu, wall = _harness.cpu_seconds() - cpu, time.perf_counter() - wall
    return Measure(users_per_s=len(users) / wall, cpu_us_per_user=cpu * 1e6 / len(users))


@contextlib.contextmanager
def _client_factory(target: str) -> Iterator[Callable[[], AsyncClient]]:
    if target == "sink":
        with running_sink() as sink:
            yield lambda: AsyncClient(KEY, base_url=sink.url, max_retries=0)
    elif target == "emulator":
        # One emulator for every round: only the first round creates users, the
        # others update them (as a nightly sync does).
        emulator = Emulator(api_keys=(KEY,))
        yield lambda: AsyncClient(KEY, transport=emulator.transport(), max_retries=0)
    else:
        yield lambda: AsyncClient(KEY, transport=NullTransport(), max_retries=0)


def run(
    *,
    users: int = 200_000,
    rounds: int = 5,
    target: str = "sink",
    chunk_size: int = 1000,
    concurrency: int = 8,
    backend: str = "asyncio",
) -> dict[str, list[Measure]]:
    """Measure every contender ``rounds`` times, alternating; the suite runs it tiny."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    contenders = ["sdk"]
    if importlib.util.find_spec("orjson") is not None:
        contenders.append("sdk_stdlib")
    data = make_users(users)
    with _client_factory(target) as factory:

        def once(name: str, data: list[dict[str, Any]] = data) -> Measure:
            return _measure_once(name, data, factory, chunk_size, concurrency, backend)

        for name in contenders:  # warm up: imports, first connections
            once(name, data[: chunk_size * concurrency])
        return _harness.alternate(contenders, rounds, once)


def markdown(measures: dict[str, list[Measure]]) -> str:
    """The table of a run: users/s, CPU us/user, and the CPU ratio to ``sdk`` per round."""
    rows = []
    base = measures["sdk"]
    for name, runs in measures.items():
        ratio = _harness.Summary.of(
            [m.cpu_us_per_user / b.cpu_us_per_user for m, b in zip(runs, base, strict=True)]
        )
        rows.append(
            [
                name,
                _harness.Summary.of([m.users_per_s for m in runs]).show(0),
                _harness.Summary.of([m.cpu_us_per_user for m in runs]).show(),
                ratio.show(),
            ]
        )
    headers = ["contender", "users/s", "client CPU us/user", "CPU / sdk"]
    return _harness.markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> None:
    """The command line: measure, then print the command, machine, versions and table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target", choices=TARGETS, default="sink")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    args = parser.parse_args(argv)
    with _harness.frozen_heap():
        measures = run(
            users=args.users,
            rounds=args.rounds,
            target=args.target,
            chunk_size=args.chunk_size,
            concurrency=args.concurrency,
            backend=args.backend,
        )
    given = sys.argv[1:] if argv is None else argv
    print(_harness.header(" ".join(["python -m benchmarks.bench_bulk", *given])))
    print()
    print(
        f"{args.users:,} users of 7 fields, chunks of {args.chunk_size}, "
        f"concurrency {args.concurrency}, target {args.target}, {args.rounds} rounds on "
        f"{args.backend}; median (min-max)"
    )
    print()
    print(markdown(measures))


if __name__ == "__main__":
    main()
