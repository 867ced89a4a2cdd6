"""Hostile bytes on the served emulator's socket: never a 5xx, never a hang.

The in-process properties (``test_properties.py``) fuzz bodies, paths and JSON
through the ASGI app; these send raw HTTP/1.1 bytes (request line, header
names and values, body and Content-Length all fuzzed) to ``Emulator.serve()``
over loopback, so the server's parser and the app meet them together.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activatepro_async.emulator import Emulator

from ..helpers import examples
from .wire import KEY

SETTINGS = settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ")

methods = st.sampled_from([b"GET", b"PUT", b"POST", b"DELETE", b"PATCH", b"HEAD"]) | st.binary(
    min_size=1, max_size=8
)
targets = st.sampled_from(
    [b"/users", b"/users/batch", b"/users/a%2Fb", b"/users/email/x%40y/bu/UK", b"/users/track/1"]
) | st.binary(max_size=40).map(lambda raw: b"/users/" + raw)
header_pairs = st.lists(st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40)))
bodies = st.binary(max_size=300) | st.sampled_from(
    [b'{"id":"1","email":"a@b.co"}', b'{"updated":[{"id":"1"}],"deleted":[]}', b"[]", b"{"]
)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, int]]:
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(Emulator(api_keys=[KEY]).serve()) as base_url,
    ):
        host, port = base_url.removeprefix("http://").split(":")
        yield host, int(port)


def exchange(address: tuple[str, int], request: bytes) -> bytes:
    """Send the bytes, close our side, read until the server closes (10 s at most)."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@SETTINGS
@given(
    method=methods,
    target=targets,
    headers=header_pairs,
    body=bodies,
    authorized=st.booleans(),
    length=st.none() | st.integers(min_value=0, max_value=400),
)
def test_raw_requests_never_get_a_5xx_over_the_socket(
    served: tuple[str, int],
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    authorized: bool,
    length: int | None,
) -> None:
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: emulator", b"Connection: close"]
    if authorized:
        lines += [b"X-XNG-AuthToken: " + KEY.encode(), b"X-XNG-ApiVersion: 2"]
    lines += [name + b": " + value for name, value in headers]
    lines.append(b"Content-Length: %d" % (len(body) if length is None else length))
    answer = exchange(served, b"\r\n".join(lines) + b"\r\n\r\n" + body)
    statuses = [int(status) for status in STATUS_LINE.findall(answer)]
    assert all(status < 500 for status in statuses), answer[:300]


def test_a_wellformed_raw_request_is_answered(served: tuple[str, int]) -> None:
    # The property above must see real answers, not only closed connections.
    request = (
        b"GET /users/nobody HTTP/1.1\r\nHost: e\r\nConnection: close\r\n"
        b"X-XNG-AuthToken: " + KEY.encode() + b"\r\nX-XNG-ApiVersion: 2\r\n\r\n"
    )
    assert exchange(served, request).startswith(b"HTTP/1.1 404 ")
