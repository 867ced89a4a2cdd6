"""Client CPU per user to push N users to a sink, for the raw transports (issue 7, run 1).

Every contender sends the same 1000-user chunks (``{"updated": [...], "deleted": []}``
to ``POST /users/batch``), ``--concurrency`` requests in flight, to a sink in
another process on 127.0.0.1 (``sink.py``), and checks each 202 and its
tracking id. Only the client's CPU is measured (``time.process_time``); the
contenders take turns in every round, and each figure is the median of the rounds
with the min and max. Ratios are taken within a round, then summarised.

    python -m benchmarks.bench_transport                 # 200,000 users, 5 rounds
    python -m benchmarks.bench_transport --users 20000 --rounds 3
    python -m benchmarks.bench_transport --backend trio  # the httpx contenders on trio

Contenders (``--contenders`` picks some; ``--list`` shows all):

- ``naive_httpx``: ``httpx.AsyncClient.post(url, json=body)``, what most people write;
- ``tuned_httpx``: orjson-encoded bytes as ``content=``;
- ``httpx_aiohttp``: the tuned loop on httpx with ``httpx_aiohttp.AiohttpTransport``;
- ``aiohttp``: the tuned loop on a plain ``aiohttp.ClientSession``;
- ``orjson_only`` / ``json_only``: encoding the bodies alone, no I/O;
- ``sdk_upsert_many``: ``AsyncClient.upsert_many`` (see :func:`sdk_upsert_many`), on
  the SDK's own transport (httpx-aiohttp's on asyncio when installed, httpx's on trio);
- ``sdk_httpx_transport``: the same on httpx's default transport, as before issue 7;
- ``sdk_upsert_many_list``: ``upsert_many`` of one list of the same dicts (no generator);
- ``sdk_arrow``: ``upsert_many`` of the same users as one ``pyarrow.Table``, built
  before the clock starts (issue 14; listed only where the SDK takes a Table);

The experiments that explain these figures are in ``profile_transport.py`` (PROFILE.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import anyio
import attrs
import httpx

from . import _harness
from .sink import Sink, running_sink

Chunk = list[dict[str, Any]]
Send = Callable[[Chunk], Awaitable[None]]

PATH = "/users/batch"
HEADERS = {
    "X-XNG-AuthToken": "benchmark-key",
    "X-XNG-ApiVersion": "2",
    "Accept": "application/json",
}
JSON_HEADERS = {**HEADERS, "Content-Type": "application/json"}

_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")
_UNITS = ("DE", "AT", "CH", "FR")


def make_users(count: int) -> list[dict[str, Any]]:
    """``count`` users of 7 fields in wire form, about 150 bytes each as JSON."""
    return [
        {
            "id": f"user-{i:08d}",
            "email": f"user.{i}@example.com",
            "businessUnit": _UNITS[i % 4],
            "firstName": _FIRST[i % 8],
            "lastName": _LAST[(i // 8) % 8],
            "birthday": f"19{50 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "createdAt": f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T08:{i % 60:02d}:53Z",
        }
        for i in range(count)
    ]


def chunked(users: Sequence[dict[str, Any]], size: int) -> list[Chunk]:
    return [list(users[i : i + size]) for i in range(0, len(users), size)]


def _batch(chunk: Chunk) -> dict[str, Any]:
    return {"updated": chunk, "deleted": []}


def _check(status: int, tracking_id: object) -> None:
    if status != 202 or not isinstance(tracking_id, str):
        raise RuntimeError(f"the sink answered {status} {tracking_id!r}")


async def pump(chunks: Iterable[Chunk], concurrency: int, send: Send) -> None:
    """Send every chunk, ``concurrency`` at a time: that many workers share one iterator."""
    shared = iter(chunks)

    async def worker() -> None:
        for chunk in shared:
            await send(chunk)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)


# -- the contenders -----------------------------------------------------------


@attrs.frozen
class Run:
    """What a contender gets: the sink's base URL and the chunks to send."""

    url: str
    chunks: list[Chunk]
    concurrency: int

    @property
    def users(self) -> int:
        return sum(len(chunk) for chunk in self.chunks)


@attrs.frozen
class Contender:
    name: str
    what: str
    run: Callable[[Run], Awaitable[None]]
    requires: tuple[str, ...] = ()
    #: False for the encoding-only references, which send nothing.
    sends: bool = True
    asyncio_only: bool = False
    #: Experiments run only when named with --contenders.
    default: bool = True
    #: Builds what the contender reads (e.g. a pyarrow.Table) before any clock starts.
    prepare: Callable[[Run], None] | None = None

    def available(self, backend: str) -> bool:
        if self.asyncio_only and backend != "asyncio":
            return False
        return all(importlib.util.find_spec(module) is not None for module in self.requires)


