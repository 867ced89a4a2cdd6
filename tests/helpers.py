"""What several test files share: a fake clock, a recording mock transport, a
Python subprocess runner and a TCP server on 127.0.0.1.

Fixtures live in ``conftest.py``; these are plain functions and classes.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import anyio
import httpx
from anyio.abc import SocketAttribute, SocketStream

API_KEY = "test-key-d41d8cd98f00"

#: The user body of the reference's GET examples.
REFERENCE_USER = {
    "email": "john.doe@example.com",
    "id": "fb85fe50-a528-11e7-abc4-cec278b6b50a",
    "xngId": "123e4567-e89b-12d3-a456-426655440000",
    "firstName": "John",
    "lastName": "Doe",
    "birthday": "1982-08-30",
    "createdAt": "2015-10-02T08:23:53Z",
    "gender": "male",
}


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder:
    """An httpx.MockTransport that records every request and answers from a script.

    ``responses`` is a list consumed in order; each item is an ``httpx.Response``,
    an exception instance to raise, or a callable ``(request) -> Response``.
    When the list runs out, the last item repeats.
    """

    def __init__(self, *responses: Any) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, BaseException):
            raise item
        if callable(item) and not isinstance(item, httpx.Response):
            result: httpx.Response = item(request)
            return result
        return httpx.Response(item.status_code, headers=item.headers, content=item.content)


def run_python(
    script: str, *args: str, flags: tuple[str, ...] = (), timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python FLAGS -c SCRIPT ARGS`` in a fresh interpreter, capturing its output."""
    return subprocess.run(
        [sys.executable, *flags, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    """The script ran to its end (its last line says ``done``) and printed nothing on stderr."""
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("done"), result.stdout + result.stderr
    assert result.stderr == ""


Handler = Callable[[SocketStream], Awaitable[None]]


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[str]:
    """A server on 127.0.0.1 that runs ``handler`` on each connection; gives its URL."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)

    async def serve_one(stream: SocketStream) -> None:
        async with stream:
            # The client hangs up (on a timeout, on close), as it should.
            with suppress(anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError):
                await handler(stream)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve_one)
        yield f"http://127.0.0.1:{port}"
        tg.cancel_scope.cancel()


class NeverAnswer:
    """A :func:`tcp_server` handler that reads each request and never answers it.

    ``arrived`` is set once ``expected`` requests came: that many calls are then
    sent and waiting for their answers (a test waits on it instead of sleeping).
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.arrived = anyio.Event()

    async def __call__(self, stream: SocketStream) -> None:
        await stream.receive()
        self.count += 1
        if self.count == self.expected:
            self.arrived.set()
        await anyio.sleep_forever()
