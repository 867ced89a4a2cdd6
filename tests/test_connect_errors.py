"""A connection that cannot be made says so, in the OS's words, on both transports."""

from __future__ import annotations

import pytest

from activatepro_async import APIConnectionError, AsyncClient, Client

from .helpers import API_KEY
from .loopback import TRANSPORTS, assert_picked, closed_port_url, use_transport


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refused_connection_says_refused_and_not_sent(
    transport: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_transport(transport, anyio_backend, monkeypatch)
    url = closed_port_url()
    async with AsyncClient(API_KEY, base_url=url, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.get_user("42")
        assert_picked(client, transport)
    message = str(caught.value)
    where = url.removeprefix("http://")
    assert message.startswith(f"GET /users/42 was not sent: cannot connect to {where}: ")
    assert "connection refused" in message
    # Not aiohttp's TLS wording on a plain-http URL, nor anyio's "attempts".
    for wrong in ("ssl:", "attempts", "no complete response"):
        assert wrong not in message
    # What __cause__ says (the httpx error) is just as true on the fast transport.
    if transport == "aiohttp":
        assert str(caught.value.__cause__) == f"Cannot connect to {where}: connection refused"


def test_the_sync_client_says_refused_too() -> None:
    with (
        Client(API_KEY, base_url=closed_port_url(), max_retries=0) as client,
        pytest.raises(APIConnectionError, match=r"was not sent: cannot connect to .*refused"),
    ):
        client.get_user("42")


@pytest.mark.anyio
async def test_a_host_that_does_not_resolve_says_so() -> None:
    # ".invalid" never resolves (RFC 6761); nothing leaves the machine.
    async with AsyncClient(API_KEY, base_url="http://no-such-host.invalid", max_retries=0) as c:
        with pytest.raises(APIConnectionError) as caught:
            await c.get_user("42")
    message = str(caught.value)
    assert "was not sent: cannot connect to no-such-host.invalid:80: " in message
    assert "ssl:" not in message
