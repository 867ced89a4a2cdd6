"""The bulk engine behind ``upsert_many`` and ``delete_many``: the path of one bulk run.

The values it makes and the seam it sends through are in :mod:`.bulk`.

Top to bottom:

1. One **producer** task reads the input (any iterable or async iterable)
   and collects up to ``chunk_size`` items: a plain dict as a shallow copy, a
   :class:`~.models.User` as the dict of its fields, anything else in its wire
   form (:func:`~.models.user_to_wire`). An item it cannot send (not a user,
   no id, not JSON, too large) is *rejected locally* with its reason.
   Columnar input (an Arrow table, record batches, a Polars DataFrame) has
   its own producer in :mod:`._columnar`, which encodes whole windows of rows
   with Arrow's kernels and hands its chunks to :meth:`_Run.flush`.
2. It encodes the chunk in one call (orjson when installed, else the standard
   library, same meaning), which converts dates as it meets them and refuses
   what the API cannot take; the ids are checked in one pass. A chunk that
   fails either goes the per-user way: each user converted, checked and encoded
   alone, the bad ones rejected. It splits a chunk further only when it is
   over the byte limit, and hands it over a zero-buffer memory stream. So at any time only
   the chunks being sent plus the one being built are in memory, whatever the
   size of the input.
3. ``concurrency`` **worker** tasks take chunks from the stream and POST them
   with the client's retries, through the narrow :class:`BatchSender` seam
   (the engine never sees the client itself). Before each request a worker
   takes a slot of the :class:`_Aimd` limiter, which lowers the number of
   requests in flight when the API answers 429 or 503 and raises it again as
   calls succeed.
4. Each answer is mapped back to the input: a 202 accepts the chunk; a 400
   with a tracking id accepts all users but those its JSON pointers name
   (``/updated/17/email`` is the 18th user of the chunk: its id and input
   position are kept); a chunk that fails after all retries is reported with
   its user ids and the exception, and the run goes on. Whatever settles
   users also queues their :class:`ChunkOutcome` (in the same step), and the
   queue is handed to ``on_chunk`` in order, one call at a time.
5. With ``wait=True``, the tracking ids are polled to ``PROCESSED`` by
   :func:`wait_for_all` (at most ``concurrency`` at a time) and the server's
   totals are added up.

Every task lives in one anyio task group, so the engine runs on asyncio and
trio alike and no task outlives the call, also when it is cancelled.

Each user read is in exactly one place at every moment, and moves between
places without an ``await`` in between: the chunk being filled, an *unsettled*
chunk (waiting for a worker or in flight), then one of the three buckets
(accepted, rejected, a failed chunk). So whatever stops a run, and whenever,
sweeping the unsettled places into failed chunks (:meth:`_Run.fail_unfinished`)
accounts for every user: ``accepted + len(rejected) + failed == submitted``.
An exception that stops a run early becomes a :class:`~.errors.BulkError`
holding that result; a cancellation from outside goes on unchanged, and the
result goes to the log record (``bulk_result``).
"""

from __future__ import annotations

import inspect
import itertools
import logging
import operator
import re
import time
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from itertools import islice
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import httpx

from . import _columnar
from ._retry import RetryEvent
from ._wire import (
    MAX_BATCH_ITEMS,
    MAX_USER_BYTES,
    encode_json_telling,
    id_problem,
    item_encoder,
    too_large_problem,
    unfit_problem,
)
from .bulk import (
    BatchSender,
    BulkCancelled,
    BulkProgress,
    BulkResult,
    ChunkOutcome,
    FailedChunk,
    Operation,
    RejectedUser,
    TrackingFailure,
    TrackingTotals,
    wait_for_all,
)
from .errors import (
    ActivateProError,
    ApiError,
    APIStatusError,
    AuthenticationError,
    BulkError,
    ErrorCode,
    PermissionDeniedError,
    UnexpectedResponseError,
)
from .models import BatchAccepted, User, deleted_to_wire, user_fields, user_to_wire

if TYPE_CHECKING:
    from anyio import CancelScope
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["run_bulk"]

logger = logging.getLogger("activatepro_async")

#: No cap below this: a chunk must at least hold an ordinary user.
MIN_CHUNK_BYTES = 1024

# AIMD: halve the allowed requests in flight on 429/503 (not below one), add
# 1/limit per successful chunk (about one more per round of `limit` chunks).
AIMD_DECREASE = 0.5
_CONGESTION_STATUSES = frozenset({429, 503})
_ABORT_ERRORS = (AuthenticationError, PermissionDeniedError)
_CHUNK_ERRORS = (ActivateProError, httpx.HTTPError)
# An RFC 6901 array index: ASCII digits, no leading zero; nine digits are more
# than any chunk holds (and int() of thousands of digits raises).
_POINTER_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")
# A sentinel: no item (None may be an item): what fill() read that was no
# user for its fast path, and a peeked input with nothing in it.
_NOTHING: Any = _columnar.NOTHING
# The iterators of list and tuple: no code of the caller runs as they advance.
_STABLE_ITERATORS: tuple[type, ...] = (type(iter([])), type(iter(())))
_get_id = operator.itemgetter("id")


