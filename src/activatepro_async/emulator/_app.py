"""The emulator: an ASGI application over the store, and what tests inspect.

One request goes: check the key and read the body (keeping at most
``max_body_bytes``, and nothing if the key is wrong), draw a fault, apply the
writes that are due, refuse a wrong key, check the API version, route on the
raw path, refuse an oversize body, validate, enqueue or read, answer, log.
:meth:`Emulator._respond` does all of it for both front ends: the ASGI
``__call__`` (uvicorn) and the in-process transport (:mod:`._transport`).
"""

from __future__ import annotations

import copy
import hmac
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import anyio
import attrs

from ..errors import ErrorCode
from . import _json
from ._body import BoundedBody
from ._faults import Faults
from ._server import asgi_call, serve
from ._store import Store
from ._validate import (
    DEFAULT_ATTRIBUTES,
    MAX_USER_BYTES,
    AttributeType,
    Problem,
    UserValidator,
    _show,
    check_email,
)

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEFAULT_REQUEST_LOG_BYTES",
    "MAX_BATCH_ITEMS",
    "Emulator",
    "ManualClock",
    "RecordedRequest",
]

#: The most items (``updated`` plus ``deleted``) one batch may hold.
MAX_BATCH_ITEMS = 1000
#: The request log's default byte budget: twice the default body limit, so
#: the newest accepted body of any size is kept whole.
DEFAULT_REQUEST_LOG_BYTES = 64 * 1024 * 1024
#: The header the API reads the key from, and the one naming the version.
AUTH_HEADER = b"x-xng-authtoken"
VERSION_HEADER = b"x-xng-apiversion"
#: The JSON pointer of a header-level error (the reference names none).
VERSION_POINTER = "/headers/X-XNG-ApiVersion"

_JSON_TYPE = (b"content-type", b"application/json;charset=UTF-8")
# A user's size is its compact JSON encoding. A body no larger than the limit
# cannot hold a larger user (numbers in exponent form aside, which this check
# does not expand), so only larger bodies pay for measuring each user.
_MEASURE_USERS_ABOVE = MAX_USER_BYTES
_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ManualClock:
    """A clock that only moves when told to, for tests that must not sleep.

    >>> clock = ManualClock()
    >>> emulator = Emulator(clock=clock, processing_delay=5.0)
    >>> clock.advance(5.0)  # the writes queued so far are now due
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        """The current time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward; time never runs backwards."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        self._now += seconds

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"


