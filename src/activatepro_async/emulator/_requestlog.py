"""What the emulator remembers of the requests it received, within a byte budget."""

from __future__ import annotations

from collections import deque
from typing import Any

import attrs

from .._wire import MAX_BODY_BYTES
from . import _json

__all__ = ["DEFAULT_REQUEST_LOG_BYTES", "RecordedRequest", "RequestLog"]

#: The request log's default byte budget: twice the default body limit, so
#: the newest accepted body of any size is kept whole.
DEFAULT_REQUEST_LOG_BYTES = 2 * MAX_BODY_BYTES


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


class RequestLog:
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
