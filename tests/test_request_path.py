"""The lean request path (issue 14): what the SDK's own httpx client sends is what
``build_request`` would merge, cookies a server sets still go back, and no span is
made while OpenTelemetry has no provider; seen on the exact requests sent."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from activatepro_async import AsyncClient
from activatepro_async._otel import Tracing

from .helpers import API_KEY, OK_ACCEPTED, OK_USER, Recorder, assert_clean, run_python

MakeClient = Callable[..., AsyncClient]
Recorded = Callable[..., tuple[Recorder, AsyncClient]]
BASE = "https://api.example.test"


def merged_by_httpx(
    client: AsyncClient, method: str, path: str, body: bytes | None
) -> httpx.Request:
    """The request httpx's own merge makes of the client's headers (the old path)."""
    headers = client._headers if body is None else client._json_headers
    return client._http.build_request(
        method, BASE + path, content=body, headers=headers, timeout=client._timeout
    )


@pytest.mark.anyio
async def test_the_sdk_client_sends_the_headers_httpx_would_merge(recorded: Recorded) -> None:
    recorder, client = recorded(default_headers={"X-Tenant": "acme", "User-Agent": "my-app/1"})
    async with client:
        await client.get_user("42")
        await client.batch([{"id": "1"}])
        for copy in (client.with_options(default_headers={"X-Tenant": "other"}),):
            await copy.batch([{"id": "2"}])
        sent = recorder.requests
        expected = [
            merged_by_httpx(client, "GET", "/users/42", None),
            merged_by_httpx(client, "POST", "/users/batch", sent[1].content),
            merged_by_httpx(copy, "POST", "/users/batch", sent[2].content),
        ]
    for request, wanted in zip(sent, expected, strict=True):
        # Same URL, header names, values and order: the wire does not change.
        assert str(request.url) == str(wanted.url)
        assert request.headers.raw == wanted.headers.raw
        assert request.extensions["timeout"] == wanted.extensions["timeout"]
    assert dict(sent[2].headers)["x-tenant"] == "other"


@pytest.mark.anyio
async def test_a_copy_with_another_timeout_sends_it(make_client: MakeClient) -> None:
    recorder = Recorder(OK_USER)
    async with make_client(recorder, timeout=30) as client:
        await client.with_options(timeout=httpx.Timeout(5, connect=2)).get_user("42")
        await client.get_user("42")
    assert recorder.requests[0].extensions["timeout"] == httpx.Timeout(5, connect=2).as_dict()
    assert recorder.requests[1].extensions["timeout"] == httpx.Timeout(30).as_dict()


@pytest.mark.anyio
async def test_a_cookie_the_server_sets_goes_back_with_the_next_requests(
    make_client: MakeClient,
) -> None:
    # A load balancer's stickiness cookie: httpx keeps it on the client and sends it.
    sticky = httpx.Response(
        200,
        json={"id": "42", "email": "ada@example.com"},
        headers={"Set-Cookie": "lb=node-7; Path=/"},
    )
    recorder = Recorder(sticky, OK_ACCEPTED)
    async with make_client(recorder) as client:
        await client.get_user("42")
        await client.batch([{"id": "1"}])
        await client.batch([{"id": "2"}])
    assert "cookie" not in recorder.requests[0].headers
    assert [r.headers.get("cookie") for r in recorder.requests[1:]] == ["lb=node-7"] * 2
    # ...and the rest of the headers as httpx would merge them, the key included.
    assert recorder.requests[1].headers["x-xng-authtoken"] == API_KEY


@pytest.mark.anyio
async def test_the_users_own_client_keeps_its_headers_and_params() -> None:
    recorder = Recorder(OK_USER)
    own = httpx.AsyncClient(
        transport=recorder.transport, headers={"X-Gateway": "gw-1"}, params={"tenant": "acme"}
    )
    async with own, AsyncClient(API_KEY, base_url=BASE, http_client=own) as client:
        assert client._prepared is None
        await client.get_user("42")
    (request,) = recorder.requests
    assert request.headers["x-gateway"] == "gw-1"
    assert request.url.params["tenant"] == "acme"
    assert request.headers["x-xng-authtoken"] == API_KEY


def test_the_prepared_headers_show_no_key() -> None:
    client = AsyncClient(API_KEY, base_url=BASE)
    assert API_KEY not in repr(client._prepared)
    assert API_KEY not in repr(vars(client))


@pytest.mark.anyio
async def test_without_a_provider_no_span_is_made(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("opentelemetry")
    from opentelemetry import trace

    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        pytest.skip("a global tracer provider is set in this process")

    def no_span(*args: object) -> None:
        raise AssertionError("a span was made with no provider to record it")

    monkeypatch.setattr(Tracing, "start_try", no_span)
    recorder = Recorder(OK_USER)
    async with make_client(recorder) as client:
        assert client._tracing is not None
        await client.get_user("42")
    assert len(recorder.requests) == 1


def test_a_global_provider_set_after_the_client_gets_its_spans() -> None:
    pytest.importorskip("opentelemetry.sdk")
    script = """
import anyio, httpx
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from activatepro_async import AsyncClient

user = {"id": "42", "email": "a@b.c"}
transport = httpx.MockTransport(lambda r: httpx.Response(200, json=user))

async def main():
    async with AsyncClient("test-key", base_url="https://api.example.test",
                           transport=transport) as client:
        await client.get_user("42")  # no provider yet: no span
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        await client.get_user("42")
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == ["GET /users/{id}"], names

anyio.run(main)
print("done")
"""
    assert_clean(run_python(script))
