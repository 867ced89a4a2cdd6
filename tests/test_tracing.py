"""OpenTelemetry: a CLIENT span per try, a retry event per retry, one span per bulk
run, on asyncio and trio and on both transports; the key in none of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from activatepro_async import (
    APIConnectionError,
    AsyncClient,
    AuthenticationError,
    BulkError,
    Client,
    RetryPolicy,
    ServerError,
)
from activatepro_async.emulator import Emulator

from .helpers import FakeTime, Recorder, assert_clean, run_python
from .loopback import TRANSPORTS, assert_picked, closed_port_url, use_transport

KEY = "sk-trace-SECRET-5f3c9a"
BASE = "https://api.example.test"
OK_USER = httpx.Response(200, json={"id": "42", "email": "ada@example.com"})


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def make(
    recorder: Recorder, provider: TracerProvider, fake_time: FakeTime, **kw: Any
) -> AsyncClient:
    retry = RetryPolicy(jitter=None, sleep=fake_time.sleep, clock=fake_time.clock)
    return AsyncClient(
        KEY,
        base_url=BASE,
        transport=recorder.transport,
        tracer_provider=provider,
        retry=kw.pop("retry", retry),
        **kw,
    )


def attrs_of(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def everything_in(spans: tuple[ReadableSpan, ...]) -> str:
    """All a span exporter would ship: names, attributes, events, status, links."""
    shown = []
    for span in spans:
        shown += [span.name, repr(attrs_of(span)), repr(span.status.description)]
        shown += [f"{e.name} {dict(e.attributes or {})}" for e in span.events]
        shown.append(span.to_json())
    return "\n".join(shown)


@pytest.mark.anyio
async def test_each_try_is_a_client_span_and_each_retry_an_event(
    provider: TracerProvider, exporter: InMemorySpanExporter, fake_time: FakeTime
) -> None:
    recorder = Recorder(httpx.Response(503), OK_USER)
    async with make(recorder, provider, fake_time) as client:
        await client.get_user("user-4711")
    first, second = exporter.get_finished_spans()
    for span in (first, second):
        assert span.name == "GET /users/{id}"
        assert span.kind is SpanKind.CLIENT
        assert span.attributes is not None
        assert span.attributes["url.template"] == "/users/{id}"
        assert span.attributes["http.request.method"] == "GET"
        assert span.attributes["server.address"] == "api.example.test"
        assert span.attributes["server.port"] == 443
    assert attrs_of(first)["http.response.status_code"] == 503
    assert attrs_of(first)["error.type"] == "503"
    assert first.status.status_code is StatusCode.ERROR
    (event,) = first.events
    assert event.name == "retry"
    assert dict(event.attributes or {}) == {"activatepro.retry.wait": 0.5}
    assert attrs_of(second)["http.response.status_code"] == 200
    assert attrs_of(second)["http.request.resend_count"] == 1
    assert "error.type" not in attrs_of(second)
    assert second.status.status_code is StatusCode.UNSET
    assert "user-4711" not in everything_in((first, second)), "never the raw id"


@pytest.mark.anyio
async def test_every_route_has_its_template(
    provider: TracerProvider, exporter: InMemorySpanExporter, fake_time: FakeTime
) -> None:
    accepted = httpx.Response(202, json={"trackingId": "t-1"})
    tracking = {"trackingId": "t-1", "stage": "PROCESSED", "total": 1, "success": 1, "error": 0}
    recorder = Recorder(OK_USER)
    async with make(recorder, provider, fake_time) as client:
        await client.get_user_by_email("ada@example.com")
        await client.get_user_by_email("ada@example.com", "shop-de")
        recorder.responses = [accepted]
        await client.upsert_user({"id": "42"})
        await client.delete_user("42")
        await client.batch([{"id": "42"}])
        recorder.responses = [httpx.Response(200, json=tracking)]
        await client.get_tracking("t-1")
    names = [span.name for span in exporter.get_finished_spans()]
    assert names == [
        "GET /users/email/{email}",
        "GET /users/email/{email}/bu/{businessUnit}",
        "PUT /users",
        "DELETE /users/{id}",
        "POST /users/batch",
        "GET /users/track/{trackingId}",
    ]
    assert "ada@example.com" not in everything_in(exporter.get_finished_spans())


@pytest.mark.anyio
async def test_a_try_with_no_answer_has_the_exception_as_error_type(
    provider: TracerProvider, exporter: InMemorySpanExporter, fake_time: FakeTime
) -> None:
    recorder = Recorder(httpx.ConnectError("refused"))
    retry = RetryPolicy(max_retries=1, jitter=None, sleep=fake_time.sleep, clock=fake_time.clock)
    async with make(recorder, provider, fake_time, retry=retry) as client:
        with pytest.raises(APIConnectionError):
            await client.get_user("42")
    first, last = exporter.get_finished_spans()
    for span in (first, last):
        assert attrs_of(span)["error.type"] == "httpx.ConnectError"
        assert "http.response.status_code" not in attrs_of(span)
    assert [e.name for e in first.events] == ["retry"]
    assert last.events == (), "no retry after the last try"


@pytest.mark.anyio
async def test_a_bulk_run_is_one_span_over_its_tries(
    provider: TracerProvider, exporter: InMemorySpanExporter, anyio_backend: str
) -> None:
    emulator = Emulator(api_keys=[KEY])
    users: list[dict[str, Any]] = [{"id": f"u{i}", "email": f"u{i}@example.com"} for i in range(5)]
    users[3]["email"] = "broken"
    users.append({"email": "no-id@example.com"})  # refused locally
    async with AsyncClient(
        KEY, base_url=BASE, transport=emulator.transport(), tracer_provider=provider
    ) as client:
        with pytest.raises(BulkError):
            await client.upsert_many(users, chunk_size=2, concurrency=3)
        await client.delete_many(["u0", "u1"])
    spans = exporter.get_finished_spans()
    runs = [s for s in spans if s.name.startswith("activatepro ")]
    assert [s.name for s in runs] == ["activatepro upsert_many", "activatepro delete_many"]
    upsert, delete = runs
    assert attrs_of(upsert) == {
        "activatepro.bulk.operation": "upsert",
        "activatepro.bulk.submitted": 6,
        "activatepro.bulk.accepted": 4,
        "activatepro.bulk.rejected": 2,
        "activatepro.bulk.failed": 0,
        "activatepro.bulk.chunks": 3,
        "activatepro.bulk.retries": 0,
        "error.type": f"{BulkError.__module__}.BulkError",  # users were left unstored
    }
    assert upsert.status.status_code is StatusCode.ERROR
    assert attrs_of(delete)["activatepro.bulk.accepted"] == 2
    assert delete.status.status_code is StatusCode.UNSET
    for run in runs:
        assert run.kind is SpanKind.INTERNAL
        assert run.parent is None
        assert run.context is not None
        tries = [s for s in spans if s.parent and s.parent.span_id == run.context.span_id]
        assert tries, "the tries nest under their run, through the engine's task group"
        assert {s.name for s in tries} == {"POST /users/batch"}
        assert len(tries) == attrs_of(run)["activatepro.bulk.chunks"]
        assert all(s.context.trace_id == run.context.trace_id for s in tries)  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_run_stopped_early_says_by_what(
    provider: TracerProvider, exporter: InMemorySpanExporter, fake_time: FakeTime
) -> None:
    recorder = Recorder(httpx.Response(401))
    async with make(recorder, provider, fake_time) as client:
        with pytest.raises(BulkError):
            await client.upsert_many([{"id": "1"}, {"id": "2"}], chunk_size=1, concurrency=1)
    (run,) = [s for s in exporter.get_finished_spans() if s.name == "activatepro upsert_many"]
    assert attrs_of(run)["error.type"] == f"{AuthenticationError.__module__}.AuthenticationError"
    assert attrs_of(run)["activatepro.bulk.submitted"] >= 1


@pytest.mark.anyio
async def test_spans_nest_under_the_callers_span(
    provider: TracerProvider, exporter: InMemorySpanExporter, fake_time: FakeTime
) -> None:
    recorder = Recorder(OK_USER)
    tracer = provider.get_tracer("app")
    async with make(recorder, provider, fake_time) as client:
        with tracer.start_as_current_span("handler") as handler:
            await client.get_user("42")
            await client.with_options(timeout=5).get_user("42")
    tries = [s for s in exporter.get_finished_spans() if s.name != "handler"]
    assert len(tries) == 2, "a copy traces as its original"
    assert all(s.parent and s.parent.span_id == handler.get_span_context().span_id for s in tries)


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_spans_on_a_real_socket_on_each_transport(
    transport: str,
    anyio_backend: str,
    monkeypatch: pytest.MonkeyPatch,
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    use_transport(transport, anyio_backend, monkeypatch)
    emulator = Emulator(api_keys=[KEY])
    async with emulator.serve() as url:
        port = httpx.URL(url).port
        async with AsyncClient(KEY, base_url=url, tracer_provider=provider) as client:
            await client.upsert_many(
                [{"id": str(i), "email": f"{i}@example.com"} for i in range(4)], chunk_size=1
            )
            assert_picked(client, transport)
            with pytest.raises(Exception, match="404"):
                await client.get_user("nobody")
    async with AsyncClient(
        KEY, base_url=closed_port_url(), tracer_provider=provider, max_retries=0
    ) as client:
        with pytest.raises(APIConnectionError):
            await client.get_user("42")
    spans = exporter.get_finished_spans()
    (run,) = [s for s in spans if s.name == "activatepro upsert_many"]
    batches = [s for s in spans if s.name == "POST /users/batch"]
    assert len(batches) == 4
    assert run.context is not None
    assert all(s.parent and s.parent.span_id == run.context.span_id for s in batches)
    for span in batches:
        assert attrs_of(span)["server.address"] == "127.0.0.1"
        assert attrs_of(span)["server.port"] == port
        assert attrs_of(span)["http.response.status_code"] == 202
    missing, refused = [s for s in spans if s.name == "GET /users/{id}"]
    assert attrs_of(missing)["error.type"] == "404"
    assert attrs_of(refused)["error.type"] == "httpx.ConnectError"
    assert KEY not in everything_in(spans)


@pytest.mark.anyio
async def test_the_key_is_in_no_span(
    provider: TracerProvider, exporter: InMemorySpanExporter, fake_time: FakeTime
) -> None:
    # A server that echoes the request headers into every error body.
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text=f"bad gateway; you sent {dict(request.headers)}")

    recorder = Recorder(echo)
    retry = RetryPolicy(max_retries=2, sleep=fake_time.sleep, clock=fake_time.clock)
    async with make(
        recorder, provider, fake_time, retry=retry, default_headers={"Authorization": KEY + "-gw"}
    ) as client:
        with pytest.raises(ServerError):
            await client.get_user(KEY)  # even as an id, the template stands in for it
        result = await client.upsert_many([{"id": KEY}], raise_on_failure=False)
    assert result.failed == 1
    spans = exporter.get_finished_spans()
    assert len(spans) == 7
    assert KEY not in everything_in(spans)


def test_the_sync_client_traces_under_the_callers_span(
    backend: str, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    recorder = Recorder(OK_USER)
    tracer = provider.get_tracer("app")
    with Client(
        KEY, base_url=BASE, transport=recorder.transport, tracer_provider=provider, backend=backend
    ) as client:
        with tracer.start_as_current_span("view") as view:
            client.get_user("42")
        client.with_options(timeout=3).get_user("42")  # no current span: a trace of its own
    spans = exporter.get_finished_spans()
    nested, alone, _ = spans
    assert nested.parent is not None
    assert nested.parent.span_id == view.get_span_context().span_id
    assert alone.parent is None


def test_without_opentelemetry_there_is_no_tracing_and_tracer_provider_says_what_to_install() -> (
    None
):
    script = """