async def naive_httpx(run: Run) -> None:
    async with httpx.AsyncClient(headers=HEADERS) as client:

        async def send(chunk: Chunk) -> None:
            response = await client.post(run.url + PATH, json=_batch(chunk))
            _check(response.status_code, response.json().get("trackingId"))

        await pump(run.chunks, run.concurrency, send)


async def _tuned_httpx_on(run: Run, client: httpx.AsyncClient) -> None:
    import orjson

    url = run.url + PATH

    async def send(chunk: Chunk) -> None:
        response = await client.post(url, content=orjson.dumps(_batch(chunk)))
        _check(response.status_code, orjson.loads(response.content).get("trackingId"))

    async with client:
        await pump(run.chunks, run.concurrency, send)


async def tuned_httpx(run: Run) -> None:
    await _tuned_httpx_on(run, httpx.AsyncClient(headers=JSON_HEADERS))


async def httpx_aiohttp(run: Run) -> None:
    from httpx_aiohttp import AiohttpTransport

    client = httpx.AsyncClient(headers=JSON_HEADERS, transport=AiohttpTransport())
    await _tuned_httpx_on(run, client)


async def plain_aiohttp(run: Run) -> None:
    import aiohttp
    import orjson

    url = run.url + PATH
    async with aiohttp.ClientSession(headers=JSON_HEADERS) as session:

        async def send(chunk: Chunk) -> None:
            async with session.post(url, data=orjson.dumps(_batch(chunk))) as response:
                body = await response.read()
                _check(response.status, orjson.loads(body).get("trackingId"))

        await pump(run.chunks, run.concurrency, send)


async def orjson_only(run: Run) -> None:
    import orjson

    for chunk in run.chunks:
        orjson.dumps(_batch(chunk))


async def json_only(run: Run) -> None:
    # What httpx's json= does (httpx 0.28: compact, ensure_ascii=False).
    for chunk in run.chunks:
        json.dumps(_batch(chunk), ensure_ascii=False, separators=(",", ":")).encode()


def sdk_available() -> bool:
    """Whether the SDK has its bulk entry point yet."""
    try:
        from activatepro_async import AsyncClient
    except ImportError:
        return False
    return hasattr(AsyncClient, "upsert_many")


async def sdk_upsert_many(run: Run, transport: httpx.AsyncBaseTransport | None = None) -> None:
    """The SDK as a contender: ``AsyncClient.upsert_many`` pointed at the sink.

    This is the hook for the SDK: it is listed only while
    ``AsyncClient.upsert_many`` exists (:func:`sdk_available`).
    """
    from activatepro_async import AsyncClient

    async with AsyncClient(
        api_key="benchmark-key", base_url=run.url, max_retries=0, transport=transport
    ) as client:
        users = (user for chunk in run.chunks for user in chunk)
        result = await client.upsert_many(  # type: ignore[attr-defined]
            users, chunk_size=len(run.chunks[0]), concurrency=run.concurrency
        )
    if result.accepted != run.users:
        raise RuntimeError(f"the SDK accepted {result.accepted} of {run.users} users: {result}")


async def sdk_upsert_many_list(run: Run) -> None:
    """The SDK over one list of the dicts (built before the clock starts, as the raw loops'
    chunks are), not a generator: the engine reads a list in slices, without copies."""
    from activatepro_async import AsyncClient

    users = _prepared[id(run.chunks), "list"]
    async with AsyncClient(api_key="benchmark-key", base_url=run.url, max_retries=0) as client:
        result = await client.upsert_many(
            users, chunk_size=len(run.chunks[0]), concurrency=run.concurrency
        )
    if result.accepted != run.users:
        raise RuntimeError(f"the SDK accepted {result.accepted} of {run.users} users: {result}")


async def sdk_arrow(run: Run) -> None:
    """The SDK over the same users as one pyarrow.Table (issue 14's columnar path)."""
    from activatepro_async import AsyncClient

    table = _prepared[id(run.chunks), "arrow"]
    async with AsyncClient(api_key="benchmark-key", base_url=run.url, max_retries=0) as client:
        result = await client.upsert_many(
            table, chunk_size=len(run.chunks[0]), concurrency=run.concurrency
        )
    if result.accepted != run.users:
        raise RuntimeError(f"the SDK accepted {result.accepted} of {run.users} users: {result}")


# What the contenders read, made by their `prepare` before the rounds: (id of the
# run's chunks, kind) -> the input.
_prepared: dict[tuple[int, str], Any] = {}


def _prepare_list(run: Run) -> None:
    _prepared[id(run.chunks), "list"] = [user for chunk in run.chunks for user in chunk]


def _prepare_arrow(run: Run) -> None:
    from ._arrow import table_of

    _prepared[id(run.chunks), "arrow"] = table_of([u for chunk in run.chunks for u in chunk])


