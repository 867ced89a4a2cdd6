"""Fault injection: make the emulator misbehave on purpose, reproducibly."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs

__all__ = ["FAULT_KINDS", "Faults"]

#: Every fault the emulator can inject.
#:
#: - ``"500"``, ``"502"``, ``"503"``, ``"504"``: that status with a JSON error
#:   body (code 10); nothing is applied.
#: - ``"429"``: too many requests, with a ``Retry-After`` header; nothing applied.
#: - ``"html"``: a 502 HTML page, as a proxy in front of the API would send.
#: - ``"drop"``: the connection is closed before any response; nothing applied.
#: - ``"latency"``: the request waits ``latency`` seconds, then is answered normally.
#: - ``"truncate"``: the request IS handled (a write is accepted and queued),
#:   then the response is cut in the middle of its body: a lost response,
#:   which a client must survive by retrying an idempotent call.
FAULT_KINDS: tuple[str, ...] = (
    "500",
    "502",
    "503",
    "504",
    "429",
    "latency",
    "drop",
    "truncate",
    "html",
)

_NO_FAULT = ("ok", "none", "")


def _kind(value: Any) -> str:
    kind = str(value).strip().lower()
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {value!r}: use one of {', '.join(FAULT_KINDS)}")
    return kind


def _kinds(values: Iterable[Any]) -> tuple[str, ...]:
    if isinstance(values, str):
        values = values.split(",")
    kinds = tuple(_kind(value) for value in values)
    if not kinds:
        raise ValueError("Faults(kinds=...) needs at least one fault kind")
    return kinds


def _schedule(values: Iterable[Any] | None) -> deque[str | None]:
    if values is None:
        return deque()
    if isinstance(values, str):
        values = values.split(",")
    return deque(
        None if value is None or str(value).strip().lower() in _NO_FAULT else _kind(value)
        for value in values
    )


def _rate(value: Any) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"Faults(rate=...) must be between 0 and 1, not {value!r}")
    return rate


def _seconds(value: Any) -> float:
    seconds = float(value)
    if not seconds >= 0.0:
        raise ValueError(f"a duration must be zero or more seconds, not {value!r}")
    return seconds


@attrs.define
class Faults:
    """Which requests the emulator answers badly, and how.

    Each request first takes the next entry of ``schedule`` (a fault kind, or
    ``None``/``"ok"`` for a normal answer); once the schedule is used up, a
    request is faulted with probability ``rate``, with a kind drawn from
    ``kinds``. Draws come from ``random.Random(seed)``, so the same requests in
    the same order meet the same faults. See :data:`FAULT_KINDS`.

    >>> emulator = Emulator(faults=Faults(schedule=["503", "drop"]))  # then normal
    >>> emulator = Emulator(faults=Faults(rate=0.2, kinds=["500", "429"], seed=7))
    """

    rate: float = attrs.field(default=0.0, converter=_rate)
    kinds: tuple[str, ...] = attrs.field(default=FAULT_KINDS, converter=_kinds)
    seed: int | None = 0
    #: Seconds sent in the ``Retry-After`` header of a 429 (a fraction is sent
    #: as a decimal, which HTTP does not define, but which keeps tests fast).
    retry_after: float = attrs.field(default=1.0, converter=_seconds)
    #: Seconds a ``"latency"`` fault waits before answering.
    latency: float = attrs.field(default=0.05, converter=_seconds)
    #: Faults for the next requests, in order; consumed as requests arrive.
    schedule: deque[str | None] = attrs.field(factory=deque, converter=_schedule)
    #: How many faults were injected so far.
    injected: int = attrs.field(default=0, init=False)
    _rng: random.Random = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - reproducible, not secret

    def add(self, *kinds: str | int | None) -> None:
        """Append faults to the schedule: ``faults.add("503", "drop", None)``."""
        self.schedule.extend(_schedule(kinds))

    def reset(self) -> None:
        """Start over: the seed's first draw comes next; the schedule is emptied."""
        self._rng = random.Random(self.seed)  # noqa: S311
        self.schedule.clear()
        self.injected = 0

    def next_fault(self) -> str | None:
        """The fault for the request arriving now, or ``None``."""
        if self.schedule:
            kind = self.schedule.popleft()
        elif self.rate > 0.0 and self._rng.random() < self.rate:
            kind = self._rng.choice(self.kinds)
        else:
            return None
        if kind is not None:
            self.injected += 1
        return kind

    def retry_after_header(self) -> str:
        """The ``Retry-After`` value: whole seconds as an integer, else a decimal."""
        seconds = self.retry_after
        return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"
