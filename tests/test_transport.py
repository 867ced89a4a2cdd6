"""The SDK's own transport: aiohttp on asyncio with the [fast] extra, httpx's own otherwise.

Every test goes through the public ``AsyncClient`` over a real socket on 127.0.0.1:
a small threaded server that answers, drops or cuts the connection as told, or the
served emulator. Async tests run on asyncio and trio; trio always uses httpx's own
transport.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import ssl
import sys
import warnings
from collections.abc import Iterator

import anyio
import httpx
import pytest

from activatepro_async import APIConnectionError, APITimeoutError, AsyncClient, Client
from activatepro_async._transport import AutoTransport, fast_transport_available
from activatepro_async.emulator import Emulator, Faults

from .helpers import API_KEY
from .loopback import (
    SELF_SIGNED,
    TRANSPORTS,
    LoopbackServer,
    assert_picked,
    http_response,
    server_tls,
    use_transport,
)

pytestmark = pytest.mark.anyio

FAST = fast_transport_available()


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    loopback = LoopbackServer()
    yield loopback
    loopback.close()


def _inner(client: AsyncClient) -> AutoTransport:
    transport = client._http._transport
    assert isinstance(transport, AutoTransport)
    return transport


# -- which transport -------------------------------------------------------------------


async def test_requests_go_through_aiohttp_on_asyncio_and_httpx_on_trio(
    server: LoopbackServer, anyio_backend: str
) -> None:
    async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
        user = await client.get_user("42")
        transport = _inner(client)
        uses_aiohttp = anyio_backend == "asyncio" and FAST
        assert (transport._aiohttp is not None) == uses_aiohttp
        assert (transport._default is not None) == (not uses_aiohttp)
    assert user.id == "42"


async def test_without_the_extra_asyncio_uses_httpx_transport(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if httpx-aiohttp were not installed: its import fails.
    monkeypatch.setitem(sys.modules, "httpx_aiohttp", None)
    assert not fast_transport_available()
    async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
        assert (await client.get_user("42")).id == "42"
        assert _inner(client)._aiohttp is None
        assert _inner(client)._default is not None


async def test_a_transport_of_the_callers_own_is_used_as_is(server: LoopbackServer) -> None:
    transport = httpx.AsyncHTTPTransport()
    async with AsyncClient(API_KEY, base_url=server.url, transport=transport) as client:
        assert client._http._transport is transport
        assert (await client.get_user("42")).id == "42"


async def test_pool_is_64_connections_with_tls_verified(server: LoopbackServer) -> None:
    async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
        await client.get_user("42")
        transport = _inner(client)
        assert transport.max_connections == 64
        if transport._aiohttp is not None:
            aiohttp_transport = transport._aiohttp.transport
            assert aiohttp_transport.limits.max_connections == 64
            assert aiohttp_transport.ssl_context.verify_mode == ssl.CERT_REQUIRED
            assert aiohttp_transport.ssl_context.check_hostname
            connector = aiohttp_transport.client.connector  # type: ignore[union-attr]
            assert connector is not None
            assert connector.limit == 64


# -- TLS: trust anchors loaded only where a request can use them -------------------------


#: The same words on every transport and backend (httpx's on trio said only "ConnectError").
REFUSED = r"not sent: .*the server's TLS certificate was refused \(self-signed certificate\)"


def _spy_on_certificate_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every load of trust anchors (a CA bundle, the system's) from now on."""
    if FAST:
        import aiohttp.connector  # noqa: F401 - its import makes contexts of its own
    loads: list[str] = []
    for name in ("load_verify_locations", "load_default_certs", "set_default_verify_paths"):
        original = getattr(ssl.SSLContext, name)

        def spy(
            self: ssl.SSLContext, *args: object, _name: str = name, _do: object = original
        ) -> object:
            loads.append(_name)
            return _do(self, *args)  # type: ignore[operator]

        monkeypatch.setattr(ssl.SSLContext, name, spy)
    return loads


