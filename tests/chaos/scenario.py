"""The chaos scenario: its users, its faults, and the audit of what came of them.

What "reported failed" means. A chunk is reported failed when the SDK got no
answer it could trust after all its tries. The server may still have taken one
of those tries: a response cut mid-body (``truncate``) comes from a request
the server accepted. So a failed user is "not confirmed", not "not stored",
and the audit checks the precise form: a user reported failed is stored only
if the emulator's log shows a try of it that the server accepted and whose
answer was lost. Resending the failed users is then safe (an upsert applied
twice leaves the same state), and after the resend every valid user is stored.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio.lowlevel
import attrs

from activatepro_async import (
    ActivateProError,
    BulkProgress,
    BulkResult,
    RetryPolicy,
    TrackingTotals,
)
from activatepro_async.emulator import FAULT_KINDS, Emulator, Faults, ManualClock

KEY = "chaos-key"
CHUNK_SIZE = 100
CONCURRENCY = 8
#: A share of requests meets a fault; each kind of FAULT_KINDS is drawn alike.
FAULT_RATE = 0.3
#: A few users the API refuses (an invalid email), so "rejected" is exercised too.
INVALID_SHARE = 0.005
#: Tries that reached the API's logic: their write was taken, whatever the client saw.
_DISPATCHED = (None, "latency", "truncate")
#: With ``wait=True``: seconds (of the emulator's manual clock, which the fake
#: sleep moves) before an accepted write is applied. Longer than the fake time
#: all the sends take (a few minutes of retry waits), so that every write is
#: still pending when its polling starts and the polling loop really runs; far
#: under the 24 hours a tracking id lives.
PROCESSING_DELAY = 1800.0
#: ``wait_timeout`` of those runs: polls give up after this (fake) time.
WAIT_TIMEOUT = 4 * PROCESSING_DELAY

#: An item of a delete run: an id, or ``{"id": ..., "email": ...}``.
DeleteItem = str | dict[str, Any]
T = TypeVar("T")


@attrs.frozen
class ChaosSettings:
    users: int
    seed: int
    report: Callable[[str], None]

    def tag(self) -> str:
        """For every failure message: how to replay this run."""
        return f"chaos seed {self.seed} (replay: ACTIVATEPRO_CHAOS_SEED={self.seed})"


class FakeSleep:
    """The retry policy's sleep: counts the waits, never waits (a checkpoint only).

    With a ``clock``, each wait moves it on instead: the time the client and
    the emulator share, for runs whose writes take time to apply (``wait=True``).
    """

    def __init__(self, clock: ManualClock | None = None) -> None:
        self.waits: list[float] = []
        self.clock = clock

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)
        await anyio.lowlevel.checkpoint()


def retry_policy(sleep: FakeSleep) -> RetryPolicy:
    # Two retries: enough for most chunks to get through, few enough that some
    # fail after all tries, so the failed-chunk path is exercised at every size.
    clock = time.monotonic if sleep.clock is None else sleep.clock
    return RetryPolicy(max_retries=2, jitter=None, sleep=sleep, total_timeout=None, clock=clock)


def emulator(seed: int, clock: ManualClock | None = None) -> Emulator:
    """The emulator of a run; with a ``clock``, writes apply ``PROCESSING_DELAY`` late."""
    faults = Faults(rate=FAULT_RATE, kinds=FAULT_KINDS, seed=seed, retry_after=0.5, latency=0.02)
    # The audit reads every request the emulator saw: an unbounded log.
    return Emulator(
        api_keys=[KEY],
        faults=faults,
        max_logged_requests=None,
        request_log_bytes=None,
        clock=clock,
        processing_delay=0.0 if clock is None else PROCESSING_DELAY,
    )


def make_users(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)  # reproducible test data
    users = []
    for i in range(count):
        email = "not-an-email" if rng.random() < INVALID_SHARE else f"user{i}@example.com"
        users.append(
            {
                "id": f"u{i}/{rng.randrange(10**6)}",  # a "/" that must stay in the id
                "email": email,
                "firstName": rng.choice(["Ada", "Grace", "Édith", "Linus", "李"]),
                "birthday": f"19{rng.randrange(40, 99)}-0{rng.randrange(1, 9)}-1{rng.randrange(9)}",
            }
        )
    return users


def is_valid(user: dict[str, Any]) -> bool:
    return "@" in user["email"]


def faults_by_kind(emu: Emulator, path_prefix: str = "/") -> Counter[str]:
    return Counter(
        request.fault
        for request in emu.requests
        if request.fault and request.path.startswith(path_prefix)
    )


def failed_items(items: Sequence[T], result: BulkResult) -> list[T]:
    """The items of ``result``'s failed chunks, in input order: what to send again."""
    return [items[position] for chunk in result.failed_chunks for position in chunk.positions]


