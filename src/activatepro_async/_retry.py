"""The retry policy: which failures to retry, and how long to wait between tries.

Waits come from ``backoff``'s wait generators (exponential, full jitter) and are
slept with ``anyio.sleep`` (backoff's own async decorator sleeps with asyncio and
would break under trio). Both the sleep and the clock are fields of the policy,
so tests replace them and never really wait.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable, Iterator

import anyio
import attrs
import backoff
import httpx

__all__ = ["RETRYABLE_STATUSES", "RetryEvent", "RetryPolicy"]

#: Statuses that are worth another try. 429 is not in the reference, but every
#: gateway sends it; 4xx otherwise means the request itself is wrong.
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

#: Statuses whose ``Retry-After`` header the client honours.
RETRY_AFTER_STATUSES = frozenset({429, 503})


def _validate_non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """How the client retries failed requests.

    Connection errors, timeouts and the statuses 429, 500, 502, 503 and 504 are
    retried, up to ``max_retries`` times and within ``total_timeout`` seconds from
    the first try. Waits grow as ``initial_backoff * 2**n`` up to ``max_backoff``,
    with full jitter. On 429 and 503 a ``Retry-After`` header sets the least wait;
    when it asks for more than ``max_retry_after`` seconds the client stops
    retrying and raises, since waiting that long is rarely what a caller wants.

    >>> AsyncClient(retry=RetryPolicy(max_retries=3, total_timeout=20))

    ``on_retry`` is called with a :class:`RetryEvent` before the wait of every
    retry of every request the client makes with this policy: single calls,
    each batch of ``upsert_many``/``delete_many``, tracking polls, and the
    calls of the sync :class:`~activatepro_async.Client` (there it runs in the
    client's event-loop thread). It is a plain callable, called synchronously
    and never awaited: keep it quick (count, log, export a metric). An
    exception it raises fails that request with it, and so stops a bulk run.

    >>> retries = []
    >>> AsyncClient(retry=RetryPolicy(on_retry=retries.append))

    ``sleep`` and ``clock`` are the waiting and time-keeping functions (tests
    pass fakes); ``jitter`` may be ``None`` for exact, repeatable waits.
    """

    max_retries: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    initial_backoff: float = attrs.field(default=0.5, validator=_validate_non_negative)
    max_backoff: float = attrs.field(default=8.0, validator=_validate_non_negative)
    total_timeout: float | None = 120.0
    max_retry_after: float = attrs.field(default=60.0, validator=_validate_non_negative)
    jitter: Callable[[float], float] | None = backoff.full_jitter
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    clock: Callable[[], float] = time.monotonic
    on_retry: Callable[[RetryEvent], object] | None = None

    def waits(self) -> Iterator[float]:
        """The backoff waits before retry 1, 2, 3, ... (jittered)."""
        gen = backoff.expo(factor=self.initial_backoff, max_value=self.max_backoff)
        next(gen)  # backoff's generators are primed with one send(None)
        for value in gen:
            yield self.jitter(value) if self.jitter is not None else value


def is_retryable_exception(exc: BaseException) -> bool:
    """A transport failure that another try may get past."""
    return isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@attrs.frozen
class RetryEvent:
    """One retry about to happen: handed to ``RetryPolicy(on_retry=...)`` and logged.

    ``attempt`` is the number of the try that just failed (1 for the first),
    ``wait`` the seconds slept before the next one.

    ``status_code`` is set when the server answered; ``exception`` when no
    complete answer came.
    """

    method: str
    path: str
    attempt: int
    wait: float
    status_code: int | None = None
    exception: BaseException | None = None
