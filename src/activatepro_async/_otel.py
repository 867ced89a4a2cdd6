"""OpenTelemetry spans, when ``opentelemetry-api`` is installed (the ``otel`` extra).

Each try of a request is a CLIENT span named and described after the HTTP
semantic conventions (``GET /users/{id}``: ``http.request.method``,
``url.template``, ``server.address``, ``server.port``,
``http.response.status_code``, ``error.type``); a retry is an event on the try
that failed, with its wait. Each ``upsert_many``/``delete_many`` run is one
span around its tries, with the run's counts.

Nothing else goes in a span: no header, no body, no raw path (ids and emails
are personal data; ``url.template`` names the route instead), so the API key
cannot reach one. Without the package, :func:`tracing` returns ``None`` and the
client does no tracing work at all; the import is tried once.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ._version import __version__
from .errors import BulkError, ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from .bulk import BulkResult

__all__ = ["Tracing", "in_callers_context", "tracing"]

_T = TypeVar("_T")

OTEL_HINT = "pip install 'activatepro-async[otel]'"


@functools.cache
def _api() -> ModuleType | None:
    """``opentelemetry.trace``, or None when the package is not installed (tried once)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace


def in_callers_context(func: Callable[[], Awaitable[_T]]) -> Callable[[], Awaitable[_T]]:
    """``func``, to run on another thread's loop in this thread's OpenTelemetry context.

    The sync ``Client`` runs its calls on its own thread, where the caller's
    current span (a Django view's) is not current: without this its spans
    would start traces of their own.
    """
    if _api() is None:
        return func
    from opentelemetry import context

    parent = context.get_current()

    async def run() -> _T:
        token = context.attach(parent)
        try:
            return await func()
        finally:
            context.detach(token)

    return run


def error_type(exc: BaseException) -> str:
    """``error.type`` of an exception: its fully qualified class name, as semconv says."""
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def tracing(provider: TracerProvider | None, base_url: str) -> Tracing | None:
    """The client's tracing; None when OpenTelemetry is not installed."""
    trace = _api()
    if trace is None:
        if provider is not None:
            raise ConfigurationError(f"tracer_provider= needs opentelemetry-api: {OTEL_HINT}")
        return None
    # Without a provider the global one is used, even if it is set after the client.
    tracer = trace.get_tracer("activatepro_async", __version__, tracer_provider=provider)
    return Tracing(trace, tracer, base_url, global_provider=provider is None)


class Tracing:
    """Starts the spans of one client (and of its copies)."""

    __slots__ = ("_global", "_server", "_trace", "_tracer")

    def __init__(
        self, trace: ModuleType, tracer: Tracer, base_url: str, *, global_provider: bool = False
    ) -> None:
        self._trace = trace
        self._tracer = tracer
        self._global = global_provider
        parts = urlsplit(base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._server: dict[str, Any] = {"server.address": parts.hostname, "server.port": port}

    def active(self) -> bool:
        """Whether spans would be recorded: False while the global provider is unset.

        Then the API's proxy hands out non-recording spans that carry the
        caller's context as it is, so making none changes nothing but the cost
        (about 30 µs per request). Asked per request: a provider set later is
        used from then on.
        """
        return not self._global or not isinstance(
            self._trace.get_tracer_provider(), self._trace.ProxyTracerProvider
        )

    def start_try(self, method: str, template: str, attempt: int) -> Span:
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.template": template,
            **self._server,
        }
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        return self._tracer.start_span(
            f"{method} {template}", kind=self._trace.SpanKind.CLIENT, attributes=attributes
        )

    def use(self, span: Span) -> Any:
        """``span`` as the current one (a transport's own instrumentation nests under it)."""
        # Not recorded as an event: an exception's message and stack are not ours to ship.
        return self._trace.use_span(
            span, end_on_exit=False, record_exception=False, set_status_on_exception=False
        )

    def fail(self, span: Span, kind: str) -> None:
        span.set_attribute("error.type", kind)
        span.set_status(self._trace.Status(self._trace.StatusCode.ERROR))

    @contextmanager
    def run(self, operation: str) -> Iterator[Span]:
        """The span of one bulk run; the caller sets the counts with :func:`set_counts`."""
        with self._tracer.start_as_current_span(
            f"activatepro {operation}_many",
            kind=self._trace.SpanKind.INTERNAL,
            attributes={"activatepro.bulk.operation": operation},
            record_exception=False,  # its message and traceback could hold user data
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BulkError as exc:
                set_counts(span, exc.result)
                self.fail(span, error_type(exc.__cause__ or exc))
                raise
            except BaseException as exc:
                self.fail(span, error_type(exc))
                raise


def set_counts(span: Span, result: BulkResult) -> None:
    span.set_attributes(
        {
            "activatepro.bulk.submitted": result.submitted,
            "activatepro.bulk.accepted": result.accepted,
            "activatepro.bulk.rejected": len(result.rejected),
            "activatepro.bulk.failed": result.failed,
            "activatepro.bulk.chunks": result.chunks,
            "activatepro.bulk.retries": result.retries,
        }
    )