def _tls_context(client: AsyncClient) -> ssl.SSLContext:
    """The TLS context of the inner transport ``client`` sent through."""
    transport = _inner(client)
    if transport._aiohttp is not None:
        return transport._aiohttp.transport.ssl_context
    assert transport._default is not None
    context = transport._default._pool._ssl_context
    assert isinstance(context, ssl.SSLContext)
    return context


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_http_base_url_loads_no_certificates_and_could_not_do_tls_unverified(
    transport: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch, server: LoopbackServer
) -> None:
    use_transport(transport, anyio_backend, monkeypatch)
    loads = _spy_on_certificate_loads(monkeypatch)
    async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
        assert (await client.get_user("42")).id == "42"
        assert_picked(client, transport)
        context = _tls_context(client)
    assert loads == []  # certifi's bundle cost 0.1-0.4 s of CPU per process
    # Were an https request ever sent on it, it would fail, not go unverified.
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_https_refuses_a_certificate_no_ca_vouches_for(
    transport: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_transport(transport, anyio_backend, monkeypatch)
    with LoopbackServer(tls=server_tls()) as server:
        async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
            with pytest.raises(APIConnectionError, match=REFUSED):
                await client.get_user("42")
            assert_picked(client, transport)
            context = _tls_context(client)
        assert server.requests == 0
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0  # certifi's bundle, as before


@pytest.mark.parametrize("tls", [True, False])
async def test_the_auto_transport_never_sends_https_unverified(tls: bool) -> None:
    # tls=False is the SDK's choice for an http:// base URL: an https request
    # through it (the SDK sends none) fails on the certificate.
    with LoopbackServer(tls=server_tls()) as server:
        transport = AutoTransport(httpx.Limits(max_connections=4), tls=tls)
        async with AsyncClient(
            API_KEY, base_url=server.url, max_retries=0, transport=transport
        ) as client:
            with pytest.raises(APIConnectionError, match=REFUSED):
                await client.get_user("42")
        await transport.aclose()
        assert server.requests == 0


async def test_your_own_tls_context_is_used_as_it_is() -> None:
    trusted = ssl.create_default_context(cafile=SELF_SIGNED)  # trusts the test server
    with LoopbackServer(tls=server_tls()) as server:
        transport = httpx.AsyncHTTPTransport(verify=trusted)
        async with AsyncClient(API_KEY, base_url=server.url, transport=transport) as client:
            assert (await client.get_user("42")).id == "42"
        async with (
            httpx.AsyncClient(verify=trusted) as http,
            AsyncClient(API_KEY, base_url=server.url, http_client=http) as client,
        ):
            assert (await client.get_user("42")).id == "42"
        assert server.requests == 2


async def test_bulk_concurrency_is_clamped_to_the_pool(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
        with caplog.at_level(logging.WARNING, "activatepro_async"):
            await client.upsert_many([], concurrency=100)
    assert "max_connections 64" in caplog.text


# -- errors as httpx's own transport reports them ----------------------------------------


async def test_a_dropped_connection_is_a_connection_error_not_a_timeout(
    server: LoopbackServer,
) -> None:
    server.mode = "drop"
    async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.get_user("42")
    assert not isinstance(caught.value, APITimeoutError)
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)


async def test_a_body_cut_short_is_a_remote_protocol_error(server: LoopbackServer) -> None:
    server.mode = "cut"
    async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.get_user("42")
    assert not isinstance(caught.value, APITimeoutError)
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    async with AsyncClient(API_KEY, base_url=url, max_retries=0) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.get_user("42")
    assert not isinstance(caught.value, APITimeoutError)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


async def test_a_dropped_connection_is_retried(server: LoopbackServer) -> None:
    server.mode = "drop"
    async with AsyncClient(API_KEY, base_url=server.url, max_retries=1) as client:
        with pytest.raises(APIConnectionError):
            await client.get_user("42")
    assert server.requests == 2


@pytest.mark.parametrize("fault", ["drop", "truncate"])
async def test_served_emulator_faults_are_connection_errors_then_retried(fault: str) -> None:
    emulator = Emulator(api_keys=(API_KEY,), faults=Faults(schedule=[fault]))
    async with (
        emulator.serve() as base_url,
        AsyncClient(API_KEY, base_url=base_url, max_retries=0) as client,
    ):
        with pytest.raises(APIConnectionError) as caught:
            await client.upsert_user({"id": "1", "email": "ada@example.com"})
        assert not isinstance(caught.value, APITimeoutError)
        assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
        accepted = await client.upsert_user({"id": "1", "email": "ada@example.com"})
    assert accepted.tracking_id


async def test_a_hanging_server_is_a_timeout(server: LoopbackServer) -> None:
    server.mode = "hang"
    async with AsyncClient(API_KEY, base_url=server.url, max_retries=0, timeout=0.2) as client:
        with pytest.raises(APITimeoutError):
            await client.get_user("42")


# -- cancellation and event loops ----------------------------------------------------------


async def test_a_cancelled_request_closes_its_connection(server: LoopbackServer) -> None:
    server.mode = "hang"
    async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.get_user, "42")
            # Cancel once the server holds the request, however slow the first call is.
            assert await anyio.to_thread.run_sync(server.a_request_came.wait, 10)
            tg.cancel_scope.cancel()
        assert tg.cancel_scope.cancel_called
        # The half-done connection is closed, not put back into the pool.
        assert await anyio.to_thread.run_sync(server.a_client_closed.wait, 5)
        server.mode = "ok"
        assert (await client.get_user("42")).id == "42"
        assert server.accepted == 2
    gc.collect()  # an unclosed session or connector would warn here (warnings are errors)


