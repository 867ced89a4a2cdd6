"""Where ``upsert_many``'s client CPU goes over the tuned raw loop (PROFILE.md section 7).

Three measurements, all of CPU time (``time.process_time``), contenders alternated
in one process, median (min-max) of the rounds:

- ``pair``: the raw loop (c) (httpx on httpx-aiohttp's transport on asyncio, httpx's
  own on trio) and ``upsert_many`` over a generator and over one list, all on
  clients built and warmed up once, in one event loop, against ``sink.py``;
- ``engine``: ``run_bulk`` with a sender that answers at once (no HTTP at all),
  over a generator and over one list, next to orjson's encoding of the same chunks;
- ``request``: the request path alone, ``client.post`` of (c) against the SDK's
  ``_send_batch``, one pre-built body (PROFILE.md section 10).

    python -m benchmarks.profile_bulk pair --users 50000 --rounds 7
    python -m benchmarks.profile_bulk pair --backend trio
    python -m benchmarks.profile_bulk engine --users 100000 --rounds 7
    python -m benchmarks.profile_bulk pair --no-gc     # the collector's share
    python -m benchmarks.profile_bulk request --users 400000   # 400 requests, µs/request
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import httpx

from . import _harness
from . import bench_transport as bt
from .sink import running_sink

if TYPE_CHECKING:
    from activatepro_async import AsyncClient

Contenders = dict[str, Callable[[], Awaitable[None]]]


async def _alternate(
    contenders: Contenders, users: int, rounds: int, no_gc: bool
) -> dict[str, list[float]]:
    """Each contender once per round, in a rotated order; CPU µs per user."""
    for run in contenders.values():
        await run()  # warm up: imports, connections, first-call costs
    results: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for round_no in range(rounds):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            if no_gc:
                gc.disable()
            started = time.process_time()
            try:
                await contenders[name]()
            finally:
                gc.enable()
            results[name].append((time.process_time() - started) * 1e6 / users)
    return results


@contextlib.asynccontextmanager
async def _clients(backend: str, url: str) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncClient]]:
    """The raw client of (c) (httpx-aiohttp's transport on asyncio, httpx's own on trio)
    and the SDK's client, both closed on the way out."""
    from activatepro_async import AsyncClient

    transport: httpx.AsyncBaseTransport | None = None
    if backend == "asyncio":
        from httpx_aiohttp import AiohttpTransport

        transport = AiohttpTransport()
    async with (
        httpx.AsyncClient(headers=bt.JSON_HEADERS, transport=transport) as raw,
        AsyncClient(api_key="benchmark-key", base_url=url, max_retries=0) as sdk,
    ):
        yield raw, sdk


def _report(results: dict[str, list[float]], baseline: str, unit: str = "user") -> str:
    rows = []
    for name, values in results.items():
        ratios = [a / b for a, b in zip(values, results[baseline], strict=True)]
        rows.append([name, _harness.Summary.of(values).show(3), _harness.Summary.of(ratios).show()])
    return _harness.markdown_table(["contender", f"CPU µs/{unit}", f"/ {baseline}"], rows)


def pair(users: int, rounds: int, backend: str, no_gc: bool) -> dict[str, list[float]]:
    """(c) against upsert_many, warmed clients, one event loop."""
    import orjson

    chunks = bt.chunked(bt.make_users(users), 1000)
    flat = [user for chunk in chunks for user in chunk]

    async def main(url: str) -> dict[str, list[float]]:
        async with _clients(backend, url) as (raw, sdk):

            async def run_raw() -> None:
                async def send(chunk: bt.Chunk) -> None:
                    response = await raw.post(url + bt.PATH, content=orjson.dumps(bt._batch(chunk)))
                    bt._check(
                        response.status_code, orjson.loads(response.content).get("trackingId")
                    )

                await bt.pump(chunks, 8, send)

            async def run_sdk(users_in: Any) -> None:
                result = await sdk.upsert_many(users_in, chunk_size=1000, concurrency=8)
                if result.accepted != users:
                    raise RuntimeError(result.summary())

            contenders: Contenders = {
                "raw_c": run_raw,
                "sdk_generator": lambda: run_sdk(user for chunk in chunks for user in chunk),
                "sdk_list": lambda: run_sdk(flat),
            }
            return await _alternate(contenders, users, rounds, no_gc)

    with _harness.frozen_heap(), running_sink() as sink:
        return anyio.run(main, sink.url, backend=backend)