def accounting(
    settings: ChaosSettings, results: Sequence[tuple[int, BulkResult]], submitted: int
) -> dict[int, str]:
    """Check the counts of each result; the outcome of every input position not accepted.

    ``results`` pairs each result with the input offset of its slice. Every
    position is in one bucket only: "rejected" (by the API: the scenario makes
    no local rejects) or "failed"; the others were accepted.
    """
    tag = settings.tag()
    outcome: dict[int, str] = {}
    accepted = 0
    for offset, result in results:
        accepted += result.accepted
        assert result.aborted_by is None, f"{tag}: {result.summary()}"
        assert result.accepted + len(result.rejected) + result.failed == result.submitted, tag
        for rejected in result.rejected:
            position = offset + rejected.position
            assert position not in outcome, f"{tag}: item {position} reported twice"
            assert not rejected.local, f"{tag}: {rejected}"
            outcome[position] = "rejected"
        for chunk in result.failed_chunks:
            for position in chunk.positions:
                assert offset + position not in outcome, f"{tag}: item {position} reported twice"
                outcome[offset + position] = "failed"
    assert sum(r.submitted for _, r in results) == submitted, f"{tag}: items lost on input"
    assert accepted == submitted - len(outcome), tag
    return outcome


def taken_by_log(
    settings: ChaosSettings, emu: Emulator, key: str, valid: Callable[[Any], bool]
) -> tuple[set[str], set[str]]:
    """What the server took, by its own log: the ids of the valid items under ``key``
    ("updated" or "deleted") of every batch try that reached its logic, and the
    ids of those tries whose answer was cut."""
    taken: set[str] = set()
    lost_answers: set[str] = set()
    for request in emu.requests:
        if request.path != "/users/batch" or request.fault not in _DISPATCHED:
            continue
        assert request.status in (202, 400), f"{settings.tag()}: {request}"
        ids = {item["id"] for item in json.loads(request.body)[key] if valid(item)}
        taken |= ids
        if request.fault == "truncate":
            lost_answers |= ids
    return taken, lost_answers


def audit(
    settings: ChaosSettings,
    users: Sequence[dict[str, Any]],
    results: Sequence[tuple[int, BulkResult]],
    emu: Emulator,
) -> int:
    """Check every invariant of one upsert run; the number of failed users the server stored.

    ``results`` pairs each ``upsert_many`` result with the input offset of its slice.
    """
    tag = settings.tag()
    outcome = accounting(settings, results, len(users))
    emu.process_pending()
    stored = emu.users
    taken, lost_answers = taken_by_log(settings, emu, "updated", is_valid)
    assert set(stored) == taken, f"{tag}: the emulator's state is not what its log says"

    stored_though_failed = 0
    for position, user in enumerate(users):
        kind = outcome.get(position, "accepted")
        uid = user["id"]
        if kind == "accepted":
            assert is_valid(user), f"{tag}: invalid user {uid!r} accepted"
            assert uid in stored, f"{tag}: accepted user {uid!r} lost"
            assert without_xng_id(stored[uid]) == user, tag
        elif kind == "rejected":
            assert not is_valid(user), f"{tag}: valid user {uid!r} rejected"
            assert uid not in stored, f"{tag}: rejected user {uid!r} stored"
        elif uid in stored:
            assert uid in lost_answers, (
                f"{tag}: user {uid!r} reported failed, stored, and no answer of it was lost"
            )
            stored_though_failed += 1
    return stored_though_failed


def without_xng_id(user: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in user.items() if k != "xngId"}


def assert_all_valid_users_stored(
    settings: ChaosSettings, users: Sequence[dict[str, Any]], emu: Emulator
) -> None:
    emu.process_pending()
    stored = emu.users
    expected = {user["id"]: user for user in users if is_valid(user)}
    assert set(stored) == set(expected), f"{settings.tag()}: the final state differs"
    for uid, user in expected.items():
        assert without_xng_id(stored[uid]) == user, settings.tag()


# -- deletes -------------------------------------------------------------------

#: Share of the stored users a delete run leaves alone, and the share of its
#: items that name a user never stored (deleting it succeeds).
KEPT_SHARE = 0.2
UNKNOWN_SHARE = 0.05


def make_deletes(users: Sequence[dict[str, Any]], seed: int) -> list[DeleteItem]:
    """What a delete run sends for the stored ``users``: ids, and ``{"id", "email"}``
    mappings, a few with an invalid email (which the API refuses, code 4)."""
    rng = random.Random(seed + 1)  # reproducible test data
    items: list[DeleteItem] = []
    for i, user in enumerate(users):
        draw = rng.random()
        if draw < INVALID_SHARE:
            items.append({"id": user["id"], "email": "not-an-email"})
        elif draw < 0.1:
            items.append({"id": user["id"], "email": user["email"]})
        elif draw < 1 - KEPT_SHARE:
            items.append(user["id"])
        if rng.random() < UNKNOWN_SHARE:
            items.append(f"never-stored-{i}")
    return items


