"""``AsyncClient``: one method per API call, and the one path every request takes.

The path of a request, top to bottom: a public method builds the path and body,
:meth:`AsyncClient._request` sends it with retries (:mod:`._retry`), and
:func:`_status_error` maps an error response to the exception tree of
:mod:`.errors`. Successful bodies are read by the converter of :mod:`.models`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import anyio
import attrs
import cattrs
import httpx

from ._columnar import ArrowStream
from ._engine import run_bulk
from ._options import (
    NOT_GIVEN,
    NotGiven,
    RedactedHeaders,
    check_headers,
    check_timeout,
    merge_headers,
    redacted_request,
    user_agent,
)
from ._otel import Tracing, error_type, set_counts, tracing
from ._retry import (
    RETRY_AFTER_STATUSES,
    RETRYABLE_STATUSES,
    RetryEvent,
    RetryPolicy,
    is_retryable_exception,
    parse_retry_after,
)
from ._transport import AutoTransport, connect_failure_reason
from ._wire import DEFAULT_MAX_CHUNK_BYTES, MAX_BATCH_ITEMS, encode_json
from .bulk import BulkProgress, BulkResult, ChunkOutcome, Operation
from .errors import (
    APIConnectionError,
    ApiError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TrackingTimeoutError,
    UnexpectedResponseError,
    ValidationError,
)
from .models import (
    Accepted,
    BatchAccepted,
    DeletedItem,
    TrackingStatus,
    User,
    converter,
    deleted_to_wire,
    json_type,
    tracking_id_from_wire,
    user_to_wire,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

    from opentelemetry.trace import TracerProvider

    from .incremental import SyncResult

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_BATCH_ITEMS",
    "MAX_URL_LENGTH",
    "NOT_GIVEN",
    "AsyncClient",
    "NotGiven",
]

logger = logging.getLogger("activatepro_async")

DEFAULT_BASE_URL = "https://api.crossengage.io"
#: The longest URL a request may have, percent-encoded: httpx's own limit.
MAX_URL_LENGTH = 65_536
API_KEY_ENV = "ACTIVATEPRO_API_KEY"
BASE_URL_ENV = "ACTIVATEPRO_BASE_URL"

_T = TypeVar("_T")


class _Secret:
    """Holds the API key so that no repr, log line or traceback local shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    def redact(self, text: str) -> str:
        return text.replace(self._value, "***") if self._value in text else text

    def redact_error(self, error: ApiError) -> ApiError:
        """``error`` with the key out of its free text; its code and pointer are data, kept."""
        info = None if error.info is None else self.redact(error.info)
        title, details = self.redact(error.title), self.redact(error.details)
        return attrs.evolve(error, title=title, details=details, info=info)


def _check_api_key(api_key: str | None) -> str:
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV)
    if api_key is None or not api_key.strip():
        raise ConfigurationError(f"no API key: pass api_key= or set {API_KEY_ENV}")
    if not api_key.isascii() or not api_key.isprintable() or api_key != api_key.strip():
        # CR/LF would split the header; non-ASCII cannot travel in it at all.
        raise ConfigurationError(
            "the API key holds characters that cannot go in an HTTP header (line breaks, "
            "spaces at the ends or non-ASCII): copy it again from Settings > API keys"
        )
    return api_key


def _check_base_url(base_url: str | None) -> str:
    """``base_url`` without its trailing ``/``, once sure every request can be built on it.

    Whatever is wrong is a :class:`ConfigurationError` here, not an httpx error
    from the first call.
    """
    if base_url is None:
        base_url = os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    where = f"(pass base_url= or set {BASE_URL_ENV})"
    if not isinstance(base_url, str):
        raise ConfigurationError(f"base_url must be a str, got {type(base_url).__name__} {where}")
    # A URL with "@" may hold a password: the messages do not repeat it.
    shown = "(not shown: it may hold a password)" if "@" in base_url else repr(base_url)
    if len(shown) > 200:
        shown = shown[:200] + "..."
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - raises for a port that is not a number in 0-65535
        # What every request builds, to the letter (an IPv4 address out of range...).
        httpx.URL(base_url.rstrip("/") + "/users/x")
    except (ValueError, httpx.InvalidURL) as exc:
        raise ConfigurationError(f"base_url {shown} is not a valid URL: {exc} {where}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            f"base_url must be an http:// or https:// URL, got {shown} {where}"
        )
    problem = None
    if parts.username is not None or parts.password is not None:
        problem = "may not hold a user name or password (the API key is the credential)"
    elif not parts.hostname:
        problem = "has no host"
    elif any(char.isspace() or not char.isprintable() for char in base_url):
        problem = "may not hold spaces or line breaks"
    elif parts.query or parts.fragment:
        problem = "may not have a query or fragment"
    if problem is not None:
        raise ConfigurationError(f"base_url {shown} {problem} {where}")
    return base_url.rstrip("/")


