"""Every call of AsyncClient, checked on the wire: the exact request it sends and
how it reads each response the reference documents."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from activatepro_async import (
    Accepted,
    APIConnectionError,
    ApiError,
    AsyncClient,
    AuthenticationError,
    BatchAccepted,
    ErrorCode,
    NotFoundError,
    Stage,
    TrackingStatus,
    UnexpectedResponseError,
    User,
    ValidationError,
)

from .helpers import API_KEY, REFERENCE_PUT_400, REFERENCE_USER, Recorder

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., AsyncClient]
TRACKING = {"trackingId": "2e312089-a987-45c6-adbd-b904bc4dfc97"}


def reply(status: int, body: Any = None, **kwargs: Any) -> httpx.Response:
    if body is None:
        return httpx.Response(status, **kwargs)
    return httpx.Response(status, json=body, **kwargs)


def sent_path(request: httpx.Request) -> str:
    return request.url.raw_path.decode("ascii")


def assert_api_headers(request: httpx.Request, *, with_body: bool) -> None:
    assert request.headers["X-XNG-AuthToken"] == API_KEY
    assert request.headers["X-XNG-ApiVersion"] == "2"
    if with_body:
        assert request.headers["Content-Type"] == "application/json"
    else:
        assert "Content-Type" not in request.headers


# -- get_user -------------------------------------------------------------------


async def test_get_user_sends_get_users_id_and_reads_the_reference_body(
    make_client: MakeClient,
) -> None:
    recorder = Recorder(reply(200, REFERENCE_USER))
    async with make_client(recorder) as client:
        user = await client.get_user("fb85fe50-a528-11e7-abc4-cec278b6b50a")
    (request,) = recorder.requests
    assert request.method == "GET"
    assert str(request.url) == (
        "https://api.example.test/users/fb85fe50-a528-11e7-abc4-cec278b6b50a"
    )
    assert_api_headers(request, with_body=False)
    assert user.id == REFERENCE_USER["id"]
    assert user.xng_id == REFERENCE_USER["xngId"]
    assert user.attributes["birthday"] == "1982-08-30"


async def test_get_user_404_raises_not_found(make_client: MakeClient) -> None:
    recorder = Recorder(httpx.Response(404, text="User with a given id was not found."))
    async with make_client(recorder) as client:
        with pytest.raises(NotFoundError) as info:
            await client.get_user("nobody")
    assert info.value.status_code == 404
    assert info.value.body == "User with a given id was not found."
    assert len(recorder.requests) == 1, "404 is never retried"


@pytest.mark.parametrize(
    ("user_id", "segment"),
    [
        ("a/b", "a%2Fb"),
        ("..", "%2E%2E"),
        (".", "%2E"),
        ("x?y#z", "x%3Fy%23z"),
        ("100%", "100%25"),
        ("jörg 1", "j%C3%B6rg%201"),
        ("a\r\nb", "a%0D%0Ab"),
    ],
)
async def test_ids_travel_as_one_encoded_path_segment(
    make_client: MakeClient, user_id: str, segment: str
) -> None:
    recorder = Recorder(reply(200, {"id": user_id, "email": "e@example.com"}))
    async with make_client(recorder) as client:
        user = await client.get_user(user_id)
    assert sent_path(recorder.requests[0]) == f"/users/{segment}"
    assert recorder.requests[0].url.query == b""
    assert user.id == user_id


async def test_an_empty_id_is_refused_before_sending(make_client: MakeClient) -> None:
    recorder = Recorder(reply(200, REFERENCE_USER))
    async with make_client(recorder) as client:
        with pytest.raises(ValueError, match="user_id must not be empty"):
            await client.get_user("")
    assert recorder.requests == []


async def test_base_url_with_a_path_prefix_is_kept(make_client: MakeClient) -> None:
    recorder = Recorder(reply(200, REFERENCE_USER))
    async with make_client(recorder, base_url="http://proxy.local/activatepro/") as client:
        await client.get_user("1")
    assert str(recorder.requests[0].url) == "http://proxy.local/activatepro/users/1"


# -- get_user_by_email -------------------------------------------------------------


async def test_get_user_by_email_and_bu_sends_both_segments(make_client: MakeClient) -> None:
    recorder = Recorder(reply(200, REFERENCE_USER))
    async with make_client(recorder) as client:
        user = await client.get_user_by_email("John.Doe+x@example.com", "DE/AT")
    request = recorder.requests[0]
    assert request.method == "GET"
    assert sent_path(request) == "/users/email/John.Doe%2Bx%40example.com/bu/DE%2FAT"
    assert_api_headers(request, with_body=False)
    assert user.email == "john.doe@example.com"


async def test_get_user_by_email_without_bu_omits_the_bu_segment(make_client: MakeClient) -> None:
    recorder = Recorder(reply(200, REFERENCE_USER))
    async with make_client(recorder) as client:
        await client.get_user_by_email("john.doe@example.com")
    assert sent_path(recorder.requests[0]) == "/users/email/john.doe%40example.com"


async def test_get_user_by_email_404_raises_not_found(make_client: MakeClient) -> None:
    recorder = Recorder(httpx.Response(404, text="User with a given input was not found."))
    async with make_client(recorder) as client:
        with pytest.raises(NotFoundError):
            await client.get_user_by_email("nobody@example.com", "DE")


# -- upsert_user ---------------------------------------------------------------------


async def test_upsert_user_puts_the_wire_json_and_returns_the_tracking_id(
    make_client: MakeClient,
) -> None:
    recorder = Recorder(reply(202, TRACKING))
    user = User(
        "31d29083-b3ad-4864-9d0c-dc20a9fa72c8",
        "john.doe@example.com",
        business_unit="DE",
        attributes={"firstName": "John", "lastName": "Doe", "birthday": "1982-08-30"},
    )
    async with make_client(recorder) as client:
        accepted = await client.upsert_user(user)
    request = recorder.requests[0]
    assert request.method == "PUT"
    assert sent_path(request) == "/users"
    assert_api_headers(request, with_body=True)
    assert json.loads(request.content) == {
        "id": "31d29083-b3ad-4864-9d0c-dc20a9fa72c8",
        "email": "john.doe@example.com",
        "businessUnit": "DE",
        "firstName": "John",
        "lastName": "Doe",
        "birthday": "1982-08-30",
    }
    assert accepted == Accepted(tracking_id=TRACKING["trackingId"])


async def test_upsert_user_takes_a_wire_mapping(make_client: MakeClient) -> None:
    recorder = Recorder(reply(202, TRACKING))
    async with make_client(recorder) as client:
        await client.upsert_user({"id": "1", "email": "a@b.io", "businessUnit": None})
    assert json.loads(recorder.requests[0].content) == {
        "id": "1",
        "email": "a@b.io",
        "businessUnit": None,
    }


async def test_upsert_user_400_raises_validation_error_with_every_item(
    make_client: MakeClient,
) -> None:
    recorder = Recorder(reply(400, REFERENCE_PUT_400))
    async with make_client(recorder) as client:
        with pytest.raises(ValidationError) as info:
            await client.upsert_user(User("1", "x"))
    error = info.value
    assert error.status_code == 400
    assert [e.code for e in error.errors] == [ErrorCode.UNKNOWN_ATTRIBUTE, ErrorCode.INVALID_FIELD]
    assert [e.pointer for e in error.errors] == ["/lastName", "/email"]
    assert 'Attribute "lastName" does not exist (at /lastName)' in str(error)
    assert error.tracking_id is None
    assert len(recorder.requests) == 1


async def test_upsert_user_401_raises_authentication_error(make_client: MakeClient) -> None:
    recorder = Recorder(httpx.Response(401))
    async with make_client(recorder) as client:
        with pytest.raises(AuthenticationError, match="ACTIVATEPRO_API_KEY"):
            await client.upsert_user(User("1", "a@b.io"))
    assert len(recorder.requests) == 1


# -- delete_user ------------------------------------------------------------------------


async def test_delete_user_sends_delete_and_returns_the_tracking_id(
    make_client: MakeClient,
) -> None:
    recorder = Recorder(reply(202, TRACKING))
    async with make_client(recorder) as client:
        accepted = await client.delete_user("a/b")
    request = recorder.requests[0]
    assert request.method == "DELETE"
    assert sent_path(request) == "/users/a%2Fb"
    assert request.content == b""
    assert_api_headers(request, with_body=False)
    assert accepted.tracking_id == TRACKING["trackingId"]


# -- batch --------------------------------------------------------------------------------


async def test_batch_posts_updated_and_deleted(make_client: MakeClient) -> None:
    recorder = Recorder(reply(202, TRACKING))
    async with make_client(recorder) as client:
        result = await client.batch(
            updated=[User("1", "john.doe@example.com", attributes={"firstName": "John"})],
            deleted=["1234", User("5", "jane@example.com"), {"id": "6", "email": "x@y.io"}],
        )
    request = recorder.requests[0]
    assert request.method == "POST"
    assert sent_path(request) == "/users/batch"
    assert_api_headers(request, with_body=True)
    assert json.loads(request.content) == {
        "updated": [{"id": "1", "email": "john.doe@example.com", "firstName": "John"}],
        "deleted": [
            {"id": "1234"},
            {"id": "5", "email": "jane@example.com"},
            {"id": "6", "email": "x@y.io"},
        ],
    }
    assert result == BatchAccepted(tracking_id=TRACKING["trackingId"], errors=[])


async def test_batch_400_with_tracking_id_is_a_partial_success(make_client: MakeClient) -> None:
    body = {
        "trackingId": "fb84780b-2f03-4fd7-a4bc-4ae7f17b85eb",
        "errors": [
            {
                "code": "4",
                "title": "Invalid Email Format",
                "details": 'Invalid email "lovecrossengage.io".',
                "info": "https://docs.crossengage.io/errors#4",
                "source": {"pointer": "/updated/0/email"},
            }
        ],
    }
    recorder = Recorder(reply(400, body))
    async with make_client(recorder) as client:
        result = await client.batch(updated=[User("1", "lovecrossengage.io")])
    assert result.tracking_id == "fb84780b-2f03-4fd7-a4bc-4ae7f17b85eb"
    assert result.errors == [
        ApiError(
            code=ErrorCode.INVALID_EMAIL,
            title="Invalid Email Format",
            details='Invalid email "lovecrossengage.io".',
            pointer="/updated/0/email",
            info="https://docs.crossengage.io/errors#4",
        )
    ]


async def test_batch_400_with_the_references_trailing_comma_still_raises_typed(
    make_client: MakeClient,
) -> None:
    # The reference's example body has a trailing comma: not JSON. It must not
    # become a JSONDecodeError.
    text = '{"trackingId": "t-1", "errors": [],}'
    recorder = Recorder(httpx.Response(400, text=text))
    async with make_client(recorder) as client:
        with pytest.raises(ValidationError) as info:
            await client.batch(updated=[User("1", "a@b.io")])
    assert info.value.body == text
    assert info.value.errors == []


async def test_batch_400_max_size_without_tracking_id_raises(make_client: MakeClient) -> None:
    body = {
        "errors": [
            {
                "code": "9",
                "title": "Max batch request size violation",
                "details": "Max batch request size is 1,000, but was 5,000",
                "info": "https://docs.crossengage.io/errors#9",
                "source": {"pointer": "/updated"},
            }
        ]
    }
    recorder = Recorder(reply(400, body))
    async with make_client(recorder) as client:
        with pytest.raises(ValidationError) as info:
            await client.batch(updated=[User("1", "a@b.io")])
    assert info.value.errors[0].code is ErrorCode.MAX_BATCH_SIZE
    assert info.value.errors[0].pointer == "/updated"


async def test_batch_over_1000_items_is_refused_before_sending(make_client: MakeClient) -> None:
    recorder = Recorder(reply(202, TRACKING))
    users = [User(str(i), f"u{i}@example.com") for i in range(1000)]
    async with make_client(recorder) as client:
        with pytest.raises(ValueError, match="upsert_many"):
            await client.batch(updated=users, deleted=["extra"])
        with pytest.raises(ValueError, match="empty batch"):
            await client.batch()
        await client.batch(updated=users)  # exactly 1000 is fine
    assert len(recorder.requests) == 1


# -- tracking ------------------------------------------------------------------------------


async def test_get_tracking_reads_the_reference_body(make_client: MakeClient) -> None:
    recorder = Recorder(reply(200, {"stage": "PROCESSED", "total": 2, "success": 1, "error": 1}))
    async with make_client(recorder) as client:
        status = await client.get_tracking("2e312089-a987-45c6-adbd-b904bc4dfc97")
    request = recorder.requests[0]
    assert request.method == "GET"
    assert sent_path(request) == "/users/track/2e312089-a987-45c6-adbd-b904bc4dfc97"
    assert_api_headers(request, with_body=False)
    assert status == TrackingStatus(stage=Stage.PROCESSED, total=2, success=1, error=1)


async def test_get_tracking_404_for_unknown_or_expired(make_client: MakeClient) -> None:
    recorder = Recorder(httpx.Response(404))
    async with make_client(recorder) as client:
        with pytest.raises(NotFoundError):
            await client.get_tracking("expired")


async def test_a_200_that_is_not_the_expected_json_raises_unexpected_response(
    make_client: MakeClient,
) -> None:
    recorder = Recorder(httpx.Response(200, text="<html>captive portal</html>"))
    async with make_client(recorder) as client:
        with pytest.raises(UnexpectedResponseError, match="captive portal") as info:
            await client.get_tracking("t")
    assert info.value.status_code == 200
    assert info.value.body == "<html>captive portal</html>"


async def test_an_unknown_stage_raises_unexpected_response(make_client: MakeClient) -> None:
    recorder = Recorder(reply(200, {"stage": "EXPLODED", "total": 1, "success": 0, "error": 0}))
    async with make_client(recorder) as client:
        with pytest.raises(UnexpectedResponseError):
            await client.get_tracking("t")


# -- configuration -----------------------------------------------------------------------


def test_no_api_key_anywhere_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from activatepro_async import ConfigurationError

    monkeypatch.delenv("ACTIVATEPRO_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="pass api_key= or set ACTIVATEPRO_API_KEY"):
        AsyncClient()


async def test_api_key_and_base_url_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACTIVATEPRO_API_KEY", "env-key")
    monkeypatch.setenv("ACTIVATEPRO_BASE_URL", "http://localhost:9999")
    recorder = Recorder(reply(200, REFERENCE_USER))
    async with AsyncClient(transport=recorder.transport) as client:
        await client.get_user("1")
    assert recorder.requests[0].headers["X-XNG-AuthToken"] == "env-key"
    assert str(recorder.requests[0].url) == "http://localhost:9999/users/1"


def test_a_bad_base_url_is_a_configuration_error() -> None:
    from activatepro_async import ConfigurationError

    with pytest.raises(ConfigurationError, match="http:// or https://"):
        AsyncClient("k", base_url="api.crossengage.io")


async def test_a_users_own_http_client_is_used_and_not_closed() -> None:
    recorder = Recorder(reply(200, REFERENCE_USER))
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(request.method)

    own = httpx.AsyncClient(transport=recorder.transport, event_hooks={"request": [hook]})
    async with AsyncClient("k", http_client=own) as client:
        await client.get_user("1")
    assert seen == ["GET"]
    assert not own.is_closed
    await own.aclose()


async def test_the_client_closes_the_http_client_it_made(make_client: MakeClient) -> None:
    recorder = Recorder(reply(200, REFERENCE_USER))
    client = make_client(recorder)
    await client.aclose()
    with pytest.raises(APIConnectionError, match="was not sent: the client was closed"):
        await client.get_user("1")
    assert recorder.requests == []


# -- success bodies of the wrong shape ------------------------------------------------------

#: What a trackingId may be instead of a non-empty string, and a body without one.
BAD_TRACKING_BODIES = [
    {"trackingId": None},
    {"trackingId": 12},
    {"trackingId": 1.5},
    {"trackingId": True},
    {"trackingId": ""},
    {"trackingId": {"id": "t"}},
    {"trackingId": ["t"]},
    {},
    {"tracking_id": "t"},
    ["t"],
    "t",
    None,
]
WRITES: dict[str, Callable[[AsyncClient], Any]] = {
    "upsert_user": lambda client: client.upsert_user({"id": "1", "email": "a@example.com"}),
    "delete_user": lambda client: client.delete_user("1"),
    "batch": lambda client: client.batch([{"id": "1", "email": "a@example.com"}], ["2"]),
}


@pytest.mark.parametrize("write", list(WRITES))
@pytest.mark.parametrize("body", BAD_TRACKING_BODIES)
async def test_a_202_without_a_usable_tracking_id_is_unexpected(
    make_client: MakeClient, write: str, body: Any
) -> None:
    recorder = Recorder(reply(202, content=json.dumps(body).encode()))
    async with make_client(recorder) as client:
        with pytest.raises(UnexpectedResponseError, match=r"trackingId|not an object") as caught:
            await WRITES[write](client)
    assert caught.value.status_code == 202
    assert len(recorder.requests) == 1, "not retried"


@pytest.mark.parametrize("tracking_id", [12, True, "", {"id": "t"}, ["t"], None])
async def test_a_partial_400_without_a_usable_tracking_id_is_unexpected(
    make_client: MakeClient, tracking_id: Any
) -> None:
    # The 400 says some users were taken, but names no tracking id to follow them by:
    # neither a partial success nor a refusal can be reported truthfully.
    body = {"trackingId": tracking_id, "errors": REFERENCE_PUT_400["errors"]}
    recorder = Recorder(reply(400, body))
    async with make_client(recorder) as client:
        with pytest.raises(UnexpectedResponseError, match="trackingId"):
            await client.batch([{"id": "1", "email": "a@example.com"}])


async def test_a_bulk_chunk_with_a_bad_tracking_id_fails_and_the_run_completes(
    make_client: MakeClient,
) -> None:
    users = [{"id": str(i), "email": f"u{i}@example.com"} for i in range(5)]
    recorder = Recorder(reply(202, {"trackingId": 12}), reply(202, TRACKING))
    async with make_client(recorder) as client:
        result = await client.upsert_many(
            users, chunk_size=2, concurrency=1, wait=True, raise_on_failure=False
        )
    assert (result.submitted, result.failed, result.accepted) == (5, 2, 3)
    assert isinstance(result.failed_chunks[0].exception, UnexpectedResponseError)
    assert "12" not in result.tracking_ids


@pytest.mark.parametrize(
    "body",
    [
        {"stage": "PROCESSED", "total": "3", "success": 3, "error": 0},
        {"stage": "PROCESSED", "total": 3.0, "success": 3, "error": 0},
        {"stage": "PROCESSED", "total": True, "success": 1, "error": 0},
        {"stage": "PROCESSED", "total": 3, "success": None, "error": 0},
        {"stage": "PROCESSED", "total": 3, "success": 3},
        {"stage": 1, "total": 3, "success": 3, "error": 0},
        {"stage": None, "total": 3, "success": 3, "error": 0},
        [],
        None,
    ],
)
async def test_a_tracking_status_of_the_wrong_shape_is_unexpected(
    make_client: MakeClient, body: Any
) -> None:
    recorder = Recorder(reply(200, content=json.dumps(body).encode()))
    async with make_client(recorder) as client:
        with pytest.raises(UnexpectedResponseError):
            await client.get_tracking("t")
        with pytest.raises(UnexpectedResponseError):
            await client.wait_for_tracking("t")


@pytest.mark.parametrize(
    "body",
    [
        {**REFERENCE_USER, "id": 12},
        {**REFERENCE_USER, "id": None},
        {**REFERENCE_USER, "email": None},
        {**REFERENCE_USER, "email": ["a@example.com"]},
        {**REFERENCE_USER, "businessUnit": 5},
        {**REFERENCE_USER, "xngId": {"x": 1}},
        {"email": "a@example.com"},
        [REFERENCE_USER],
        "user",
        None,
    ],
)
async def test_a_user_of_the_wrong_shape_is_unexpected(make_client: MakeClient, body: Any) -> None:
    recorder = Recorder(reply(200, content=json.dumps(body).encode()))
    async with make_client(recorder) as client:
        with pytest.raises(UnexpectedResponseError):
            await client.get_user("1")
        with pytest.raises(UnexpectedResponseError):
            await client.get_user_by_email("a@example.com")


@pytest.mark.parametrize("errors", [{"code": "4"}, [1], ["x"], [None], "errors"])
async def test_a_202_batch_with_errors_of_the_wrong_shape_is_unexpected(
    make_client: MakeClient, errors: Any
) -> None:
    recorder = Recorder(reply(202, {**TRACKING, "errors": errors}))
    async with make_client(recorder) as client:
        with pytest.raises(UnexpectedResponseError):
            await client.batch([{"id": "1", "email": "a@example.com"}])


async def test_a_body_nested_too_deep_to_read_is_a_typed_error(make_client: MakeClient) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    recorder = Recorder(reply(200, content=deep), reply(400, content=deep))
    async with make_client(recorder) as client:
        with pytest.raises(UnexpectedResponseError):
            await client.get_user("1")
        with pytest.raises(ValidationError) as caught:
            await client.get_user("1")
    assert caught.value.errors == []
    assert len(caught.value.body) == len(deep)


async def test_a_well_formed_body_still_reads_with_extra_keys(make_client: MakeClient) -> None:
    recorder = Recorder(
        reply(202, {**TRACKING, "extra": 1}),
        reply(200, {"stage": "PENDING", "total": 2, "success": 0, "error": 0, "eta": "1s"}),
    )
    async with make_client(recorder) as client:
        accepted = await client.delete_user("1")
        status = await client.get_tracking(accepted.tracking_id)
    assert accepted == Accepted(tracking_id=TRACKING["trackingId"])
    assert status == TrackingStatus(stage=Stage.PENDING, total=2, success=0, error=0)
