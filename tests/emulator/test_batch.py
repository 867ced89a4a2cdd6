"""POST /users/batch: accepted, partial, refused, limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from activatepro_async.emulator import Emulator, ManualClock

from .wire import errors, user

pytestmark = pytest.mark.anyio


async def tracking(http: httpx.AsyncClient, tracking_id: str) -> dict[str, Any]:
    response = await http.get(f"/users/track/{tracking_id}")
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_the_reference_batch_example_is_accepted(
    http: httpx.AsyncClient, emulator: Emulator
) -> None:
    await http.put("/users", json=user("1234", "jane.doe@example.com"))
    body = {
        "updated": [
            {
                "email": "john.doe@example.com",
                "id": "fb85fe50-a528-11e7-abc4-cec278b6b50a",
                "firstName": "John",
                "lastName": "Doe",
                "birthday": "1982-08-30",
                "createdAt": "2015-10-02T08:23:53Z",
                "gender": "male",
            }
        ],
        "deleted": [{"email": "jane.doe@example.com", "id": "1234"}],
    }
    response = await http.post("/users/batch", json=body)
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    assert set(response.json()) == {"trackingId"}
    status = await tracking(http, response.json()["trackingId"])
    assert status == {"stage": "PROCESSED", "total": 2, "success": 2, "error": 0}
    assert set(emulator.users) == {"fb85fe50-a528-11e7-abc4-cec278b6b50a"}


async def test_updated_or_deleted_alone_is_a_batch(http: httpx.AsyncClient) -> None:
    assert (await http.post("/users/batch", json={"updated": [user("1")]})).status_code == 202
    assert (await http.post("/users/batch", json={"deleted": [{"id": "1"}]})).status_code == 202
    response = await http.post("/users/batch", json={"updated": [user("2")], "deleted": None})
    assert response.status_code == 202


async def test_some_invalid_items_give_400_with_tracking_and_the_rest_is_processed(
    http: httpx.AsyncClient, emulator: Emulator
) -> None:
    body = {
        "updated": [
            user("0"),
            user("1", "lovecrossengage.io"),
            user("2"),
            {"id": "3", "email": "x@example.com", "shoeSize": 1},
            "not a user",
        ],
        "deleted": [{"email": "a@example.com"}, {"id": "9"}, {"id": "8", "email": "nope"}, 7],
    }
    response = await http.post("/users/batch", json=body)
    assert response.status_code == 400
    payload = response.json()
    assert list(payload) == ["trackingId", "errors"]
    assert errors(response) == [
        (4, "/updated/1/email"),
        (6, "/updated/3/shoeSize"),
        (2, "/updated/4"),
        (2, "/deleted/0/id"),
        (4, "/deleted/2/email"),
        (2, "/deleted/3"),
    ]
    assert payload["errors"][0]["details"] == (
        'Invalid email "lovecrossengage.io". The email address must be in the addr-spec '
        "format as defined in RFC 5322"
    )
    status = await tracking(http, payload["trackingId"])
    assert status == {"stage": "PROCESSED", "total": 9, "success": 3, "error": 6}
    assert set(emulator.users) == {"0", "2"}


async def test_an_all_invalid_batch_still_has_a_tracking_id_that_ends_in_errors(
    http: httpx.AsyncClient, emulator: Emulator
) -> None:
    response = await http.post(
        "/users/batch", json={"updated": [{"id": "1"}, {"email": "a@b.c"}], "deleted": [{}]}
    )
    assert response.status_code == 400
    assert errors(response) == [(2, "/updated/0/email"), (2, "/updated/1/id"), (2, "/deleted/0/id")]
    status = await tracking(http, response.json()["trackingId"])
    assert status == {"stage": "PROCESSED", "total": 3, "success": 0, "error": 3}
    assert emulator.users == {}


async def test_invalid_items_count_as_errors_while_pending(clock: ManualClock) -> None:
    emulator = Emulator(clock=clock, processing_delay=5)
    async with httpx.AsyncClient(
        transport=emulator.transport(),
        base_url="http://e",
        headers={"X-XNG-AuthToken": "test-key", "X-XNG-ApiVersion": "2"},
    ) as http:
        response = await http.post("/users/batch", json={"updated": [user("1"), {"id": "2"}]})
        tracking_id = response.json()["trackingId"]
        status = await tracking(http, tracking_id)
        assert status == {"stage": "PENDING", "total": 2, "success": 0, "error": 1}
        clock.advance(5)
        status = await tracking(http, tracking_id)
        assert status == {"stage": "PROCESSED", "total": 2, "success": 1, "error": 1}


@pytest.mark.parametrize(
    ("updated", "deleted", "count"),
    [(1001, 0, "1,001"), (0, 1001, "1,001"), (600, 401, "1,001"), (5000, 0, "5,000")],
)
async def test_over_1000_items_is_code_9_and_nothing_is_enqueued(
    http: httpx.AsyncClient, emulator: Emulator, updated: int, deleted: int, count: str
) -> None:
    body = {
        "updated": [user(str(i)) for i in range(updated)],
        "deleted": [{"id": str(i)} for i in range(deleted)],
    }
    response = await http.post("/users/batch", json=body)
    assert response.status_code == 400
    assert errors(response) == [(9, "/updated")]
    assert response.json() == {
        "errors": [
            {
                "code": "9",
                "title": "Max batch request size violation",
                "details": f"Max batch request size is 1,000, but was {count}",
                "info": "https://docs.crossengage.io/errors#9",
                "source": {"pointer": "/updated"},
            }
        ]
    }
    assert emulator.pending_count == 0
    assert emulator.users == {}


async def test_exactly_1000_items_is_accepted(http: httpx.AsyncClient, emulator: Emulator) -> None:
    body = {"updated": [user(str(i)) for i in range(999)], "deleted": [{"id": "x"}]}
    response = await http.post("/users/batch", json=body)
    assert response.status_code == 202
    assert len(emulator.users) == 999


@pytest.mark.parametrize(
    "body",
    [{}, {"updated": []}, {"updated": [], "deleted": []}, {"updated": None, "deleted": None}],
)
async def test_an_empty_batch_is_code_2(
    http: httpx.AsyncClient, emulator: Emulator, body: dict[str, Any]
) -> None:
    response = await http.post("/users/batch", json=body)
    assert response.status_code == 400
    assert errors(response) == [(2, "/updated")]
    assert "trackingId" not in response.json()
    assert emulator.pending_count == 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"updated": {"id": "1"}}, [(2, "/updated")]),
        ({"updated": [user()], "deleted": "1"}, [(2, "/deleted")]),
        ({"updated": [user()], "users": []}, [(2, "/users")]),
    ],
)
async def test_a_malformed_batch_is_refused_whole(
    http: httpx.AsyncClient, emulator: Emulator, body: dict[str, Any], expected: list[Any]
) -> None:
    response = await http.post("/users/batch", json=body)
    assert response.status_code == 400
    assert errors(response) == expected
    assert "trackingId" not in response.json()
    assert emulator.pending_count == 0


@pytest.mark.parametrize("body", [b"not json", b"[]", b'[{"id": "1"}]', b"\xff"])
async def test_a_batch_body_that_is_not_a_json_object_is_code_1(
    http: httpx.AsyncClient, body: bytes
) -> None:
    response = await http.post("/users/batch", content=body)
    assert response.status_code == 400
    assert errors(response) == [(1, "")]


async def test_items_apply_in_order_updated_then_deleted(
    http: httpx.AsyncClient, emulator: Emulator
) -> None:
    body = {
        "updated": [user("1", firstName="First"), user("1", firstName="Second"), user("2")],
        "deleted": [{"id": "2"}],
    }
    response = await http.post("/users/batch", json=body)
    assert response.status_code == 202
    assert emulator.users["1"]["firstName"] == "Second"
    assert "2" not in emulator.users


async def test_an_email_clash_inside_a_batch_is_a_processing_error(
    http: httpx.AsyncClient,
) -> None:
    body = {"updated": [user("1", "same@example.com"), user("2", "SAME@example.com")]}
    response = await http.post("/users/batch", json=body)
    assert response.status_code == 202
    status = await tracking(http, response.json()["trackingId"])
    assert status == {"stage": "PROCESSED", "total": 2, "success": 1, "error": 1}


async def test_a_body_over_max_body_bytes_is_413_code_9(emulator: Emulator) -> None:
    small = Emulator(max_body_bytes=1000)
    async with httpx.AsyncClient(
        transport=small.transport(),
        base_url="http://e",
        headers={"X-XNG-AuthToken": "test-key", "X-XNG-ApiVersion": "2"},
    ) as http:
        body = {"updated": [user(str(i)) for i in range(40)]}
        response = await http.post("/users/batch", json=body)
        assert response.status_code == 413
        assert errors(response) == [(9, "")]

        async def chunks() -> Any:
            for _ in range(20):
                yield b" " * 100

        chunked = await http.post("/users/batch", content=chunks())
        assert chunked.status_code == 413
        assert "content-length" not in chunked.request.headers
        fits = await http.post("/users/batch", json={"updated": [user("1")]})
        assert fits.status_code == 202
    assert small.pending_count == 0
    assert len(small.users) == 1
