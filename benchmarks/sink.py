"""A minimal HTTP sink for the benchmarks: reads each body, answers 202 with a tracking id.

It runs in another process so that its CPU never counts as the client's, and it is
built to be cheap so that it is never the bottleneck: one asyncio ``Protocol`` that
parses only the request line, the headers' ``Content-Length`` and
``Connection: close``, skips the body without keeping it, and answers from a
pre-built template. Measured on the 2-core benchmark machine: about 75 CPU us per
173 KB request (0.075 us per user), against 255 for uvicorn + httptools + uvloop
and 325 for this protocol on uvloop (see PROFILE.md), so plain asyncio it is. It serves
HTTP/1.1 keep-alive requests with a ``Content-Length`` body (or none); anything
else (chunked bodies) gets a 411 and the connection is closed.

``GET /stats`` answers ``{"requests": n, "body_bytes": n, "connections": n,
"cpu_s": s}`` (connections accepted, the sink's own CPU), which the benchmarks
use to check that every batch arrived.

Run by hand::

    python benchmarks/sink.py --port 8099 --delay-ms 20

The benchmarks start it with :func:`running_sink`, which picks a free port, waits
until it listens, and always terminates it. The process also stops by itself
after ``--max-seconds`` or when its parent process is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any, cast

_TEMPLATE = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_LENGTH_REQUIRED = b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Stats:
    requests = 0
    body_bytes = 0
    connections = 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _accepted(counter: int) -> bytes:
    # A uuid-shaped tracking id from a counter: unique and cheaper than uuid4().
    body = b'{"trackingId":"00000000-0000-4000-8000-%012x"}' % counter
    return _TEMPLATE % len(body) + body


def _stats_response() -> bytes:
    body = json.dumps(
        {
            "requests": _Stats.requests,
            "body_bytes": _Stats.body_bytes,
            "connections": _Stats.connections,
            "cpu_s": _cpu_seconds(),
        }
    ).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )


class SinkProtocol(asyncio.Protocol):
    """One connection: head, then skip ``Content-Length`` bytes, answer, repeat."""

    def __init__(self, delay: float) -> None:
        self._delay = delay
        self._buffer = bytearray()
        self._remaining = -1  # body bytes still to skip; -1 while reading a head
        self._path = b""
        self._close_after = False
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self._transport = cast(asyncio.Transport, transport)
        _Stats.connections += 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        while data:
            if self._remaining > 0:
                # In a body: count it, keep nothing.
                taken = min(self._remaining, len(data))
                self._remaining -= taken
                _Stats.body_bytes += taken
                data = data[taken:] if taken < len(data) else b""
                if self._remaining == 0:
                    self._finish()
                continue
            self._buffer += data
            data = b""
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > 65536:
                    self._abort()
                return
            head = bytes(self._buffer[:end])
            data = bytes(self._buffer[end + 4 :])
            self._buffer.clear()
            if not self._start(head):
                return

    def _start(self, head: bytes) -> bool:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            self._abort()
            return False
        self._path = parts[1]
        length = 0
        self._close_after = parts[2] == b"HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                self._reply(_LENGTH_REQUIRED, close=True)
                return False
            elif name == b"connection":
                self._close_after = value.strip().lower() == b"close"
        self._remaining = length
        if length == 0:
            self._finish()
        return True

    def _finish(self) -> None:
        self._remaining = -1
        if self._path == b"/stats":
            self._reply(_stats_response(), close=self._close_after)
            return
        if not self._path.startswith(b"/"):
            self._reply(_NOT_FOUND, close=True)
            return
        _Stats.requests += 1
        response = _accepted(_Stats.requests)
        if self._delay > 0:
            # Same delay for all, so call_later keeps the responses in order.
            self._loop.call_later(self._delay, self._reply, response, self._close_after)
        else:
            self._reply(response, close=self._close_after)

    def _reply(self, response: bytes, close: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(response)
        if close:
            self._transport.close()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def serve(host: str, port: int, delay_ms: float, max_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    parent = os.getppid()
    server = await loop.create_server(
        lambda: SinkProtocol(delay_ms / 1000.0), host, port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    # The parent waits for this line: the socket is listening once it is printed.
    print(f"sink listening on http://{host}:{bound}", flush=True)
    deadline = time.monotonic() + max_seconds
    async with server:
        while not stop.done() and time.monotonic() < deadline and os.getppid() == parent:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(stop), 1.0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="delay of each response")
    parser.add_argument(
        "--max-seconds", type=float, default=900.0, help="stop by itself after this long"
    )
    parser.add_argument(
        "--uvloop", action="store_true", help="serve on uvloop (measured slower here)"
    )
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("the sink only listens on the loopback interface")
    coro = serve(args.host, args.port, args.delay_ms, args.max_seconds)
    if args.uvloop:
        import uvloop

        uvloop.run(coro)
    else:
        asyncio.run(coro)


# -- for the benchmarks: start, wait until ready, always stop -------------------


class Sink:
    """A running sink process: its ``url`` and a :meth:`stats` reader."""

    def __init__(self, url: str, process: subprocess.Popen[str]) -> None:
        self.url = url
        self.process = process

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/stats", timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
        return data


@contextlib.contextmanager
def running_sink(
    delay_ms: float = 0.0,
    *,
    startup_timeout: float = 10.0,
    max_seconds: float = 900.0,
    use_uvloop: bool = False,
) -> Iterator[Sink]:
    """Start a sink on a free 127.0.0.1 port in another process; stop it on exit."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--delay-ms",
        str(delay_ms),
        "--max-seconds",
        str(max_seconds),
    ]
    if use_uvloop:
        command.append("--uvloop")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        url = _wait_ready(process, startup_timeout)
        yield Sink(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def _wait_ready(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the sink exited with {process.returncode} before listening")
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            line = process.stdout.readline().strip()
            if line.startswith("sink listening on "):
                url = line.removeprefix("sink listening on ")
                _poll_connect(url, deadline)
                return url
    raise RuntimeError(f"the sink did not listen within {timeout:g} s")


def _poll_connect(url: str, deadline: float) -> None:
    host, _, port = url.removeprefix("http://").rpartition(":")
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


if __name__ == "__main__":
    main()