@attrs.frozen(repr=False)
class RecordedRequest:
    """One request the emulator received, as it came over the wire.

    ``path`` is the raw, still percent-encoded path (with ``?query`` if any);
    ``headers`` are ``(lowercase name, value)`` pairs, unredacted (this is a
    test tool), though ``repr()`` never shows them. ``status`` is the status
    answered (``None`` for a dropped connection) and ``fault`` the injected
    fault kind, if any. ``body_size`` is how many body bytes arrived; ``body``
    holds them unless they were not kept (see :attr:`body_kept`).
    """

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    status: int | None
    fault: str | None
    time: float
    body_size: int

    @property
    def body_kept(self) -> bool:
        """False when ``body`` is empty though a body arrived.

        The emulator keeps no body of a request with a wrong key or over
        ``max_body_bytes`` (refused whatever it holds), nor one larger than the
        request log's whole byte budget.
        """
        return len(self.body) == self.body_size

    def header(self, name: str) -> str | None:
        """The value of a header (case-insensitive name), or ``None``."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def json(self) -> Any:
        """The body parsed as JSON; ``ValueError`` if it was not kept."""
        if not self.body_kept:
            raise ValueError(f"the body of {self!r} was not kept: see RecordedRequest.body_kept")
        return _json.loads(self.body)

    def __repr__(self) -> str:
        fault = f", fault={self.fault!r}" if self.fault else ""
        kept = "" if self.body_kept else ", not kept"
        return (
            f"RecordedRequest({self.method} {self.path} -> {self.status}, "
            f"{self.body_size} body bytes{kept}{fault})"
        )

    def _cost(self) -> int:
        # What the entry holds that a request chooses the size of; the strings
        # are latin-1, one character per byte.
        return (
            len(self.body)
            + len(self.path)
            + sum(len(name) + len(value) for name, value in self.headers)
        )


class _RequestLog:
    """The newest requests, at most ``max_entries`` and ``max_bytes``; oldest go first.

    An entry that alone is over ``max_bytes`` is kept without its body, if that
    fits; ``max_bytes=0`` keeps nothing. ``None`` is no limit. Not locked: the
    emulator's lock guards it.
    """

    __slots__ = ("_entries", "max_bytes", "max_entries", "size")

    def __init__(self, max_entries: int | None, max_bytes: int | None) -> None:
        for name, value in (("max_logged_requests", max_entries), ("request_log_bytes", max_bytes)):
            if value is not None and (type(value) is not int or value < 0):
                raise ValueError(f"{name} must be an int of 0 or more, or None; got {value!r}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: deque[tuple[RecordedRequest, int]] = deque()
        #: The bytes the kept entries hold (see ``RecordedRequest._cost``).
        self.size = 0

    def add(self, entry: RecordedRequest) -> None:
        limit = self.max_bytes
        cost = entry._cost()
        if limit is not None and cost > limit:
            if entry.body:
                entry = attrs.evolve(entry, body=b"")
                cost = entry._cost()
            if cost > limit:
                return
        self._entries.append((entry, cost))
        self.size += cost
        while (limit is not None and self.size > limit) or (
            self.max_entries is not None and len(self._entries) > self.max_entries
        ):
            self.size -= self._entries.popleft()[1]

    def entries(self) -> list[RecordedRequest]:
        return [entry for entry, _ in self._entries]

    def clear(self) -> None:
        self._entries.clear()
        self.size = 0


class _Reply:
    """What to send back: a status, headers, a body, and whether to misbehave."""

    __slots__ = ("action", "body", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        action: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers: list[tuple[bytes, bytes]] = (
            headers if headers is not None else [_JSON_TYPE] if body else []
        )
        self.action = action  # None, "drop" or "truncate"


def _error(code: int, details: str, pointer: str) -> dict[str, Any]:
    return {
        "code": str(code),
        "title": ErrorCode(code).title,
        "details": details,
        "info": f"https://docs.crossengage.io/errors#{code}",
        "source": {"pointer": pointer},
    }


def _errors(status: int, problems: Iterable[Problem], **extra: Any) -> _Reply:
    body = dict(extra)
    body["errors"] = [_error(code, details, pointer) for code, details, pointer in problems]
    return _Reply(status, _json.dumps(body))


def _segment(raw: bytes) -> str | None:
    """One path segment, percent-decoded as UTF-8; ``None`` if it is not UTF-8."""
    try:
        return unquote_to_bytes(raw).decode("utf-8") if b"%" in raw else raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


class Emulator:
    """A local ActivatePro User Profile API v2: stateful, asynchronous, validating.

    Use it in-process through :meth:`transport`, or on a real socket through
    :meth:`serve`; the emulator itself is the ASGI application, so any ASGI
    server can run it too.

    Args:
        api_keys: the keys accepted in ``X-XNG-AuthToken``.
        processing_delay: seconds (by ``clock``) between accepting a write and
            applying it. Writes are applied lazily, at the start of the next
            request (or inspection) at or after that time.
        attributes: the account's custom attributes and their types; ``None``
            is ``firstName``, ``lastName``, ``gender`` (STRING), ``birthday``
            (DATE), ``createdAt`` (DATETIME) and ``phone`` (PHONE).
        accept_unknown_attributes: store unknown attributes instead of
            refusing them with code 6.
        faults: what to inject (see :class:`Faults`); settable later.
        clock: a zero-argument callable giving seconds, ``time.monotonic`` by
            default; pass a :class:`ManualClock` to drive time from a test.
        max_body_bytes: larger request bodies are refused with 413 (code 9).
        max_logged_requests: how many requests :attr:`requests` keeps (the
            newest); ``None`` keeps all.
        request_log_bytes: how many bytes (bodies, paths and headers)
            :attr:`requests` keeps at most; the oldest requests go first. A
            request larger than this alone is kept without its body; ``0``
            turns the log off; ``None`` is no limit. The body of a request with
            a wrong key or over ``max_body_bytes`` is never kept (nor buffered).

    >>> emulator = Emulator()
    >>> async with AsyncClient(api_key="test-key", transport=emulator.transport()) as client:
    ...     ...
    """

    def __init__(
        self,
        api_keys: Iterable[str] = ("test-key",),
        *,
        processing_delay: float = 0.0,
        attributes: Mapping[str, AttributeType | str] | None = None,
        accept_unknown_attributes: bool = False,
        faults: Faults | None = None,
        clock: Callable[[], float] | None = None,
        max_body_bytes: int = 32 * 1024 * 1024,
        max_logged_requests: int | None = 10_000,
        request_log_bytes: int | None = DEFAULT_REQUEST_LOG_BYTES,
    ) -> None:
        if isinstance(api_keys, str):
            api_keys = (api_keys,)
        self.api_keys: tuple[str, ...] = tuple(api_keys)
        if not self.api_keys or not all(self.api_keys):
            raise ValueError("Emulator(api_keys=...) needs at least one non-empty key")
        self._keys = tuple(key.encode("utf-8") for key in self.api_keys)
        if processing_delay < 0:
            raise ValueError("processing_delay must be zero or more seconds")
        #: Seconds between accepting a write and applying it; may be changed.
        self.processing_delay = float(processing_delay)
        #: The faults to inject, or ``None``; may be replaced at any time.
        self.faults = faults
        self.clock: Callable[[], float] = clock if clock is not None else time.monotonic
        if max_body_bytes < 1:
            raise ValueError("max_body_bytes must be positive")
        self.max_body_bytes = max_body_bytes
        self.attributes: Mapping[str, AttributeType] = {
            name: AttributeType(kind)
            for name, kind in (DEFAULT_ATTRIBUTES if attributes is None else attributes).items()
        }
        self._store = Store()
        self._validator = UserValidator(
            self.attributes,
            accept_unknown=accept_unknown_attributes,
            stored_xng_id=self._store.xng_id,
        )
        self._requests = _RequestLog(max_logged_requests, request_log_bytes)
        # The served emulator may run in another thread (under trio): one lock
        # around every touch of the state. Never held across an await.
        self._lock = threading.Lock()

    # -- configuration ---------------------------------------------------------

    @property
    def accept_unknown_attributes(self) -> bool:
        """Whether unknown attributes are stored instead of refused (code 6)."""
        return self._validator.accept_unknown

    @accept_unknown_attributes.setter
    def accept_unknown_attributes(self, value: bool) -> None:
        self._validator.accept_unknown = value

    def __repr__(self) -> str:
        return (
            f"<Emulator: {len(self._store.users)} users, {self._store.pending_count} pending, "
            f"processing_delay={self.processing_delay}>"
        )

    # -- running it --------------------------------------------------------------

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that hands requests to this emulator, with no socket.

        >>> httpx.AsyncClient(transport=emulator.transport(), base_url="http://emulator")
        """
        from ._transport import EmulatorTransport

        return EmulatorTransport(self)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> AbstractAsyncContextManager[str]:
        """Serve the emulator over HTTP with uvicorn; the context gives the base URL.

        ``port=0`` picks a free port. Needs ``pip install 'activatepro-async[server]'``.
        Under asyncio, uvicorn runs as a task of the caller's loop; under trio it
        runs on its own asyncio loop in a worker thread.

        >>> async with emulator.serve() as base_url:
        ...     async with AsyncClient(api_key="test-key", base_url=base_url) as client: ...
        """
        return serve(self, host=host, port=port)

    async def __call__(
        self,
        scope: Mapping[str, Any],
        receive: Callable[[], Any],
        send: Callable[[Mapping[str, Any]], Any],
    ) -> None:
        """The ASGI application (HTTP; lifespan is acknowledged; nothing else)."""
        await asgi_call(self, scope, receive, send)

    # -- inspection and control from tests --------------------------------------

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        """The applied users by id, as the API would return them (copies).

        Due writes are applied first, as a request at this moment would see.
        """
        with self._lock:
            self._store.apply_due(self.clock())
            return copy.deepcopy(self._store.users)

    def user(self, user_id: str) -> dict[str, Any] | None:
        """One applied user (a copy), or ``None``."""
        with self._lock:
            self._store.apply_due(self.clock())
            found = self._store.users.get(user_id)
            return None if found is None else copy.deepcopy(found)

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far, oldest first.

        At most ``max_logged_requests`` of them in at most ``request_log_bytes``
        (see :attr:`logged_bytes`).
        """
        with self._lock:
            return self._requests.entries()

    @property
    def request_log_bytes(self) -> int | None:
        """The request log's byte budget (``None``: no limit; ``0``: no log)."""
        return self._requests.max_bytes

    @property
    def logged_bytes(self) -> int:
        """The bytes the request log holds now: its bodies, paths and headers."""
        with self._lock:
            return self._requests.size

    @property
    def pending_count(self) -> int:
        """How many accepted write requests are not applied yet (after applying due ones)."""
        with self._lock:
            self._store.apply_due(self.clock())
            return self._store.pending_count

    def process_pending(self) -> int:
        """Apply every queued write now, whatever ``processing_delay`` says.

        Returns how many requests were applied.
        """
        with self._lock:
            return self._store.apply_all()

    def tracking(self, tracking_id: str) -> dict[str, Any] | None:
        """The tracking status as ``GET /users/track/{id}`` gives it, or ``None``."""
        with self._lock:
            now = self.clock()
            self._store.apply_due(now)
            found = self._store.tracking(tracking_id, now)
            return None if found is None else found.wire()

    def seed(self, *users: Mapping[str, Any]) -> None:
        """Store users at once, as if PUT and processed: the "given" of a test.

        Users are wire-form dicts (``{"id": "42", "email": "ada@example.com",
        "firstName": "Ada"}``), validated as a PUT is; an invalid user, or an
        email taken in its business unit, raises ``ValueError`` and stores
        nothing of that user (the ones before it stay). Nothing is logged
        and no tracking id is issued.

        >>> emulator.seed({"id": "42", "email": "ada@example.com"})
        """
        with self._lock:
            self._store.apply_due(self.clock())
            for given in users:
                user = copy.deepcopy(dict(given))
                problems = self._user_problems(user, "", True)
                if problems:
                    found = "; ".join(
                        f"{details} (at {pointer or '/'})" for _, details, pointer in problems
                    )
                    raise ValueError(f"cannot seed user {given.get('id')!r}: {found}")
                if not self._store.upsert(user):
                    raise ValueError(
                        f"cannot seed user {given.get('id')!r}: its email is taken by another "
                        "user of its business unit"
                    )

    def reset(self) -> None:
        """Forget all users, queued writes, tracking ids and logged requests.

        The faults start over from their seed, with an empty schedule.
        """
        with self._lock:
            self._store = Store()
            self._validator.stored_xng_id = self._store.xng_id
            self._requests.clear()
            if self.faults is not None:
                self.faults.reset()

    # -- one request ------------------------------------------------------------

    async def _respond(
        self,
        method: str,
        raw_path: bytes,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        received: BoundedBody,
    ) -> _Reply:
        """Answer one request: faults, then the API. Shared by both front ends.

        ``received`` is the body read by the reader :meth:`_body_reader` gave.
        """
        body, oversize = received.result()
        faults = self.faults
        with self._lock:
            fault = faults.next_fault() if faults is not None else None
        if fault == "latency":
            assert faults is not None
            await anyio.sleep(faults.latency)
        with self._lock:
            now = self.clock()
            self._store.apply_due(now)
            if fault is None or fault == "latency" or fault == "truncate":
                reply = self._dispatch(
                    method, raw_path, headers, body, oversize, received.authorized, now
                )
                if fault == "truncate":
                    reply.action = "truncate"
            else:
                assert faults is not None
                reply = self._fault_reply(fault, faults)
            self._requests.add(
                RecordedRequest(
                    method=method,
                    path=(raw_path + b"?" + query if query else raw_path).decode("latin-1"),
                    headers=tuple(
                        (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers
                    ),
                    body=body,
                    status=None if reply.action == "drop" else reply.status,
                    fault=fault,
                    time=now,
                    body_size=received.size,
                )
            )
        return reply

    def _body_reader(self, headers: list[tuple[bytes, bytes]]) -> BoundedBody:
        """What reads this request's body (headers lowercase), for both front ends.

        The key is checked here, once: a request with a wrong key gets 401
        whatever its body holds, so none of it is kept, and a stranger's
        uploads cost no memory, in the request log or while they arrive. It is
        still read to its end, so that the 401 arrives.
        """
        declared = None
        for name, value in headers:
            if name == b"content-length":
                declared = value.decode("latin-1")
                break
        return BoundedBody(self.max_body_bytes, declared, authorized=self._authorized(headers))

    @staticmethod
    def _fault_reply(fault: str, faults: Faults) -> _Reply:
        if fault == "drop":
            return _Reply(0, action="drop")
        if fault == "html":
            return _Reply(502, _HTML_502, [(b"content-type", b"text/html")])
        if fault == "429":
            return _Reply(
                429,
                b"Too Many Requests",
                [
                    (b"content-type", b"text/plain"),
                    (b"retry-after", faults.retry_after_header().encode()),
                ],
            )
        status = int(fault)
        return _errors(
            status,
            [(10, f"Injected fault: {status} {_REASONS[status]}", "")],
        )

    def _authorized(self, headers: list[tuple[bytes, bytes]]) -> bool:
        sent = None
        for name, value in headers:
            if name.lower() == AUTH_HEADER:
                sent = value
                break
        if not sent:
            return False
        # Constant time, and every key is compared, so the time says nothing
        # about which key (or how much of one) matched.
        ok = False
        for key in self._keys:
            ok |= hmac.compare_digest(sent, key)
        return ok

    def _dispatch(
        self,
        method: str,
        raw_path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        oversize: bool,
        authorized: bool,
        now: float,
    ) -> _Reply:
        if not authorized:
            return _Reply(401)
        version = None
        for name, value in headers:
            if name.lower() == VERSION_HEADER:
                version = value.strip()
                break
        if version != b"2":
            return _errors(
                400,
                [
                    (
                        2,
                        'Invalid field value, or missing a required field "X-XNG-ApiVersion": '
                        "send the header X-XNG-ApiVersion: 2",
                        VERSION_POINTER,
                    )
                ],
            )
        raw_segments = raw_path.split(b"/")
        if raw_segments[0] != b"" or b"" in raw_segments[1:] or raw_segments[1] != b"users":
            return self._no_route(method, raw_path)
        route = _route([_segment(raw) for raw in raw_segments[2:]])
        if route is None:
            return self._no_route(method, raw_path)
        methods, params = route
        handler = methods.get(method)
        if handler is None:
            allowed = ", ".join(methods)
            reply = _errors(405, [(2, f"Method {method} is not allowed here; use {allowed}", "")])
            reply.headers.append((b"allow", allowed.encode()))
            return reply
        if oversize:
            return _errors(
                413,
                [
                    (
                        9,
                        f"The request body is larger than {self.max_body_bytes:,} bytes; "
                        "split the batch into smaller requests",
                        "",
                    )
                ],
            )
        return handler(self, params, body, now)

    @staticmethod
    def _no_route(method: str, raw_path: bytes) -> _Reply:
        shown = raw_path.decode("latin-1")
        if len(shown) > 200:
            shown = shown[:197] + "..."
        return _errors(
            404,
            [
                (
                    2,
                    f"No such endpoint: {method} {shown}. The API has GET/DELETE /users/{{id}}, "
                    "GET /users/email/{email}[/bu/{bu}], PUT /users, POST /users/batch and "
                    "GET /users/track/{trackingId}",
                    "",
                )
            ],
        )

    # -- the six calls -------------------------------------------------------------

    # Each call takes the decoded path parameters (None: not UTF-8), the body
    # and the time; _route() below maps routes and methods to them.

    def _get(self, params: list[str | None], body: bytes, now: float) -> _Reply:
        user_id = params[0]
        user = self._store.users.get(user_id) if user_id is not None else None
        if user is None:
            return _Reply(404)
        return _Reply(200, _json.dumps(user))

    def _get_by_email(self, params: list[str | None], body: bytes, now: float) -> _Reply:
        email, business_unit = params
        if email is None:
            return _Reply(404)
        user = self._store.find_by_email(email, business_unit)
        if user is None:
            return _Reply(404)
        return _Reply(200, _json.dumps(user))

    def _track(self, params: list[str | None], body: bytes, now: float) -> _Reply:
        tracking_id = params[0]
        tracking = self._store.tracking(tracking_id, now) if tracking_id is not None else None
        if tracking is None:
            return _Reply(404)
        return _Reply(200, _json.dumps(tracking.wire()))

    def _accepted(
        self,
        upserts: list[dict[str, Any]],
        deletes: list[str],
        total: int,
        invalid: int,
        now: float,
    ) -> str:
        return self._store.enqueue(
            upserts, deletes, total=total, invalid=invalid, now=now, delay=self.processing_delay
        )

    def _delete(self, params: list[str | None], body: bytes, now: float) -> _Reply:
        # A body, if any, is ignored: some clients send one with DELETE. An id
        # that is not UTF-8 names no user, and deleting no user succeeds.
        tracking_id = self._accepted([], [params[0] or ""], 1, 0, now)
        return _Reply(202, _json.dumps({"trackingId": tracking_id}))

    def _parse(self, body: bytes, what: str) -> tuple[Any, _Reply | None]:
        try:
            document = _json.loads(body)
        except _json.JSONError as exc:
            return None, _errors(400, [(1, f"Invalid JSON: {exc}", "")])
        if type(document) is not dict:
            return None, _errors(
                400, [(1, f"Invalid JSON: the body must be a JSON object ({what})", "")]
            )
        return document, None

    def _user_problems(
        self, user: dict[str, Any], prefix: str, measure: bool
    ) -> list[Problem] | None:
        problems = self._validator.check(user, prefix)
        if measure:
            size = len(_json.dumps(user))
            if size > MAX_USER_BYTES:
                problem = (
                    2,
                    f"The user is {size:,} bytes long as JSON; a user is at most "
                    f"{MAX_USER_BYTES:,} bytes",
                    prefix,
                )
                problems = [*(problems or []), problem]
        return problems

    def _put(self, params: list[str | None], body: bytes, now: float) -> _Reply:
        user, failed = self._parse(body, "a user")
        if failed is not None:
            return failed
        problems = self._user_problems(user, "", len(body) > _MEASURE_USERS_ABOVE)
        if problems:
            return _errors(400, problems)
        tracking_id = self._accepted([user], [], 1, 0, now)
        return _Reply(202, _json.dumps({"trackingId": tracking_id}))

    def _batch(self, params: list[str | None], body: bytes, now: float) -> _Reply:
        document, failed = self._parse(body, '{"updated": [...], "deleted": [...]}')
        if failed is not None:
            return failed
        problems: list[Problem] = [
            (2, f'Unknown field "{key}": a batch has only "updated" and "deleted"', f"/{key}")
            for key in document
            if key != "updated" and key != "deleted"
        ]
        updated = document.get("updated")
        deleted = document.get("deleted")
        if updated is None:
            updated = []
        elif type(updated) is not list:
            problems.append((2, '"updated" must be an array of users', "/updated"))
        if deleted is None:
            deleted = []
        elif type(deleted) is not list:
            problems.append((2, '"deleted" must be an array of {"id": ...} objects', "/deleted"))
        if problems:
            return _errors(400, problems)
        total = len(updated) + len(deleted)
        if total > MAX_BATCH_ITEMS:
            return _errors(
                400,
                [
                    (
                        9,
                        f"Max batch request size is {MAX_BATCH_ITEMS:,}, but was {total:,}",
                        "/updated",
                    )
                ],
            )
        if total == 0:
            return _errors(
                400,
                [
                    (
                        2,
                        'Invalid field value, or missing a required field "updated": '
                        "the batch is empty",
                        "/updated",
                    )
                ],
            )
        upserts: list[dict[str, Any]] = []
        deletes: list[str] = []
        errors: list[Problem] = []
        invalid = 0
        measure = len(body) > _MEASURE_USERS_ABOVE
        check = self._validator.check
        for index, user in enumerate(updated):
            if type(user) is not dict:
                errors.append(
                    (2, 'An item of "updated" must be a user object', f"/updated/{index}")
                )
                invalid += 1
                continue
            # Pointers are built only for an invalid user: most are valid.
            if check(user, "") is None and not measure:
                upserts.append(user)
                continue
            found = self._user_problems(user, f"/updated/{index}", measure)
            if found:
                errors.extend(found)
                invalid += 1
            else:
                upserts.append(user)
        for index, item in enumerate(deleted):
            if type(item) is not dict:
                errors.append(
                    (2, 'An item of "deleted" must be an object with an "id"', f"/deleted/{index}")
                )
                invalid += 1
                continue
            user_id = item.get("id")
            email = item.get("email")
            if type(user_id) is not str or not user_id:
                errors.append(
                    (
                        2,
                        'Invalid field value, or missing a required field "id"',
                        f"/deleted/{index}/id",
                    )
                )
                invalid += 1
            elif email is not None and (type(email) is not str or not check_email(email)):
                errors.append(
                    (
                        4,
                        f"Invalid email {_show(email)}. The email address must be in the addr-spec "
                        "format as defined in RFC 5322",
                        f"/deleted/{index}/email",
                    )
                )
                invalid += 1
            else:
                deletes.append(user_id)
        tracking_id = self._accepted(upserts, deletes, total, invalid, now)
        if errors:
            return _errors(400, errors, trackingId=tracking_id)
        return _Reply(202, _json.dumps({"trackingId": tracking_id}))


_Handler = Callable[[Emulator, list[str | None], bytes, float], _Reply]
_USERS: dict[str, _Handler] = {"PUT": Emulator._put}
_USER: dict[str, _Handler] = {"GET": Emulator._get, "DELETE": Emulator._delete}
# "batch" alone is also a user id: GET and DELETE read and delete that user.
_BATCH: dict[str, _Handler] = {**_USER, "POST": Emulator._batch}
_BY_EMAIL: dict[str, _Handler] = {"GET": Emulator._get_by_email}
_TRACK: dict[str, _Handler] = {"GET": Emulator._track}


def _route(
    segments: list[str | None],
) -> tuple[dict[str, _Handler], list[str | None]] | None:
    """The calls of a path under ``/users`` (by method) and their parameters.

    Ids are one segment each, so the count of segments decides:
    ``/users/email`` is the user with id "email", ``/users/email/{e}`` a lookup.
    """
    n = len(segments)
    if n == 0:
        return _USERS, []
    if n == 1:
        return (_BATCH if segments[0] == "batch" else _USER), segments
    if n == 2 and segments[0] == "email":
        return _BY_EMAIL, [segments[1], None]
    if n == 4 and segments[0] == "email" and segments[2] == "bu":
        return _BY_EMAIL, [segments[1], segments[3]]
    if n == 2 and segments[0] == "track":
        return _TRACK, [segments[1]]
    return None
