"""The transport of the httpx client the SDK makes when the user brings none.

On asyncio, with the ``[fast]`` extra installed (``aiohttp`` and
``httpx-aiohttp``), requests go through ``httpx_aiohttp.AiohttpTransport``:
aiohttp parses and writes HTTP in C, which costs about 0.4x the CPU per request
of httpx's default transport (httpcore + h11 + AnyIO; see
``benchmarks/PROFILE.md``). On trio, where aiohttp cannot run, or without the
extra, httpx's own ``AsyncHTTPTransport`` is used. The choice is made per
request, so one ``AsyncClient`` works on either backend, and each inner
transport is built on first use.

What this module adds to ``AiohttpTransport``:

- **Errors as httpx's own transport reports them.** httpx-aiohttp maps every
  ``aiohttp.ClientConnectionError`` to ``httpx.ConnectTimeout``, so a server
  that drops the connection would read as a timeout. Here a disconnect is
  ``httpx.RemoteProtocolError``, a reset ``httpx.ReadError``, a refused
  connection ``httpx.ConnectError``, as on the default transport.
- **The URL as httpx built it.** aiohttp would re-normalise the string it is
  given (``/users/%2E%2E`` becomes ``/``); here it is sent byte for byte.
- **One aiohttp session per event loop.** A session belongs to the loop it was
  made on. It is closed when that loop shuts down (``asyncio.run`` finalises
  async generators, and one holds the session open), and a client used on a
  new loop makes a new one instead of failing.
- **No certificates loaded for plain http.** Both inner transports build their
  TLS context when they are made (httpx loads certifi's bundle: 0.1-0.4 s of CPU
  per process); a client whose base URL is ``http://`` never does TLS, so it gets
  :func:`_trusts_no_one` instead: verification on, no trust anchors, so an
  ``https`` request on it could only fail, never go unverified.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    import aiohttp

__all__ = ["AutoTransport", "connect_failure_reason", "fast_transport_available"]


def fast_transport_available() -> bool:
    """Whether the ``[fast]`` extra (aiohttp and httpx-aiohttp) is installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("aiohttp", "httpx_aiohttp"))


def _running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    # Not sniffio: anyio 4.16 no longer depends on it. Under trio no asyncio loop runs.
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def connect_failure_reason(exc: BaseException) -> str | None:
    """What the OS said when a connection could not be made ("connection refused").

    Read from the first ``OSError`` with an errno in ``exc``'s chain, as both
    transports raise it: httpx's wraps anyio's "All connection attempts failed"
    around it, aiohttp's says "Cannot connect to host ... ssl:default" even for
    plain http. For a TLS failure, what TLS said (httpx's transport on trio
    says nothing: ``ConnectError('')``). None when the chain holds neither.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop(0)
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, ssl.SSLError):
            # aiohttp's TLS errors derive from these without their fields (and
            # with TLS's errno, not the OS's): read on to the one they wrap.
            refused = getattr(error, "verify_message", None)
            if isinstance(error, ssl.SSLCertVerificationError) and refused:
                return f"the server's TLS certificate was refused ({refused})"
            failed = getattr(error, "reason", None)
            if isinstance(failed, str):
                return f"TLS failed ({failed})"
        elif isinstance(error, OSError) and error.errno is not None:
            # A lookup failure's errno is negative: its strerror says it ("Name or
            # service not known"); for the others strerror may be the library's text.
            if isinstance(error, socket.gaierror) or error.errno <= 0:
                text = error.strerror or ""
            else:
                text = os.strerror(error.errno)
            if text:
                return text[0].lower() + text[1:]
        todo += [error.__cause__, error.__context__, *getattr(error, "exceptions", ())]
    return None


def _map_aiohttp_error(exc: BaseException) -> httpx.TransportError | None:
    """The httpx error that httpx's default transport raises for the same failure."""
    import aiohttp

    message = str(exc) or type(exc).__name__
    # Most specific first: several of aiohttp's errors derive from two branches.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError)):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return httpx.ProxyError(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = connect_failure_reason(exc)
        if reason is not None:  # not aiohttp's "ssl:default" wording on plain http
            message = f"Cannot connect to {exc.host}:{exc.port}: {reason}"
        return httpx.ConnectError(message)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError)):
        # No answer, or an answer cut short: h11 says "server disconnected" or
        # "peer closed connection without sending complete message body".
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)  # not HTTP, or a malformed answer
    if isinstance(exc, aiohttp.ClientConnectionError):  # resets, broken pipes
        return httpx.ReadError(message)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.ClientError):
        return httpx.TransportError(message)
    return None


