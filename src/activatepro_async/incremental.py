"""Incremental sync: send only the users that changed since the API last confirmed them.

:meth:`AsyncClient.sync_users` (and ``activatepro sync``) is one
:class:`Syncer` around one ``upsert_many`` run, and a ``delete_many`` run with
``delete_missing``. The Syncer keeps no mechanism of its own for sending: it
chooses what to send, listens to the bulk engine's ``on_chunk``, follows the
tracking ids with the one poller (:func:`~.bulk.wait_for_all`) and writes the
state (:mod:`._syncstate`):

1. The state's confirmed hashes are read into memory (id -> 16 bytes).
2. Each user's wire form is hashed (:func:`~._syncstate.content_hash`, key
   order irrelevant). Its id is taken out of the in-memory table: an id not
   there is *new*, one with another hash *changed*, one with the same hash
   *unchanged* and not sent. What is left in the table once the input is read
   are the *missing* ids.
3. The new and changed users go to ``upsert_many``; ``on_chunk`` groups the
   accepted ones (not named in a partial 400) by tracking id.
4. Each tracking id is polled to ``PROCESSED``: if its errors are no more than
   the users its 400 named (none failed at processing), its users' hashes are
   *confirmed*, in one transaction. Otherwise none of them is (the API counts
   errors, it does not name them): they are sent again next run, which is
   safe, upserts being idempotent.
5. With ``delete_missing``, the missing ids are deleted (``delete_many``) and
   removed from the state once their delete is processed. When the state is
   not empty the users to send are held until the whole input is read, so the
   ``max_delete`` guard can refuse the run before anything is sent.

A kill at any moment loses at most confirmations not yet committed: those
users are sent again by the rerun, which ends in the same state.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import attrs

from ._columnar import ArrowStream, as_rows, is_arrow_item, is_columnar
from ._syncstate import SyncState, SyncStateError, content_hash
from ._wire import PLAIN_TYPES
from .bulk import BulkResult, ChunkOutcome, RejectedUser, TrackingWaiter, wait_for_all
from .errors import ActivateProError, BulkError
from .models import TrackingStatus, user_to_wire

if TYPE_CHECKING:
    from .bulk import BulkProgress
    from .client import AsyncClient

__all__ = [
    "DeleteGuardError",
    "SyncResult",
    "SyncStateError",
    "Syncer",
    "parse_max_delete",
    "run_sync",
]

_P = TypeVar("_P")

#: The default ``max_delete``: a tenth of the users in the state.
DEFAULT_MAX_DELETE = "10%"


class DeleteGuardError(ActivateProError):
    """``delete_missing`` would delete more users than ``max_delete`` allows: nothing was sent."""


def parse_max_delete(value: int | str) -> Callable[[int], float]:
    """``max_delete`` as the most deletes allowed for a state of n users.

    A count (``500`` or ``"500"``) or a percentage of the state (``"10%"``).
    """
    if isinstance(value, bool):
        raise TypeError("max_delete must be a count (500) or a percentage ('10%'), not a bool")
    if isinstance(value, int):
        count = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("%"):
                share = float(text[:-1])
                if not 0 <= share <= 100:
                    raise ValueError
                return lambda n: n * share / 100
            count = int(text)
        except ValueError:
            raise ValueError(
                f"max_delete takes a count (e.g. 500) or a percentage of the state "
                f"(e.g. 10%), got {value!r}"
            ) from None
    else:
        raise TypeError(
            f"max_delete must be an int or a str like '10%', got {type(value).__name__}"
        )
    if count < 0:
        raise ValueError(f"max_delete must be 0 or more, got {count}")
    return lambda n: count


@attrs.frozen
class SyncResult:
    """What :meth:`AsyncClient.sync_users` did with every user of its input.

    Each user read is ``new`` (not in the state), ``changed`` (another hash
    than the confirmed one) or ``unchanged`` (not sent). ``sent`` users went to
    ``upsert_many`` (``upserts``, whose positions count the users sent, not the
    input); of them ``confirmed`` are now in the state, the API having
    processed them, and ``unconfirmed`` were accepted but not confirmed (their
    batch had processing errors, or its tracking id could not be followed);
    the rest were ``rejected`` (each with its *input* position) or ``failed``.
    Every user not confirmed is sent again by the next run.

    ``missing`` ids were in the state but not in the input; with
    ``delete_missing`` they were deleted (``deletes``), and ``deleted`` of them
    are out of the state, their delete processed.
    """

    new: int
    changed: int
    unchanged: int
    sent: int
    confirmed: int
    unconfirmed: int
    failed: int
    rejected: tuple[RejectedUser, ...] = attrs.field(repr=lambda r: f"<{len(r)} items>")
    missing: int = 0
    deleted: int = 0
    state_users: int = 0
    upserts: BulkResult | None = None
    deletes: BulkResult | None = None

    @property
    def ok(self) -> bool:
        """True when every user sent was confirmed, and every missing one deleted if asked."""
        deletes_ok = self.deletes is None or self.deleted == self.missing
        return not (self.rejected or self.failed or self.unconfirmed) and deletes_ok

    def summary(self) -> str:
        """One line for logs."""
        return (
            f"sync: {self.new} new, {self.changed} changed, {self.unchanged} unchanged, "
            f"{self.sent} sent, {self.confirmed} confirmed, {self.unconfirmed} not confirmed, "
            f"{len(self.rejected)} rejected, {self.failed} failed, {self.missing} missing, "
            f"{self.deleted} deleted; {self.state_users} users in the state"
        )

    def raise_for_failures(self) -> None:
        """Raise :class:`BulkError` (with the upserts' result) unless :attr:`ok`."""
        if not self.ok:
            result = self.upserts or self.deletes or BulkResult("upsert", 0, 0)
            raise BulkError(self.summary(), result=result)


class Syncer(Generic[_P]):
    """Chooses what a sync sends, and records in the state what the API confirmed.

    The driver (``sync_users`` or the command) feeds its items through
    :meth:`select`, hands :meth:`on_chunk` to the bulk run, then awaits
    :meth:`finish`. Each item travels with a payload of the driver's (its
    input position, its source row), given back by :meth:`select`.
    """

    def __init__(
        self, state: SyncState, *, delete_missing: bool = False, max_delete: int | str = "10%"
    ) -> None:
        self.state = state
        self.delete_missing = delete_missing
        self.max_delete = max_delete
        self._limit = parse_max_delete(max_delete)
        #: The confirmed hashes not yet matched by an input user: the missing ids, at the end.
        self.unseen = state.load()
        self.state_size = len(self.unseen)
        # Held back until the input is read, so the guard can refuse before a send.
        self.hold = delete_missing and bool(self.unseen)
        self.new = self.changed = self.unchanged = self.sent = 0
        self.confirmed = self.unconfirmed = self.deleted = 0
        self.refused: DeleteGuardError | None = None
        # Sent and not yet settled, by position among the users sent: (id, hash).
        self._pending: dict[int, tuple[str | None, bytes | None]] = {}
        # Accepted, by tracking id: (users the API rejected in that batch, [(id, hash)]).
        self._accepted: dict[str, tuple[int, list[tuple[str, bytes]]]] = {}
        # This run's last hash of each id read: a repeated id was already popped
        # from ``unseen``, so it is judged against its previous row instead.
        self._latest: dict[str, bytes | None] = {}

    # -- choosing ------------------------------------------------------------------

    def classify(self, item: Any) -> tuple[Any, str | None, bytes | None] | None:
        """What to send for ``item`` (with its id and hash), or None when it is unchanged.

        An item that has no wire form, id or hash is sent as it is: the bulk
        engine rejects it with its reason, as ``upsert_many`` would.
        """
        if type(item) is dict and PLAIN_TYPES.issuperset(map(type, item.values())):
            wire = item  # already its own wire form (the command's rows, most dicts)
        else:
            try:
                wire = user_to_wire(item)
            except Exception:  # refused with its reason by the engine
                self.new += 1
                return item, None, None
        uid = wire.get("id")
        if isinstance(uid, str) and type(uid) is not str:
            # A str subclass (a StrEnum, numpy.str_) goes as its text, as the
            # engine sends it: the state keeps that text.
            uid = str.__str__(uid)
        if type(uid) is not str or not uid:
            self.new += 1
            return item, None, None
        try:
            digest: bytes | None = content_hash(wire)
        except (ValueError, TypeError, RecursionError):
            digest = None
        if uid in self._latest:
            # A repeat: identical to the id's previous row, it would change
            # nothing the API has not been sent (or confirmed); else the API
            # applies it on top, so it goes too.
            previous, self._latest[uid] = self._latest[uid], digest
            if digest is not None and previous == digest:
                self.unchanged += 1
                return None
            self.changed += 1
            return wire, uid, digest
        self._latest[uid] = digest
        old = self.unseen.pop(uid, None)
        if old is None:
            self.new += 1
        elif old == digest:
            self.unchanged += 1
            return None
        else:
            self.changed += 1
        return wire, uid, digest

    async def select(
        self,
        items: AsyncIterable[tuple[Any, _P]],
        complete: Callable[[], bool] = lambda: True,
    ) -> AsyncIterator[tuple[Any, _P]]:
        """The (item, payload) pairs to send, in input order; unchanged users are left out.

        ``complete()`` says, once ``items`` ends, whether it ended because the
        input was read to its end (not cut by an error): only then are missing
        ids deleted, or the guard applied.
        """
        held: list[tuple[Any, str | None, bytes | None, _P]] = []
        broken: Exception | None = None
        try:
            async for item, payload in items:
                chosen = self.classify(item)
                if chosen is None:
                    continue
                if self.hold:
                    held.append((*chosen, payload))
                    continue
                yield self._send(chosen), payload
        except Exception as exc:  # as upsert_many does: send what was read, then raise
            broken = exc
        if self.hold and broken is None and complete():
            self.refused = self.check_guard()
            if self.refused is not None:
                return  # nothing sent: finish() raises it
        for wire, uid, digest, payload in held:
            yield self._send((wire, uid, digest)), payload
        if broken is not None:
            raise broken

    def _send(self, chosen: tuple[Any, str | None, bytes | None]) -> Any:
        item, uid, digest = chosen
        self._pending[self.sent] = (uid, digest)
        self.sent += 1
        return item

    def check_guard(self) -> DeleteGuardError | None:
        """The refusal when deleting the missing ids would pass ``max_delete``."""
        missing, size = len(self.unseen), self.state_size
        limit = self._limit(size)
        if not self.delete_missing or missing <= limit:
            return None
        share = missing / size if size else 1.0
        return DeleteGuardError(
            f"delete-missing would delete {missing:,} of the {size:,} users in the state "
            f"({share:.1%}), more than max-delete {self.max_delete} allows ({int(limit):,}); "
            f"nothing was sent. If the export is complete, allow it with --max-delete "
            f"{missing} (max_delete={missing} in Python)"
        )

    # -- what became of them -----------------------------------------------------------

    def on_chunk(self, outcome: ChunkOutcome) -> None:
        """The bulk run's ``on_chunk`` (positions among the users sent)."""
        entries = [self._pending.pop(p) for p in outcome.positions]
        if outcome.tracking_id is None:
            return  # failed, or refused locally: not confirmed
        named = {r.position for r in outcome.rejected}
        users = [
            (uid, digest)
            for position, (uid, digest) in zip(outcome.positions, entries, strict=True)
            if position not in named and uid is not None and digest is not None
        ]
        unhashed = len(outcome.positions) - len(named) - len(users)
        self.unconfirmed += unhashed  # accepted, but with no hash to confirm it by
        rejected, group = self._accepted.setdefault(outcome.tracking_id, (0, []))
        group.extend(users)
        self._accepted[outcome.tracking_id] = (rejected + len(named), group)

    async def confirm(self, waiter: TrackingWaiter, *, concurrency: int, timeout: float) -> None:
        """Poll every accepted batch to PROCESSED; confirm the users of each clean one."""
        accepted, self._accepted = self._accepted, {}
        tracking_ids = list(accepted)
        broken: list[Exception] = []

        def done(i: int, status: TrackingStatus | Exception) -> None:
            rejected, users = accepted[tracking_ids[i]]
            clean = isinstance(status, TrackingStatus) and status.error <= rejected
            if not clean or broken:
                self.unconfirmed += len(users)
                return
            try:
                self.state.confirm(users)
            except SyncStateError as exc:  # a full disk: raised once the polls end
                broken.append(exc)
                self.unconfirmed += len(users)
                return
            self.confirmed += len(users)

        await wait_for_all(
            waiter, tracking_ids, concurrency=concurrency, timeout=timeout, on_done=done
        )
        if broken:
            raise broken[0]

    async def delete(
        self,
        client: AsyncClient,
        *,
        chunk_size: int,
        concurrency: int,
        timeout: float,
    ) -> BulkResult:
        """Delete the missing ids; forget each batch of them once its delete is processed."""
        by_tracking: dict[str, list[str]] = {}

        def on_chunk(outcome: ChunkOutcome) -> None:
            if outcome.tracking_id is not None:
                named = {r.position for r in outcome.rejected}
                by_tracking[outcome.tracking_id] = [
                    uid
                    for position, uid in zip(outcome.positions, outcome.user_ids, strict=True)
                    if position not in named and uid is not None
                ]

        result = await client.delete_many(
            list(self.unseen),
            chunk_size=chunk_size,
            concurrency=concurrency,
            on_chunk=on_chunk,
            raise_on_failure=False,
        )
        tracking_ids = list(by_tracking)
        statuses = await wait_for_all(
            client, tracking_ids, concurrency=concurrency, timeout=timeout
        )
        for tracking_id, status in zip(tracking_ids, statuses, strict=True):
            if isinstance(status, TrackingStatus) and status.error == 0:
                ids = by_tracking[tracking_id]
                self.state.forget(ids)
                self.deleted += len(ids)
        return result

    async def finish(
        self,
        client: AsyncClient,
        *,
        complete: bool,
        chunk_size: int,
        concurrency: int,
        timeout: float,
    ) -> BulkResult | None:
        """After the upserts: confirm them, then (if asked, and the input was whole) delete.

        Raises :class:`DeleteGuardError` if the guard refused the run (nothing was sent).
        """
        if self.refused is not None:
            raise self.refused
        await self.confirm(client, concurrency=concurrency, timeout=timeout)
        if not (self.delete_missing and complete and self.unseen):
            return None
        if not self.hold:  # cannot happen with a state read at start; kept for safety
            refused = self.check_guard()
            if refused is not None:
                raise refused
        return await self.delete(
            client, chunk_size=chunk_size, concurrency=concurrency, timeout=timeout
        )

    def counts(self) -> dict[str, int]:
        """The sync's counts, for summaries."""
        return {
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "sent": self.sent,
            "confirmed": self.confirmed,
            "unconfirmed": self.unconfirmed,
            "missing": len(self.unseen),
            "deleted": self.deleted,
            "not_deleted": len(self.unseen) - self.deleted if self.delete_missing else 0,
        }


async def _numbered(
    users: Iterable[Any] | AsyncIterable[Any],
) -> AsyncIterator[tuple[Any, int]]:
    """Each user with its input position; record batches (as upsert_many takes them) as their rows.

    Each user is hashed, so a batch must not reach the Syncer (nor the bulk
    engine, which would take the columnar path for rows the Syncer never saw).
    """
    position = 0
    if isinstance(users, AsyncIterable):
        async for user in users:
            for row in as_rows(user) if is_arrow_item(user) else (user,):
                yield row, position
                position += 1
    else:
        for user in users:
            for row in as_rows(user) if is_arrow_item(user) else (user,):
                yield row, position
                position += 1


def _check_users(users: object) -> None:
    if isinstance(users, (str, bytes, Mapping)):
        raise TypeError(
            f"sync_users() takes an iterable of users, got one {type(users).__name__}: "
            "wrap it in a list"
        )
    if not isinstance(users, (Iterable, AsyncIterable)):
        raise TypeError(f"users must be an iterable or async iterable, got {type(users).__name__}")


async def run_sync(
    client: AsyncClient,
    users: Iterable[Any] | AsyncIterable[Any] | ArrowStream,
    *,
    state: str | os.PathLike[str],
    options: Mapping[str, Any] | None,
    delete_missing: bool,
    max_delete: int | str,
    chunk_size: int,
    concurrency: int,
    max_chunk_bytes: int,
    wait_timeout: float,
    on_progress: Callable[[BulkProgress], object] | None,
    on_chunk: Callable[[ChunkOutcome], object] | None,
    raise_on_failure: bool,
) -> SyncResult:
    """One sync; see :meth:`AsyncClient.sync_users` for the contract."""
    # Each user is hashed, so a table's rows become the dicts the API would get.
    items = (
        as_rows(users) if is_columnar(users) else cast("Iterable[Any] | AsyncIterable[Any]", users)
    )
    _check_users(items)
    parse_max_delete(max_delete)  # a bad value fails before the state is touched
    opened = SyncState.open(state, base_url=client.base_url, options=dict(options or {}))
    try:
        syncer: Syncer[int] = Syncer(opened, delete_missing=delete_missing, max_delete=max_delete)
        # The input position of each user sent and not settled yet, by its position among the sent.
        input_of: dict[int, int] = {}
        rejected: list[RejectedUser] = []

        async def chosen() -> AsyncIterator[Any]:
            async for item, position in syncer.select(_numbered(items)):
                input_of[syncer.sent - 1] = position
                yield item

        def remap(outcome: ChunkOutcome) -> object:
            """Hand the outcome to the Syncer, and to the caller's hook in input positions."""
            syncer.on_chunk(outcome)
            ours = {p: input_of.pop(p) for p in outcome.positions}
            mine = attrs.evolve(
                outcome,
                positions=tuple(ours.values()),
                rejected=tuple(
                    attrs.evolve(r, position=ours[r.position]) for r in outcome.rejected
                ),
            )
            rejected.extend(mine.rejected)
            return on_chunk(mine) if on_chunk is not None else None

        cut = False
        stop: BulkError | None = None
        try:
            upserts = await client.upsert_many(
                chosen(),
                chunk_size=chunk_size,
                concurrency=concurrency,
                max_chunk_bytes=max_chunk_bytes,
                on_progress=on_progress,
                on_chunk=remap,
                raise_on_failure=False,
            )
        except BulkError as exc:  # stopped early: confirm what was taken, then raise
            upserts, cut, stop = exc.result, True, exc
        deletes = await syncer.finish(
            client,
            complete=not cut,
            chunk_size=chunk_size,
            concurrency=concurrency,
            timeout=wait_timeout,
        )
        if stop is not None:
            raise stop
        result = SyncResult(
            new=syncer.new,
            changed=syncer.changed,
            unchanged=syncer.unchanged,
            sent=syncer.sent,
            confirmed=syncer.confirmed,
            unconfirmed=syncer.unconfirmed,
            failed=upserts.failed,
            rejected=tuple(sorted(rejected, key=lambda r: r.position)),
            missing=len(syncer.unseen),
            deleted=syncer.deleted,
            state_users=opened.count(),
            upserts=upserts,
            deletes=deletes,
        )
    finally:
        opened.close()
    if raise_on_failure:
        result.raise_for_failures()
    return result
