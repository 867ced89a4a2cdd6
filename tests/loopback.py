"""A real HTTP peer on 127.0.0.1 for the tests that must see the bytes on the socket,
and the choice of the transport the SDK picks by itself (httpx's own or aiohttp's)."""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from pathlib import Path

import pytest

from activatepro_async import AsyncClient
from activatepro_async._transport import AutoTransport, fast_transport_available

#: The transports ``AsyncClient`` can pick when given none: parametrize over these.
TRANSPORTS = ("aiohttp", "httpx")


def use_transport(kind: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the clients built next pick ``kind``; skip a pair that cannot run.

    aiohttp runs on asyncio only, and needs the ``[fast]`` extra; httpx's own
    transport is what the SDK picks on trio, and on asyncio without the extra.
    """
    if kind == "aiohttp":
        if anyio_backend != "asyncio":
            pytest.skip("aiohttp runs on asyncio only (trio always uses httpx's transport)")
        if not fast_transport_available():
            pytest.skip("needs the [fast] extra")
    else:
        # As if the [fast] extra were not installed: its import fails.
        monkeypatch.setitem(sys.modules, "httpx_aiohttp", None)


def assert_picked(client: AsyncClient, kind: str) -> None:
    """``client`` sends through the transport ``kind`` (after its first request)."""
    picked = client._http._transport
    assert isinstance(picked, AutoTransport)
    assert picked._use_aiohttp == (kind == "aiohttp")


#: A self-signed certificate for IP 127.0.0.1 (and its key): trusted by no CA bundle.
SELF_SIGNED = Path(__file__).parent / "data" / "selfsigned-127.0.0.1.pem"


def server_tls() -> ssl.SSLContext:
    """A server's TLS context presenting :data:`SELF_SIGNED`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(SELF_SIGNED)
    return context


def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{unused.getsockname()[1]}"


def http_response(status: int, body: bytes = b"") -> bytes:
    """A whole HTTP/1.1 response with a JSON body, as bytes for the socket."""
    return (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 47\r\n\r\n"
    b'{"id":"42","email":"ada@example.com","a":"bcd"}'
)
CUT = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"


class LoopbackServer:
    """Answers each request on 127.0.0.1 by ``mode``: "ok" (with ``answer``), "drop",
    "cut" or "hang"; or, made with "stall", reads nothing at all, with a receive
    buffer so small that the client's write of a large request blocks.

    It keeps the head of every request as it came off the socket (``heads``), and
    counts the connections it accepted and the ones whose client closed them.
    """

    def __init__(
        self, mode: str = "ok", answer: bytes = OK, *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.mode = mode
        self.tls = tls  # serve https with this context (see server_tls)
        self.answer = answer
        self.heads: list[bytes] = []
        self.accepted = 0
        self.closed_by_client = 0
        self.requests = 0
        self.tls_refused = 0
        self.a_client_closed = threading.Event()
        self.a_request_came = threading.Event()
        self._counted = threading.Condition()
        self._listener = socket.socket()
        if mode == "stall":  # set before listen(): the accepted sockets inherit it
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self._listener.settimeout(0.1)
        scheme = "http" if tls is None else "https"
        self.url = f"{scheme}://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:  # the client refused the certificate (ssl.SSLError is one)
                self.tls_refused += 1
                conn.close()
                return
        with conn:
            if self.mode == "stall":
                self._stop.wait()
                return
            buffer = b""
            while not self._stop.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    with self._counted:
                        self.closed_by_client += 1
                        self._counted.notify_all()
                    self.a_client_closed.set()
                    return
                buffer += data
                if b"\r\n\r\n" not in buffer:
                    continue
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                self.requests += 1
                self.a_request_came.set()
                if self.mode == "drop":
                    return
                if self.mode == "cut":
                    conn.sendall(CUT)
                    return
                if self.mode == "hang":
                    continue  # no answer: wait for more, or for the client to close
                conn.sendall(self.answer)

    @property
    def request_lines(self) -> list[bytes]:
        """The first line of every request, byte for byte: ``b"GET /users/1 HTTP/1.1"``."""
        return [head.split(b"\r\n", 1)[0] for head in self.heads]

    def wait_closed_by_client(self, count: int) -> bool:
        """Wait (5 s at most) until the client has closed ``count`` connections."""
        with self._counted:
            return self._counted.wait_for(lambda: self.closed_by_client >= count, 5)

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()