def _remapped(exc: Exception) -> httpx.TransportError | None:
    """``exc`` as httpx's transport would raise it; None to let it through as it is."""
    # httpx-aiohttp raises its own (coarse) mapping `from` aiohttp's error.
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) else exc
    if cause is None:
        return None
    return _map_aiohttp_error(cause)


def _raw_body_type() -> type[aiohttp.BytesPayload]:
    """aiohttp's payload of ``bytes``, without its warning for bodies over 1 MiB.

    aiohttp warns (``ResourceWarning``) that such a body "might lock the event
    loop" and suggests ``io.BytesIO``: a risk when it compresses the body, which
    it never does here (``compress=False``); unset, the bytes go to the socket in
    one non-blocking write, and a BytesIO would be read 64 KiB at a time through
    a thread. The warning is not ours to show: under ``-W error`` (or a test
    suite's ``filterwarnings = error``) it failed every batch over 1 MiB.
    """
    from aiohttp import BytesPayload
    from aiohttp.payload import Payload

    class RawBody(BytesPayload):
        def __init__(self, value: bytes) -> None:
            Payload.__init__(self, value, content_type="application/octet-stream")
            self._size = len(value)

    return RawBody


def _send_urls_as_encoded(session: aiohttp.ClientSession) -> None:
    """Make ``session`` send each URL exactly as httpx encoded it, and bodies unwarned.

    httpx-aiohttp hands aiohttp ``str(request.url)``, and yarl re-normalises a
    string: it decodes ``%2E`` and then drops the dot segment (``/users/%2E%2E``
    would go out as ``GET /``), and decodes ``%3B``, ``%3D`` and the like. A URL
    built with ``encoded=True`` is sent as it is. A ``bytes`` body goes as
    :func:`_raw_body_type`. The instance attribute shadows the method, bypassing
    aiohttp's debug-mode ``__setattr__`` warning.
    """
    from aiohttp.payload import TOO_LARGE_BYTES_BODY
    from yarl import URL

    request = session.request
    raw_body = _raw_body_type()

    def request_as_encoded(method: str, url: str | URL, **kwargs: Any) -> Any:
        data = kwargs.get("data")
        if type(data) is bytes and len(data) > TOO_LARGE_BYTES_BODY:
            kwargs["data"] = raw_body(data)
        return request(method, URL(url, encoded=True) if isinstance(url, str) else url, **kwargs)

    vars(session)["request"] = request_as_encoded


