"""Retries: what is retried, how often, how long the client waits, and what it raises."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable

import httpx
import pytest

from activatepro_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncClient,
    NotFoundError,
    RateLimitError,
    RetryEvent,
    RetryPolicy,
    ServerError,
    ValidationError,
)
from activatepro_async._retry import parse_retry_after

from .helpers import FakeTime, Recorder

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., AsyncClient]
OK = httpx.Response(202, json={"trackingId": "t-1"})
USER = {"id": "1", "email": "a@example.com"}


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429])
async def test_retryable_statuses_are_retried_until_success(
    make_client: MakeClient, fake_time: FakeTime, status: int
) -> None:
    recorder = Recorder(httpx.Response(status), httpx.Response(status), OK)
    async with make_client(recorder) as client:
        accepted = await client.upsert_user(USER)
    assert accepted.tracking_id == "t-1"
    assert len(recorder.requests) == 3
    # exponential: 0.5 then 1.0 (jitter off in these tests)
    assert fake_time.sleeps == [0.5, 1.0]
    assert recorder.requests[0].content == recorder.requests[2].content


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ReadError("connection reset"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.ReadTimeout("timed out"),
        httpx.ConnectTimeout("timed out"),
        httpx.PoolTimeout("timed out"),
    ],
    ids=lambda e: type(e).__name__,
)
async def test_connection_errors_and_timeouts_are_retried(
    make_client: MakeClient, failure: Exception
) -> None:
    recorder = Recorder(failure, OK)
    async with make_client(recorder) as client:
        accepted = await client.upsert_user(USER)
    assert accepted.tracking_id == "t-1"
    assert len(recorder.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_client_errors_are_never_retried(make_client: MakeClient, status: int) -> None:
    recorder = Recorder(httpx.Response(status), OK)
    async with make_client(recorder) as client:
        with pytest.raises(APIStatusError) as info:
            await client.upsert_user(USER)
    assert info.value.status_code == status
    assert len(recorder.requests) == 1


async def test_attempts_are_capped_by_max_retries(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    recorder = Recorder(httpx.Response(503, text="busy"))
    async with make_client(recorder, max_retries=3) as client:
        with pytest.raises(ServerError) as info:
            await client.upsert_user(USER)
    assert len(recorder.requests) == 4  # one try and three retries
    assert fake_time.sleeps == [0.5, 1.0, 2.0]
    assert info.value.status_code == 503
    assert info.value.body == "busy"


async def test_waits_grow_exponentially_up_to_max_backoff(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    policy = RetryPolicy(
        max_retries=6,
        initial_backoff=1.0,
        max_backoff=5.0,
        total_timeout=None,
        jitter=None,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )
    recorder = Recorder(httpx.Response(500))
    async with make_client(recorder, retry=policy) as client:
        with pytest.raises(ServerError):
            await client.get_user("1")
    assert fake_time.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


async def test_jitter_spreads_each_wait_below_its_backoff(fake_time: FakeTime) -> None:
    policy = RetryPolicy(max_retries=8, sleep=fake_time.sleep, clock=fake_time.clock)
    recorder = Recorder(httpx.Response(502))
    async with AsyncClient("k", transport=recorder.transport, retry=policy) as client:
        with pytest.raises(ServerError):
            await client.get_user("1")
    caps = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert len(fake_time.sleeps) == 8
    assert all(0 <= wait <= cap for wait, cap in zip(fake_time.sleeps, caps, strict=True))


async def test_total_timeout_stops_retrying_before_the_budget_is_spent(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    policy = RetryPolicy(
        max_retries=10,
        total_timeout=4.0,
        jitter=None,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
    )
    recorder = Recorder(httpx.Response(500))
    async with make_client(recorder, retry=policy) as client:
        with pytest.raises(ServerError):
            await client.get_user("1")
    # 0.5 + 1.0 + 2.0 = 3.5 s; the next wait (4.0) would pass the 4 s budget.
    assert fake_time.sleeps == [0.5, 1.0, 2.0]
    assert len(recorder.requests) == 4


async def test_retry_after_seconds_sets_the_least_wait_on_429(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "7"}), OK)
    async with make_client(recorder) as client:
        await client.upsert_user(USER)
    assert fake_time.sleeps == [7.0]


async def test_retry_after_http_date_on_503(make_client: MakeClient, fake_time: FakeTime) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    recorder = Recorder(httpx.Response(503, headers={"Retry-After": when}), OK)
    async with make_client(recorder) as client:
        await client.upsert_user(USER)
    (wait,) = fake_time.sleeps
    assert 27.0 <= wait <= 30.0


async def test_a_short_retry_after_does_not_shorten_the_backoff(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    recorder = Recorder(
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(429, headers={"Retry-After": "0"}),
        OK,
    )
    async with make_client(recorder) as client:
        await client.upsert_user(USER)
    assert fake_time.sleeps == [0.5, 1.0]


async def test_retry_after_over_the_ceiling_raises_instead_of_waiting(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    policy = RetryPolicy(
        max_retry_after=10.0, jitter=None, sleep=fake_time.sleep, clock=fake_time.clock
    )
    recorder = Recorder(httpx.Response(429, headers={"Retry-After": "3600"}), OK)
    async with make_client(recorder, retry=policy) as client:
        with pytest.raises(RateLimitError) as info:
            await client.upsert_user(USER)
    assert info.value.retry_after == 3600.0
    assert fake_time.sleeps == []
    assert len(recorder.requests) == 1


async def test_retry_after_is_ignored_on_500(make_client: MakeClient, fake_time: FakeTime) -> None:
    recorder = Recorder(httpx.Response(500, headers={"Retry-After": "9"}), OK)
    async with make_client(recorder) as client:
        await client.upsert_user(USER)
    assert fake_time.sleeps == [0.5]


async def test_connection_errors_raise_typed_errors_after_the_retries(
    make_client: MakeClient,
) -> None:
    recorder = Recorder(httpx.ConnectError("connection refused"))
    async with make_client(recorder, max_retries=2) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.get_user("1")
    assert not isinstance(info.value, APITimeoutError)
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert len(recorder.requests) == 3


async def test_timeouts_raise_api_timeout_error(make_client: MakeClient) -> None:
    recorder = Recorder(httpx.ReadTimeout("timed out"))
    async with make_client(recorder, max_retries=1) as client:
        with pytest.raises(APITimeoutError, match="timed out"):
            await client.get_user("1")
    assert len(recorder.requests) == 2


async def test_a_local_protocol_error_is_not_retried(make_client: MakeClient) -> None:
    recorder = Recorder(httpx.UnsupportedProtocol("no scheme"), OK)
    async with make_client(recorder) as client:
        with pytest.raises(APIConnectionError):
            await client.get_user("1")
    assert len(recorder.requests) == 1


async def test_max_retries_zero_means_one_try(make_client: MakeClient) -> None:
    recorder = Recorder(httpx.Response(500), OK)
    async with make_client(recorder, max_retries=0) as client:
        with pytest.raises(ServerError):
            await client.get_user("1")
    assert len(recorder.requests) == 1


async def test_retried_404_in_a_chain_stops_at_the_404(make_client: MakeClient) -> None:
    recorder = Recorder(httpx.Response(503), httpx.Response(404), OK)
    async with make_client(recorder) as client:
        with pytest.raises(NotFoundError):
            await client.get_user("1")
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    "body",
    ["", "<html><body><h1>502 Bad Gateway</h1></body></html>", '{"errors": [{"code": ', "null"],
    ids=["empty", "html", "truncated-json", "json-null"],
)
async def test_error_bodies_of_any_shape_become_typed_errors(
    make_client: MakeClient, body: str
) -> None:
    recorder = Recorder(httpx.Response(400, text=body))
    async with make_client(recorder) as client:
        with pytest.raises(ValidationError) as info:
            await client.upsert_user(USER)
    assert info.value.status_code == 400
    assert info.value.body == body
    assert info.value.errors == []


async def test_a_malformed_error_entry_keeps_the_rest(make_client: MakeClient) -> None:
    body = '{"errors": [{"code": "x-1", "title": "odd"}, {"code": "4", "title": "Invalid Email"}]}'
    recorder = Recorder(httpx.Response(400, text=body))
    async with make_client(recorder) as client:
        with pytest.raises(ValidationError) as info:
            await client.upsert_user(USER)
    assert [int(e.code) for e in info.value.errors] == [0, 4]


async def test_each_retry_logs_a_warning_and_each_request_a_debug_line(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(httpx.Response(503), OK)
    caplog.set_level(logging.DEBUG, logger="activatepro_async")
    async with make_client(recorder) as client:
        await client.upsert_user(USER)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    debugs = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(warnings) == 1
    assert "retrying PUT /users in 0.50 s after 503 (attempt 1 of 6)" in warnings[0].getMessage()
    assert [r.getMessage().split(" (")[0] for r in debugs] == [
        "PUT /users -> 503",
        "PUT /users -> 202",
    ]
    assert "attempt 2" in debugs[1].getMessage()


async def test_on_retry_hooks_see_every_retry(make_client: MakeClient) -> None:
    recorder = Recorder(httpx.Response(429), httpx.ReadError("reset"), OK)
    events: list[RetryEvent] = []
    async with make_client(recorder) as client:
        await client._request("GET", "/users/1", on_retry=events.append)
    assert [(e.attempt, e.status_code) for e in events] == [(1, 429), (2, None)]
    assert isinstance(events[1].exception, httpx.ReadError)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_retry_policy_refuses_negative_settings() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="initial_backoff"):
        RetryPolicy(initial_backoff=-0.1)


# -- the public hook: RetryPolicy(on_retry=...) --------------------------------


def _policy(fake_time: FakeTime, events: list[RetryEvent]) -> RetryPolicy:
    return RetryPolicy(
        jitter=None, sleep=fake_time.sleep, clock=fake_time.clock, on_retry=events.append
    )


async def test_the_policys_on_retry_sees_every_retry_of_a_single_call(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    recorder = Recorder(httpx.Response(503), httpx.ConnectError("refused"), OK)
    events: list[RetryEvent] = []
    async with make_client(recorder, retry=_policy(fake_time, events)) as client:
        await client.upsert_user(USER)
    assert [(e.method, e.path, e.attempt, e.status_code) for e in events] == [
        ("PUT", "/users", 1, 503),
        ("PUT", "/users", 2, None),
    ]
    assert isinstance(events[1].exception, httpx.ConnectError)
    assert [e.wait for e in events] == fake_time.sleeps == [0.5, 1.0]


async def test_the_policys_on_retry_survives_max_retries_shorthand(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    recorder = Recorder(httpx.Response(500), OK)
    events: list[RetryEvent] = []
    client = make_client(recorder, retry=_policy(fake_time, events), max_retries=2)
    async with client:
        await client.delete_user("1")
    assert [e.status_code for e in events] == [500]


async def test_the_policys_on_retry_sees_bulk_retries_and_the_aimd_still_counts_them(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    # Chunk 0 gets a 429 then a 503, the others are accepted at once.
    recorder = Recorder(httpx.Response(429), httpx.Response(503), OK)
    events: list[RetryEvent] = []
    users = [{"id": str(i), "email": f"{i}@example.com"} for i in range(5)]
    async with make_client(recorder, retry=_policy(fake_time, events)) as client:
        result = await client.upsert_many(users, chunk_size=2, concurrency=1)
    assert [(e.path, e.status_code) for e in events] == [
        ("/users/batch", 429),
        ("/users/batch", 503),
    ]
    assert result.retries == len(events) == 2  # the bulk engine's own hook fired too
    assert result.accepted == 5


async def test_an_exception_from_on_retry_fails_the_request_with_it(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    def explode(event: RetryEvent) -> None:
        raise RuntimeError("metrics backend down")

    policy = RetryPolicy(
        jitter=None, sleep=fake_time.sleep, clock=fake_time.clock, on_retry=explode
    )
    recorder = Recorder(httpx.Response(503), OK)
    async with make_client(recorder, retry=policy) as client:
        with pytest.raises(RuntimeError, match="metrics backend down"):
            await client.upsert_user(USER)
    assert len(recorder.requests) == 1  # no retry after the hook refused


def test_the_sync_client_hands_retries_to_the_policys_on_retry(backend: str) -> None:
    from activatepro_async import Client

    from .helpers import API_KEY

    fake_time = FakeTime()
    events: list[RetryEvent] = []
    recorder = Recorder(httpx.Response(502), OK)
    with Client(
        API_KEY,
        base_url="https://api.example.test",
        transport=recorder.transport,
        retry=_policy(fake_time, events),
        backend=backend,
    ) as client:
        client.upsert_user(USER)
    assert [(e.path, e.status_code) for e in events] == [("/users", 502)]
