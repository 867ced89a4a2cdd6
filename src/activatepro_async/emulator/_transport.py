"""The in-process front end: an httpx transport that calls the emulator directly."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx

from ._body import BoundedBody
from ._pipeline import body_reader, respond

if TYPE_CHECKING:
    from ._app import Emulator

__all__ = ["EmulatorTransport"]


class _CutStream(httpx.AsyncByteStream):
    """A response body that ends early, as when a connection breaks mid-body."""

    def __init__(self, part: bytes, expected: int) -> None:
        self._part = part
        self._expected = expected

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._part:
            yield self._part
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body: "
            f"received {len(self._part)} bytes, expected {self._expected}"
        )


class EmulatorTransport(httpx.AsyncBaseTransport):
    """Hands each request to an :class:`~activatepro_async.emulator.Emulator`, no socket.

    Faults look as they would over a network: ``"drop"`` raises
    :class:`httpx.RemoteProtocolError` before any response, ``"truncate"``
    gives a response whose body raises it part-way.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer one request from the emulator."""
        emulator = self.emulator
        headers = [(name.lower(), value) for name, value in request.headers.raw]
        body = body_reader(emulator, headers)
        await _read_body(request, body)
        raw_path, _, query = request.url.raw_path.partition(b"?")
        reply = await respond(emulator, request.method, raw_path, query, headers, body)
        if reply.action == "drop":
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        if reply.action == "truncate":
            expected = max(len(reply.body), 1)
            return httpx.Response(
                reply.status,
                headers=[*reply.headers, (b"content-length", str(expected).encode())],
                stream=_CutStream(reply.body[: len(reply.body) // 2], expected),
                request=request,
            )
        return httpx.Response(
            reply.status, headers=reply.headers, content=reply.body, request=request
        )


async def _read_body(request: httpx.Request, body: BoundedBody) -> None:
    """Feed the request's whole body to ``body``, which keeps what it may."""
    try:
        content = request.content  # already in memory for content=/json= requests
    except httpx.RequestNotRead:
        pass
    else:
        body.add(content)
        return
    stream = request.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    # Read to the end even past the limit (keeping nothing): leaving the
    # caller's generator half-consumed would leave it unclosed.
    try:
        async for chunk in stream:
            body.add(chunk)
    finally:
        await stream.aclose()
