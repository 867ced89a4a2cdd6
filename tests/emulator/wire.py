"""Wire-level helpers shared by the emulator's tests."""

from __future__ import annotations

from typing import Any

import httpx

KEY = "test-key"
HEADERS = {"X-XNG-AuthToken": KEY, "X-XNG-ApiVersion": "2", "Content-Type": "application/json"}


def errors(response: httpx.Response) -> list[tuple[int, str]]:
    """``(code, pointer)`` of each error of an error body, checking its exact shape."""
    body = response.json()
    found = []
    for entry in body["errors"]:
        assert set(entry) == {"code", "title", "details", "info", "source"}
        assert isinstance(entry["code"], str)
        assert entry["info"] == f"https://docs.crossengage.io/errors#{entry['code']}"
        assert entry["title"]
        assert entry["details"]
        assert set(entry["source"]) == {"pointer"}
        found.append((int(entry["code"]), entry["source"]["pointer"]))
    return found


def user(user_id: str = "42", email: str | None = None, **attributes: Any) -> dict[str, Any]:
    """A valid wire user."""
    return {"id": user_id, "email": email or f"user-{user_id}@example.com", **attributes}
