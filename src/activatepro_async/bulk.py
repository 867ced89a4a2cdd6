"""The values of a bulk run, its seam to a client, and the one tracking poller.

What ``upsert_many`` and ``delete_many`` give back (:class:`BulkResult`,
:class:`RejectedUser`, :class:`FailedChunk`, ...) and hand to their hooks
(:class:`BulkProgress`, :class:`ChunkOutcome`); the narrow protocol the engine
sends through (:class:`BatchSender`); and :func:`wait_for_all`, which follows
tracking ids to ``PROCESSED``. The run itself is in :mod:`._engine`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

import anyio
import attrs

from ._retry import RetryEvent
from ._wire import DEFAULT_MAX_CHUNK_BYTES, MAX_USER_BYTES
from .errors import ActivateProError, ApiError, BulkError
from .models import BatchAccepted, TrackingStatus

__all__ = [
    "DEFAULT_MAX_CHUNK_BYTES",
    "MAX_USER_BYTES",
    "BatchSender",
    "BulkCancelled",
    "BulkProgress",
    "BulkResult",
    "ChunkOutcome",
    "FailedChunk",
    "Operation",
    "RejectedUser",
    "TrackingFailure",
    "TrackingTotals",
    "TrackingWaiter",
    "wait_for_all",
]

#: What a bulk run does with its items.
Operation = Literal["upsert", "delete"]

# --------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------


@attrs.frozen
class RejectedUser:
    """A user that was not stored because it is invalid.

    ``position`` is its 0-based index in the input, ``user_id`` its id (``None``
    when it had no usable one). ``errors`` are the API's errors for it, or, when
    ``local`` is true, the SDK's: it was never sent (not a user, no id, not
    JSON, over the 1 MiB per-user limit or the chunk byte limit).
    """

    position: int
    user_id: str | None
    errors: tuple[ApiError, ...]
    local: bool = False

    @property
    def reason(self) -> str:
        """All errors in one line, e.g. ``"[4] Invalid email (at /updated/3/email)"``."""
        return "; ".join(str(e) for e in self.errors)


@attrs.frozen
class FailedChunk:
    """A chunk whose request failed after all retries (or was stopped by an abort).

    Its users may or may not be stored: sending them again is safe, since an
    upsert or delete applied twice leaves the same state. ``index`` counts the
    chunks of the run from 0; ``positions`` and ``user_ids`` name its users.
    """

    index: int
    positions: tuple[int, ...]
    user_ids: tuple[str, ...]
    exception: Exception


class BulkCancelled(ActivateProError):
    """Why the unfinished chunks of a run that was cancelled from outside failed.

    Never raised: the cancellation itself goes on unchanged. It is the
    ``aborted_by`` and the chunks' ``exception`` of the result that the run
    logs (the log record's ``bulk_result``) when it is cancelled.
    """


@attrs.frozen
class TrackingTotals:
    """The server's counts over all tracking ids of a run, once ``PROCESSED``.

    ``error`` includes the users the API rejected in partial batches.
    """

    total: int = 0
    success: int = 0
    error: int = 0


@attrs.frozen
class TrackingFailure:
    """A tracking id that ``wait=True`` could not follow to ``PROCESSED``."""

    tracking_id: str
    exception: Exception


@attrs.frozen
class BulkProgress:
    """The counts of a bulk run so far, handed to ``on_progress`` after each chunk.

    ``submitted`` users were read from the input; of those, ``accepted`` were
    taken by the API, ``rejected`` refused (locally or by the API) and
    ``failed`` are in chunks that failed; the rest are on their way.
    ``concurrency`` is the number of requests now allowed in flight (lowered
    on 429/503). The ``chunk_*`` fields describe the chunk just finished: the
    input positions it carried and its tracking id (``None`` if it failed).
    """

    operation: Operation
    submitted: int
    accepted: int
    rejected: int
    failed: int
    chunks_done: int
    chunks_failed: int
    retries: int
    concurrency: int
    elapsed: float
    chunk_index: int
    chunk_positions: tuple[int, ...]
    chunk_tracking_id: str | None


def _count(items: tuple[Any, ...]) -> str:
    # A run may reject millions: the repr says how many, the field holds them.
    return f"<{len(items)} items>"


@attrs.frozen
class ChunkOutcome:
    """What became of some users of a bulk run, handed to ``on_chunk`` as it is settled.

    One outcome per chunk the run made, and one for each group of users that
    were refused before they were put in a chunk (``index`` is ``None``; they
    are all in ``rejected``, with ``local`` true). ``positions`` are the input
    positions of every user it settles, ``user_ids`` their ids in the same
    order (``None`` for a user refused without a usable id). Of them:

    - the chunk failed (``exception`` set; ``failed == len(positions)``): its
      users may or may not be stored, sending them again is safe;
    - or the API took it (``tracking_id`` set): ``accepted`` users were
      accepted, ``rejected`` refused (a 400 naming them by JSON pointer).

    ``accepted + len(rejected) + failed == len(positions)`` always holds; see
    :meth:`~activatepro_async.AsyncClient.upsert_many` for what the outcomes of
    a run add up to.
    """

    index: int | None
    positions: tuple[int, ...] = attrs.field(repr=_count)
    user_ids: tuple[str | None, ...] = attrs.field(repr=_count)
    accepted: int = 0
    rejected: tuple[RejectedUser, ...] = attrs.field(default=(), repr=_count)
    tracking_id: str | None = None
    exception: Exception | None = None

    @property
    def failed(self) -> int:
        """How many users are in this chunk if it failed (else 0)."""
        return len(self.positions) if self.exception is not None else 0


class TrackingWaiter(Protocol):
    """What :func:`wait_for_all` needs: an :class:`~activatepro_async.AsyncClient` is one."""

    async def wait_for_tracking(
        self,
        tracking_id: str,
        *,
        timeout: float = ...,  # noqa: ASYNC109 - the client's give-up time
    ) -> TrackingStatus:
        """Poll one tracking id until ``PROCESSED`` (or raise)."""
        ...


class BatchSender(TrackingWaiter, Protocol):
    """The narrow seam between the bulk engine and a client: all the engine calls.

    ``AsyncClient.upsert_many`` passes an adapter of itself; the engine never
    sees the client's attributes, its HTTP client or its transport.
    """

    @property
    def max_connections(self) -> int | None:
        """The HTTP pool's connection limit if known; the engine stays within it."""
        ...

    async def send_batch(
        self, body: bytes, *, on_retry: Callable[[RetryEvent], object]
    ) -> BatchAccepted:
        """POST one encoded batch body with the client's retries, calling ``on_retry``.

        A 400 that names invalid items and carries a tracking id is a
        :class:`BatchAccepted` with ``errors``; any other failure raises.
        """
        ...


@attrs.frozen
class BulkResult:
    """What a bulk run did with every user it read.

    ``accepted + len(rejected) + failed == submitted`` always holds. ``accepted``
    users were taken by the API; the API applies them asynchronously, and with
    ``wait=True`` ``tracking`` holds its final counts (``processing_errors``
    counts users the API accepted but could not apply, e.g. an email taken in
    that business unit).

    >>> result = await client.upsert_many(users, raise_on_failure=False)
    >>> for rejected in result.rejected:
    ...     print(rejected.position, rejected.user_id, rejected.reason)
    """

    operation: Operation
    submitted: int
    accepted: int
    rejected: tuple[RejectedUser, ...] = attrs.field(default=(), repr=_count)
    failed_chunks: tuple[FailedChunk, ...] = attrs.field(default=(), repr=_count)
    #: One per chunk the API accepted, in chunk order.
    tracking_ids: tuple[str, ...] = attrs.field(default=(), repr=_count)
    #: Errors of partial batches whose pointer names no user.
    unattributed_errors: tuple[ApiError, ...] = attrs.field(default=(), repr=_count)
    chunks: int = 0
    retries: int = 0
    elapsed: float = 0.0
    tracking: TrackingTotals | None = None
    processing_errors: int | None = None
    tracking_failures: tuple[TrackingFailure, ...] = ()
    #: The exception that stopped the run early, if one did.
    aborted_by: Exception | None = None

    @property
    def failed(self) -> int:
        """How many users are in failed chunks."""
        return sum(len(chunk.user_ids) for chunk in self.failed_chunks)

    @property
    def failed_user_ids(self) -> list[str]:
        """The ids of the users in failed chunks, in input order (to send again)."""
        return [uid for chunk in self.failed_chunks for uid in chunk.user_ids]

    @property
    def ok(self) -> bool:
        """True when every user was accepted (and, with ``wait=True``, applied)."""
        return not (
            self.rejected
            or self.failed_chunks
            or self.unattributed_errors
            or self.tracking_failures
            or self.processing_errors
            or self.aborted_by is not None
        )

    def summary(self) -> str:
        """One line for logs: ``"upsert: 2000 submitted, 1998 accepted, 2 rejected, ..."``."""
        text = (
            f"{self.operation}: {self.submitted} submitted, {self.accepted} accepted, "
            f"{len(self.rejected)} rejected, {self.failed} in {len(self.failed_chunks)} "
            f"failed chunks, {self.chunks} chunks, {self.retries} retries"
        )
        if self.tracking is not None:
            text += (
                f"; processed {self.tracking.success} ok, {self.tracking.error} errors "
                f"({self.processing_errors} at processing)"
            )
        if self.tracking_failures:
            text += f"; {len(self.tracking_failures)} tracking ids not followed"
        if self.unattributed_errors:
            text += f"; {len(self.unattributed_errors)} errors naming no user"
        if self.aborted_by is not None:
            text += f"; stopped early by {type(self.aborted_by).__name__}: {self.aborted_by}"
        return text

    def raise_for_failures(self) -> None:
        """Raise :class:`BulkError` (with this result) unless :attr:`ok`."""
        if not self.ok:
            raise BulkError(_failure_message(self), result=self)


def _failure_message(result: BulkResult) -> str:
    parts = [result.summary()]
    if result.rejected:
        first = result.rejected[0]
        parts.append(
            f"first rejected: input position {first.position} "
            f"(id {first.user_id!r}): {first.reason}"
        )
    if result.failed_chunks:
        exc = result.failed_chunks[0].exception
        parts.append(f"first failed chunk: {type(exc).__name__}: {exc}")
    parts.append("see .result for every user")
    return "; ".join(parts)


async def wait_for_all(
    client: TrackingWaiter,
    tracking_ids: Sequence[str],
    *,
    concurrency: int = 8,
    timeout: float = 300.0,  # noqa: ASYNC109 - a give-up time per id, as wait_for_tracking's
    on_done: Callable[[int, TrackingStatus | Exception], object] | None = None,
) -> list[TrackingStatus | Exception]:
    """Poll every tracking id to ``PROCESSED``, at most ``concurrency`` at a time.

    The bulk engine's one poller (``wait=True``), also for ids of earlier runs.
    Returns, in the order of ``tracking_ids``, each id's final
    :class:`TrackingStatus` or the exception that stopped following it (a
    :class:`~activatepro_async.NotFoundError` once it is 24 hours old, a
    :class:`~activatepro_async.TrackingTimeoutError` after ``timeout``
    seconds, ...): an id that cannot be followed is reported, never raised.
    ``on_done(i, status_or_exception)`` is called as each id is done.
    """
    results: list[TrackingStatus | Exception | None] = [None] * len(tracking_ids)
    todo = iter(enumerate(tracking_ids))

    async def poll() -> None:
        for i, tracking_id in todo:  # shared: each id is taken by one poller
            result: TrackingStatus | Exception
            try:
                result = await client.wait_for_tracking(tracking_id, timeout=timeout)
            except Exception as exc:
                result = exc
            results[i] = result
            if on_done is not None:
                on_done(i, result)

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, min(concurrency, len(tracking_ids)))):
            tg.start_soon(poll)
    return [r for r in results if r is not None]
