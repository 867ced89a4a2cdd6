"""Create, update, read and delete users: the rules of DECISIONS.md "Users"."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from activatepro_async.emulator import Emulator

from .wire import errors, user

pytestmark = pytest.mark.anyio


async def put(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """PUT a user; return its tracking status once processed."""
    response = await http.put("/users", json=body)
    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    tracking_id = response.json()["trackingId"]
    status = await http.get(f"/users/track/{tracking_id}")
    return status.json()  # type: ignore[no-any-return]


async def get(http: httpx.AsyncClient, path: str) -> dict[str, Any] | None:
    response = await http.get(path)
    if response.status_code == 404:
        return None
    assert response.status_code == 200
    return response.json()  # type: ignore[no-any-return]


async def test_the_reference_put_example_is_accepted_and_stored(
    http: httpx.AsyncClient, emulator: Emulator
) -> None:
    example = {
        "id": "31d29083-b3ad-4864-9d0c-dc20a9fa72c8",
        "email": "john.doe@example.com",
        "firstName": "John",
        "lastName": "Doe",
        "birthday": "1982-08-30",
        "createdAt": "2015-10-02T08:23:53Z",
        "gender": "male",
        "businessUnit": "DE",
    }
    response = await http.put("/users", json=example)
    assert response.status_code == 202
    assert set(response.json()) == {"trackingId"}
    uuid.UUID(response.json()["trackingId"])
    stored = await get(http, "/users/31d29083-b3ad-4864-9d0c-dc20a9fa72c8")
    assert stored is not None
    xng_id = stored.pop("xngId")
    assert uuid.UUID(xng_id).version == 4
    assert stored == example


async def test_xng_ids_are_distinct_and_kept_on_update(http: httpx.AsyncClient) -> None:
    await put(http, user("a"))
    await put(http, user("b"))
    first = await get(http, "/users/a")
    other = await get(http, "/users/b")
    assert first is not None
    assert other is not None
    assert first["xngId"] != other["xngId"]
    await put(http, user("a", firstName="Ann"))
    again = await get(http, "/users/a")
    assert again is not None
    assert again["xngId"] == first["xngId"]


async def test_put_is_a_partial_update(http: httpx.AsyncClient) -> None:
    await put(http, user("1", firstName="John", lastName="Doe", gender="male"))
    await put(http, user("1", lastName="Smith"))
    stored = await get(http, "/users/1")
    assert stored is not None
    assert stored["firstName"] == "John"
    assert stored["lastName"] == "Smith"
    assert stored["gender"] == "male"


async def test_null_clears_an_attribute(http: httpx.AsyncClient) -> None:
    await put(http, user("1", firstName="John", lastName="Doe"))
    await put(http, user("1", lastName=None))
    stored = await get(http, "/users/1")
    assert stored is not None
    assert "lastName" not in stored
    assert stored["firstName"] == "John"


async def test_a_new_email_for_a_known_id_replaces_the_old(http: httpx.AsyncClient) -> None:
    await put(http, user("1", "old@example.com"))
    await put(http, user("1", "new@example.com"))
    assert await get(http, "/users/email/old%40example.com") is None
    found = await get(http, "/users/email/new%40example.com")
    assert found is not None
    assert found["id"] == "1"


async def test_lookup_by_email_is_case_insensitive_and_exact(http: httpx.AsyncClient) -> None:
    await put(http, user("1", "John.Doe@Example.com"))
    found = await get(http, "/users/email/john.doe%40EXAMPLE.COM")
    assert found is not None
    assert found["id"] == "1"
    assert found["email"] == "John.Doe@Example.com"
    assert await get(http, "/users/email/john.doe%40example.co") is None
    assert await get(http, "/users/email/ohn.doe%40example.com") is None
    assert await get(http, "/users/email/john") is None


async def test_lookup_without_a_bu_finds_only_the_user_without_one(
    http: httpx.AsyncClient,
) -> None:
    await put(http, user("de", "same@example.com", businessUnit="DE"))
    assert await get(http, "/users/email/same%40example.com") is None
    await put(http, user("none", "same@example.com"))
    found = await get(http, "/users/email/same%40example.com")
    assert found is not None
    assert found["id"] == "none"


async def test_lookup_with_a_bu_is_case_insensitive(http: httpx.AsyncClient) -> None:
    await put(http, user("de", "same@example.com", businessUnit="DE"))
    await put(http, user("at", "same@example.com", businessUnit="AT"))
    for bu, expected in [("DE", "de"), ("de", "de"), ("At", "at")]:
        found = await get(http, f"/users/email/SAME%40example.com/bu/{bu}")
        assert found is not None
        assert found["id"] == expected
    assert await get(http, "/users/email/same%40example.com/bu/CH") is None


async def test_a_lookup_cannot_forge_the_email_and_bu_key(http: httpx.AsyncClient) -> None:
    await put(http, user("de", "x@example.com", businessUnit="DE"))
    assert await get(http, "/users/email/x%40example.com%0Ade") is None
    assert await get(http, "/users/email/x%40example.com/bu/DE%0A") is None


async def test_a_bu_with_encoded_characters_is_one_segment(http: httpx.AsyncClient) -> None:
    await put(http, user("x", "x@example.com", businessUnit="a-b_C"))
    found = await get(http, "/users/email/x%40example.com/bu/a%2Db_C")
    assert found is not None


async def test_an_email_taken_in_the_bu_is_a_processing_error(
    http: httpx.AsyncClient, emulator: Emulator
) -> None:
    await put(http, user("1", "taken@example.com", businessUnit="DE"))
    status = await put(http, user("2", "TAKEN@example.com", businessUnit="de"))
    assert status == {"stage": "PROCESSED", "total": 1, "success": 0, "error": 1}
    assert await get(http, "/users/2") is None
    assert set(emulator.users) == {"1"}


async def test_the_same_email_in_another_bu_is_fine(http: httpx.AsyncClient) -> None:
    await put(http, user("1", "shared@example.com", businessUnit="DE"))
    status = await put(http, user("2", "shared@example.com", businessUnit="AT"))
    assert status["success"] == 1
    status = await put(http, user("3", "shared@example.com"))
    assert status["success"] == 1


async def test_changing_the_email_to_a_taken_one_is_a_processing_error(
    http: httpx.AsyncClient,
) -> None:
    await put(http, user("1", "one@example.com"))
    await put(http, user("2", "two@example.com"))
    status = await put(http, user("2", "ONE@example.com", firstName="Changed"))
    assert status == {"stage": "PROCESSED", "total": 1, "success": 0, "error": 1}
    stored = await get(http, "/users/2")
    assert stored is not None
    assert stored["email"] == "two@example.com"
    assert "firstName" not in stored


async def test_moving_a_known_id_to_another_bu_updates_it(http: httpx.AsyncClient) -> None:
    await put(http, user("1", "m@example.com", businessUnit="DE", firstName="Max"))
    status = await put(http, user("1", "m@example.com", businessUnit="AT"))
    assert status["success"] == 1
    stored = await get(http, "/users/1")
    assert stored is not None
    assert stored["businessUnit"] == "AT"
    assert stored["firstName"] == "Max"
    assert await get(http, "/users/email/m%40example.com/bu/DE") is None
    assert await get(http, "/users/email/m%40example.com/bu/AT") is not None


async def test_a_null_bu_moves_the_user_out_of_its_bu(http: httpx.AsyncClient) -> None:
    await put(http, user("1", "m@example.com", businessUnit="DE"))
    await put(http, user("1", "m@example.com", businessUnit=None))
    stored = await get(http, "/users/1")
    assert stored is not None
    assert "businessUnit" not in stored
    assert await get(http, "/users/email/m%40example.com") is not None


async def test_a_put_without_bu_keeps_the_stored_bu(http: httpx.AsyncClient) -> None:
    await put(http, user("1", "m@example.com", businessUnit="DE"))
    await put(http, user("1", "m@example.com", firstName="Max"))
    stored = await get(http, "/users/1")
    assert stored is not None
    assert stored["businessUnit"] == "DE"


async def test_the_stored_xng_id_may_be_sent_back(http: httpx.AsyncClient) -> None:
    await put(http, user("1"))
    stored = await get(http, "/users/1")
    assert stored is not None
    stored["firstName"] = "Round"
    status = await put(http, stored)
    assert status["success"] == 1
    again = await get(http, "/users/1")
    assert again is not None
    assert again["firstName"] == "Round"
    assert again["xngId"] == stored["xngId"]


async def test_another_xng_id_is_an_identifier_mismatch(
    http: httpx.AsyncClient, emulator: Emulator
) -> None:
    await put(http, user("1"))
    for body in (
        user("1", xngId="123e4567-e89b-12d3-a456-426655440000"),
        user("new", xngId="123e4567-e89b-12d3-a456-426655440000"),
        user("1", xngId=12),
    ):
        response = await http.put("/users", json=body)
        assert response.status_code == 400
        assert errors(response) == [(7, "/xngId")]
    assert emulator.pending_count == 0


async def test_a_null_xng_id_is_ignored(http: httpx.AsyncClient) -> None:
    status = await put(http, user("1", xngId=None))
    assert status["success"] == 1
    stored = await get(http, "/users/1")
    assert stored is not None
    assert stored["xngId"]


async def test_delete_removes_the_user(http: httpx.AsyncClient) -> None:
    await put(http, user("1", "d@example.com"))
    response = await http.delete("/users/1")
    assert response.status_code == 202
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    tracking = await http.get(f"/users/track/{response.json()['trackingId']}")
    assert tracking.json() == {"stage": "PROCESSED", "total": 1, "success": 1, "error": 0}
    assert await get(http, "/users/1") is None
    assert await get(http, "/users/email/d%40example.com") is None


async def test_deleting_an_unknown_or_deleted_user_succeeds(http: httpx.AsyncClient) -> None:
    await put(http, user("1"))
    for _ in range(2):
        response = await http.delete("/users/1")
        assert response.status_code == 202
        tracking = await http.get(f"/users/track/{response.json()['trackingId']}")
        assert tracking.json()["success"] == 1
    response = await http.delete("/users/never-was")
    tracking = await http.get(f"/users/track/{response.json()['trackingId']}")
    assert tracking.json() == {"stage": "PROCESSED", "total": 1, "success": 1, "error": 0}


async def test_a_delete_with_a_body_is_accepted(http: httpx.AsyncClient) -> None:
    await put(http, user("1"))
    response = await http.request("DELETE", "/users/1", content=b'{"not": "used"} trailing junk')
    assert response.status_code == 202
    assert await get(http, "/users/1") is None


async def test_a_deleted_email_can_be_taken_again(http: httpx.AsyncClient) -> None:
    await put(http, user("1", "re@example.com"))
    await http.delete("/users/1")
    status = await put(http, user("2", "re@example.com"))
    assert status["success"] == 1


async def test_the_users_view_is_a_copy(http: httpx.AsyncClient, emulator: Emulator) -> None:
    await put(http, user("1", firstName="A"))
    emulator.users["1"]["firstName"] = "changed"
    view = emulator.user("1")
    assert view is not None
    assert view["firstName"] == "A"
    assert emulator.user("nobody") is None


async def test_seeded_users_are_stored_at_once(http: httpx.AsyncClient, emulator: Emulator) -> None:
    given = user("1", "seed@example.com", firstName="Ada", businessUnit="UK")
    emulator.seed(given, user("2"))
    stored = await get(http, "/users/1")
    assert stored is not None
    assert stored["firstName"] == "Ada"
    assert stored["xngId"]
    assert await get(http, "/users/email/SEED%40example.com/bu/uk") is not None
    assert emulator.requests[-1].path == "/users/email/SEED%40example.com/bu/uk"
    assert len(emulator.requests) == 2
    given["firstName"] = "changed"
    assert emulator.users["1"]["firstName"] == "Ada"


def test_seeding_an_invalid_user_raises(emulator: Emulator) -> None:
    with pytest.raises(ValueError, match=r"cannot seed user '1': Invalid email.*\(at /email\)"):
        emulator.seed(user("1", "not-an-email"))
    emulator.seed(user("1", "taken@example.com"))
    with pytest.raises(ValueError, match="email is taken"):
        emulator.seed(user("2", "TAKEN@example.com"))
    assert set(emulator.users) == {"1"}