async def sdk_upsert_many_httpx_transport(run: Run) -> None:
    """The SDK before issue 7: its client on httpx's default transport, same limits."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    await sdk_upsert_many(run, httpx.AsyncHTTPTransport(limits=limits))


CONTENDERS: dict[str, Contender] = {
    c.name: c
    for c in [
        Contender("naive_httpx", "(a) raw httpx, json=list_of_dicts", naive_httpx),
        Contender(
            "tuned_httpx", "(b) raw httpx, orjson bytes as content=", tuned_httpx, ("orjson",)
        ),
        Contender(
            "httpx_aiohttp",
            "(c) (b) on httpx-aiohttp's AiohttpTransport",
            httpx_aiohttp,
            ("orjson", "aiohttp", "httpx_aiohttp"),
            asyncio_only=True,
        ),
        Contender(
            "aiohttp",
            "(d) (b) on plain aiohttp",
            plain_aiohttp,
            ("orjson", "aiohttp"),
            asyncio_only=True,
        ),
        Contender(
            "orjson_only", "(e) orjson encoding alone", orjson_only, ("orjson",), sends=False
        ),
        Contender(
            "json_only", "stdlib json encoding alone (what json= costs)", json_only, sends=False
        ),
    ]
}


def contenders_for(backend: str, names: Sequence[str] | None = None) -> list[Contender]:
    """The contenders to run: those named, or every default one that can run here."""
    table = dict(CONTENDERS)
    if sdk_available():
        table["sdk_upsert_many"] = Contender(
            "sdk_upsert_many", "(s) AsyncClient.upsert_many", sdk_upsert_many
        )
        table["sdk_httpx_transport"] = Contender(
            "sdk_httpx_transport",
            "(s) on httpx's default transport, as before issue 7 (the SDK picks "
            "httpx-aiohttp's on asyncio now, when installed)",
            sdk_upsert_many_httpx_transport,
        )
        table["sdk_upsert_many_list"] = Contender(
            "sdk_upsert_many_list",
            "(s) AsyncClient.upsert_many of one list of the dicts, not a generator",
            sdk_upsert_many_list,
            prepare=_prepare_list,
        )
        from ._arrow import arrow_support

        if arrow_support() is None:
            table["sdk_arrow"] = Contender(
                "sdk_arrow",
                "(s) AsyncClient.upsert_many of the same users as one pyarrow.Table",
                sdk_arrow,
                ("pyarrow",),
                prepare=_prepare_arrow,
            )
    if names:
        unknown = [n for n in names if n not in table]
        if unknown:
            raise SystemExit(f"unknown contenders {unknown}; known: {sorted(table)}")
        chosen = [table[n] for n in names]
        missing = [c.name for c in chosen if not c.available(backend)]
        if missing:
            raise SystemExit(f"cannot run {missing} on {backend} here (missing packages?)")
        return chosen
    return [c for c in table.values() if c.default and c.available(backend)]


# -- measuring ----------------------------------------------------------------


@attrs.frozen
class Measure:
    cpu_us_per_user: float
    wall_s: float
    sink_cpu_us_per_user: float
    requests: int
    body_bytes: int
    #: Connections the sink accepted during the run (the stats call's own included).
    connections: int = 0


@attrs.frozen
class Report:
    """Per contender: the measures of every round, and how the run was made."""

    users: int
    chunk_size: int
    concurrency: int
    rounds: int
    backend: str
    measures: dict[str, list[Measure]]
    whats: dict[str, str]

    def cpu(self, name: str) -> _harness.Summary:
        return _harness.Summary.of([m.cpu_us_per_user for m in self.measures[name]])

    def ratio(self, name: str, baseline: str) -> _harness.Summary | None:
        """``name``'s CPU over ``baseline``'s, round by round (both ran in each round)."""
        if baseline not in self.measures or name not in self.measures:
            return None
        pairs = zip(self.measures[name], self.measures[baseline], strict=True)
        return _harness.Summary.of([a.cpu_us_per_user / b.cpu_us_per_user for a, b in pairs])

    def rows(self) -> list[list[str]]:
        rows = []
        for name, measures in self.measures.items():
            vs_naive = self.ratio(name, "naive_httpx")
            vs_b = self.ratio(name, "tuned_httpx")
            vs_c = self.ratio(name, "httpx_aiohttp")
            wall = _harness.Summary.of([m.wall_s for m in measures])
            sink = _harness.Summary.of([m.sink_cpu_us_per_user for m in measures])
            rows.append(
                [
                    name,
                    self.cpu(name).show(),
                    vs_naive.show() if vs_naive else "-",
                    vs_b.show() if vs_b else "-",
                    vs_c.show() if vs_c else "-",
                    f"{wall.median:.2f}",
                    f"{sink.median:.2f}" if measures[0].requests else "-",
                    str(max(m.connections for m in measures) - 1) if measures[0].requests else "-",
                ]
            )
        return rows

    def markdown(self) -> str:
        headers = [
            "contender",
            "client CPU us/user",
            "/ naive_httpx",
            "/ tuned_httpx",
            "/ httpx_aiohttp",
            "wall s",
            "sink CPU us/user",
            "connections",
        ]
        legend = "\n".join(f"- `{name}`: {what}" for name, what in self.whats.items())
        return (
            f"{self.users:,} users, chunks of {self.chunk_size}, {self.concurrency} in flight, "
            f"{self.rounds} rounds on {self.backend}; median (min-max)\n\n"
            + _harness.markdown_table(headers, self.rows())
            + "\n\n"
            + legend
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "chunk_size": self.chunk_size,
            "concurrency": self.concurrency,
            "rounds": self.rounds,
            "backend": self.backend,
            "measures": {k: [attrs.asdict(m) for m in v] for k, v in self.measures.items()},
        }


def _measure_once(
    contender: Contender, run: Run, sink: Sink, backend: str, use_uvloop: bool
) -> Measure:
    before = sink.stats()
    wall, cpu = time.perf_counter(), _harness.cpu_seconds()
    options = {"use_uvloop": True} if use_uvloop and backend == "asyncio" else {}
    anyio.run(contender.run, run, backend=backend, backend_options=options)
    cpu, wall = _harness.cpu_seconds() - cpu, time.perf_counter() - wall
    after = sink.stats()
    requests = after["requests"] - before["requests"]
    body_bytes = after["body_bytes"] - before["body_bytes"]
    if contender.sends and requests != len(run.chunks):
        raise RuntimeError(f"{contender.name} sent {requests} of {len(run.chunks)} batches")
    return Measure(
        cpu_us_per_user=cpu * 1e6 / run.users,
        wall_s=wall,
        sink_cpu_us_per_user=(after["cpu_s"] - before["cpu_s"]) * 1e6 / run.users,
        requests=requests,
        body_bytes=body_bytes,
        connections=after["connections"] - before["connections"],
    )


def run_benchmark(
    *,
    users: int = 200_000,
    rounds: int = 5,
    chunk_size: int = 1000,
    concurrency: int = 8,
    backend: str = "asyncio",
    contenders: Sequence[str] | None = None,
    use_uvloop: bool = False,
    warmup: bool = True,
) -> Report:
    """Run the chosen contenders ``rounds`` times each, alternating; the test suite
    calls this at a tiny size."""
    chosen = contenders_for(backend, contenders)
    chunks = chunked(make_users(users), chunk_size)
    by_name = {c.name: c for c in chosen}
    run = Run("", chunks, concurrency)
    small = Run("", chunks[: concurrency * 2], concurrency)
    for contender in chosen:
        if contender.prepare is not None:
            contender.prepare(run)
            contender.prepare(small)
    with _harness.frozen_heap(), running_sink() as sink:
        run, small = attrs.evolve(run, url=sink.url), attrs.evolve(small, url=sink.url)
        if warmup:
            # Imports and first-call costs are paid here, outside the rounds.
            for contender in chosen:
                _measure_once(contender, small, sink, backend, use_uvloop)
        measures = _harness.alternate(
            [c.name for c in chosen],
            rounds,
            lambda name: _measure_once(by_name[name], run, sink, backend, use_uvloop),
        )
    _prepared.clear()
    return Report(
        users=run.users,
        chunk_size=chunk_size,
        concurrency=concurrency,
        rounds=rounds,
        backend=backend + (" + uvloop" if use_uvloop and backend == "asyncio" else ""),
        measures=measures,
        whats={c.name: c.what for c in chosen},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")
    parser.add_argument("--uvloop", action="store_true", help="asyncio on uvloop")
    parser.add_argument("--contenders", nargs="+", metavar="NAME", help="run only these")
    parser.add_argument("--list", action="store_true", help="list the contenders and stop")
    parser.add_argument("--json", metavar="PATH", help="also write the raw measures here")
    args = parser.parse_args(argv)
    if args.list:
        for backend in ("asyncio", "trio"):
            for c in contenders_for(backend, None):
                print(f"{backend:8} {c.name:26} {c.what}")
        for c in CONTENDERS.values():
            if not c.default:
                print(f"{'(named)':8} {c.name:26} {c.what}")
        return
    report = run_benchmark(
        users=args.users,
        rounds=args.rounds,
        chunk_size=args.chunk_size,
        concurrency=args.concurrency,
        backend=args.backend,
        contenders=args.contenders,
        use_uvloop=args.uvloop,
    )
    given = sys.argv[1:] if argv is None else argv
    command = " ".join(["python -m benchmarks.bench_transport", *given])
    print(_harness.header(command.strip()))
    print()
    print(report.markdown())
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report.as_json(), out, indent=1)


if __name__ == "__main__":
    main()