def request(users: int, rounds: int, backend: str, no_gc: bool) -> dict[str, list[float]]:
    """The request path alone: one pre-built 1000-user body, ``users // 1000`` requests
    8 in flight, through ``client.post`` of the raw loop (c) and the SDK's ``_send_batch``.

    CPU µs per *request* (not per user). With ``ACTIVATEPRO_PROFILE_CALLS=1`` it also
    prints cProfile's function calls per request of each.
    """
    import cProfile
    import os
    import pstats

    import orjson

    body = orjson.dumps(bt._batch(bt.make_users(1000)))
    count = max(1, users // 1000)

    async def main(url: str) -> dict[str, list[float]]:
        async with _clients(backend, url) as (raw, sdk):

            async def raw_send(_: object) -> None:
                response = await raw.post(url + bt.PATH, content=body)
                bt._check(response.status_code, orjson.loads(response.content).get("trackingId"))

            async def sdk_send(_: object) -> None:
                accepted = await sdk._send_batch(body, on_retry=lambda event: None)
                bt._check(202, accepted.tracking_id)

            def pumping(send: Callable[[object], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
                return lambda: bt.pump(range(count), 8, send)  # type: ignore[arg-type]

            contenders: Contenders = {"raw_c": pumping(raw_send), "sdk": pumping(sdk_send)}
            if os.environ.get("ACTIVATEPRO_PROFILE_CALLS"):
                for name, run in contenders.items():
                    await run()
                    profile = cProfile.Profile()
                    profile.enable()
                    await run()
                    profile.disable()
                    calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
                    print(f"{name}: {calls / count:.0f} function calls per request")
            return await _alternate(contenders, count, rounds, no_gc)

    with _harness.frozen_heap(), running_sink() as sink:
        return anyio.run(main, sink.url, backend=backend)


def engine(users: int, rounds: int, backend: str, no_gc: bool) -> dict[str, list[float]]:
    """run_bulk with a sender that answers at once: the engine's own cost."""
    import orjson

    from activatepro_async._engine import run_bulk
    from activatepro_async.models import BatchAccepted

    chunks = bt.chunked(bt.make_users(users), 1000)
    flat = [user for chunk in chunks for user in chunk]
    accepted = BatchAccepted(tracking_id="t")

    class Instant:
        max_connections = 64

        async def send_batch(self, body: bytes, *, on_retry: object) -> BatchAccepted:
            await anyio.lowlevel.checkpoint()
            return accepted

        async def wait_for_tracking(self, tracking_id: str, **_: object) -> Any:
            raise NotImplementedError

    async def bulk(users_in: Any) -> None:
        result = await run_bulk(
            Instant(), users_in, operation="upsert", chunk_size=1000, concurrency=8,
            max_chunk_bytes=16 * 1024 * 1024, wait=False, wait_timeout=1, on_progress=None,
            raise_on_failure=False,
        )  # fmt: skip
        if result.accepted != users:
            raise RuntimeError(result.summary())

    async def orjson_only() -> None:
        for chunk in chunks:
            orjson.dumps(bt._batch(chunk))

    contenders: Contenders = {
        "orjson_only": orjson_only,
        "engine_generator": lambda: bulk(user for chunk in chunks for user in chunk),
        "engine_list": lambda: bulk(flat),
    }

    async def main() -> dict[str, list[float]]:
        return await _alternate(contenders, users, rounds, no_gc)

    with _harness.frozen_heap():
        return anyio.run(main, backend=backend)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["pair", "engine", "request"])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--no-gc", action="store_true", help="collector off while measuring")
    args = parser.parse_args(argv)
    measure = {"pair": pair, "engine": engine, "request": request}[args.what]
    results = measure(args.users, args.rounds, args.backend, args.no_gc)
    given = sys.argv[1:] if argv is None else argv
    print(_harness.header(" ".join(["python -m benchmarks.profile_bulk", *given])))
    print()
    unit = "request" if args.what == "request" else "user"
    print(_report(results, "orjson_only" if args.what == "engine" else "raw_c", unit))


if __name__ == "__main__":
    main()