def path_segment(value: str, what: str) -> str:
    """``value`` percent-encoded as exactly one path segment.

    ``/``, ``?``, ``#``, ``%`` and everything not unreserved are encoded; the dot
    segments ``.`` and ``..`` are encoded too, since clients and servers remove
    them from paths (``/users/..`` would become ``/``).
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


def _pool_limit(http: httpx.AsyncClient) -> int | None:
    """``max_connections`` of an httpx client on its default transport, if visible."""
    transport = getattr(http, "_transport", None)
    if isinstance(transport, AutoTransport):  # the SDK's own client
        return transport.max_connections
    pool = getattr(transport, "_pool", None)
    limit = getattr(pool, "_max_connections", None)
    return limit if isinstance(limit, int) and limit > 0 else None


@attrs.frozen
class _BulkSender:
    """The client as the bulk engine's :class:`~.bulk.BatchSender`: the whole seam."""

    client: AsyncClient

    @property
    def max_connections(self) -> int | None:
        return _pool_limit(self.client._http)

    async def send_batch(
        self, body: bytes, *, on_retry: Callable[[RetryEvent], object]
    ) -> BatchAccepted:
        return await self.client._send_batch(body, on_retry=on_retry)

    async def wait_for_tracking(
        self,
        tracking_id: str,
        *,
        timeout: float = 300.0,  # noqa: ASYNC109 - the give-up time of wait_for_tracking
    ) -> TrackingStatus:
        return await self.client.wait_for_tracking(tracking_id, timeout=timeout)


#: What :func:`_parse_error_body` gives for a body without a ``trackingId`` key.
_NO_TRACKING_ID = object()


def _parse_error_body(text: str, secret: _Secret) -> tuple[list[ApiError], object]:
    """The ``errors`` and raw ``trackingId`` of an error body; nothing if it is not JSON.

    The body is read as it came; then only the free text of each error (title,
    details, info) is redacted. Redacting first would change what is read
    whenever the key's text occurs in the body: a test key ``k`` is in
    ``"trackingId"``, a key ``1`` in the pointer ``/updated/1/email``.
    """
    try:
        data = json.loads(text) if text else None
    except (ValueError, RecursionError):  # not JSON, or nested too deep to read
        return [], _NO_TRACKING_ID
    if not isinstance(data, dict):
        return [], _NO_TRACKING_ID
    errors: list[ApiError] = []
    raw_errors = data.get("errors")
    if isinstance(raw_errors, list):
        for raw in raw_errors:
            if not isinstance(raw, dict):
                continue
            try:
                error = converter.structure(raw, ApiError)
            except (ValueError, TypeError, cattrs.BaseValidationError):
                # A code that is not a number: keep what we can read.
                error = ApiError(code=0, title=str(raw.get("title", "")), details=str(raw))
            errors.append(secret.redact_error(error))
    return errors, data.get("trackingId", _NO_TRACKING_ID)


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}

_HINTS: dict[int, str] = {
    401: f"check api_key / {API_KEY_ENV}",
    429: "the API is rate limiting: lower the concurrency or retry later",
}


def _status_error(
    response: httpx.Response, method: str, path: str, secret: _Secret
) -> APIStatusError:
    status = response.status_code
    errors, raw_tracking_id = _parse_error_body(response.text, secret)
    tracking_id = None
    if raw_tracking_id is not _NO_TRACKING_ID:
        try:
            tracking_id = tracking_id_from_wire(raw_tracking_id)
        except (TypeError, ValueError) as exc:
            if status == 400:
                # A partial success (some users taken) that names no tracking id to
                # follow them by: neither it nor a refusal can be reported truthfully.
                raise _unexpected(
                    response, "a partial success it can follow", str(exc), secret
                ) from None
    body = secret.redact(response.text)
    cls = _STATUS_ERRORS.get(status) or (ServerError if status >= 500 else APIStatusError)
    reason = response.reason_phrase or ""
    message = f"{status} {reason} on {method} {path}".replace("  ", " ")
    if errors:
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        message += f": {shown}{more}"
    elif body.strip():
        snippet = " ".join(body.split())[:200]
        message += f": {snippet}"
    if status in _HINTS:
        message += f" ({_HINTS[status]})"
    message = secret.redact(message)  # the pointers of its errors, too
    retry_after = (
        parse_retry_after(response.headers.get("Retry-After"))
        if status in RETRY_AFTER_STATUSES
        else None
    )
    return cls(
        message,
        status_code=status,
        errors=errors,
        body=body,
        tracking_id=tracking_id,
        method=method,
        path=path,
        retry_after=retry_after,
    )


def _reason(exc: BaseException) -> str:
    """What is wrong with a body, from the first leaf of a cattrs error tree."""
    while isinstance(exc, cattrs.BaseValidationError) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, KeyError) and exc.args:
        return f"no {exc.args[0]}"
    if isinstance(exc, (json.JSONDecodeError, RecursionError)):
        return f"not JSON that can be read: {exc}"
    return str(exc) or type(exc).__name__


def _unexpected(
    response: httpx.Response, expected: str, reason: str, secret: _Secret
) -> UnexpectedResponseError:
    """A response the SDK cannot act on: not ``expected``, because of ``reason``."""
    text = secret.redact(response.text)
    snippet = " ".join(text.split())[:200]
    path = response.request.url.raw_path.decode("ascii", "replace")[:100]
    return UnexpectedResponseError(
        secret.redact(
            f"{response.status_code} from {response.request.method} {path} is not "
            f"{expected} ({reason}): {snippet!r} (is a proxy answering instead of the "
            "API? check base_url)"
        ),
        status_code=response.status_code,
        body=text,
    )


def _connection_error(
    exc: httpx.RequestError, method: str, path: str, server: str
) -> APIConnectionError:
    """The SDK's error for a request that got no answer; ``server`` is ``host:port``.

    Read before the chain of ``exc`` is dropped: the OS's reason is down there.
    """
    kind = type(exc).__name__
    detail = str(exc) or kind
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(
            f"{method} {path} timed out ({kind}): raise timeout= or check the network",
            method=method,
            path=path,
        )
    if isinstance(exc, httpx.ConnectError):
        # No connection, so nothing was sent. The transports word this badly
        # ("All connection attempts failed", aiohttp's "ssl:default" on plain http).
        reason = connect_failure_reason(exc) or detail
        return APIConnectionError(
            f"{method} {path} was not sent: cannot connect to {server}: {reason} "
            "(check base_url, and that the server is up and reachable)",
            method=method,
            path=path,
        )
    return APIConnectionError(
        f"{method} {path} got no complete response ({kind}: {detail})", method=method, path=path
    )