class _MappedStream(httpx.AsyncByteStream):
    """The response body of the aiohttp transport, with its errors re-mapped."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except Exception as exc:
            mapped = _remapped(exc)
            if mapped is None:
                raise
            raise mapped from exc.__cause__ or exc

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        except Exception as exc:
            mapped = _remapped(exc)
            if mapped is None:
                raise
            raise mapped from exc.__cause__ or exc


def _trusts_no_one() -> ssl.SSLContext:
    """A TLS context that verifies certificates and trusts none: every handshake fails.

    Made in microseconds (nothing is loaded), for transports that never do TLS.
    """
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname


class _LoopTransport:
    """An ``AiohttpTransport`` and the event loop its session belongs to."""

    def __init__(
        self, limits: httpx.Limits, loop: asyncio.AbstractEventLoop, verify: ssl.SSLContext | bool
    ) -> None:
        from httpx_aiohttp import AiohttpTransport

        # verify=True: certifi's CA bundle, as httpx's default transport.
        self.transport = AiohttpTransport(limits=limits, verify=verify, client=self._new_session)
        self.loop = loop
        self._closer: AsyncGenerator[None, None] | None = None

    def _new_session(self) -> aiohttp.ClientSession:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self.transport.limits.max_connections or 0,  # 0: no limit
            keepalive_timeout=self.transport.limits.keepalive_expiry,
            ssl=self.transport.ssl_context,
        )
        session = aiohttp.ClientSession(connector=connector)
        # aiohttp sends an idempotent request a second time when the server drops
        # the connection; httpx does not. One send per try: the SDK's policy retries.
        session._retry_connection = False
        _send_urls_as_encoded(session)
        return session

    async def hold_until_loop_ends(self) -> None:
        """Close the session when the loop shuts down, if nobody closed it before.

        asyncio.run (and anyio.run) finalise every async generator still
        suspended before closing the loop; this one closes the session then.
        """
        self._closer = self._close_at_shutdown()
        await self._closer.__anext__()

    async def _close_at_shutdown(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self.transport.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()
        if self._closer is not None:
            closer, self._closer = self._closer, None
            await closer.aclose()

    def discard(self) -> None:
        """Let go of a session whose loop is gone or elsewhere, without awaiting."""
        session = self.transport.client
        connector: aiohttp.BaseConnector | None = getattr(session, "connector", None)
        if connector is not None and not connector.closed and not self.loop.is_closed():
            # The old loop still exists: hand it the close, to run when it runs again.
            self.loop.call_soon_threadsafe(self.loop.create_task, self.transport.aclose())


class AutoTransport(httpx.AsyncBaseTransport):
    """httpx-aiohttp's transport on asyncio when installed, httpx's own otherwise.

    >>> httpx.AsyncClient(transport=AutoTransport(httpx.Limits(max_connections=64)))

    ``tls=False`` (for a client whose every request is ``http://``) loads no
    certificates: see :func:`_trusts_no_one`.
    """

    def __init__(
        self, limits: httpx.Limits, *, use_aiohttp: bool | None = None, tls: bool = True
    ) -> None:
        self.limits = limits
        self.tls = tls
        self._use_aiohttp = fast_transport_available() if use_aiohttp is None else use_aiohttp
        self._aiohttp: _LoopTransport | None = None
        self._default: httpx.AsyncHTTPTransport | None = None

    @property
    def max_connections(self) -> int | None:
        """The connection limit of both inner transports."""
        return self.limits.max_connections

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = _running_asyncio_loop() if self._use_aiohttp else None
        if loop is None:
            if self._default is None:
                self._default = httpx.AsyncHTTPTransport(limits=self.limits, verify=self._verify())
            return await self._default.handle_async_request(request)
        inner = self._aiohttp
        if inner is None or inner.loop is not loop:
            inner = await self._new_aiohttp(loop)
        try:
            response = await inner.transport.handle_async_request(request)
        except Exception as exc:
            mapped = _remapped(exc)
            if mapped is None:
                raise
            raise mapped from exc.__cause__ or exc
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _MappedStream(response.stream)
        return response

    async def _new_aiohttp(self, loop: asyncio.AbstractEventLoop) -> _LoopTransport:
        if self._aiohttp is not None:
            self._aiohttp.discard()
        self._aiohttp = _LoopTransport(self.limits, loop, self._verify())
        await self._aiohttp.hold_until_loop_ends()
        return self._aiohttp

    def _verify(self) -> ssl.SSLContext | bool:
        # True: certifi's bundle, loaded by each inner transport when it is made.
        return True if self.tls else _trusts_no_one()

    async def aclose(self) -> None:
        inner, self._aiohttp = self._aiohttp, None
        default, self._default = self._default, None
        if inner is not None:
            if inner.loop is _running_asyncio_loop():
                await inner.aclose()
            else:
                inner.discard()
        if default is not None:
            await default.aclose()

    def __repr__(self) -> str:
        kind = "aiohttp on asyncio, httpx's own on trio" if self._use_aiohttp else "httpx's own"
        tls = "" if self.tls else ", no TLS"
        return f"<AutoTransport {kind}, max_connections={self.limits.max_connections}{tls}>"
