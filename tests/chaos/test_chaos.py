"""Chaos: every fault kind at once over loopback, and nothing is lost.

The emulator is served on a real socket with 500/502/503/504, 429 with
Retry-After, latency spikes, dropped connections, proxy HTML pages and
responses cut mid-body, all drawn at random (seeded) for 30 % of requests,
tracking polls included. Users go through ``upsert_many`` and ``delete_many``
with fast retries (the policy's sleep is fake), with and without ``wait=True``.
Each run checks what :mod:`.scenario`'s audits state, then resends what failed
and checks the final state. Size and seed: see ``conftest.py``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import pytest
from anyio.from_thread import start_blocking_portal

from activatepro_async import AsyncClient, BulkResult, Client
from activatepro_async.emulator import FAULT_KINDS, Emulator, ManualClock

from .scenario import (
    CHUNK_SIZE,
    CONCURRENCY,
    KEY,
    WAIT_TIMEOUT,
    ChaosSettings,
    ChunkLog,
    DeleteItem,
    FakeSleep,
    assert_all_valid_deletes_done,
    assert_all_valid_users_stored,
    audit,
    audit_deletes,
    audit_tracking,
    emulator,
    failed_items,
    faults_by_kind,
    is_valid,
    make_deletes,
    make_users,
    retry_policy,
)

pytestmark = pytest.mark.chaos

THREADS = 8
#: Resending failed users converges fast (each round fails ~2 % of chunks).
MAX_RESEND_ROUNDS = 10
#: The delete and wait=True runs send this share of ACTIVATEPRO_CHAOS_USERS.
SMALL_RUN_SHARE = 0.25

T = TypeVar("T")


@pytest.fixture
def anyio_backend() -> str:
    # uvicorn serves on asyncio; under asyncio it shares the test's loop. The
    # sync run below covers the trio portal.
    return "asyncio"


def small_run(settings: ChaosSettings) -> int:
    return max(8, int(settings.users * SMALL_RUN_SHARE))


def check_and_report(
    settings: ChaosSettings,
    name: str,
    items: int,
    results: Sequence[tuple[int, BulkResult]],
    emu: Emulator,
    sleep: FakeSleep,
    elapsed: float,
    taken_though_failed: int,
) -> None:
    faults = faults_by_kind(emu)
    # Every kind is met at any size worth the name (about 15 of each expected here).
    if len(emu.requests) >= 50 * len(FAULT_KINDS):
        assert set(faults) == set(FAULT_KINDS), f"{settings.tag()}: not every fault met: {faults}"
    failed = sum(result.failed for _, result in results)
    retries = sum(result.retries for _, result in results)
    polls = sum(1 for request in emu.requests if request.path.startswith("/users/track/"))
    if not polls:  # with wait=True, the polls' retries and waits use the same sleep
        assert retries == len(sleep.waits), settings.tag()
    unfollowed = sum(len(result.tracking_failures) for _, result in results)
    line = (
        f"{name}: {items} items, {settings.tag()}, {len(emu.requests)} requests "
        f"({polls} tracking polls, {unfollowed} tracking ids not followed), "
        f"faults {dict(sorted(faults.items()))} "
        f"({sum(faults.values())} in all), {retries} retries, {failed} items in failed "
        f"chunks ({taken_though_failed} of them taken by a try whose answer was cut), "
        f"{elapsed:.1f} s"
    )
    print(line)
    settings.report(line)


async def resend_until_done(
    settings: ChaosSettings,
    items: Sequence[T],
    first: BulkResult,
    send: Callable[[list[T]], Awaitable[BulkResult]],
) -> None:
    result = first
    for _ in range(MAX_RESEND_ROUNDS):
        if not result.failed_chunks:
            return
        items = failed_items(items, result)
        result = await send(items)
    assert not result.failed_chunks, f"{settings.tag()}: still failing after resends"


@pytest.mark.anyio
async def test_upsert_many_stores_or_reports_every_user_under_every_fault(
    chaos: ChaosSettings,
) -> None:
    users = make_users(chaos.users, chaos.seed)
    emu = emulator(chaos.seed)
    sleep = FakeSleep()
    started = time.perf_counter()
    async with (
        emu.serve() as base_url,
        AsyncClient(KEY, base_url=base_url, retry=retry_policy(sleep)) as client,
    ):

        async def upsert_many(batch: list[dict[str, Any]]) -> BulkResult:
            return await client.upsert_many(
                batch, chunk_size=CHUNK_SIZE, concurrency=CONCURRENCY, raise_on_failure=False
            )

        result = await upsert_many(users)
        elapsed = time.perf_counter() - started
        taken = audit(chaos, users, [(0, result)], emu)
        check_and_report(
            chaos, "upsert_many", len(users), [(0, result)], emu, sleep, elapsed, taken
        )
        await resend_until_done(chaos, users, result, upsert_many)
    assert_all_valid_users_stored(chaos, users, emu)


@pytest.mark.anyio
async def test_upsert_many_with_wait_follows_every_tracking_id_under_every_fault(
    chaos: ChaosSettings,
) -> None:
    users = make_users(small_run(chaos), chaos.seed)
    clock = ManualClock()
    emu = emulator(chaos.seed, clock)
    sleep = FakeSleep(clock)
    chunks = ChunkLog()
    started = time.perf_counter()
    async with (
        emu.serve() as base_url,
        AsyncClient(KEY, base_url=base_url, retry=retry_policy(sleep)) as client,
    ):

        async def upsert_many(
            batch: list[dict[str, Any]], on_progress: ChunkLog | None = None
        ) -> BulkResult:
            return await client.upsert_many(
                batch,
                chunk_size=CHUNK_SIZE,
                concurrency=CONCURRENCY,
                wait=True,
                wait_timeout=WAIT_TIMEOUT,
                on_progress=on_progress,
                raise_on_failure=False,
            )

        result = await upsert_many(users, chunks)
        elapsed = time.perf_counter() - started
        taken = audit(chaos, users, [(0, result)], emu)
        audit_tracking(chaos, result, chunks, emu)
        check_and_report(
            chaos, "upsert_many(wait=True)", len(users), [(0, result)], emu, sleep, elapsed, taken
        )
        check_tracking_polls_met_every_fault(chaos, emu, result)
        await resend_until_done(chaos, users, result, upsert_many)
    assert_all_valid_users_stored(chaos, users, emu)


@pytest.mark.anyio
@pytest.mark.parametrize("wait", [False, True], ids=["no-wait", "wait"])
async def test_delete_many_deletes_or_reports_every_item_under_every_fault(
    chaos: ChaosSettings, wait: bool
) -> None:
    stored = [user for user in make_users(small_run(chaos), chaos.seed) if is_valid(user)]
    items = make_deletes(stored, chaos.seed)
    clock = ManualClock() if wait else None
    emu = emulator(chaos.seed, clock)
    emu.seed(*stored)
    sleep = FakeSleep(clock)
    chunks = ChunkLog()
    started = time.perf_counter()
    async with (
        emu.serve() as base_url,
        AsyncClient(KEY, base_url=base_url, retry=retry_policy(sleep)) as client,
    ):

        async def delete_many(
            batch: list[DeleteItem], on_progress: ChunkLog | None = None
        ) -> BulkResult:
            return await client.delete_many(
                batch,
                chunk_size=CHUNK_SIZE,
                concurrency=CONCURRENCY,
                wait=wait,
                wait_timeout=WAIT_TIMEOUT,
                on_progress=on_progress,
                raise_on_failure=False,
            )

        result = await delete_many(items, chunks)
        elapsed = time.perf_counter() - started
        taken = audit_deletes(chaos, stored, items, result, emu)
        if wait:
            audit_tracking(chaos, result, chunks, emu)
            check_tracking_polls_met_every_fault(chaos, emu, result)
        check_and_report(
            chaos,
            f"delete_many(wait={wait})",
            len(items),
            [(0, result)],
            emu,
            sleep,
            elapsed,
            taken,
        )
        await resend_until_done(chaos, items, result, delete_many)
    assert_all_valid_deletes_done(chaos, stored, items, emu)


def check_tracking_polls_met_every_fault(
    settings: ChaosSettings, emu: Emulator, result: BulkResult
) -> None:
    """The tracking endpoint is faulted like the others, as the real API can be,
    and polls saw writes still pending (so the polling loop ran, not one call)."""
    polls = [request for request in emu.requests if request.path.startswith("/users/track/")]
    answered = [request for request in polls if request.fault in (None, "latency")]
    # Each id is polled until one answer says PROCESSED: more answers than ids
    # means some said PENDING.
    assert len(answered) > len(result.tracking_ids), (
        f"{settings.tag()}: no poll saw a write pending"
    )
    if len(polls) >= 50 * len(FAULT_KINDS):
        faults = faults_by_kind(emu, "/users/track/")
        assert set(faults) == set(FAULT_KINDS), f"{settings.tag()}: polls met only {faults}"


def test_client_upsert_many_from_8_threads_stores_or_reports_every_user(
    chaos: ChaosSettings, backend: str
) -> None:
    users = make_users(chaos.users, chaos.seed)
    emu = emulator(chaos.seed)
    sleep = FakeSleep()
    size = math.ceil(len(users) / THREADS)
    slices = [(offset, users[offset : offset + size]) for offset in range(0, len(users), size)]
    results: list[tuple[int, BulkResult]] = []
    errors: list[BaseException] = []
    started = time.perf_counter()
    with (
        start_blocking_portal("asyncio") as portal,
        portal.wrap_async_context_manager(emu.serve()) as base_url,
        Client(KEY, base_url=base_url, retry=retry_policy(sleep), backend=backend) as client,
    ):

        def upsert_many(batch: list[dict[str, Any]]) -> BulkResult:
            return client.upsert_many(
                batch, chunk_size=CHUNK_SIZE, concurrency=CONCURRENCY, raise_on_failure=False
            )

        def one_thread(offset: int, part: list[dict[str, Any]]) -> None:
            try:
                results.append((offset, upsert_many(part)))
            except BaseException as exc:  # the assertion below shows it
                errors.append(exc)

        threads = [threading.Thread(target=one_thread, args=piece) for piece in slices]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        assert not errors, f"{chaos.tag()}: {errors!r}"
        taken = audit(chaos, users, results, emu)
        check_and_report(
            chaos,
            f"Client x{THREADS} threads ({backend})",
            len(users),
            results,
            emu,
            sleep,
            elapsed,
            taken,
        )

        for offset, first in results:
            part, result = users[offset : offset + size], first
            for _ in range(MAX_RESEND_ROUNDS):
                if not result.failed_chunks:
                    break
                part = failed_items(part, result)
                result = upsert_many(part)
            assert not result.failed_chunks, f"{chaos.tag()}: still failing after resends"
    assert_all_valid_users_stored(chaos, users, emu)
