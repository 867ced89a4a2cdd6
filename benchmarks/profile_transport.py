"""Why does httpx's default transport cost so much per bulk request? The experiments of PROFILE.md.

Each variant POSTs the same pre-encoded body (so JSON costs nothing here) to the
sink, ``--concurrency`` in flight, on a client made and warmed up before the
clock starts; the figure is client CPU microseconds per request, median (min-max)
of alternated rounds. A variant name may carry modifiers: ``@uvloop`` or
``@trio`` (the event loop), ``#N`` (N users per body instead of
``--users-per-body``), e.g. ``httpx_default#5@trio``.

    python -m benchmarks.profile_transport                       # the main variants
    python -m benchmarks.profile_transport --variants httpx_default httpx_default#5
    python -m benchmarks.profile_transport --calls               # + cProfile calls/request

Variants that patch httpcore or poke its private attributes are experiments that
locate a cost; they are not proposals for the SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import functools
import pstats
import sys
import time
from collections.abc import Awaitable, Callable
from importlib.util import find_spec
from typing import Any, TypeVar, cast

import anyio
import httpcore
import httpx
from httpcore._backends.base import AsyncNetworkBackend, AsyncNetworkStream

from . import _harness
from .bench_transport import JSON_HEADERS, PATH, make_users
from .sink import running_sink

Variant = Callable[["Setup"], Awaitable[float]]
_T = TypeVar("_T")


class Setup:
    """What one run of a variant gets: where, what body, how many, how concurrently."""

    def __init__(self, url: str, body: bytes, requests: int, concurrency: int) -> None:
        self.url, self.body, self.requests, self.concurrency = url, body, requests, concurrency

    async def timed(self, send: Callable[[], Awaitable[None]]) -> float:
        """Warm up (every connection opened), then the CPU seconds of ``requests`` sends."""
        await self.pump(self.concurrency * 2, send)
        started = _harness.cpu_seconds()
        await self.pump(self.requests, send)
        return _harness.cpu_seconds() - started

    async def pump(self, count: int, send: Callable[[], Awaitable[None]]) -> None:
        shared = iter(range(count))

        async def worker() -> None:
            for _ in shared:
                await send()

        async with anyio.create_task_group() as tg:
            for _ in range(self.concurrency):
                tg.start_soon(worker)


def _encode_body(users: int) -> bytes:
    import json

    body = {"updated": make_users(users), "deleted": []}
    return json.dumps(body, separators=(",", ":")).encode()


# -- variants ---------------------------------------------------------------


def via_client(make: Callable[[], httpx.AsyncClient]) -> Variant:
    async def run(setup: Setup) -> float:
        async with make() as client:
            url = setup.url + PATH

            async def send() -> None:
                response = await client.post(url, content=setup.body)
                if response.status_code != 202:
                    raise RuntimeError(response.status_code)

            return await setup.timed(send)

    return run


def via_transport(make: Callable[[], httpx.AsyncBaseTransport]) -> Variant:
    """The transport called directly: what the httpx.AsyncClient layer adds is left out."""

    async def run(setup: Setup) -> float:
        async with make() as transport:
            url = httpx.URL(setup.url + PATH)

            async def send() -> None:
                request = httpx.Request("POST", url, headers=JSON_HEADERS, content=setup.body)
                response = await transport.handle_async_request(request)
                await response.aread()
                await response.aclose()
                if response.status_code != 202:
                    raise RuntimeError(response.status_code)

            return await setup.timed(send)

    return run


async def httpcore_pool(setup: Setup) -> float:
    """httpcore alone: no httpx models, client or transport adapter."""
    host = setup.url.removeprefix("http://").encode()
    headers = [(k.encode(), v.encode()) for k, v in JSON_HEADERS.items()]
    headers += [(b"Host", host), (b"Content-Length", str(len(setup.body)).encode())]
    async with httpcore.AsyncConnectionPool() as pool:
        url = setup.url + PATH

        async def send() -> None:
            response = await pool.request("POST", url, headers=headers, content=setup.body)
            if response.status != 202:
                raise RuntimeError(response.status)

        return await setup.timed(send)


async def aiohttp_session(setup: Setup) -> float:
    import aiohttp

    async with aiohttp.ClientSession(headers=JSON_HEADERS) as session:
        url = setup.url + PATH

        async def send() -> None:
            async with session.post(url, data=setup.body) as response:
                await response.read()
                if response.status != 202:
                    raise RuntimeError(response.status)

        return await setup.timed(send)


class _RawClient(asyncio.Protocol):
    """The floor: one keep-alive connection, one write per request, no parsing."""

    def __init__(self) -> None:
        self.done: asyncio.Future[None] | None = None
        self.seen = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are no subclass

    def data_received(self, data: bytes) -> None:
        self.seen += data
        # The sink's answer is one small segment ending in the JSON's brace.
        if self.seen.endswith(b"}") and self.done is not None:
            self.seen = b""
            self.done.set_result(None)


async def raw_asyncio(setup: Setup, *, split: bool = False) -> float:
    """The floor; ``split`` writes the head and the body apart, as httpcore does."""
    loop = asyncio.get_running_loop()
    host, port = setup.url.removeprefix("http://").split(":")
    head = b"POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n" % (
        PATH.encode(),
        host.encode(),
        port.encode(),
    )
    head += b"Content-Length: %d\r\n\r\n" % len(setup.body)
    request = head + setup.body
    free = []
    for _ in range(setup.concurrency):
        free.append((await loop.create_connection(_RawClient, host, int(port)))[1])
    connections = list(free)

    async def send() -> None:
        client = free.pop()
        client.done = loop.create_future()
        if split:
            client.transport.write(head)
            client.transport.write(setup.body)
        else:
            client.transport.write(request)
        await client.done
        free.append(client)

    try:
        return await setup.timed(send)
    finally:
        for client in connections:
            client.transport.close()


# An experiment only: httpcore's AnyIO backend replaced by plain asyncio.


class _AsyncioProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.eof = False
        self.waiter: asyncio.Future[None] | None = None
        self.drained: asyncio.Future[None] | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are no subclass

    def _wake(self, future: asyncio.Future[None] | None) -> None:
        if future is not None and not future.done():
            future.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self._wake(self.waiter)

    def eof_received(self) -> None:
        self.eof = True
        self._wake(self.waiter)

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._wake(self.waiter)
        self._wake(self.drained)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake(self.drained)


async def _within(awaitable: Awaitable[_T], seconds: float | None) -> _T:
    """``awaitable``'s result, or TimeoutError after ``seconds`` (asyncio.timeout is 3.11+)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError as exc:  # not yet the builtin TimeoutError on 3.10
        raise TimeoutError from exc


