"""Property: any string used as a path parameter reaches the server as exactly one
percent-encoded segment, decoding back to itself (no traversal, no query or
fragment smuggling, nothing in the headers)."""

from __future__ import annotations

from urllib.parse import unquote

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activatepro_async import AsyncClient, Client, RetryPolicy

from .helpers import API_KEY, Recorder, examples
from .loopback import TRANSPORTS, LoopbackServer, assert_picked, http_response, use_transport

USER = {"id": "x", "email": "x@example.com"}
TRACKING = {"stage": "PENDING", "total": 1, "success": 0, "error": 0}


def segments(request: httpx.Request) -> list[str]:
    raw = request.url.raw_path.decode("ascii")
    assert "?" not in raw
    assert "#" not in raw
    assert request.url.query == b""
    return [unquote(part, errors="strict") for part in raw.split("/")]


async def _calls(value: str) -> list[httpx.Request]:
    recorder = Recorder(
        lambda r: httpx.Response(
            200 if r.method == "GET" else 202,
            json=TRACKING
            if r.url.raw_path.startswith(b"/users/track/")
            else {**USER, "trackingId": "t"},
        )
    )
    async with AsyncClient(
        API_KEY, transport=recorder.transport, retry=RetryPolicy(max_retries=0)
    ) as client:
        await client.get_user(value)
        await client.delete_user(value)
        await client.get_user_by_email(value)
        await client.get_user_by_email(value, value)
        await client.get_tracking(value)
    return recorder.requests


@settings(max_examples=examples(300), suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_string_is_exactly_one_path_segment(value: str) -> None:
    requests = anyio.run(_calls, value)
    get, delete, by_email, by_email_bu, track = (segments(r) for r in requests)
    assert get == ["", "users", value]
    assert delete == ["", "users", value]
    assert by_email == ["", "users", "email", value]
    assert by_email_bu == ["", "users", "email", value, "bu", value]
    assert track == ["", "users", "track", value]
    for request in requests:
        assert request.url.host == "api.crossengage.io"
        for name, header in request.headers.raw:
            assert b"\r" not in header
            assert b"\n" not in header
            assert b"\r" not in name
            assert b"\n" not in name


# -- on the socket, on every transport ---------------------------------------------------

#: Hostile ids, and the one segment each must travel as, byte for byte.
EXACT = {
    "..": "%2E%2E",
    ".": "%2E",
    "a/b": "a%2Fb",
    "../..": "..%2F..",
    "%2E": "%252E",
    "%2E%2E": "%252E%252E",
    "%41": "%2541",
    "?x": "%3Fx",
    "#": "%23",
    "é": "%C3%A9",
    "日本": "%E6%97%A5%E6%9C%AC",
    "%": "%25",
    "a b": "a%20b",
    "\\": "%5C",
    ";x=1": "%3Bx%3D1",
}
#: One body every call can read: a user, a tracking id and a tracking status.
ANSWER = http_response(
    200,
    b'{"id":"x","email":"x@example.com","trackingId":"t",'
    b'"stage":"PENDING","total":1,"success":0,"error":0}',
)


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("value", list(EXACT))
async def test_the_server_sees_exactly_the_path_the_sdk_built(
    value: str, transport: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_transport(transport, anyio_backend, monkeypatch)
    segment = EXACT[value]
    assert unquote(segment, errors="strict") == value
    with LoopbackServer(answer=ANSWER) as server:
        async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
            await client.get_user(value)
            await client.delete_user(value)
            await client.get_user_by_email(value, value)
            await client.get_tracking(value)
            assert_picked(client, transport)
    assert server.request_lines == [
        f"GET /users/{segment} HTTP/1.1".encode(),
        f"DELETE /users/{segment} HTTP/1.1".encode(),
        f"GET /users/email/{segment}/bu/{segment} HTTP/1.1".encode(),
        f"GET /users/track/{segment} HTTP/1.1".encode(),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_base_url_path_prefix_survives_dot_ids(
    transport: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_transport(transport, anyio_backend, monkeypatch)
    with LoopbackServer(answer=ANSWER) as server:
        async with AsyncClient(API_KEY, base_url=server.url + "/api/v2/", max_retries=0) as client:
            await client.get_user("..")
            await client.delete_user(".")
    assert server.request_lines == [
        b"GET /api/v2/users/%2E%2E HTTP/1.1",
        b"DELETE /api/v2/users/%2E HTTP/1.1",
    ]


def test_the_sync_client_sends_dot_ids_as_they_are() -> None:
    # The sync facade runs on asyncio, so on aiohttp when the [fast] extra is installed.
    with (
        LoopbackServer(answer=ANSWER) as server,
        Client(API_KEY, base_url=server.url, max_retries=0) as client,
    ):
        client.get_user("..")
        client.delete_user("..")
    assert server.request_lines == [
        b"GET /users/%2E%2E HTTP/1.1",
        b"DELETE /users/%2E%2E HTTP/1.1",
    ]
