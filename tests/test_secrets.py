"""The API key never shows: not in reprs, logs, exception messages or tracebacks."""

from __future__ import annotations

import logging
import traceback
import types
from collections.abc import AsyncIterator, Callable

import anyio
import attrs
import httpx
import pytest

from activatepro_async import (
    APIConnectionError,
    AsyncClient,
    Client,
    ConfigurationError,
    ErrorCode,
    RetryEvent,
    RetryPolicy,
    ValidationError,
)

from .helpers import FakeTime, Recorder
from .loopback import TRANSPORTS, LoopbackServer, assert_picked, closed_port_url, use_transport

SECRET = "sk-live-5f3c9a7e1b2d4c6e8f0a"


def test_the_client_repr_hides_the_key() -> None:
    client = AsyncClient(SECRET)
    assert SECRET not in repr(client)
    assert SECRET not in repr(vars(client))
    assert SECRET not in str(vars(client))


@pytest.mark.parametrize(
    "bad", ["sk-9f8e\r\nX-Evil: 1", "sk-9f8é", "sk-9f8e\n", " sk-9f8e", "", "  "]
)
def test_keys_that_cannot_travel_in_a_header_are_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncClient(bad)
    assert "sk-9f8" not in str(info.value)


@pytest.mark.anyio
async def test_a_failing_run_never_prints_the_key(
    caplog: pytest.LogCaptureFixture, fake_time: FakeTime
) -> None:
    # A proxy that echoes the request headers into its error page.
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text=f"bad gateway; you sent {dict(request.headers)}")

    recorder = Recorder(echo)
    caplog.set_level(logging.DEBUG)
    retry = RetryPolicy(max_retries=2, sleep=fake_time.sleep, clock=fake_time.clock)
    client = AsyncClient(SECRET, transport=recorder.transport, retry=retry)
    try:
        await client.get_user("1")
    except Exception as exc:
        error = exc
    else:  # pragma: no cover
        pytest.fail("expected an error")
    finally:
        await client.aclose()
    text = "".join(traceback.format_exception(error))
    assert SECRET in recorder.requests[0].headers["X-XNG-AuthToken"], "the key was sent"
    assert "bad gateway" in str(error)
    assert SECRET not in text
    assert SECRET not in repr(error)
    assert SECRET not in getattr(error, "body", "")
    assert SECRET not in caplog.text
    stack = traceback.TracebackException.from_exception(error, capture_locals=True)
    assert SECRET not in "".join(stack.format())


# -- on every transport the SDK can pick, against real sockets ------------------------------

KEY = "sekret-KEY-123"
#: A credential of the user's own in default_headers (a gateway's): hidden as the key is.
GATEWAY_TOKEN = "gw-TOKEN-987"
USER = {"id": "1", "email": "ada@example.com"}


def everything_shown(exc: BaseException) -> str:
    """All a crash reporter could show of ``exc`` and the exceptions chained to it.

    Each exception of the chain (``__cause__`` and ``__context__``, suppressed
    or not, and the members of groups) is rendered with the locals of every
    frame of its traceback, as Sentry or ``pytest --showlocals`` do, next to
    its ``repr``, ``str`` and attributes.
    """
    shown: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        stack = traceback.TracebackException.from_exception(error, capture_locals=True)
        shown += ["".join(stack.format()), repr(error), str(error), repr(vars(error))]
        todo += [error.__cause__, error.__context__, *getattr(error, "exceptions", ())]
    return "\n".join(shown)