# --------------------------------------------------------------------------
# Adaptive concurrency
# --------------------------------------------------------------------------


class _Aimd:
    """Slots for requests in flight, between 1 and ``ceiling``: AIMD on 429/503.

    A congestion signal halves the limit once per *epoch*: signals from
    requests sent before the last decrease are old news and ignored, so a
    burst of 429s from one overload halves the limit once, not eight times.
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        self.epoch = 0
        self._changed = anyio.Event()
        self._waiting = 0  # tasks in acquire()'s wait: no Event is swapped while none

    @property
    def current(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> None:
        while self.in_flight >= self.current:
            self._waiting += 1
            try:
                await self._changed.wait()
            finally:
                self._waiting -= 1
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._notify()

    def congestion(self, epoch: list[int]) -> None:
        """A 429/503 seen by a request whose attempt began in ``epoch[0]``."""
        if epoch[0] == self.epoch:
            self.epoch += 1
            self.limit = max(1.0, self.limit * AIMD_DECREASE)
            logger.info("API congested: lowering bulk concurrency to %d", self.current)
        epoch[0] = self.epoch

    def success(self) -> None:
        if self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
            self._notify()

    def _notify(self) -> None:
        # Wake every waiter; each checks the slots again (there are few). With
        # none waiting (the usual case: workers wait for chunks, not slots) this
        # is skipped, as a new Event per chunk is not free.
        if self._waiting:
            self._changed.set()
            self._changed = anyio.Event()


# --------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------


@attrs.define(slots=True)
class _Chunk:
    index: int
    body: bytes
    # Any sequence: the columnar producer hands over ranges and Arrow-backed
    # sequences, made Python objects only when the chunk's users are named.
    ids: Sequence[str]
    positions: Sequence[int]


# An encoded chunk before it has an index: its body, ids and input positions.
_Piece = tuple[bytes, Sequence[str], Sequence[int]]


def _local_reject(
    position: int, user_id: str | None, code: ErrorCode, details: str, pointer: str | None = None
) -> RejectedUser:
    error = ApiError(code=code, title=code.title, details=details, pointer=pointer)
    return RejectedUser(position, user_id, (error,), local=True)


def _describe_id(item: Any) -> str | None:
    """The id of an item that failed conversion, if it plainly has one."""
    if isinstance(item, str):
        return item or None
    if isinstance(item, User):
        return item.id
    if isinstance(item, Mapping):
        try:
            uid = item.get("id")
        except Exception:  # a hostile mapping: no id then
            return None
        return uid if isinstance(uid, str) and uid else None
    return None


class _Run:
    """The state of one bulk run; every task of the run shares it (one thread)."""

    def __init__(
        self,
        sender: BatchSender,
        operation: Operation,
        *,
        chunk_size: int,
        concurrency: int,
        max_chunk_bytes: int,
        on_progress: Callable[[BulkProgress], object] | None,
        on_chunk: Callable[[ChunkOutcome], object] | None = None,
    ) -> None:
        self.sender = sender
        self.operation: Operation = operation
        self.key = "updated" if operation == "upsert" else "deleted"
        self.to_wire: Callable[[Any], dict[str, Any]] = (
            user_to_wire if operation == "upsert" else deleted_to_wire
        )
        if operation == "upsert":
            self.head, self.tail = b'{"updated":[', b'],"deleted":[]}'
        else:
            self.head, self.tail = b'{"updated":[],"deleted":[', b"]}"
        self.chunk_size = chunk_size
        self.max_chunk_bytes = max_chunk_bytes
        self.on_progress = on_progress
        self.on_chunk = on_chunk
        # Outcomes settled but not yet handed to on_chunk, oldest first; a
        # user's outcome is queued in the same step that settles it (no await
        # between), and queued only when there is a hook to take it.
        self.outbox: deque[ChunkOutcome] = deque()
        # Local rejects not yet in an outcome (they go out with the next seal).
        self.local: list[RejectedUser] = []
        # Set when a hook raised: neither hook is called again.
        self.hooks_broken = False
        self.limiter = _Aimd(concurrency)
        self.started = time.perf_counter()
        # Counts and reports.
        self.submitted = 0
        self.accepted = 0
        self.rejected: list[RejectedUser] = []
        self.failed: list[FailedChunk] = []
        self.failed_users = 0
        self.unattributed: list[ApiError] = []
        self.tracking: dict[int, str] = {}
        self.api_rejected: dict[int, int] = {}
        self.chunks = 0
        self.chunks_done = 0
        self.retries = 0
        # Chunks made but not settled (waiting for a worker, or in flight); a
        # chunk is here from the moment it exists (new_chunk) until record() or
        # fail() takes it out, so an early end can fail every one of them.
        self.unsettled: dict[int, _Chunk] = {}
        self.aborted_by: Exception | None = None
        self.input_error: Exception | None = None
        self.scope: CancelScope | None = None
        self.progress_lock = anyio.Lock()
        # The chunk being filled by the producer: each user and its input
        # position. fill() leaves the checks of its users to seal(), which runs
        # before the producer's next await; add() checks its own at once.
        self.wires: list[dict[str, Any]] = []
        self.positions: list[int] = []
        # A record batch met among the rows (add() leaves it here for the
        # reader), and the rest of the slice fill() was taking when it met it.
        self.met: Any = _NOTHING
        self.unread: Iterator[Any] | None = None

    # -- the producer ------------------------------------------------------

    async def produce(
        self,
        items: Iterable[Any] | AsyncIterable[Any] | _columnar.ArrowStream,
        send: MemoryObjectSendStream[_Chunk],
    ) -> None:
        with send:
            try:
                # (run_bulk let through only columnar input that is not iterable.)
                if _columnar.is_columnar(items) or not isinstance(items, Iterable | AsyncIterable):
                    await _columnar.produce(self, items, send)
                elif isinstance(items, AsyncIterable):
                    await self.read_async(aiter(items), send)
                else:
                    await self.read(iter(items), send)
            except Exception as exc:
                if self.hooks_broken:
                    raise  # on_chunk raised in flush(): that stops the run, it is no input error
                # The input broke (a bad file, a parse error): send what was read,
                # then stop; run_bulk raises BulkError from it.
                self.input_error = exc
            await self.flush(send)

    async def read(self, iterator: Iterator[Any], send: MemoryObjectSendStream[_Chunk]) -> None:
        """Read a sync iterable of items: rows (dicts, Users, ids) and record batches, mixed.

        Rows go through :meth:`fill`; a record batch (or table) among them
        ends the chunk being filled (:meth:`add` hands it back in ``met``), and
        it and the batches right after it go through the columnar encoder
        (:class:`~._columnar.Feed`), their rows numbered on from the rows
        before them; then the rows go on.
        """
        feed: _columnar.Feed | None = None
        item = next(iterator, _NOTHING)
        while item is not _NOTHING:
            if _columnar.is_arrow_item(item):
                feed = feed or _columnar.Feed(self, send)
                item = self.top_up(item)
                if len(self.wires) >= self.chunk_size:
                    await self.flush(send)
                item = (
                    await feed.stretch(item, iterator)
                    if item.num_rows
                    else next(iterator, _NOTHING)
                )
                continue
            if self.add(item):
                await self.flush(send)
            item = _NOTHING
            while self.fill(iterator):
                if self.met is not _NOTHING:
                    break
                await self.flush(send)
            if self.met is not _NOTHING:
                item, self.met = self.met, _NOTHING
                if self.unread is not None:  # the rest of fill()'s slice comes first
                    iterator, self.unread = itertools.chain(self.unread, iterator), None

    async def read_async(
        self, aiterator: AsyncIterator[Any], send: MemoryObjectSendStream[_Chunk]
    ) -> None:
        """:meth:`read` of an async iterable (its rows go through :meth:`add`)."""
        feed: _columnar.Feed | None = None
        item = await anext(aiterator, _NOTHING)
        while item is not _NOTHING:
            if _columnar.is_arrow_item(item):
                feed = feed or _columnar.Feed(self, send)
                item = self.top_up(item)
                if len(self.wires) >= self.chunk_size:
                    await self.flush(send)
                item = (
                    await feed.stretch_async(item, aiterator)
                    if item.num_rows
                    else await anext(aiterator, _NOTHING)
                )
                continue
            if self.add(item):
                await self.flush(send)
            item = _NOTHING
            async for other in aiterator:
                if self.add(other):
                    if self.met is not _NOTHING:
                        item, self.met = self.met, _NOTHING
                        break
                    await self.flush(send)

    def top_up(self, batch: Any) -> Any:
        """Fill the chunk being filled with the first rows of ``batch``; the rows left.

        Taken as the rows they are (:func:`~._columnar.batch_rows`, the columnar
        path's meaning), so a chunk holds ``chunk_size`` users whatever kind
        of item they came in, as if every row were a dict.
        """
        taken, rows = 0, batch.num_rows
        while self.wires and len(self.wires) < self.chunk_size and taken < rows:
            want = min(self.chunk_size - len(self.wires), rows - taken)
            for row in _columnar.batch_rows(self, batch.slice(taken, want)):
                self.add(row)
            taken += want
        return batch.slice(taken) if taken else batch

    def keep(self, row: dict[str, Any], position: int) -> None:
        """Put a row already counted in ``submitted`` into the chunk being filled, checked."""
        taken = self.check(row, position)
        if isinstance(taken, RejectedUser):
            self.keep_local(taken)
        else:
            self.wires.append(taken[0])
            self.positions.append(position)

    def fill(self, iterator: Iterator[Any]) -> bool:
        """Read a sync iterator until the chunk is full (True) or it ends (False).

        The hot loop of a run, with no more work per user than the guarantees
        need. A plain dict is taken as a shallow copy (a generator that reuses
        one dict, changing it between yields, still sends what it yielded), a
        User as the dict of its fields, an id (deletes) as ``{"id": ...}``; their
        values and ids are checked by :meth:`encode_chunks`, once per chunk.
        Everything else goes through :meth:`add` at once.

        A list's or tuple's own iterator runs no code between items, and the
        chunk is encoded (in :meth:`seal`) before the run next awaits, so no
        dict of one can change before it is encoded: a slice of plain dicts is
        taken as it is, without a copy or a loop in Python.
        """
        wires = self.wires
        limit = self.chunk_size
        if type(iterator) not in _STABLE_ITERATORS or self.operation != "upsert":
            return self.take(iterator)
        while len(wires) < limit:
            batch = list(islice(iterator, limit - len(wires)))
            if not batch:
                return False
            kinds = set(map(type, batch))
            if len(kinds) == 1 and dict in kinds:
                wires += batch
                self.positions += range(self.submitted, self.submitted + len(batch))
                self.submitted += len(batch)
            elif self.take(rest := iter(batch)):
                if self.met is not _NOTHING:
                    self.unread = rest  # after the record batch met
                return True
        return True

    def take(self, iterator: Iterator[Any]) -> bool:
        """:meth:`fill` from any iterator, one item at a time."""
        wires, positions = self.wires, self.positions
        limit = self.chunk_size
        upsert = self.operation == "upsert"
        append = wires.append
        while len(wires) < limit:
            before = len(wires)
            other = _NOTHING
            try:
                for item in islice(iterator, limit - before):
                    kind = type(item)
                    if kind is dict and upsert:
                        append(item.copy())
                    elif kind is User and upsert:
                        append(user_fields(item))
                    elif kind is str and item and not upsert:
                        append({"id": item})
                    else:
                        other = item
                        break
            finally:
                # Also when the iterator raised: the users read are in the chunk.
                taken = len(wires) - before
                positions.extend(range(self.submitted, self.submitted + taken))
                self.submitted += taken
            if other is _NOTHING:
                return len(wires) >= limit
            if self.add(other):
                return True
        return True

    def add(self, item: Any) -> bool:
        """Take one input item, checked now; True when the chunk is full.

        Also True for a record batch (or table), not taken: it is left in
        ``met`` for the reader, which sends it on the columnar path. (Only an
        item the row converter refuses is looked at for that: no cost per row.)
        """
        position = self.submitted
        taken = self.check(item, position)
        if isinstance(taken, RejectedUser):
            if _columnar.is_arrow_item(item):
                self.met = item
                return True
            self.submitted += 1
            self.keep_local(taken)
            return False
        self.submitted += 1
        self.wires.append(taken[0])
        self.positions.append(position)
        return len(self.wires) >= self.chunk_size

    def check(self, item: Any, position: int) -> tuple[dict[str, Any], str] | RejectedUser:
        """One item in its wire form with its id, or why it cannot be sent."""
        try:
            wire = self.to_wire(item)
        except Exception as exc:  # anything the converter refuses is this item's fault
            return _local_reject(position, _describe_id(item), ErrorCode.INVALID_FIELD, str(exc))
        uid = wire.get("id")
        if not isinstance(uid, str) or not uid:
            return _local_reject(position, None, ErrorCode.INVALID_FIELD, id_problem(uid), "/id")
        return wire, uid

    def keep_local(self, rejected: RejectedUser) -> None:
        self.rejected.append(rejected)
        if self.on_chunk is not None:
            self.local.append(rejected)

    def reject_local(
        self,
        position: int,
        user_id: str | None,
        code: ErrorCode,
        details: str,
        pointer: str | None = None,
    ) -> None:
        self.keep_local(_local_reject(position, user_id, code, details, pointer))

    async def flush(
        self,
        send: MemoryObjectSendStream[_Chunk],
        made: Sequence[_Chunk] = (),
        *,
        seal: bool = True,
    ) -> None:
        """Seal the chunk being filled, report local rejects, hand over the chunks.

        ``made``: chunks a columnar producer made itself (with new_chunk), sent after.
        ``seal=False``: the chunk being filled is left to fill on.
        """
        if seal:
            chunks = [*self.seal(), *made]
        else:
            self.queue_local()
            chunks = list(made)
        if self.outbox:
            await self.report()  # the local rejects, before their chunks are sent
        for chunk in chunks:
            await send.send(chunk)

    def seal(self) -> list[_Chunk]:
        """Move the users of the chunk being filled into chunks or local rejects.

        Encoding only computes; the move after it cannot raise or wait, so each
        user is in exactly one place before, during and after it, and so also
        while flush() hands the chunks over one by one (a cancellation or an
        abort may land at any of those sends).
        """
        pieces: list[_Piece] = []
        if self.wires:
            pieces, rejects = self.encode_chunks(self.wires, self.positions)
            self.wires, self.positions = [], []
            self.rejected += rejects
            if self.on_chunk is not None:
                self.local += rejects
        self.queue_local()
        return [self.new_chunk(*piece) for piece in pieces]

    def queue_local(self) -> None:
        """Queue the local rejects not yet in an outcome as one outcome."""
        if self.local:
            local = sorted(self.local, key=lambda r: r.position)
            self.local = []
            self.outbox.append(
                ChunkOutcome(
                    None,
                    tuple(r.position for r in local),
                    tuple(r.user_id for r in local),
                    rejected=tuple(local),
                )
            )

    def new_chunk(self, body: bytes, ids: Sequence[str], positions: Sequence[int]) -> _Chunk:
        """A chunk of the run, unsettled until record() or fail() settles it."""
        chunk = _Chunk(self.chunks, body, ids, positions)
        self.chunks += 1
        self.unsettled[chunk.index] = chunk
        return chunk

    def settle(self, chunk: _Chunk) -> bool:
        """Take ``chunk`` out of the unsettled ones; False if it was settled already."""
        return self.unsettled.pop(chunk.index, None) is not None

    def encode_chunks(
        self, wires: list[dict[str, Any]], positions: list[int]
    ) -> tuple[list[_Piece], list[RejectedUser]]:
        """The chunk's users as bodies, and the users rejected on the way.

        The fast path: the ids in one pass, then one encoder call for the whole
        chunk, which converts what is not yet in wire form and refuses what
        cannot be sent. If either fails, the per-user path finds the culprits.
        """
        try:
            ids: list[Any] = list(map(_get_id, wires))
        except KeyError:  # a user without an id
            ids = [None]
        # Every id a non-empty str (a str subclass goes the per-user way too).
        if len(set(map(type, ids))) == 1 and type(ids[0]) is str and "" not in ids:
            empty: list[Any] = []
            envelope = {"updated": wires, "deleted": empty}
            if self.key == "deleted":
                envelope = {"updated": empty, "deleted": wires}
            try:
                body, trusted = encode_json_telling(envelope, convert=True)
            except (ValueError, TypeError, RecursionError):
                pass  # some user cannot be encoded: find it below
            else:
                items_bytes = len(body) - len(self.head) - len(self.tail)
                if len(body) <= self.max_chunk_bytes and items_bytes <= MAX_USER_BYTES:
                    # Small enough that no single user can be over the per-user limit.
                    return [(body, ids, positions)], []
                # Too large: every user encodes (the whole did), with the same
                # encoder (orjson's without the checks, if it made the whole).
                return self.encode_one_by_one(wires, ids, positions, trusted, convert=True)
        return self.encode_each(wires, positions)

    def encode_each(
        self, wires: list[dict[str, Any]], positions: list[int]
    ) -> tuple[list[_Piece], list[RejectedUser]]:
        """The per-user path: convert and check each user as :meth:`add` does, then encode."""
        kept: list[dict[str, Any]] = []
        ids: list[str] = []
        kept_positions: list[int] = []
        rejects: list[RejectedUser] = []
        for wire, position in zip(wires, positions, strict=True):
            taken = self.check(wire, position)
            if isinstance(taken, RejectedUser):
                rejects.append(taken)
                continue
            kept.append(taken[0])
            ids.append(taken[1])
            kept_positions.append(position)
        chunks, unsendable = self.encode_one_by_one(kept, ids, kept_positions)
        return chunks, rejects + unsendable

    def encode_one_by_one(
        self,
        wires: list[dict[str, Any]],
        ids: list[str],
        positions: list[int],
        trusted: bool = False,
        *,
        convert: bool = False,
    ) -> tuple[list[_Piece], list[RejectedUser]]:
        """Encode each user, reject the bad ones, pack by size."""
        encode = item_encoder(trusted, convert=convert)
        overhead = len(self.head) + len(self.tail)
        chunks: list[_Piece] = []
        rejects: list[RejectedUser] = []

        def reject(position: int, uid: str, code: ErrorCode, details: str) -> None:
            rejects.append(_local_reject(position, uid, code, details))

        parts: list[bytes] = []
        part_ids: list[str] = []
        part_positions: list[int] = []
        size = overhead
        for wire, uid, position in zip(wires, ids, positions, strict=True):
            try:
                part = encode(wire)
            except (ValueError, TypeError, RecursionError) as exc:
                reject(
                    position, uid, ErrorCode.INVALID_JSON, f"the user cannot be sent as JSON: {exc}"
                )
                continue
            if len(part) > MAX_USER_BYTES:
                reject(
                    position,
                    uid,
                    ErrorCode.INVALID_FIELD,
                    too_large_problem(len(part)),
                )
                continue
            if len(part) + overhead > self.max_chunk_bytes:
                reject(
                    position,
                    uid,
                    ErrorCode.MAX_BATCH_SIZE,
                    unfit_problem(len(part), self.max_chunk_bytes),
                )
                continue
            added = len(part) + (1 if parts else 0)
            if parts and size + added > self.max_chunk_bytes:
                body = self.head + b",".join(parts) + self.tail
                chunks.append((body, part_ids, part_positions))
                parts, part_ids, part_positions, size = [], [], [], overhead
                added = len(part)
            parts.append(part)
            part_ids.append(uid)
            part_positions.append(position)
            size += added
        if parts:
            body = self.head + b",".join(parts) + self.tail
            chunks.append((body, part_ids, part_positions))
        return chunks, rejects

    # -- the workers -------------------------------------------------------

    async def guard(self, task: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run one task of the run; an exception it lets out stops the run.

        Out of the task group it would be an ``ExceptionGroup`` without the
        result; as ``aborted_by`` it becomes a :class:`BulkError` holding it.
        """
        try:
            await task(*args)
        except Exception as exc:
            self.abort(exc)

    async def work(self, receive: MemoryObjectReceiveStream[_Chunk]) -> None:
        with receive:
            async for chunk in receive:
                await self.limiter.acquire()
                try:
                    tracking_id = await self.send(chunk)
                finally:
                    self.limiter.release()
                if self.aborted_by is None:
                    await self.report(chunk, tracking_id)

    async def send(self, chunk: _Chunk) -> str | None:
        """POST one chunk and record what came of it; its tracking id if accepted.

        A failed request fails the chunk and the run goes on; a 401/403 also
        stops the run. Any other exception (a bug, a transport raising what it
        should not) goes up to :meth:`guard` and stops the run.
        """
        epoch = [self.limiter.epoch]

        def on_retry(event: RetryEvent) -> None:
            self.retries += 1
            if event.status_code in _CONGESTION_STATUSES:
                self.limiter.congestion(epoch)

        try:
            accepted = await self.sender.send_batch(chunk.body, on_retry=on_retry)
            _check_tracking_id(accepted, chunk.index)
        except _ABORT_ERRORS as exc:
            self.fail(chunk, exc)
            self.abort(exc)
            return None
        except _CHUNK_ERRORS as exc:
            if isinstance(exc, APIStatusError) and exc.status_code in _CONGESTION_STATUSES:
                self.limiter.congestion(epoch)
            self.fail(chunk, exc)
            return None
        self.limiter.success()
        self.record(chunk, accepted)
        return accepted.tracking_id

    def record(self, chunk: _Chunk, accepted: BatchAccepted) -> None:
        if not self.settle(chunk):
            return
        self.chunks_done += 1
        self.tracking[chunk.index] = accepted.tracking_id
        named: dict[int, list[ApiError]] = {}
        for error in accepted.errors:
            index = _item_index(error.pointer, self.key, len(chunk.ids))
            if index is None:
                self.unattributed.append(error)
            else:
                named.setdefault(index, []).append(error)
        rejected = [
            RejectedUser(chunk.positions[index], chunk.ids[index], tuple(named[index]))
            for index in sorted(named)
        ]
        self.rejected += rejected
        self.api_rejected[chunk.index] = len(named)
        self.accepted += len(chunk.ids) - len(named)
        if self.on_chunk is not None:
            self.outbox.append(
                ChunkOutcome(
                    chunk.index,
                    tuple(chunk.positions),
                    tuple(chunk.ids),
                    accepted=len(chunk.ids) - len(named),
                    rejected=tuple(rejected),
                    tracking_id=accepted.tracking_id,
                )
            )

    def fail(self, chunk: _Chunk, exc: Exception, *, log: bool = True) -> None:
        if not self.settle(chunk):
            return
        self.chunks_done += 1
        self.failed_users += len(chunk.ids)
        failed = FailedChunk(chunk.index, tuple(chunk.positions), tuple(chunk.ids), exc)
        self.failed.append(failed)
        if self.on_chunk is not None:
            self.outbox.append(
                ChunkOutcome(chunk.index, failed.positions, failed.user_ids, exception=exc)
            )
        if log:
            logger.warning(
                "bulk %s: chunk %d (%d users) failed: %s",
                self.operation, chunk.index, len(chunk.ids), exc,
            )  # fmt: skip

    def abort(self, exc: Exception) -> None:
        """Stop the whole run now (401/403, a failing on_progress, a bug)."""
        if self.aborted_by is None:
            self.aborted_by = exc
        if self.scope is not None:
            self.scope.cancel()

    async def report(self, chunk: _Chunk | None = None, tracking_id: str | None = None) -> None:
        """Hand the queued outcomes to ``on_chunk``, then ``chunk``'s counts to ``on_progress``.

        One call at a time, so an async callback sees them in order. An
        exception from either goes up to guard(), which stops the run.
        """
        on_progress = self.on_progress if chunk is not None else None
        if on_progress is None and self.on_chunk is None:
            return
        # The counts as this chunk settled, not as they are once the lock is free.
        progress = (
            None if on_progress is None or chunk is None else self.progress(chunk, tracking_id)
        )
        async with self.progress_lock:
            await self.deliver()
            if on_progress is not None and progress is not None and not self.hooks_broken:
                await self.call(on_progress, progress)

    async def deliver(self) -> None:
        """Hand every queued outcome to ``on_chunk``, oldest first, each exactly once."""
        while self.outbox and self.on_chunk is not None and not self.hooks_broken:
            await self.call(self.on_chunk, self.outbox.popleft())

    async def call(self, hook: Callable[[Any], object], value: object) -> None:
        try:
            outcome = hook(value)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            self.hooks_broken = True
            raise

    def progress(self, chunk: _Chunk, tracking_id: str | None) -> BulkProgress:
        return BulkProgress(
            operation=self.operation,
            submitted=self.submitted,
            accepted=self.accepted,
            rejected=len(self.rejected),
            failed=self.failed_users,
            chunks_done=self.chunks_done,
            chunks_failed=len(self.failed),
            retries=self.retries,
            concurrency=self.limiter.current,
            elapsed=time.perf_counter() - self.started,
            chunk_index=chunk.index,
            chunk_positions=tuple(chunk.positions),
            chunk_tracking_id=tracking_id,
        )

    # -- the end -----------------------------------------------------------

    def fail_unfinished(self, exc: Exception) -> None:
        """After an early end: fail every user read but not settled, with ``exc``.

        The chunk being filled becomes a chunk too (never sent), so that its
        users are named like the others. No line per chunk: up to
        ``concurrency`` of them end alike, and the run's summary says so.
        """
        self.queue_local()
        if self.wires:
            # Only add()'s users can be here (fill()'s are sealed before any
            # await): checked, so each has its id.
            ids = [wire["id"] for wire in self.wires]
            self.new_chunk(b"", ids, self.positions)
            self.wires, self.positions = [], []
        for chunk in sorted(self.unsettled.values(), key=lambda c: c.index):
            self.fail(chunk, exc, log=False)

    def cancelled(self) -> None:
        """Log the result of a run cancelled from outside, as its record's ``bulk_result``."""
        if self.aborted_by is None:
            self.aborted_by = BulkCancelled(
                f"the {self.operation} run was cancelled before these chunks were settled "
                "(a chunk in flight may have been applied)"
            )
        self.fail_unfinished(self.aborted_by)
        result = self.result()
        logger.warning(
            "bulk %s cancelled; so far: %s (chunks in flight may have been applied)",
            self.operation, result.summary(), extra={"bulk_result": result},
        )  # fmt: skip

    async def wait_all(
        self, concurrency: int, wait_timeout: float
    ) -> tuple[TrackingTotals, int, list[TrackingFailure]]:
        """Poll every tracking id of the run to PROCESSED and add up the server's counts."""
        indexes = sorted(self.tracking)
        ids = [self.tracking[i] for i in indexes]
        totals = [0, 0, 0]
        processing_errors = 0
        failures: list[TrackingFailure] = []
        statuses = await wait_for_all(
            self.sender, ids, concurrency=concurrency, timeout=wait_timeout
        )
        for index, tracking_id, status in zip(indexes, ids, statuses, strict=True):
            if isinstance(status, Exception):
                failures.append(TrackingFailure(tracking_id, status))
                continue
            totals[0] += status.total
            totals[1] += status.success
            totals[2] += status.error
            processing_errors += max(0, status.error - self.api_rejected.get(index, 0))
        failures.sort(key=lambda f: f.tracking_id)
        return TrackingTotals(*totals), processing_errors, failures

    def result(
        self,
        tracking: TrackingTotals | None = None,
        processing_errors: int | None = None,
        tracking_failures: tuple[TrackingFailure, ...] = (),
    ) -> BulkResult:
        return BulkResult(
            operation=self.operation,
            submitted=self.submitted,
            accepted=self.accepted,
            rejected=tuple(sorted(self.rejected, key=lambda r: r.position)),
            failed_chunks=tuple(sorted(self.failed, key=lambda c: c.index)),
            tracking_ids=tuple(self.tracking[i] for i in sorted(self.tracking)),
            unattributed_errors=tuple(self.unattributed),
            chunks=self.chunks,
            retries=self.retries,
            elapsed=time.perf_counter() - self.started,
            tracking=tracking,
            processing_errors=processing_errors,
            tracking_failures=tracking_failures,
            aborted_by=self.aborted_by or self.input_error,
        )


def _check_tracking_id(accepted: BatchAccepted, index: int) -> None:
    """Refuse an acceptance whose tracking id is not a non-empty string.

    Without an id the chunk's fate cannot be followed (and ``wait=True`` would
    poll ``/users/track/``): the chunk failed, with a typed error.
    """
    tracking_id: object = accepted.tracking_id
    if not isinstance(tracking_id, str) or not tracking_id:
        raise UnexpectedResponseError(
            f"the API accepted chunk {index} with the tracking id {tracking_id!r}, not a "
            "non-empty string (is a proxy answering instead of the API? check base_url)",
            status_code=400 if accepted.errors else 202,
            body="",
        )


def _item_index(pointer: object, key: str, count: int) -> int | None:
    """The chunk index named by ``/updated/17/email``, or None if it names no item.

    Anything else (another key, ``-``, ``²``, a leading zero, an index past the
    chunk, not a string at all) names no item: RFC 6901 indexes only.
    """
    if not isinstance(pointer, str):
        return None
    parts = pointer.split("/", 3)
    if len(parts) < 3 or parts[0] != "" or parts[1] != key:
        return None
    if _POINTER_INDEX.fullmatch(parts[2]) is None:
        return None
    index = int(parts[2])
    return index if index < count else None


def _check_int(name: str, value: int, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")


async def run_bulk(
    sender: BatchSender,
    items: Iterable[Any] | AsyncIterable[Any] | _columnar.ArrowStream,
    *,
    operation: Operation,
    chunk_size: int,
    concurrency: int,
    max_chunk_bytes: int,
    wait: bool,
    wait_timeout: float,
    on_progress: Callable[[BulkProgress], object] | None,
    raise_on_failure: bool,
    on_chunk: Callable[[ChunkOutcome], object] | None = None,
) -> BulkResult:
    """Run one bulk operation; see :meth:`AsyncClient.upsert_many` for the contract."""
    _check_int("chunk_size", chunk_size, 1, MAX_BATCH_ITEMS)
    _check_int("concurrency", concurrency, 1)
    _check_int("max_chunk_bytes", max_chunk_bytes, MIN_CHUNK_BYTES)
    if isinstance(items, (str, bytes, Mapping, User)):
        # A common slip (one user, or one id, instead of a list of them).
        raise TypeError(
            f"{operation}_many() takes an iterable of users, got one {type(items).__name__}: "
            "wrap it in a list"
        )
    if _columnar.is_columnar(items):
        _columnar.check(
            items, operation
        )  # pyarrow installed, every column sendable: before any request
    elif not isinstance(items, (Iterable, AsyncIterable)):
        raise TypeError(f"users must be an iterable or async iterable, got {type(items).__name__}")
    pool = sender.max_connections
    if pool is not None and concurrency > pool:
        # More requests in flight than connections only queue in the pool and
        # die there with PoolTimeout.
        logger.warning(
            "bulk concurrency %d is above the HTTP pool's max_connections %d: using %d",
            concurrency, pool, pool,
        )  # fmt: skip
        concurrency = pool

    run = _Run(
        sender,
        operation,
        chunk_size=chunk_size,
        concurrency=concurrency,
        max_chunk_bytes=max_chunk_bytes,
        on_progress=on_progress,
        on_chunk=on_chunk,
    )
    send, receive = anyio.create_memory_object_stream[_Chunk](0)
    polled: tuple[TrackingTotals, int, list[TrackingFailure]] | None = None
    try:
        async with anyio.create_task_group() as tg:
            run.scope = tg.cancel_scope
            with receive:
                for _ in range(concurrency):
                    tg.start_soon(run.guard, run.work, receive.clone())
            tg.start_soon(run.guard, run.produce, items, send)
        run.scope = None
        if run.aborted_by is not None:
            run.fail_unfinished(run.aborted_by)
        # Every user is settled now: what on_chunk has not seen yet, it sees
        # before the run returns or raises (unless it raised itself).
        await run.guard(run.deliver)
        if wait and run.tracking and run.aborted_by is None and run.input_error is None:
            polled = await run.wait_all(concurrency, wait_timeout)
    except BaseException:
        # Cancelled from outside (a timeout, Ctrl-C): every task has ended. The
        # cancellation goes on unchanged (the scope that cancelled must catch
        # it), so the result, every unsettled user failed, goes to the log.
        run.cancelled()
        raise

    if run.aborted_by is not None:
        result = run.result()
        raise BulkError(
            f"{operation} run stopped early: {run.aborted_by}; {result.summary()}", result=result
        ) from run.aborted_by
    if run.input_error is not None:
        result = run.result()
        raise BulkError(
            f"reading the input failed after {run.submitted} items: "
            f"{type(run.input_error).__name__}: {run.input_error}; {result.summary()}",
            result=result,
        ) from run.input_error

    if polled is not None:
        totals, processing_errors, failures = polled
        result = run.result(totals, processing_errors, tuple(failures))
    elif wait:
        result = run.result(TrackingTotals(), 0)
    else:
        result = run.result()
    if raise_on_failure:
        result.raise_for_failures()
    return result
