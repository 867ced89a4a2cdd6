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
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import anyio.lowlevel
import attrs

from activatepro_async import BulkResult, RetryPolicy
from activatepro_async.emulator import FAULT_KINDS, Emulator, Faults

KEY = "chaos-key"
CHUNK_SIZE = 100
CONCURRENCY = 8
#: A share of requests meets a fault; each kind of FAULT_KINDS is drawn alike.
FAULT_RATE = 0.3
#: A few users the API refuses (an invalid email), so "rejected" is exercised too.
INVALID_SHARE = 0.005
#: Tries that reached the API's logic: their write was taken, whatever the client saw.
_DISPATCHED = (None, "latency", "truncate")


@attrs.frozen
class ChaosSettings:
    users: int
    seed: int
    report: Callable[[str], None]

    def tag(self) -> str:
        """For every failure message: how to replay this run."""
        return f"chaos seed {self.seed} (replay: ACTIVATEPRO_CHAOS_SEED={self.seed})"


class FakeSleep:
    """The retry policy's sleep: counts the waits, never waits (a checkpoint only)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await anyio.lowlevel.checkpoint()


def retry_policy(sleep: FakeSleep) -> RetryPolicy:
    # Two retries: enough for most chunks to get through, few enough that some
    # fail after all tries, so the failed-chunk path is exercised at every size.
    return RetryPolicy(max_retries=2, jitter=None, sleep=sleep, total_timeout=None)


def emulator(seed: int) -> Emulator:
    faults = Faults(rate=FAULT_RATE, kinds=FAULT_KINDS, seed=seed, retry_after=0.5, latency=0.02)
    # The audit reads every request the emulator saw: an unbounded log.
    return Emulator(
        api_keys=[KEY], faults=faults, max_logged_requests=None, request_log_bytes=None
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


def faults_by_kind(emu: Emulator) -> Counter[str]:
    return Counter(request.fault for request in emu.requests if request.fault)


def audit(
    settings: ChaosSettings,
    users: Sequence[dict[str, Any]],
    results: Sequence[tuple[int, BulkResult]],
    emu: Emulator,
) -> int:
    """Check every invariant of one run; the number of failed users the server stored.

    ``results`` pairs each ``upsert_many`` result with the input offset of its slice.
    """
    tag = settings.tag()
    outcome: dict[int, str] = {}
    failed_ids: set[str] = set()
    accepted = 0
    for offset, result in results:
        accepted += result.accepted
        assert result.aborted_by is None, f"{tag}: {result.summary()}"
        assert result.accepted + len(result.rejected) + result.failed == result.submitted, tag
        for rejected in result.rejected:
            position = offset + rejected.position
            assert position not in outcome, f"{tag}: user {position} reported twice"
            assert not rejected.local, f"{tag}: {rejected}"
            outcome[position] = "rejected"
        for chunk in result.failed_chunks:
            failed_ids.update(chunk.user_ids)
            for position in chunk.positions:
                assert offset + position not in outcome, f"{tag}: user {position} reported twice"
                outcome[offset + position] = "failed"
    assert sum(r.submitted for _, r in results) == len(users), f"{tag}: users lost on input"
    assert accepted == len(users) - len(outcome), tag

    emu.process_pending()
    stored = emu.users
    # What the server took, by its own log: the tries that reached its logic.
    taken: set[str] = set()
    lost_answers: set[str] = set()
    for request in emu.requests:
        if request.path != "/users/batch" or request.fault not in _DISPATCHED:
            continue
        assert request.status in (202, 400), f"{tag}: {request}"
        ids = {user["id"] for user in json.loads(request.body)["updated"] if is_valid(user)}
        taken |= ids
        if request.fault == "truncate":
            lost_answers |= ids
    assert set(stored) == taken, f"{tag}: the emulator's state is not what its log says"

    for position, user in enumerate(users):
        kind = outcome.get(position, "accepted")
        uid = user["id"]
        if kind == "accepted":
            assert is_valid(user), f"{tag}: invalid user {uid!r} accepted"
            assert uid in stored, f"{tag}: accepted user {uid!r} lost"
            assert {k: v for k, v in stored[uid].items() if k != "xngId"} == user, tag
        elif kind == "rejected":
            assert not is_valid(user), f"{tag}: valid user {uid!r} rejected"
            assert uid not in stored, f"{tag}: rejected user {uid!r} stored"
        else:
            assert uid not in stored or uid in lost_answers, (
                f"{tag}: user {uid!r} reported failed, stored, and no answer of it was lost"
            )
    return len(failed_ids & set(stored))


def assert_all_valid_users_stored(
    settings: ChaosSettings, users: Sequence[dict[str, Any]], emu: Emulator
) -> None:
    emu.process_pending()
    stored = emu.users
    expected = {user["id"]: user for user in users if is_valid(user)}
    assert set(stored) == set(expected), f"{settings.tag()}: the final state differs"
    for uid, user in expected.items():
        assert {k: v for k, v in stored[uid].items() if k != "xngId"} == user, settings.tag()