@pytest.mark.skipif(
    not FAST, reason="httpx's own transport keeps one pool, bound to the first loop"
)
def test_a_client_works_on_one_asyncio_loop_then_another(server: LoopbackServer) -> None:
    client = AsyncClient(API_KEY, base_url=server.url, max_retries=0)
    assert asyncio.run(client.get_user("42")).id == "42"
    assert asyncio.run(client.get_user("42")).id == "42"
    asyncio.run(client.aclose())
    gc.collect()
    # The first loop's session was closed as that loop shut down.
    assert server.accepted == 2
    assert server.wait_closed_by_client(2)


@pytest.mark.skipif(
    not FAST, reason="httpx's own transport keeps one pool, bound to the first loop"
)
def test_a_client_used_on_asyncio_then_trio(server: LoopbackServer) -> None:
    client = AsyncClient(API_KEY, base_url=server.url, max_retries=0)
    assert asyncio.run(client.get_user("42")).id == "42"
    assert anyio.run(client.get_user, "42", backend="trio").id == "42"
    anyio.run(client.aclose, backend="trio")
    gc.collect()


def test_the_sync_facade_uses_the_fast_transport(server: LoopbackServer) -> None:
    with Client(API_KEY, base_url=server.url, max_retries=0) as client:
        assert client.get_user("42").id == "42"
        assert client.get_user("42").id == "42"
    assert server.accepted == 1  # one kept-alive connection on the portal's loop
    gc.collect()


# -- large bodies -----------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_body_over_one_mib_goes_out_whole_without_a_warning(
    transport: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiohttp warns (ResourceWarning) for raw bytes over 1 MiB; under -W error, or a
    # test suite's filterwarnings = error (this one's), that failed the request.
    use_transport(transport, anyio_backend, monkeypatch)
    users = [{"id": f"u{i}", "email": f"u{i}@example.com", "bio": "x" * 3000} for i in range(500)]
    with LoopbackServer("ok", http_response(202, b'{"trackingId":"t-1"}')) as server:
        async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
            accepted = await client.batch(users)  # warnings are errors here
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                await client.batch(users)
            assert_picked(client, transport)
    assert accepted.tracking_id == "t-1"
    assert [str(w.message) for w in seen] == []
    head = server.heads[0]
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert length > 1024 * 1024, "the body is over aiohttp's 1 MiB"
