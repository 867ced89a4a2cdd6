"""Property: any string used as a path parameter reaches the server as exactly one
percent-encoded segment, decoding back to itself (no traversal, no query or
fragment smuggling, nothing in the headers)."""

from __future__ import annotations

from urllib.parse import unquote

import anyio
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activatepro_async import AsyncClient, RetryPolicy

from .helpers import API_KEY, Recorder

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


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
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
