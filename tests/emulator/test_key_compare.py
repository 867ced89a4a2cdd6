"""The emulator compares API keys in constant time, against every key it knows."""

from __future__ import annotations

import hmac

import httpx
import pytest

from activatepro_async.emulator import Emulator

pytestmark = pytest.mark.anyio


async def test_every_key_is_compared_with_compare_digest_even_after_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(sent: bytes, key: bytes) -> bool:
        compared.append((sent, key))
        return real(sent, key)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    emulator = Emulator(api_keys=("first", "second", "third"))
    async with httpx.AsyncClient(transport=emulator.transport(), base_url="http://e") as http:
        response = await http.get(
            "/users/x", headers={"X-XNG-AuthToken": "first", "X-XNG-ApiVersion": "2"}
        )
    assert response.status_code == 404  # authorized: the first key matched
    # No early exit: the time does not tell which key matched.
    assert compared == [(b"first", b"first"), (b"first", b"second"), (b"first", b"third")]
