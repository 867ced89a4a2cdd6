"""The emulator: its construction, and what tests inspect and control.

The :class:`Emulator` holds the state (the store, the validator, the request
log, the faults, the clock and the lock around them) and is the ASGI
application. A request goes through :mod:`._pipeline` (key, fault, version,
route, size, log) to one of the calls of :mod:`._handlers`; both read this
state under ``_lock``. :mod:`._server` and :mod:`._transport` are the two front
ends.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from .._wire import MAX_BODY_BYTES
from ._faults import Faults
from ._handlers import user_problems
from ._requestlog import DEFAULT_REQUEST_LOG_BYTES, RecordedRequest, RequestLog
from ._server import asgi_call, serve
from ._store import Store
from ._validate import DEFAULT_ATTRIBUTES, AttributeType, UserValidator

if TYPE_CHECKING:
    import httpx

__all__ = ["Emulator", "ManualClock"]


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
        max_body_bytes: int = MAX_BODY_BYTES,
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
        # The state below (and ``_keys``) is the package's: _pipeline and
        # _handlers read it while they answer a request; nothing else outside.
        self._store = Store()
        self._validator = UserValidator(
            self.attributes,
            accept_unknown=accept_unknown_attributes,
            stored_xng_id=self._store.xng_id,
        )
        self._requests = RequestLog(max_logged_requests, request_log_bytes)
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
                problems = user_problems(self._validator, user, "", True)
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