import sys
sys.modules["opentelemetry"] = None  # as if not installed
import anyio, httpx
from activatepro_async import AsyncClient, ConfigurationError
from activatepro_async import _otel

async def main():
    user = {"id": "1", "email": "a@b.c"}
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=user))
    async with AsyncClient("test-key", transport=transport) as client:
        assert client._tracing is None
        await client.get_user("1")
    try:
        AsyncClient("test-key", tracer_provider=object())
    except ConfigurationError as exc:
        assert "pip install 'activatepro-async[otel]'" in str(exc), exc
    else:
        raise AssertionError("accepted")
    assert _otel._api.cache_info().misses == 1, "the import is tried once"

anyio.run(main)
print("done")
"""
    assert_clean(run_python(script))


def test_with_the_api_only_spans_cost_nothing_to_set_up() -> None:
    # The API with no SDK configured: the global provider hands out no-op spans.
    client = AsyncClient(KEY, base_url=BASE)
    assert client._tracing is not None
    span = client._tracing.start_try("GET", "/users/{id}", 1)
    assert not span.is_recording()
    span.end()


class _Hang(httpx.AsyncBaseTransport):
    """A server that never answers."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


@pytest.mark.anyio
async def test_a_cancelled_call_still_ends_its_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    async with AsyncClient(
        KEY, base_url=BASE, transport=_Hang(), tracer_provider=provider, timeout=None
    ) as client:
        with anyio.move_on_after(0.05):
            await client.get_user("42")
        with anyio.move_on_after(0.05):
            await client.upsert_many([{"id": "1"}])
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"GET /users/{id}", "POST /users/batch", "activatepro upsert_many"}
    for span in spans.values():
        assert span.end_time is not None
        assert "Cancel" in attrs_of(span)["error.type"], (
            "asyncio's CancelledError, trio's Cancelled"
        )
        assert span.status.status_code is StatusCode.ERROR
