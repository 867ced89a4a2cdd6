"""``activatepro get``, ``find`` and ``track`` against the in-process emulator."""

from __future__ import annotations

import json

import pytest

from activatepro_async import AsyncClient
from activatepro_async.emulator import Emulator

from .conftest import API_KEY, Invoke


@pytest.fixture
def stored(emulator: Emulator) -> str:
    """Store two users; return the tracking id of the first write."""
    import anyio

    async def main() -> str:
        async with AsyncClient(API_KEY, transport=emulator.transport()) as client:
            first = await client.upsert_user(
                {"id": "u1", "email": "Ada@Example.com", "businessUnit": "UK", "firstName": "Ada"}
            )
            await client.upsert_user({"id": "u2", "email": "ada@example.com"})
            return first.tracking_id

    return anyio.run(main)


def test_get_prints_the_user_as_json(invoke: Invoke, stored: str) -> None:
    result = invoke("get", "u1")
    assert result.exit_code == 0, result.output
    user = json.loads(result.stdout)
    assert (user["id"], user["businessUnit"], user["firstName"]) == ("u1", "UK", "Ada")


def test_get_unknown_user_exits_1_with_one_line(invoke: Invoke, stored: str) -> None:
    result = invoke("get", "nobody")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no user with id 'nobody'"


def test_find_by_email_and_business_unit(invoke: Invoke, stored: str) -> None:
    assert json.loads(invoke("find", "ADA@example.com", "--bu", "UK").stdout)["id"] == "u1"
    assert json.loads(invoke("find", "ada@example.com").stdout)["id"] == "u2"
    result = invoke("find", "ada@example.com", "--bu", "DE")
    assert result.exit_code == 1
    assert "in business unit 'DE'" in result.output


def test_track_prints_the_status(invoke: Invoke, stored: str) -> None:
    result = invoke("track", stored, "--wait")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "trackingId": stored,
        "stage": "PROCESSED",
        "total": 1,
        "success": 1,
        "error": 0,
    }


def test_track_unknown_id_exits_1(invoke: Invoke) -> None:
    result = invoke("track", "no-such-id")
    assert result.exit_code == 1
    assert "unknown, or older than 24 hours" in result.output


def test_track_exits_1_when_the_write_had_errors(invoke: Invoke, emulator: Emulator) -> None:
    import anyio

    async def main() -> str:
        async with AsyncClient(API_KEY, transport=emulator.transport()) as client:
            accepted = await client.batch(
                updated=[{"id": "a", "email": "a@example.com"}, {"id": "b", "email": "nope"}]
            )
            return accepted.tracking_id

    tracking_id = anyio.run(main)
    result = invoke("track", tracking_id, "--wait")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"] == 1