class _AsyncioStream(AsyncNetworkStream):
    def __init__(self, protocol: _AsyncioProtocol) -> None:
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        protocol = self._protocol
        if not protocol.chunks and not protocol.eof:
            protocol.waiter = asyncio.get_running_loop().create_future()
            try:
                await _within(protocol.waiter, timeout)
            except TimeoutError:
                raise httpcore.ReadTimeout() from None
        if not protocol.chunks:
            return b""
        data = protocol.chunks.popleft()
        if len(data) > max_bytes:
            protocol.chunks.appendleft(data[max_bytes:])
            data = data[:max_bytes]
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        protocol = self._protocol
        if protocol.transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        protocol.transport.write(buffer)
        if protocol.paused:
            protocol.drained = asyncio.get_running_loop().create_future()
            try:
                await _within(protocol.drained, timeout)
            except TimeoutError:
                raise httpcore.WriteTimeout() from None

    async def aclose(self) -> None:
        self._protocol.transport.close()

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._protocol.transport.get_extra_info("socket")
        if info == "is_readable":
            # No poll() syscall: the protocol knows whether bytes or EOF arrived.
            return bool(self._protocol.chunks) or self._protocol.eof
        return None


class AsyncioNetworkBackend(AsyncNetworkBackend):
    """http:// only (no start_tls): enough to measure what AnyIO's streams cost."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        _, protocol = await _within(loop.create_connection(_AsyncioProtocol, host, port), timeout)
        return _AsyncioStream(protocol)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def _with_asyncio_backend() -> httpx.AsyncClient:
    client = httpx.AsyncClient(headers=JSON_HEADERS)
    client._transport._pool._network_backend = AsyncioNetworkBackend()  # type: ignore[attr-defined]
    return client


def without_expiry_probe(inner: Variant) -> Variant:
    """An experiment only: httpcore's pool without its per-request readability probe.

    ``AsyncHTTP11Connection.has_expired`` asks every idle connection's socket
    whether it is readable (a poll() and a getpeername() syscall, and AnyIO's
    attribute dict), for each connection on each pool update.
    """
    from httpcore._async.http11 import AsyncHTTP11Connection

    async def run(setup: Setup) -> float:
        original = AsyncHTTP11Connection.has_expired

        def has_expired(self: Any) -> bool:
            return self._expire_at is not None and time.monotonic() > self._expire_at

        AsyncHTTP11Connection.has_expired = has_expired  # type: ignore[method-assign]
        try:
            return await inner(setup)
        finally:
            AsyncHTTP11Connection.has_expired = original  # type: ignore[method-assign]

    return run


def _aiohttp_transport() -> httpx.AsyncBaseTransport:
    from httpx_aiohttp import AiohttpTransport

    return AiohttpTransport()


def _default_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(headers=JSON_HEADERS)


def _aiohttp_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(headers=JSON_HEADERS, transport=_aiohttp_transport())


VARIANTS: dict[str, tuple[Variant, bool]] = {
    # name: (variant, asyncio only)
    "raw_asyncio": (raw_asyncio, True),
    "raw_asyncio_split": (functools.partial(raw_asyncio, split=True), True),
    "aiohttp": (aiohttp_session, True),
    "httpx_aiohttp": (via_client(_aiohttp_client), True),
    "httpx_aiohttp_direct": (via_transport(_aiohttp_transport), True),
    "httpx_default": (via_client(_default_client), False),
    "httpx_default_direct": (via_transport(httpx.AsyncHTTPTransport), False),
    "httpcore_pool": (httpcore_pool, False),
    "x_asyncio_backend": (via_client(_with_asyncio_backend), True),
    "x_no_expiry_probe": (without_expiry_probe(via_client(_default_client)), False),
}
DEFAULT = [
    "raw_asyncio",
    "aiohttp",
    "httpx_aiohttp",
    "httpx_aiohttp_direct",
    "httpx_default",
    "httpx_default_direct",
    "httpcore_pool",
    "x_asyncio_backend",
    "x_no_expiry_probe",
]


def _parse(name: str, default_users: int) -> tuple[str, int, str, dict[str, Any]]:
    spec, _, loop = name.partition("@")
    base, _, users = spec.partition("#")
    if base not in VARIANTS or loop not in ("", "uvloop", "trio"):
        raise SystemExit(f"unknown variant {name!r}; known: {sorted(VARIANTS)} (+@uvloop/@trio)")
    if loop == "trio" and VARIANTS[base][1]:
        raise SystemExit(f"{base} runs on asyncio only")
    backend = "trio" if loop == "trio" else "asyncio"
    return base, int(users or default_users), backend, {"use_uvloop": loop == "uvloop"}


def _run_variant(name: str, url: str, args: argparse.Namespace, bodies: dict[int, bytes]) -> float:
    base, users, backend, options = _parse(name, args.users_per_body)
    body = bodies.setdefault(users, _encode_body(users))
    setup = Setup(url, body, args.requests, args.concurrency)
    options = options if backend == "asyncio" else {}
    seconds = anyio.run(VARIANTS[base][0], setup, backend=backend, backend_options=options)
    return seconds * 1e6 / args.requests


_PACKAGES = ("httpx_aiohttp", "httpx", "httpcore", "h11", "anyio", "sniffio", "aiohttp", "asyncio")


def _package(filename: str) -> str:
    for package in _PACKAGES:
        if f"/{package}/" in filename:
            return package
    return "other"


def calls_per_request(name: str, url: str, args: argparse.Namespace) -> str:
    """One cProfile'd run: Python function calls per request, and the share of each package.

    cProfile slows Python code, so its times are only shares; the calls are exact.
    A C function's calls and time count for the package that called it.
    """
    profile = cProfile.Profile()
    profile.enable()
    _run_variant(name, url, args, {})
    profile.disable()
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    calls: collections.Counter[str] = collections.Counter()
    seconds: collections.Counter[str] = collections.Counter()
    for (filename, _, _), (_, ncalls, tottime, _, callers) in stats.items():
        if filename == "~" and callers:
            total = sum(c[1] for c in callers.values()) or 1
            for (caller_file, _, _), c in callers.items():
                calls[_package(caller_file)] += c[1]
                seconds[_package(caller_file)] += tottime * c[1] / total
        else:
            calls[_package(filename)] += ncalls
            seconds[_package(filename)] += tottime
    # the warm-up requests ran under the profile too
    requests = args.requests + 2 * args.concurrency
    total_seconds = sum(seconds.values())
    parts = ", ".join(
        f"{package} {calls[package] / requests:.0f} ({100 * s / total_seconds:.0f}%)"
        for package, s in seconds.most_common()
        if s / total_seconds >= 0.02
    )
    return f"{name}: {sum(calls.values()) / requests:.0f} calls/request; {parts}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", default=DEFAULT, metavar="NAME")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--users-per-body", type=int, default=1000)
    parser.add_argument("--calls", action="store_true", help="also count calls with cProfile")
    args = parser.parse_args(argv)
    needs_aiohttp = any("aiohttp" in _parse(name, 1)[0] for name in args.variants)
    if needs_aiohttp and not all(find_spec(m) for m in ("aiohttp", "httpx_aiohttp")):
        raise SystemExit("the aiohttp variants need: pip install -r benchmarks/requirements.txt")
    bodies: dict[int, bytes] = {}
    with _harness.frozen_heap(), running_sink() as sink:
        results = _harness.alternate(
            args.variants, args.rounds, lambda name: _run_variant(name, sink.url, args, bodies)
        )
        calls = [calls_per_request(n, sink.url, args) for n in args.variants] if args.calls else []
    given = sys.argv[1:] if argv is None else argv
    print(_harness.header(" ".join(["python -m benchmarks.profile_transport", *given])))
    sizes = ", ".join(f"{len(b):,} B ({u} users)" for u, b in sorted(bodies.items()))
    print(
        f"\nbodies {sizes}; {args.requests} requests, {args.concurrency} in flight, "
        f"{args.rounds} rounds; client CPU us/request, median (min-max)\n"
    )
    baseline = "httpx_default" if "httpx_default" in results else args.variants[0]
    rows = []
    for name, values in results.items():
        ratios = [v / b for v, b in zip(values, results[baseline], strict=True)]
        rows.append([name, _harness.Summary.of(values).show(0), _harness.Summary.of(ratios).show()])
    print(_harness.markdown_table(["variant", "CPU us/request", f"/ {baseline}"], rows))
    for line in calls:
        print(line)


if __name__ == "__main__":
    main()