def _forget_locals(exc: BaseException) -> None:
    """Clear the locals of the frames that ``exc``, and all it chains, came up through.

    Below the SDK, the transport's frames hold the request headers, and so the
    key, in their locals (aiohttp's ``headers``, h11's ``Request`` event); crash
    reporters, ``pytest --showlocals`` and ``TracebackException(capture_locals=True)``
    show every local of every frame. The frames stay, with their files and lines.
    Those are finished frames; ``clear_frames`` skips one still running (ours).
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)
        todo += [error.__cause__, error.__context__, *getattr(error, "exceptions", ())]


class _Body(httpx.AsyncByteStream):
    """A request body of one ``bytes``, iterated without an async generator.

    httpx's own stream for ``content=bytes`` yields it from an async generator,
    and httpcore leaves that generator unfinished when a send fails mid-body (a
    timeout, a dropped connection); trio then warns as it collects it. This
    iterator has no frame to leave behind. ``request.content`` stays readable.
    """

    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __aiter__(self) -> _OneChunk:
        return _OneChunk(self._data)


class _OneChunk:
    __slots__ = ("_data",)

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> _OneChunk:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, None
        if data is None:
            raise StopAsyncIteration
        return data


class _Prepared:
    """What every request of an SDK-made httpx client carries, merged once (see _send_once).

    httpx merges the client's headers with a request's on every ``build_request``
    (60-80 µs per request under cProfile, benchmarks/PROFILE.md section 10); the
    SDK's own client has no headers, cookies or params a user could change, so
    the merge is done when the client is configured, and the batch URL parsed
    once. Its repr hides the headers (the key).
    """

    __slots__ = ("headers", "json_headers", "timeout", "urls")

    def __init__(
        self,
        http: httpx.AsyncClient,
        headers: Mapping[str, str],
        json_headers: Mapping[str, str],
        timeout: httpx.Timeout,
        base_url: str,
    ) -> None:
        # What build_request makes: the client's headers, then ours on top.
        self.headers = httpx.Headers(http.headers)
        self.headers.update(headers)
        self.json_headers = httpx.Headers(http.headers)
        self.json_headers.update(json_headers)
        self.timeout = timeout.as_dict()
        # The URL every bulk chunk goes to, parsed once (httpx parses a str per request).
        batch = base_url + "/users/batch"
        self.urls = {batch: httpx.URL(batch)}

    def __repr__(self) -> str:
        return "<prepared request headers>"


def _closed_error(method: str, path: str, *, before: bool = False) -> APIConnectionError:
    what = (
        "was not sent: the client was closed"
        if before
        else ("was cut short: the client was closed while it ran")
    )
    return APIConnectionError(
        f"{method} {path} {what} (aclose() or the end of `async with`): "
        "close it after its calls end",
        method=method,
        path=path,
    )


class AsyncClient:
    """The ActivatePro User Profile API v2, asynchronously (asyncio or trio).

    >>> async with AsyncClient(api_key="...") as client:
    ...     user = await client.get_user("42")

    Args:
        api_key: your Master API key; falls back to ``ACTIVATEPRO_API_KEY``.
        base_url: falls back to ``ACTIVATEPRO_BASE_URL``, then the production API.
        timeout: seconds for each try of a request, in all (connecting, sending,
            waiting, reading): a server that trickles its answer byte by byte
            cannot stretch a try past it. An ``httpx.Timeout`` sets each phase;
            its largest phase is then the bound of the whole try. ``None``: no
            timeout (the retry policy's ``total_timeout`` still bounds a call).
        max_retries: how often a failed request is tried again (shorthand for
            ``retry=RetryPolicy(max_retries=...)``).
        retry: the full :class:`RetryPolicy`.
        default_headers: headers sent with every request (a gateway's token,
            a tenant id). A ``User-Agent`` among them, or set on your
            ``http_client``, is kept with ``activatepro-async/<version>``
            appended. The headers the SDK sets itself (the key's
            ``X-XNG-AuthToken``, ``X-XNG-ApiVersion``, ``Accept``,
            ``Content-Type``, framing) are refused with a
            :class:`ConfigurationError`.
        http_client: your own ``httpx.AsyncClient`` (proxies, custom CA, event
            hooks, limits). The SDK uses it as it is and does not close it.
        transport: an ``httpx.AsyncBaseTransport`` for the client the SDK makes,
            e.g. ``Emulator().transport()`` or ``httpx.MockTransport`` in tests.
        tracer_provider: the OpenTelemetry ``TracerProvider`` of the spans
            (needs the ``otel`` extra); without it, the global one.

    :meth:`with_options` makes a copy with other settings on the same
    connections.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = 30.0,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._secret = _Secret(_check_api_key(api_key))
        self.base_url = _check_base_url(base_url)
        if http_client is not None and transport is not None:
            raise ConfigurationError(
                "pass http_client= or transport=, not both: set the transport on your "
                "own httpx.AsyncClient instead"
            )
        policy = retry if retry is not None else RetryPolicy()
        if max_retries is not None:
            policy = attrs.evolve(policy, max_retries=max_retries)
        parts = urlsplit(self.base_url)
        self._server = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
        self._tracing: Tracing | None = tracing(tracer_provider, self.base_url)
        self._configure(check_timeout(timeout), policy, check_headers(default_headers), http_client)
        self._owns_http = http_client is None
        self._http = (
            http_client
            if http_client is not None
            else self._make_http_client(transport, tls=parts.scheme == "https")
        )
        # Only the client the SDK made: a user's own may have headers, params or
        # hooks that build_request merges in.
        self._made_http = http_client is None
        self._prepare()

    def _configure(
        self,
        timeout: httpx.Timeout,
        retry: RetryPolicy,
        default_headers: RedactedHeaders,
        http_client: httpx.AsyncClient | None,
    ) -> None:
        """Set what :meth:`with_options` may change; the arguments are checked already."""
        self.retry = retry
        self._timeout = timeout
        phases = timeout.as_dict().values()
        self._try_deadline: float | None = max((p for p in phases if p is not None), default=None)
        self._default_headers = default_headers
        self._user_agent = user_agent(default_headers, http_client)
        self._headers = merge_headers(
            default_headers,
            {
                "X-XNG-AuthToken": self._secret.get(),
                "X-XNG-ApiVersion": "2",
                "Accept": "application/json",
                "User-Agent": self._user_agent,
            },
        )
        self._json_headers = merge_headers(self._headers, {"Content-Type": "application/json"})

    def with_options(
        self,
        *,
        timeout: float | httpx.Timeout | NotGiven | None = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        retry: RetryPolicy | NotGiven = NOT_GIVEN,
        default_headers: Mapping[str, str] | NotGiven = NOT_GIVEN,
    ) -> AsyncClient:
        """A copy of this client with other settings, on the same connections.

        What is not given is kept. ``max_retries`` applies to ``retry`` if both
        are given, else to this client's policy. ``default_headers`` are added
        to this client's (a name given again replaces the old value).

        >>> patient = client.with_options(timeout=120, max_retries=10)
        >>> user = await patient.get_user("42")

        The copy shares this client's connection pool, its key, base URL and
        tracing. Closing the copy does nothing (it never closes the pool);
        closing this client closes the pool, and the copy's calls then raise
        :class:`APIConnectionError` saying they were not sent. A copy may be
        copied again.
        """
        policy = self.retry if isinstance(retry, NotGiven) else retry
        if not isinstance(policy, RetryPolicy):
            raise ConfigurationError(f"retry must be a RetryPolicy, got {type(policy).__name__}")
        if not isinstance(max_retries, NotGiven):
            policy = attrs.evolve(policy, max_retries=max_retries)
        headers = self._default_headers
        if not isinstance(default_headers, NotGiven):
            headers = merge_headers(headers, check_headers(default_headers))
        clone = copy.copy(self)
        clone._owns_http = False
        clone._configure(
            self._timeout if isinstance(timeout, NotGiven) else check_timeout(timeout),
            policy,
            headers,
            self._http,
        )
        clone._prepare()
        return clone

    def _prepare(self) -> None:
        self._prepared = (
            _Prepared(self._http, self._headers, self._json_headers, self._timeout, self.base_url)
            if self._made_http
            else None
        )

    def _make_http_client(
        self, transport: httpx.AsyncBaseTransport | None, *, tls: bool
    ) -> httpx.AsyncClient:
        # HTTP/1.1 on a pool of connections: measured faster than HTTP/2 on one
        # connection for concurrent large uploads (see the bulk engine). Unless a
        # transport is given, requests on asyncio go through aiohttp when the
        # [fast] extra is installed: about 0.4x the CPU per request of httpx's
        # own transport (benchmarks/PROFILE.md), which trio keeps. An http:// base
        # URL loads no certificates (redirects are not followed: every request of
        # this client goes to the base URL's scheme).
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        return httpx.AsyncClient(
            transport=transport if transport is not None else AutoTransport(limits, tls=tls),
            timeout=self._timeout,
            limits=limits,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"<AsyncClient base_url={self.base_url!r}>"

    # -- lifetime ----------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connections the SDK opened (not those of your own ``http_client``)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the API -----------------------------------------------------------

    async def get_user(self, user_id: str) -> User:
        """The stored user with this id; :class:`NotFoundError` if there is none."""
        path = "/users/" + path_segment(user_id, "user_id")
        return self._read(await self._request("GET", path, template="/users/{id}"), User)

    async def get_user_by_email(self, email: str, business_unit: str | None = None) -> User:
        """The user with this email (case insensitive, exact).

        Without ``business_unit`` it finds the user that has none; with one, the
        user of that business unit. :class:`NotFoundError` if there is none.
        """
        path = "/users/email/" + path_segment(email, "email")
        template = "/users/email/{email}"
        if business_unit is not None:
            path += "/bu/" + path_segment(business_unit, "business_unit")
            template += "/bu/{businessUnit}"
        return self._read(await self._request("GET", path, template=template), User)

    async def upsert_user(self, user: User | Mapping[str, Any]) -> Accepted:
        """Create the user, or update the keys it carries (a partial update).

        Returns once the API has queued the change; the change is visible after
        its tracking id reaches ``PROCESSED`` (see :meth:`wait_for_tracking`).
        """
        body = encode_json(user_to_wire(user))
        return self._read(await self._request("PUT", "/users", content=body), Accepted)

    async def delete_user(self, user_id: str) -> Accepted:
        """Queue the deletion of a user (unknown ids succeed too)."""
        path = "/users/" + path_segment(user_id, "user_id")
        return self._read(await self._request("DELETE", path, template="/users/{id}"), Accepted)

    async def batch(
        self,
        updated: Iterable[User | Mapping[str, Any]] = (),
        deleted: Iterable[DeletedItem] = (),
    ) -> BatchAccepted:
        """One ``POST /users/batch`` of at most 1000 items in all.

        ``deleted`` takes user ids, :class:`User`s or wire mappings. When some
        items are invalid the API processes the rest: the result then carries
        ``errors`` with pointers such as ``/updated/3/email``. A batch refused as
        a whole raises :class:`ValidationError`. For more than 1000 users, use
        :meth:`upsert_many`.
        """
        body = {
            "updated": [user_to_wire(u) for u in updated],
            "deleted": [deleted_to_wire(d) for d in deleted],
        }
        count = len(body["updated"]) + len(body["deleted"])
        if count == 0:
            raise ValueError("an empty batch: pass updated= and/or deleted= items")
        if count > MAX_BATCH_ITEMS:
            raise ValueError(
                f"a batch holds at most {MAX_BATCH_ITEMS} items, got {count}: "
                "use upsert_many() / delete_many(), which split any number of users"
            )
        return await self._send_batch(encode_json(body))

    async def _send_batch(
        self, body: bytes, *, on_retry: Callable[[RetryEvent], object] | None = None
    ) -> BatchAccepted:
        """POST an encoded batch body; a 400 with a tracking id is a partial success."""
        try:
            response = await self._request("POST", "/users/batch", content=body, on_retry=on_retry)
        except ValidationError as exc:
            if exc.tracking_id is None:
                raise
            return BatchAccepted(tracking_id=exc.tracking_id, errors=exc.errors)
        return self._read(response, BatchAccepted)

    async def get_tracking(self, tracking_id: str) -> TrackingStatus:
        """The processing state of a write; :class:`NotFoundError` once 24 h old."""
        path = "/users/track/" + path_segment(tracking_id, "tracking_id")
        response = await self._request("GET", path, template="/users/track/{trackingId}")
        return self._read(response, TrackingStatus)

    async def wait_for_tracking(
        self,
        tracking_id: str,
        *,
        timeout: float = 300.0,  # noqa: ASYNC109 - the API of the issue; a give-up time, not a cancel
        poll_interval: float = 0.5,
        max_poll_interval: float = 10.0,
    ) -> TrackingStatus:
        """Poll the tracking id until ``PROCESSED``; the intervals grow by half each time.

        Raises :class:`TrackingTimeoutError` after ``timeout`` seconds.

        >>> accepted = await client.upsert_user(user)
        >>> status = await client.wait_for_tracking(accepted.tracking_id)
        """
        if poll_interval <= 0:
            raise ValueError("poll_interval must be > 0")
        clock, sleep = self.retry.clock, self.retry.sleep
        deadline = clock() + timeout
        interval = poll_interval
        while True:
            status = await self.get_tracking(tracking_id)
            if status.done:
                return status
            remaining = deadline - clock()
            if remaining <= 0:
                raise TrackingTimeoutError(
                    f"tracking id {tracking_id} still {status.stage.value} after {timeout:g} s "
                    f"({status.success + status.error} of {status.total} done): "
                    "wait longer (timeout=) or check again later with get_tracking()",
                    tracking_id=tracking_id,
                    last_status=status,
                )
            await sleep(min(interval, remaining))
            interval = min(interval * 1.5, max_poll_interval)

    # -- bulk ----------------------------------------------------------------

    async def upsert_many(
        self,
        users: Iterable[User | Mapping[str, Any]]
        | AsyncIterable[User | Mapping[str, Any]]
        | ArrowStream
        | Iterable[ArrowStream],
        *,
        chunk_size: int = MAX_BATCH_ITEMS,
        concurrency: int = 8,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        wait: bool = False,
        wait_timeout: float = 300.0,
        on_progress: Callable[[BulkProgress], object] | None = None,
        on_chunk: Callable[[ChunkOutcome], object] | None = None,
        raise_on_failure: bool = True,
    ) -> BulkResult:
        r"""Create or update any number of users, in concurrent batches; nothing is lost.

        ``users`` is any iterable or async iterable of :class:`User`s or wire
        mappings, e.g. a generator over a 10-million-row file: it is read lazily
        and only the chunks in flight are held in memory. They are sent in
        chunks of at most ``chunk_size`` (at most 1000, the API's limit) and
        ``max_chunk_bytes`` of JSON, by at most ``concurrency`` requests at a
        time, each with the client's retries. ``concurrency`` is lowered to the
        HTTP pool's ``max_connections`` (64 for the SDK's own pool; that of your
        ``http_client`` when it uses httpx's default transport; with another
        transport, keep it within that transport's limit yourself). When the
        API answers 429 or 503 the run halves its concurrency, and raises it
        again by one per round of successful calls, never above ``concurrency``.

        >>> result = await client.upsert_many(users, on_progress=print)
        >>> result.accepted, len(result.rejected), result.tracking_ids[:1]

        The :class:`BulkResult` accounts for every item read
        (``accepted + len(rejected) + failed == submitted``):

        - *rejected*: users the API refused (a batch 400 names them by JSON
          pointer, mapped back to the user's id and input position), and items
          refused locally without being sent: not a ``User``/mapping, no id,
          not encodable as JSON (NaN, a naive datetime), or over the API's
          1 MiB per-user limit.
        - *failed chunks*: chunks whose request failed after all retries, with
          their user ids and the exception; the run goes on with the rest.

        ``wait=True`` then polls every tracking id to ``PROCESSED`` (at most
        ``concurrency`` at a time, each for up to ``wait_timeout`` seconds) and
        adds the server's success and error totals to the result.
        ``on_progress`` (a plain or async callable) gets a :class:`BulkProgress`
        after each chunk; calls never overlap.

        ``on_chunk`` (a plain or async callable) gets a :class:`ChunkOutcome`
        as users are settled: one per chunk (its index, its users' positions
        and ids, how many the API accepted, the :class:`RejectedUser`\ s it
        named, its tracking id, or the exception it failed with), and one per
        group of users refused locally (``index`` ``None``), before the chunks
        sent after them. So a service can stream rejects to its own sink, or
        journal accepted chunks, as they happen. The guarantee:

        - *Exactly once.* Each user read is in exactly one outcome handed to
          ``on_chunk``: the outcomes' ``positions`` partition ``range(submitted)``
          and add up to the :class:`BulkResult` (``accepted``, ``rejected``,
          ``failed_chunks``). This holds for a run that ends (returns, or
          raises :class:`BulkError` for failures) and for one that stops early
          (a 401/403, an exception from ``users``): the chunks then unfinished
          fail with the exception that stopped the run, and ``on_chunk`` gets
          them before :class:`BulkError` is raised, so what the hook saw and
          ``BulkError.result`` agree. All outcomes come before ``wait=True``
          polls.
        - *Not on a broken hook or a cancellation.* If ``on_chunk`` or
          ``on_progress`` raises, neither is called again and the run stops
          (:class:`BulkError`, its ``.result`` accounts for every user); if the
          call is cancelled from outside, no more calls are made (the log
          record's ``bulk_result`` accounts for every user). An async hook that
          is awaiting when the run stops may be cancelled in that await; it
          was called with that outcome all the same.

        Calls of ``on_chunk`` and ``on_progress`` never overlap; a chunk's
        outcome comes before its :class:`BulkProgress`.

        Raises :class:`BulkError` (``.result`` holds the :class:`BulkResult`)
        when anything was rejected or failed (with ``wait=True``, also when the
        server could not apply some users or a tracking id could not be
        followed), unless ``raise_on_failure=False``;
        and always, at once, when the run must stop early: a 401 or 403 (every
        other chunk would fail alike), an exception from ``users`` (what was
        read is sent first) or from ``on_progress``. Cancelling the call (a
        timeout, Ctrl-C) cancels every request of the run and lets the
        cancellation through unchanged, with no task left running; the counts
        up to then are those of the last ``on_progress`` call.

        ``users`` may also be columnar: a ``pyarrow.Table``, a ``RecordBatch``,
        a ``RecordBatchReader`` or any iterable of record batches, or anything
        exporting ``__arrow_c_stream__`` (a Polars DataFrame). It is read
        batch by batch and encoded column by column, with the dict path's
        meaning: column names are keys, a null cell is left out, integer ids
        are sent as strings (needs ``pip install 'activatepro-async[arrow]'``;
        docs/guides/columnar.md). One iterable may also mix record batches (or
        tables, each of its own schema) with dicts and Users: positions go on
        across both in input order, and a batch ends the chunk of the users
        before it (a reader that falls back to dicts for some rows sends one run).

        With concurrency above 1, chunks may be applied out of input order:
        if the same id appears twice in different chunks, which write wins is
        not defined (within one chunk, input order holds).
        """
        return await self._run_bulk(
            users,
            operation="upsert",
            chunk_size=chunk_size,
            concurrency=concurrency,
            max_chunk_bytes=max_chunk_bytes,
            wait=wait,
            wait_timeout=wait_timeout,
            on_progress=on_progress,
            on_chunk=on_chunk,
            raise_on_failure=raise_on_failure,
        )

    async def delete_many(
        self,
        user_ids: Iterable[DeletedItem]
        | AsyncIterable[DeletedItem]
        | ArrowStream
        | Iterable[ArrowStream],
        *,
        chunk_size: int = MAX_BATCH_ITEMS,
        concurrency: int = 8,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        wait: bool = False,
        wait_timeout: float = 300.0,
        on_progress: Callable[[BulkProgress], object] | None = None,
        on_chunk: Callable[[ChunkOutcome], object] | None = None,
        raise_on_failure: bool = True,
    ) -> BulkResult:
        """Delete any number of users, in concurrent batches (as :meth:`upsert_many`).

        ``user_ids`` holds ids (``str``), :class:`User`s or wire mappings with
        an ``"id"``, or columnar input with an ``id`` column (every column is
        sent, as for mappings: select the ones to send), or ids and record
        batches mixed in one iterable; unknown ids succeed, as for
        :meth:`delete_user`.

        >>> result = await client.delete_many(line.strip() for line in open("ids.txt"))
        """
        return await self._run_bulk(
            user_ids,
            operation="delete",
            chunk_size=chunk_size,
            concurrency=concurrency,
            max_chunk_bytes=max_chunk_bytes,
            wait=wait,
            wait_timeout=wait_timeout,
            on_progress=on_progress,
            on_chunk=on_chunk,
            raise_on_failure=raise_on_failure,
        )

    async def _run_bulk(self, items: Any, *, operation: Operation, **options: Any) -> BulkResult:
        """One bulk run; with tracing, in one span that its tries nest under.

        The span is current while the engine's task group starts its tasks, and
        each task copies the context it was started in (asyncio and trio alike).
        """
        if self._tracing is None:
            return await run_bulk(_BulkSender(self), items, operation=operation, **options)
        with self._tracing.run(operation) as span:
            result = await run_bulk(_BulkSender(self), items, operation=operation, **options)
            set_counts(span, result)
            return result

    async def sync_users(
        self,
        users: Iterable[User | Mapping[str, Any]]
        | AsyncIterable[User | Mapping[str, Any]]
        | ArrowStream,
        *,
        state: str | os.PathLike[str],
        options: Mapping[str, Any] | None = None,
        delete_missing: bool = False,
        max_delete: int | str = "10%",
        chunk_size: int = MAX_BATCH_ITEMS,
        concurrency: int = 8,
        max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
        wait_timeout: float = 300.0,
        on_progress: Callable[[BulkProgress], object] | None = None,
        on_chunk: Callable[[ChunkOutcome], object] | None = None,
        raise_on_failure: bool = True,
    ) -> SyncResult:
        r"""Send only the users that changed since the API last confirmed them.

        Takes what :meth:`upsert_many` takes (an Arrow table, batch or stream
        is read row by row, since each user is hashed), plus ``state``: the path of an
        SQLite file (created on first use) holding, per user the API has
        *processed*, a hash of the wire form it confirmed. A user whose hash is
        the confirmed one is not sent (no request at all for an unchanged
        export); new and changed users go through one :meth:`upsert_many` run
        (same ``chunk_size``, ``concurrency``; ``on_chunk`` outcomes carry
        input positions, while ``on_progress`` counts the users sent). Every
        tracking id is then polled to ``PROCESSED`` (each for up to
        ``wait_timeout`` seconds): a user is
        confirmed only when its batch took it (not named in a partial 400) and
        processed without errors; when a batch had processing errors none of
        its users is confirmed (the API counts errors, it does not name them)
        and all are sent again by the next run, which is safe.

        >>> result = await client.sync_users(read_export(), state="crm.sync")
        >>> result.new, result.changed, result.unchanged, result.confirmed

        ``delete_missing=True`` also deletes the users confirmed in the state
        but absent from ``users`` (:meth:`delete_many`); they leave the state
        once their delete is processed. The users to send are then held until
        the whole input is read, and when more than ``max_delete`` would be
        deleted (a count, or a percentage of the state: default ``"10%"``) the
        run raises :class:`DeleteGuardError` before sending anything: an empty
        or truncated export never wipes the audience. An input that breaks
        midway deletes nothing.

        The state is tied to this client's ``base_url`` and to ``options`` (any
        JSON-able mapping describing how you build the users, e.g. your
        mapping's version): another base URL or other options raise
        :class:`SyncStateError`, as do a file that is not a state, a damaged
        one, and one in use by another running sync. It changes only in SQLite
        transactions: killed at any moment, the same call again converges.

        Returns a :class:`SyncResult` with the counts and the
        :class:`BulkResult`\ s; raises :class:`BulkError` when a user was
        rejected, failed or not confirmed, unless ``raise_on_failure=False``
        (the state is written first either way).
        """
        from .incremental import run_sync

        return await run_sync(
            self,
            users,
            state=state,
            options=options,
            delete_missing=delete_missing,
            max_delete=max_delete,
            chunk_size=chunk_size,
            concurrency=concurrency,
            max_chunk_bytes=max_chunk_bytes,
            wait_timeout=wait_timeout,
            on_progress=on_progress,
            on_chunk=on_chunk,
            raise_on_failure=raise_on_failure,
        )

    # -- the one request path ----------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        on_retry: Callable[[RetryEvent], object] | None = None,
        template: str | None = None,
    ) -> httpx.Response:
        """Send one request, retrying as the policy says; raise the mapped error.

        ``template`` is the route with its variables unfilled (``/users/{id}``),
        for the spans: never the raw path, which holds ids and emails.
        """
        policy = self.retry
        url = self.base_url + path
        if len(url) > MAX_URL_LENGTH:
            raise ValueError(
                f"{method} {path[:60]}... would be a URL of {len(url):,} characters once "
                f"percent-encoded, over the limit of {MAX_URL_LENGTH:,}: no user id, email, "
                "business unit or tracking id is that long, check the value passed"
            )
        tracing = self._tracing
        if tracing is not None and not tracing.active():
            tracing = None  # no span would be recorded: none is made
        started = policy.clock()
        waits = policy.waits()
        attempt = 0
        while True:
            attempt += 1
            if self._http.is_closed:
                # Closed before this try reached httpx (which would raise a bare
                # RuntimeError); no await between here and httpx's own check.
                raise _closed_error(method, path, before=True)
            span = None if tracing is None else tracing.start_try(method, template or path, attempt)
            failed = False  # whether the span says why this try failed
            try:
                outcome = await self._try(method, path, url, content, attempt, span)
                if isinstance(outcome, httpx.Response):
                    return outcome
                error, cause, status, retryable = outcome
                if tracing is not None and span is not None:
                    tracing.fail(span, str(status) if status else error_type(cause))
                    failed = True
                wait = None
                if retryable:
                    retry_after = error.retry_after if isinstance(error, APIStatusError) else None
                    wait = self._next_wait(waits, retry_after, attempt, started)
                if wait is None:
                    if isinstance(cause, httpx.RequestError):
                        raise error from cause
                    raise error
                if span is not None:
                    span.add_event("retry", {"activatepro.retry.wait": wait})
            except BaseException as exc:
                if tracing is not None and span is not None and not failed:
                    tracing.fail(span, error_type(exc))
                raise
            finally:
                if span is not None:
                    span.end()
            event = RetryEvent(method, path, attempt, wait, status, None if status else cause)
            logger.warning(
                "retrying %s %s in %.2f s after %s (attempt %d of %d)",
                method, path, wait, status or type(cause).__name__, attempt,
                policy.max_retries + 1,
            )  # fmt: skip
            # The user's hook first, then the caller's (bulk's AIMD): both see every retry.
            if policy.on_retry is not None:
                policy.on_retry(event)
            if on_retry is not None:
                on_retry(event)
            await policy.sleep(wait)
            if self._http.is_closed:
                raise _closed_error(method, path) from cause

    async def _try(
        self,
        method: str,
        path: str,
        url: str,
        content: bytes | None,
        attempt: int,
        span: Any,
    ) -> httpx.Response | tuple[Exception, BaseException, int | None, bool]:
        """One try: the response, or (the error to raise, its cause, the status, retryable)."""
        sent = time.perf_counter()
        try:
            if span is None or self._tracing is None:
                response = await self._send_once(method, url, content)
            else:
                with self._tracing.use(span):
                    response = await self._send_once(method, url, content)
        except httpx.InvalidURL as exc:
            # The base URL was checked when the client was made, the path is
            # encoded and its length checked: this is a bug, said as a setting.
            raise ConfigurationError(
                f"cannot build the URL of {method} {path[:60]} on {self.base_url!r}: {exc}"
            ) from None
        except httpx.RequestError as exc:
            error: Exception = _connection_error(exc, method, path, self._server)
            # The cause kept is the httpx error alone: what it was raised from may
            # hold the request (aiohttp's ClientResponseError keeps the headers, and
            # so the key, in its request_info).
            exc.__cause__ = exc.__context__ = None
            # Handed to the retry hook and chained to the SDK's error: its request
            # with the credentials shown as ***, and _send_once's frame (finished
            # now) without the original in its locals.
            if exc._request is not None:
                exc.request = redacted_request(exc._request)
            _forget_locals(exc)
            logger.debug(
                "%s %s -> %s (attempt %d, %.1f ms)",
                method, path, type(exc).__name__, attempt, (time.perf_counter() - sent) * 1e3,
            )  # fmt: skip
            if self._http.is_closed:
                # aclose() ran while this request was in flight: no retry can succeed.
                return _closed_error(method, path), exc, None, False
            return error, exc, None, is_retryable_exception(exc)
        status = response.status_code
        if span is not None:
            span.set_attribute("http.response.status_code", status)
        logger.debug(
            "%s %s -> %d (attempt %d, %.1f ms)",
            method, path, status, attempt, (time.perf_counter() - sent) * 1e3,
        )  # fmt: skip
        if status < 400:
            return response
        error = _status_error(response, method, path, self._secret)
        return error, error, status, status in RETRYABLE_STATUSES

    async def _send_once(self, method: str, url: str, content: bytes | None) -> httpx.Response:
        # httpx's timeouts bound each read and write; this scope bounds the whole
        # try, so a server trickling bytes cannot stretch it. (A CancelScope, not
        # anyio.fail_after, whose two generator context managers cost more per
        # request than the scope itself.) The headers are never a local of the
        # request path's frames: reporters that walk the dicts of frame locals
        # (Sentry) would show the key's value.
        deadline = self._try_deadline
        prepared = self._prepared
        request = None
        try:
            with anyio.CancelScope(
                deadline=math.inf if deadline is None else anyio.current_time() + deadline
            ):
                if prepared is None or self._http.cookies:
                    # A user's client, or cookies a server set: httpx merges them in.
                    request = self._http.build_request(
                        method,
                        url,
                        content=content,
                        headers=self._headers if content is None else self._json_headers,
                        timeout=self._timeout,
                    )
                else:  # what build_request would make, without merging again
                    request = httpx.Request(
                        method,
                        prepared.urls.get(url, url),
                        content=content,
                        headers=prepared.headers if content is None else prepared.json_headers,
                        extensions={"timeout": prepared.timeout},
                    )
                if content is not None:
                    request.stream = _Body(content)
                return await self._http.send(request)
        except BaseException as exc:  # cancellations too: they are rendered with locals alike
            _forget_locals(exc)
            raise
        # Only the deadline's cancellation ends the scope without a return.
        raise httpx.TimeoutException(f"no complete response within {deadline:g} s", request=request)

    def _next_wait(
        self, waits: Any, retry_after: float | None, attempt: int, started: float
    ) -> float | None:
        """The wait before the next try, or None when the budget is spent."""
        policy = self.retry
        if attempt > policy.max_retries:
            return None
        wait: float = next(waits)
        if retry_after is not None:
            if retry_after > policy.max_retry_after:
                return None
            wait = max(wait, retry_after)
        budget = policy.total_timeout
        if budget is not None and policy.clock() - started + wait > budget:
            return None
        return wait

    def _read(self, response: httpx.Response, cls: type[_T]) -> _T:
        """The success body as ``cls``; a body we cannot read is a typed error."""
        try:
            data = response.json()
            if not isinstance(data, dict):
                raise TypeError(f"the body is {json_type(data)}, not an object")
            tracking_id = data.get("trackingId")
            if cls is BatchAccepted and type(tracking_id) is str and tracking_id and len(data) == 1:
                # The answer to every accepted chunk, read as the converter would,
                # without its machinery; anything else goes to the converter.
                return BatchAccepted(tracking_id=tracking_id)  # type: ignore[return-value]
            return converter.structure(data, cls)
        except (ValueError, TypeError, KeyError, RecursionError, cattrs.BaseValidationError) as exc:
            reason = _reason(exc)
        # Raised outside the except: the frames of json and cattrs hold the raw body.
        raise _unexpected(response, f"the {cls.__name__} the API sends", reason, self._secret)
