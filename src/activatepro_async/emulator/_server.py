"""The network front end: the ASGI protocol, and serving it with uvicorn.

uvicorn is an optional dependency (``activatepro-async[server]``) and runs only
on asyncio. :func:`serve` runs it as a task of the caller's task group under
asyncio, and on its own asyncio loop in a worker thread under trio (the
emulator's state is behind a lock, so both work).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from ._body import BoundedBody
from ._pipeline import body_reader, respond

if TYPE_CHECKING:
    import uvicorn

    from ._app import Emulator

__all__ = ["asgi_call", "bind", "run_forever", "serve"]

INSTALL_HINT = "the emulator's server needs uvicorn: pip install 'activatepro-async[server]'"


class _ClientGone(Exception):
    """The client disconnected before it sent its whole body."""


async def _read_body(receive: Callable[[], Any], body: BoundedBody) -> None:
    """Feed the whole body to ``body``, which keeps what it may.

    An oversize (or refused) body is still read to its end and thrown away:
    closing a socket with unread data makes the kernel reset the connection,
    which can destroy the 413 (or 401) before the client reads it.
    """
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body.add(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _connection(send: Callable[..., Any]) -> asyncio.Transport | None:
    """The socket transport behind uvicorn's ``send``, to really drop or cut a connection.

    ASGI has no "abort": uvicorn answers 500 when an app fails before it
    responds. Its ``send`` is a method of the request cycle, which holds the
    transport; other servers get the portable fallback.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    return transport if isinstance(transport, asyncio.BaseTransport) else None  # type: ignore[return-value]


async def _wait_disconnect(receive: Callable[[], Any]) -> None:
    # Return only once the server saw the connection close, so it does not
    # answer (or log) on our behalf; bounded in case it never tells.
    with anyio.move_on_after(5):
        while (await receive())["type"] != "http.disconnect":
            pass


async def asgi_call(
    emulator: Emulator,
    scope: Mapping[str, Any],
    receive: Callable[[], Any],
    send: Callable[[Mapping[str, Any]], Any],
) -> None:
    """Run one ASGI connection scope against the emulator."""
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if kind != "http":
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1003})
        return
    headers: list[tuple[bytes, bytes]] = list(scope["headers"])
    body = body_reader(emulator, headers)
    try:
        await _read_body(receive, body)
    except _ClientGone:
        return
    # The routes need the path as sent, %2F and all; the decoded "path" has lost it.
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    raw_path = raw_path.partition(b"?")[0]
    reply = await respond(
        emulator, scope["method"], raw_path, scope.get("query_string", b""), headers, body
    )
    if reply.action == "drop":
        transport = _connection(send)
        if transport is not None:
            transport.abort()
            await _wait_disconnect(receive)
            return
        # Fallback: promise a body and send none; the server closes the connection.
        await send(
            {"type": "http.response.start", "status": 502, "headers": [(b"content-length", b"1")]}
        )
        return
    if reply.action == "truncate":
        expected = max(len(reply.body), 1)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [*reply.headers, (b"content-length", str(expected).encode())],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": reply.body[: len(reply.body) // 2],
                "more_body": True,
            }
        )
        transport = _connection(send)
        if transport is not None:
            transport.close()  # flushes what was sent, then closes
            await _wait_disconnect(receive)
        return
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [*reply.headers, (b"content-length", str(len(reply.body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": reply.body})


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    return uvicorn


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket, bound before the server starts, so the port is known."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that
    # say they are TCP, and without it every response written in two parts
    # (headers, then body) waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def base_url(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _server(emulator: Emulator, log_level: str, *, own_logging: bool) -> uvicorn.Server:
    uvicorn = _uvicorn()

    class _Server(uvicorn.Server):  # type: ignore[name-defined,misc]
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # The signals belong to whoever runs us: the test runner, or run_forever().
            yield

    config = uvicorn.Config(
        emulator,
        lifespan="off",
        # Inside a program (a test run), uvicorn's loggers propagate to the
        # program's logging instead of uvicorn reconfiguring it.
        log_config=uvicorn.config.LOGGING_CONFIG if own_logging else None,
        log_level=log_level,
        access_log=False,
        loop="asyncio",
        timeout_graceful_shutdown=5,
    )
    return _Server(config)


@contextlib.asynccontextmanager
async def serve(
    emulator: Emulator, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> AsyncIterator[str]:
    """Serve ``emulator`` with uvicorn while the context is open; give its base URL."""
    server = _server(emulator, log_level, own_logging=False)
    sock = bind(host, port)
    url = base_url(sock)
    failure: list[BaseException] = []
    finished = anyio.Event()

    async def run_here() -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            finished.set()

    def run_in_thread() -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # SystemExit from a failed startup, too
            failure.append(exc)

    async def run_threaded() -> None:
        try:
            await anyio.to_thread.run_sync(run_in_thread)
        finally:
            finished.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_here if _on_asyncio() else run_threaded)
            try:
                # The socket listens already; wait until uvicorn accepts on it.
                with anyio.fail_after(30):
                    while not server.started:
                        if finished.is_set():
                            raise RuntimeError(
                                f"the emulator's server did not start: {failure or 'see its log'}"
                            )
                        await anyio.sleep(0.005)
                yield url
            finally:
                server.should_exit = True
    finally:
        sock.close()


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_forever(
    emulator: Emulator,
    *,
    host: str,
    port: int,
    log_level: str = "warning",
    on_ready: Callable[[str], None] = print,
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down and return (for ``activatepro serve``)."""
    server = _server(emulator, log_level, own_logging=True)
    sock = bind(host, port)

    def stop(*_: object) -> None:
        if server.should_exit:
            server.force_exit = True  # a second Ctrl-C: do not wait for open connections
        server.should_exit = True

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
                signal.signal(sig, stop)
        on_ready(base_url(sock))
        await server.serve(sockets=[sock])

    try:
        asyncio.run(main())
    finally:
        sock.close()