def item_id(item: DeleteItem) -> str:
    return item if isinstance(item, str) else item["id"]


def is_valid_delete(item: DeleteItem) -> bool:
    return isinstance(item, str) or "@" in item.get("email", "@")


def audit_deletes(
    settings: ChaosSettings,
    seeded: Sequence[dict[str, Any]],
    items: Sequence[DeleteItem],
    result: BulkResult,
    emu: Emulator,
) -> int:
    """Check every invariant of one delete run; the number of failed items the server took.

    Accepted deletes are gone, rejected ones (an invalid email) still stored,
    failed ones gone only by a try whose answer was cut; users the run did not
    name are untouched, and the state is what the emulator's log says.
    """
    tag = settings.tag()
    outcome = accounting(settings, [(0, result)], len(items))
    emu.process_pending()
    stored = emu.users
    taken, lost_answers = taken_by_log(settings, emu, "deleted", is_valid_delete)
    seeded_by_id = {user["id"]: user for user in seeded}
    assert set(stored) == set(seeded_by_id) - taken, (
        f"{tag}: the emulator's state is not what its log says"
    )

    taken_though_failed = 0
    for position, item in enumerate(items):
        kind = outcome.get(position, "accepted")
        uid = item_id(item)
        if kind == "accepted":
            assert is_valid_delete(item), f"{tag}: invalid delete {item!r} accepted"
            assert uid not in stored, f"{tag}: user {uid!r} deleted, and still stored"
        elif kind == "rejected":
            assert not is_valid_delete(item), f"{tag}: valid delete {item!r} rejected"
            assert uid in stored, f"{tag}: user {uid!r} deleted by a rejected item"
        elif uid in seeded_by_id and uid not in stored:
            assert uid in lost_answers, (
                f"{tag}: delete of {uid!r} reported failed, done, and no answer of it was lost"
            )
            taken_though_failed += 1
    named = {item_id(item) for item in items}
    for uid, user in seeded_by_id.items():
        if uid not in named:
            assert without_xng_id(stored[uid]) == user, f"{tag}: user {uid!r} changed"
    return taken_though_failed


def assert_all_valid_deletes_done(
    settings: ChaosSettings,
    seeded: Sequence[dict[str, Any]],
    items: Sequence[DeleteItem],
    emu: Emulator,
) -> None:
    emu.process_pending()
    deleted = {item_id(item) for item in items if is_valid_delete(item)}
    expected = {user["id"] for user in seeded} - deleted
    assert set(emu.users) == expected, f"{settings.tag()}: the final state differs"


# -- wait=True -----------------------------------------------------------------


class ChunkLog:
    """``on_progress``: the input positions of each chunk, by its tracking id."""

    def __init__(self) -> None:
        self.positions: dict[str, tuple[int, ...]] = {}

    def __call__(self, progress: BulkProgress) -> None:
        if progress.chunk_tracking_id is not None:
            assert progress.chunk_tracking_id not in self.positions, "a tracking id twice"
            self.positions[progress.chunk_tracking_id] = progress.chunk_positions


def audit_tracking(
    settings: ChaosSettings, result: BulkResult, chunks: ChunkLog, emu: Emulator
) -> None:
    """The ``wait=True`` totals are those of the tracking ids followed, and agree
    with ``accepted``, with the rejects, and with the emulator's own counters."""
    tag = settings.tag()
    assert result.tracking is not None, tag
    assert result.processing_errors == 0, f"{tag}: {result.summary()}"
    assert sorted(result.tracking_ids) == sorted(chunks.positions), tag
    unfollowed = {failure.tracking_id for failure in result.tracking_failures}
    assert len(unfollowed) == len(result.tracking_failures), f"{tag}: a tracking id twice"
    assert unfollowed <= set(result.tracking_ids), tag
    for failure in result.tracking_failures:
        assert isinstance(failure.exception, ActivateProError), f"{tag}: {failure!r}"

    emu.process_pending()
    rejected = {r.position for r in result.rejected}
    followed: Counter[str] = Counter()
    for tracking_id, positions in chunks.positions.items():
        errors = len(rejected.intersection(positions))
        counts = {"total": len(positions), "success": len(positions) - errors, "error": errors}
        assert emu.tracking(tracking_id) == {"stage": "PROCESSED", **counts}, (
            f"{tag}: tracking id {tracking_id}"
        )
        if tracking_id not in unfollowed:
            followed.update(counts)
    assert result.tracking == TrackingTotals(**followed), f"{tag}: {result.summary()}"

    # The chunks with a tracking id hold exactly the accepted and rejected items.
    tracked = [position for positions in chunks.positions.values() for position in positions]
    failed = {position for chunk in result.failed_chunks for position in chunk.positions}
    assert len(set(tracked)) == len(tracked) == result.accepted + len(rejected), tag
    assert rejected <= set(tracked), tag
    assert failed.isdisjoint(tracked), tag
