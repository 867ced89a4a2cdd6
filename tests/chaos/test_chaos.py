"""Chaos: every fault kind at once over loopback, and nothing is lost.

The emulator is served on a real socket with 500/502/503/504, 429 with
Retry-After, latency spikes, dropped connections, proxy HTML pages and
responses cut mid-body, all drawn at random (seeded) for 30 % of requests.
Users go through ``upsert_many`` with fast retries (the policy's sleep is
fake). Each run checks what :func:`.scenario.audit` states, then resends what
failed and checks the final state. Size and seed: see ``conftest.py``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from activatepro_async import AsyncClient, BulkResult, Client
from activatepro_async.emulator import FAULT_KINDS, Emulator

from .scenario import (
    CHUNK_SIZE,
    CONCURRENCY,
    KEY,
    ChaosSettings,
    FakeSleep,
    assert_all_valid_users_stored,
    audit,
    emulator,
    faults_by_kind,
    make_users,
    retry_policy,
)

pytestmark = pytest.mark.chaos

THREADS = 8
#: Resending failed users converges fast (each round fails ~2 % of chunks).
MAX_RESEND_ROUNDS = 10


@pytest.fixture
def anyio_backend() -> str:
    # uvicorn serves on asyncio; under asyncio it shares the test's loop. The
    # sync run below covers the trio portal.
    return "asyncio"


def resend_plan(users: Sequence[dict[str, Any]], result: BulkResult) -> list[dict[str, Any]]:
    by_id = {user["id"]: user for user in users}
    return [by_id[uid] for uid in result.failed_user_ids]


def check_and_report(
    settings: ChaosSettings,
    name: str,
    users: Sequence[dict[str, Any]],
    results: Sequence[tuple[int, BulkResult]],
    emu: Emulator,
    sleep: FakeSleep,
    elapsed: float,
) -> None:
    stored_though_failed = audit(settings, users, results, emu)
    faults = faults_by_kind(emu)
    # Every kind is met at any size worth the name (about 15 of each expected here).
    if len(emu.requests) >= 50 * len(FAULT_KINDS):
        assert set(faults) == set(FAULT_KINDS), f"{settings.tag()}: not every fault met: {faults}"
    failed = sum(result.failed for _, result in results)
    retries = sum(result.retries for _, result in results)
    assert retries == len(sleep.waits), settings.tag()
    line = (
        f"{name}: {len(users)} users, {settings.tag()}, {len(emu.requests)} requests, "
        f"faults {dict(sorted(faults.items()))} ({sum(faults.values())} in all), "
        f"{retries} retries, {failed} users in failed chunks ({stored_though_failed} of "
        f"them stored by a try whose answer was cut), upsert_many {elapsed:.1f} s"
    )
    print(line)
    settings.report(line)


async def resend_until_done(
    settings: ChaosSettings,
    users: Sequence[dict[str, Any]],
    first: BulkResult,
    upsert_many: Callable[[list[dict[str, Any]]], Awaitable[BulkResult]],
) -> None:
    result = first
    for _ in range(MAX_RESEND_ROUNDS):
        if not result.failed_chunks:
            return
        result = await upsert_many(resend_plan(users, result))
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
        check_and_report(chaos, "AsyncClient", users, [(0, result)], emu, sleep, elapsed)
        await resend_until_done(chaos, users, result, upsert_many)
    assert_all_valid_users_stored(chaos, users, emu)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
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
        check_and_report(
            chaos, f"Client x{THREADS} threads ({backend})", users, results, emu, sleep, elapsed
        )

        for _, first in results:
            result = first
            for _ in range(MAX_RESEND_ROUNDS):
                if not result.failed_chunks:
                    break
                result = upsert_many(resend_plan(users, result))
            assert not result.failed_chunks, f"{chaos.tag()}: still failing after resends"
    assert_all_valid_users_stored(chaos, users, emu)
