"""The emulator's state: applied users, the queue of accepted writes, tracking.

Writes are queued with the time they become due (``processing_delay`` after
arrival, by the emulator's clock) and applied in arrival order by
:meth:`Store.apply_due`, which the app calls at the start of every request.
There is no background task, so the emulator behaves the same in-process and
served, and a test drives time with a :class:`~.ManualClock`.
"""

from __future__ import annotations

import os
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["TRACKING_TTL", "Store", "Tracking"]

#: A tracking id can be read for this many seconds after it was issued.
TRACKING_TTL = 24 * 60 * 60.0


def _email_key(email: str, business_unit: str | None) -> str:
    # Email and business unit are both compared case-insensitively. A string,
    # not a tuple, to allocate nothing the garbage collector tracks: neither
    # may hold a newline, and a business unit is never empty.
    if business_unit is None:
        return email.lower()
    return f"{email.lower()}\n{business_unit.lower()}"


class Tracking:
    """The counters of one accepted request."""

    __slots__ = ("error", "issued_at", "processed", "success", "total")

    def __init__(self, issued_at: float, total: int, error: int) -> None:
        self.issued_at = issued_at
        self.total = total
        self.success = 0
        self.error = error
        self.processed = False

    def wire(self) -> dict[str, Any]:
        """The body of ``GET /users/track/{id}``."""
        return {
            "stage": "PROCESSED" if self.processed else "PENDING",
            "total": self.total,
            "success": self.success,
            "error": self.error,
        }


class _Pending:
    """One accepted request: its users to upsert, then its ids to delete."""

    __slots__ = ("deletes", "due", "tracking", "upserts")

    def __init__(
        self, due: float, upserts: list[dict[str, Any]], deletes: list[str], tracking: Tracking
    ) -> None:
        self.due = due
        self.upserts = upserts
        self.deletes = deletes
        self.tracking = tracking


class Store:
    """Users, the email index, the write queue and the tracking table.

    Not thread-safe by itself: the :class:`~.Emulator` holds a lock around it.
    """

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self._by_email: dict[str, str] = {}
        self._queue: deque[_Pending] = deque()
        self._tracking: dict[str, Tracking] = {}
        self._issued: deque[tuple[float, str]] = deque()
        # xngIds are uuid4 strings: a random prefix (with the version and
        # variant digits) per store and a counter, far cheaper than uuid4().
        self._xng_prefix = str(uuid.uuid4())[:24]
        self._xng_next = int.from_bytes(os.urandom(5), "big")
        self.new_tracking_id: Callable[[], str] = lambda: str(uuid.uuid4())

    # -- the queue -----------------------------------------------------------

    def enqueue(
        self,
        upserts: list[dict[str, Any]],
        deletes: list[str],
        *,
        total: int,
        invalid: int,
        now: float,
        delay: float,
    ) -> str:
        """Queue a request's valid items (the store owns the user dicts from now on).

        The ``invalid`` items of the request count as errors at once.
        """
        tracking = Tracking(now, total, invalid)
        tracking_id = self.new_tracking_id()
        self._tracking[tracking_id] = tracking
        self._issued.append((now, tracking_id))
        self._queue.append(_Pending(now + delay, upserts, deletes, tracking))
        return tracking_id

    @property
    def pending_count(self) -> int:
        """How many accepted requests wait to be applied."""
        return len(self._queue)

    def apply_due(self, now: float) -> int:
        """Apply, in arrival order, every queued request due at ``now``; forget expired tracking."""
        queue = self._queue
        applied = 0
        # Arrival order even if processing_delay changed: stop at the first not due.
        while queue and queue[0].due <= now:
            self._apply(queue.popleft())
            applied += 1
        issued = self._issued
        while issued and now - issued[0][0] >= TRACKING_TTL:
            self._tracking.pop(issued.popleft()[1], None)
        return applied

    def apply_all(self) -> int:
        """Apply every queued request now, whatever its due time."""
        applied = len(self._queue)
        while self._queue:
            self._apply(self._queue.popleft())
        return applied

    def tracking(self, tracking_id: str, now: float) -> Tracking | None:
        """The tracking of a request, or ``None`` if unknown or older than 24 hours."""
        tracking = self._tracking.get(tracking_id)
        if tracking is None or now - tracking.issued_at >= TRACKING_TTL:
            return None
        return tracking

    def _apply(self, pending: _Pending) -> None:
        tracking = pending.tracking
        upsert = self.upsert
        success = 0
        for user in pending.upserts:
            success += upsert(user)
        for user_id in pending.deletes:
            self._delete(user_id)
        tracking.success += success + len(pending.deletes)
        tracking.error += len(pending.upserts) - success
        tracking.processed = True

    # -- users -----------------------------------------------------------------

    def upsert(self, user: dict[str, Any]) -> bool:
        """Create or partially update a valid user now; False on a processing error."""
        user_id: str = user["id"]
        old = self.users.get(user_id)
        if old is None:
            business_unit = user.get("businessUnit")
        elif "businessUnit" in user:
            business_unit = user["businessUnit"]
        else:
            business_unit = old.get("businessUnit")
        key = _email_key(user["email"], business_unit)
        owner = self._by_email.get(key)
        if owner is not None and owner != user_id:
            return False  # the email is taken in that business unit
        xng_id = user.get("xngId")
        if xng_id is not None and (old is None or old["xngId"] != xng_id):
            return False  # the user changed since the request was validated
        if old is None:
            # The store owns the parsed dict: keep it, without nulls or a sent xngId.
            if None in user.values():
                user = {name: value for name, value in user.items() if value is not None}
            user.pop("xngId", None)
            self._xng_next += 1
            user["xngId"] = f"{self._xng_prefix}{self._xng_next & 0xFFFFFFFFFFFF:012x}"
            self.users[user_id] = user
        else:
            old_key = _email_key(old["email"], old.get("businessUnit"))
            if old_key != key:
                del self._by_email[old_key]
            for name, value in user.items():
                if name == "xngId":
                    continue
                if value is None:
                    old.pop(name, None)
                else:
                    old[name] = value
        self._by_email[key] = user_id
        return True

    def _delete(self, user_id: str) -> None:
        old = self.users.pop(user_id, None)
        if old is not None:
            self._by_email.pop(_email_key(old["email"], old.get("businessUnit")), None)

    def find_by_email(self, email: str, business_unit: str | None) -> dict[str, Any] | None:
        """The user with this email in this business unit (``None``: the users without one)."""
        if "\n" in email or (business_unit is not None and "\n" in business_unit):
            return None  # stored ones never hold a newline, and it separates the key
        user_id = self._by_email.get(_email_key(email, business_unit))
        return None if user_id is None else self.users[user_id]

    def xng_id(self, user_id: str) -> str | None:
        """The stored xngId of a user, or ``None`` if there is no such user."""
        user = self.users.get(user_id)
        return None if user is None else str(user["xngId"])