@pytest.fixture
def sdk_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in (None, "httpx", "httpcore", "aiohttp", "activatepro_async"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


#: The server's side of each failure: a LoopbackServer mode and answer.
FAILURES = {
    "refused": ("ok", b""),  # nothing listens: the client is sent elsewhere
    "drop": ("drop", b""),
    "cut": ("cut", b""),
    "not http": ("ok", b"NOT HTTP AT ALL\r\n\r\n"),
    "timeout": ("hang", b""),
    # The request's head is still being written when the time is up (below).
    "stall": ("stall", b""),
}


@pytest.mark.anyio
@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_failure_shows_the_key_on_any_transport(
    transport: str,
    failure: str,
    anyio_backend: str,
    monkeypatch: pytest.MonkeyPatch,
    sdk_logs: pytest.LogCaptureFixture,
    fake_time: FakeTime,
) -> None:
    use_transport(transport, anyio_backend, monkeypatch)
    retry = RetryPolicy(max_retries=1, sleep=fake_time.sleep, clock=fake_time.clock)
    mode, answer = FAILURES[failure]
    with LoopbackServer(mode, answer) as server:
        url = closed_port_url() if failure == "refused" else server.url
        # Given inline: a local of this frame holding it would show in its traceback.
        async with AsyncClient(
            KEY, base_url=url, default_headers={"Authorization": f"Bearer {GATEWAY_TOKEN}"}
        ) as original:
            # The calls go through a copy: its headers and settings hide the key alike.
            client = original.with_options(
                retry=retry, timeout=0.2, default_headers={"Cookie": f"s={GATEWAY_TOKEN}"}
            )
            assert_picked(original, transport)
            errors: list[BaseException] = []
            for call in (
                lambda: client.get_user("42"),
                # A head larger than the socket buffers: on a stalled server, the
                # write of the head (and the key in it) is what times out.
                lambda: client.get_user("x" * 60_000),
                lambda: client.upsert_user(USER),
                lambda: client.batch([USER], ["2"]),
            ):
                with pytest.raises(APIConnectionError) as caught:
                    await call()
                errors.append(caught.value)
            result = await client.upsert_many([USER], raise_on_failure=False)
        if failure not in ("refused", "stall"):
            assert server.heads, "the requests reached the server"
            assert all(KEY.encode() in head for head in server.heads), "the key was sent"
            assert all(GATEWAY_TOKEN.encode() in head for head in server.heads)
        if failure == "stall":
            assert server.accepted, "the requests reached the server"
    assert fake_time.sleeps, "each call was retried"
    assert result.failed == 1
    errors.append(result.failed_chunks[0].exception)
    for error in errors:
        assert KEY not in everything_shown(error)
        assert GATEWAY_TOKEN not in everything_shown(error)
    assert KEY not in repr(result)
    assert "retrying" in sdk_logs.text
    assert KEY not in sdk_logs.text
    assert GATEWAY_TOKEN not in sdk_logs.text


def test_the_sync_client_shows_no_key_when_it_cannot_connect(
    sdk_logs: pytest.LogCaptureFixture,
) -> None:
    # The sync facade runs on asyncio: aiohttp with the [fast] extra.
    with (
        Client(KEY, base_url=closed_port_url(), max_retries=0) as client,
        pytest.raises(APIConnectionError) as caught,
    ):
        client.get_user("42")
    assert KEY not in everything_shown(caught.value)
    assert KEY not in sdk_logs.text


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_call_cancelled_while_sending_leaves_no_key_in_its_frames(
    transport: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The caller's own deadline: the cancellation goes up through the transport's
    # frames while they write the head, and is the context of the TimeoutError.
    use_transport(transport, anyio_backend, monkeypatch)
    with LoopbackServer("stall") as server:
        async with AsyncClient(KEY, base_url=server.url, max_retries=0) as client:
            with pytest.raises(TimeoutError) as caught, anyio.fail_after(0.3):
                await client.get_user("x" * 60_000)
            assert_picked(client, transport)
    assert caught.value.__context__ is not None, "the cancellation is chained"
    assert KEY not in everything_shown(caught.value)


# -- redaction is for what people see, never for what the SDK reads ------------------------

TRACKING_ID = "fb84780b-2f03-4fd7-a4bc-4ae7f17b85eb"
#: The reference's partial 400: the user at index 1 has a bad email.
PARTIAL_400 = {
    "trackingId": TRACKING_ID,
    "errors": [
        {
            "code": "4",
            "title": "Invalid Email Format",
            "details": "Invalid email format: 'broken'",
            "info": "https://docs.crossengage.io/errors#4",
            "source": {"pointer": "/updated/1/email"},
        }
    ],
}
USERS = [
    {"id": "u0", "email": "a@example.com"},
    {"id": "u1", "email": "broken"},
    {"id": "u2", "email": "c@example.com"},
]
#: Short test keys whose text occurs in the body: in "trackingId", "id", "code", "4", "1"...
SHORT_KEYS = ["k", "1", "e", "id", "4", "a", "/", '"', "u", "updated"]


@pytest.mark.anyio
@pytest.mark.parametrize("key", SHORT_KEYS)
async def test_a_partial_400_reads_the_same_whatever_the_key(
    key: str, make_client: Callable[..., AsyncClient]
) -> None:
    recorder = Recorder(httpx.Response(400, json=PARTIAL_400))
    async with make_client(recorder, api_key=key) as client:
        accepted = await client.batch(USERS)
        result = await client.upsert_many(USERS, raise_on_failure=False)
    assert accepted.tracking_id == TRACKING_ID
    (error,) = accepted.errors
    assert (error.code, error.pointer) == (ErrorCode.INVALID_EMAIL, "/updated/1/email")
    assert result.accepted == 2, "u0 and u2 were taken"
    assert [(r.position, r.user_id) for r in result.rejected] == [(1, "u1")]
    assert result.failed == 0
    assert result.tracking_ids == (TRACKING_ID,)


@pytest.mark.anyio
@pytest.mark.parametrize("key", SHORT_KEYS)
async def test_a_refused_write_keeps_its_codes_and_pointers_whatever_the_key(
    key: str, make_client: Callable[..., AsyncClient]
) -> None:
    body = {"errors": PARTIAL_400["errors"]}  # no tracking id: refused as a whole
    recorder = Recorder(httpx.Response(400, json=body))
    async with make_client(recorder, api_key=key) as client:
        with pytest.raises(ValidationError) as caught:
            await client.upsert_user(USERS[1])
        with pytest.raises(ValidationError) as batch:
            await client.batch(USERS)
    for refused in (caught.value, batch.value):
        assert refused.tracking_id is None
        (error,) = refused.errors
        assert (error.code, error.pointer) == (ErrorCode.INVALID_EMAIL, "/updated/1/email")
        assert error.title == "Invalid Email Format".replace(key, "***"), "free text is redacted"


@pytest.mark.anyio
async def test_what_people_see_of_an_error_body_is_redacted(
    make_client: Callable[..., AsyncClient],
) -> None:
    # A server that echoes the key into the free text of a partial 400.
    entry = dict(PARTIAL_400["errors"][0])  # type: ignore[call-overload]
    entry.update(title=f"bad {KEY}", details=f"you sent {KEY}", info=f"see {KEY}")
    body = {"trackingId": TRACKING_ID, "errors": [entry]}
    recorder = Recorder(httpx.Response(400, json=body))
    async with make_client(recorder, api_key=KEY) as client:
        with pytest.raises(ValidationError) as caught:
            await client.upsert_user(USERS[1])
        accepted = await client.batch(USERS)
    for error in (*caught.value.errors, *accepted.errors):
        assert (error.code, error.pointer) == (ErrorCode.INVALID_EMAIL, "/updated/1/email")
        assert KEY not in repr(error)
        assert "you sent ***" in str(error)
    assert caught.value.tracking_id == accepted.tracking_id == TRACKING_ID
    assert "you sent ***" in str(caught.value)
    # Not everything_shown(): this test's own frame holds the body it made.
    for shown in (str(caught.value), repr(caught.value), repr(vars(caught.value))):
        assert KEY not in shown


# -- what code can reach, not only what is printed ------------------------------------------


def everything_reachable(root: object) -> str:
    """All text reachable from ``root`` by reading attributes, as a crash reporter
    that serialises containers (Sentry walks dicts and lists of frame locals) or
    a user's ``on_retry`` hook logging ``event.exception.request.headers`` would.

    Walked: exceptions (attributes, chain, group members, every frame's locals),
    attrs instances (``RetryEvent``), httpx requests (headers and URL),
    mappings and sequences. Anything else is its ``repr``: the SDK's clients
    hold the key by design and hide it there.
    """
    shown: list[str] = []
    seen: set[int] = set()
    todo: list[object] = [root]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (str, bytes)):
            shown.append(item.decode("latin-1") if isinstance(item, bytes) else item)
        elif isinstance(item, BaseException):
            todo += [item.__cause__, item.__context__, *getattr(item, "exceptions", ())]
            todo += [vars(item), item.__traceback__, str(item)]
            if isinstance(item, httpx.RequestError) and item._request is not None:
                todo.append(item.request)
        elif isinstance(item, types.TracebackType):
            todo += [item.tb_next, dict(item.tb_frame.f_locals)]
        elif isinstance(item, httpx.Request):
            todo += [str(item.url), list(item.headers.raw)]
        elif isinstance(item, httpx.Headers):
            todo.append(list(item.raw))
        elif isinstance(item, dict):
            todo += [*map(str, item.keys()), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            todo += list(item)
        elif attrs.has(type(item)):
            todo += [getattr(item, field.name) for field in attrs.fields(type(item))]
        elif item is not None:
            shown.append(repr(item))
    return "\n".join(shown)


@pytest.mark.anyio
@pytest.mark.parametrize("failure", ["refused", "drop", "not http", "timeout"])
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_error_or_retry_event_holds_the_key_on_any_transport(
    transport: str,
    failure: str,
    anyio_backend: str,
    monkeypatch: pytest.MonkeyPatch,
    fake_time: FakeTime,
) -> None:
    # A hook that logs what it is given: event.exception.request.headers, say.
    events: list[RetryEvent] = []
    use_transport(transport, anyio_backend, monkeypatch)
    retry = RetryPolicy(
        max_retries=1, sleep=fake_time.sleep, clock=fake_time.clock, on_retry=events.append
    )
    mode, answer = FAILURES[failure]
    with LoopbackServer(mode, answer) as server:
        url = closed_port_url() if failure == "refused" else server.url
        async with AsyncClient(
            KEY, base_url=url, retry=retry, timeout=0.2,
            default_headers={"Authorization": f"Bearer {GATEWAY_TOKEN}"},
        ) as client:  # fmt: skip
            errors: list[BaseException] = []
            for call in (lambda: client.get_user("42"), lambda: client.upsert_user(USER)):
                with pytest.raises(APIConnectionError) as caught:
                    await call()
                errors.append(caught.value)
            result = await client.upsert_many([USER], raise_on_failure=False)
            assert_picked(client, transport)
    errors.append(result.failed_chunks[0].exception)
    assert len(events) >= 3, "every call was retried"
    # What the hook and the error still tell: the request that failed, by method and URL.
    first = events[0].exception
    assert isinstance(first, httpx.RequestError)
    assert (first.request.method, first.request.url.path) == ("GET", "/users/42")
    assert isinstance(errors[0].__cause__, httpx.RequestError)
    assert errors[0].__cause__.request.headers["X-XNG-AuthToken"] == "***"
    for reached in (*events, *errors):
        assert KEY not in everything_reachable(reached)
        assert GATEWAY_TOKEN not in everything_reachable(reached)


def test_the_redacted_copy_of_a_streamed_request_keeps_its_url_and_hides_the_key() -> None:
    from activatepro_async._options import redacted_request

    async def body() -> AsyncIterator[bytes]:
        yield b"{}"  # pragma: no cover - never read

    sent = httpx.Request(
        "POST", "https://api.example.test/users/batch", content=body(),
        headers={"X-XNG-AuthToken": KEY, "Cookie": f"s={GATEWAY_TOKEN}", "Accept": "x/y"},
    )  # fmt: skip
    shown = redacted_request(sent)
    assert (shown.method, str(shown.url)) == ("POST", "https://api.example.test/users/batch")
    assert shown.headers["X-XNG-AuthToken"] == shown.headers["Cookie"] == "***"
    assert shown.headers["Accept"] == "x/y"
    assert KEY not in everything_reachable(shown)
