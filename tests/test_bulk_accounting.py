"""Every user a bulk run reads ends in exactly one bucket, whatever stops the run.

A run can end early at any moment: a 401/403, an ``on_progress`` that raises,
an exception from the transport, the input breaking, a cancellation from
outside. Whatever it is and whenever it lands (also while the pieces of a
chunk that ``max_chunk_bytes`` split are handed over one by one), the result
reachable from what the caller gets (the return value, ``BulkError.result``,
or for a cancellation the log record's ``bulk_result``) holds
``accepted + len(rejected) + failed == submitted``, with each input position
in exactly one bucket. And what the API sends back that the engine cannot use
(a malformed JSON pointer, a tracking id that is not a non-empty string) is
reported in the result, never raised out of the run.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, contextmanager
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, event, given, settings

from activatepro_async import (
    AsyncClient,
    AuthenticationError,
    BulkError,
    BulkProgress,
    BulkResult,
    ChunkOutcome,
    PermissionDeniedError,
    RetryPolicy,
    UnexpectedResponseError,
)
from activatepro_async.bulk import BulkCancelled

from .helpers import API_KEY, FakeTime, examples

pytestmark = pytest.mark.anyio

PAD = "x" * 200  # ~250 bytes a user: a chunk of 50 splits into 7 pieces under 2 KiB


def users(count: int) -> list[dict[str, Any]]:
    return [{"id": f"u{i}", "email": f"u{i}@example.com", "pad": PAD} for i in range(count)]


def connect(handler: Callable[[httpx.Request], Any]) -> AsyncClient:
    fake = FakeTime()
    return AsyncClient(
        API_KEY,
        base_url="https://api.example.test",
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(max_retries=1, jitter=None, sleep=fake.sleep, clock=fake.clock),
    )


@contextmanager
def bulk_results_logged() -> Iterator[list[BulkResult]]:
    """The ``bulk_result`` of every log record of the SDK while inside."""
    found: list[BulkResult] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            result = getattr(record, "bulk_result", None)
            if result is not None:
                found.append(result)

    handler = Catch()
    log = logging.getLogger("activatepro_async")
    log.addHandler(handler)
    try:
        yield found
    finally:
        log.removeHandler(handler)


def assert_each_user_in_one_bucket(
    result: BulkResult, ids: dict[int, str], applied: set[str] | None = None
) -> set[int]:
    """The accounting invariant, position by position; the accepted positions.

    ``ids`` maps the positions of the users that have an id to it; ``applied``
    (if given) holds the ids the server took: an accepted user must be one.
    """
    rejected = [r.position for r in result.rejected]
    failed = [p for chunk in result.failed_chunks for p in chunk.positions]
    assert len(set(rejected)) == len(rejected), "a user rejected twice"
    assert len(set(failed)) == len(failed), "a user in two failed chunks"
    assert not set(rejected) & set(failed), "a user both rejected and failed"
    assert set(rejected) | set(failed) <= set(range(result.submitted))
    assert result.accepted + len(result.rejected) + result.failed == result.submitted
    accepted = set(range(result.submitted)) - set(rejected) - set(failed)
    assert len(accepted) == result.accepted
    for chunk in result.failed_chunks:
        assert chunk.user_ids == tuple(ids[p] for p in chunk.positions)
    if applied is not None:
        assert {ids[p] for p in accepted} <= applied
    return accepted


_tracking_ids = itertools.count()


def accept(request: httpx.Request) -> httpx.Response:
    return httpx.Response(202, json={"trackingId": f"t{next(_tracking_ids)}"})


# -- an early end while a split chunk is handed over -------------------------


@pytest.mark.parametrize("status", [401, 403])
async def test_a_401_or_403_while_a_split_chunk_is_handed_over_fails_its_unsent_pieces(
    status: int,
) -> None:
    arrivals: list[int] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        arrivals.append(len(json.loads(request.content)["updated"]))
        return httpx.Response(status)

    data = users(100)
    async with connect(refuse) as client:
        with pytest.raises(BulkError) as caught:
            await client.upsert_many(data, chunk_size=50, max_chunk_bytes=2048, concurrency=1)
    result = caught.value.result
    assert isinstance(result.aborted_by, (AuthenticationError, PermissionDeniedError))
    assert len(arrivals) == 1  # the first piece; the other six were never sent
    assert result.submitted == 50
    assert result.failed == 50  # all seven pieces, sent or not
    assert_each_user_in_one_bucket(result, {i: f"u{i}" for i in range(100)})


async def test_an_on_progress_that_raises_mid_split_fails_the_unsent_pieces() -> None:
    def on_progress(progress: BulkProgress) -> None:
        raise RuntimeError("the progress bar broke")

    async with connect(accept) as client:
        with pytest.raises(BulkError) as caught:
            await client.upsert_many(
                users(100),
                chunk_size=50,
                max_chunk_bytes=2048,
                concurrency=1,
                on_progress=on_progress,
            )
    result = caught.value.result
    assert isinstance(result.aborted_by, RuntimeError)
    assert caught.value.__cause__ is result.aborted_by
    assert result.accepted > 0  # the first piece, before on_progress saw it
    assert result.accepted + result.failed == result.submitted == 50
    assert_each_user_in_one_bucket(result, {i: f"u{i}" for i in range(100)})


async def test_a_cancelled_run_logs_a_result_that_accounts_for_every_user() -> None:
    with bulk_results_logged() as logged, anyio.CancelScope() as scope:

        def on_progress(progress: BulkProgress) -> None:
            scope.cancel()  # from outside the engine's tasks, mid-split

        async with connect(accept) as client:
            await client.upsert_many(
                users(100),
                chunk_size=50,
                max_chunk_bytes=2048,
                concurrency=1,
                on_progress=on_progress,
            )
    assert scope.cancelled_caught  # the cancellation went on unchanged
    [result] = logged
    assert isinstance(result.aborted_by, BulkCancelled)
    assert result.accepted > 0
    assert all(isinstance(c.exception, BulkCancelled) for c in result.failed_chunks)
    assert result.accepted + result.failed == result.submitted == 50
    assert_each_user_in_one_bucket(result, {i: f"u{i}" for i in range(100)})


# -- what the API sends back that the engine cannot use ----------------------


def tracking_reply(tracking_id: object, partial: bool) -> Callable[[httpx.Request], Any]:
    """202 (or a partial 400) with ``tracking_id``; every poll answers PROCESSED."""

    def reply(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/users/track/"):
            counts = {"total": 3, "success": 3, "error": 0}
            return httpx.Response(200, json={"stage": "PROCESSED", **counts})
        if partial:
            error = {"code": "4", "title": "t", "details": "d", "source": {"pointer": "/updated/0"}}
            return httpx.Response(400, json={"errors": [error], "trackingId": tracking_id})
        return httpx.Response(202, json={"trackingId": tracking_id})

    return reply


@pytest.mark.parametrize("wait", [False, True])
@pytest.mark.parametrize(
    ("tracking_id", "partial"),
    [
        ("", False),
        ("", True),
        (None, False),
        (12, False),
        ({"id": "t1"}, False),
        (["t1"], False),
        (None, True),
        (12, True),
    ],
)
async def test_a_tracking_id_that_is_not_a_non_empty_string_fails_its_chunk(
    tracking_id: object, partial: bool, wait: bool
) -> None:
    reply = tracking_reply(tracking_id, partial)
    polls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            polls.append(request.url.path)
        return reply(request)

    async with connect(handler) as client:
        with pytest.raises(BulkError) as caught:
            await client.upsert_many(users(3), wait=wait)
    result = caught.value.result
    [failed] = result.failed_chunks
    assert isinstance(failed.exception, UnexpectedResponseError)
    assert failed.user_ids == ("u0", "u1", "u2")
    assert result.tracking_ids == ()
    assert not result.rejected  # the partial 400's errors are not taken either
    assert polls == []  # nothing to follow
    assert_each_user_in_one_bucket(result, {i: f"u{i}" for i in range(3)})


class TransportBug(Exception):
    """What a broken custom transport might raise: not an httpx error."""


async def test_an_unexpected_exception_from_sending_a_chunk_stops_the_run_with_its_result() -> None:
    sent = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal sent
        sent += 1
        if sent == 2:
            raise TransportBug("the transport broke")
        return accept(request)

    async with connect(handler) as client:
        with pytest.raises(BulkError) as caught:
            await client.upsert_many(users(100), chunk_size=10, concurrency=1)
    result = caught.value.result
    assert isinstance(result.aborted_by, TransportBug)
    assert isinstance(caught.value.__cause__, TransportBug)
    assert result.accepted == 10
    assert [c.positions[0] for c in result.failed_chunks][:1] == [10]
    assert_each_user_in_one_bucket(result, {i: f"u{i}" for i in range(100)})


async def test_an_unexpected_exception_from_polling_is_a_tracking_failure() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            raise TransportBug("the transport broke")
        return accept(request)

    async with connect(handler) as client:
        result = await client.upsert_many(
            users(25), chunk_size=10, wait=True, raise_on_failure=False
        )
    assert len(result.tracking_failures) == 3
    assert all(isinstance(f.exception, TransportBug) for f in result.tracking_failures)
    assert result.accepted == 25
    assert not result.ok


# -- the property: abort anywhere, by anything ---------------------------------

CAUSES = (
    "401",  # a batch request answered 401
    "403",
    "progress",  # on_progress raises
    "chunk_hook",  # on_chunk raises
    "bug",  # the transport raises what it should not
    "input",  # the input raises
    "bad_tracking",  # a 202 with trackingId "" (fails that chunk, the run goes on)
    "cancel_request",  # the caller's scope cancelled while a request is in flight
    "cancel_progress",  # ... from on_progress
    "cancel_input",  # ... while the input is read
    "none",
)
UPSERT_KINDS = ("valid", "valid", "valid", "valid", "bad_email", "not_a_user", "nan")
DELETE_KINDS = ("valid", "valid", "valid", "empty_id", "not_a_user")


@st.composite
def runs(draw: st.DrawFn) -> dict[str, Any]:
    operation = draw(st.sampled_from(["upsert", "delete"]))
    kinds = UPSERT_KINDS if operation == "upsert" else DELETE_KINDS
    count = draw(st.integers(0, 40))
    return {
        "operation": operation,
        "kinds": draw(st.lists(st.sampled_from(kinds), min_size=count, max_size=count)),
        # Long ids make chunks split under the small byte caps.
        "pads": draw(st.lists(st.integers(0, 500), min_size=count, max_size=count)),
        "chunk_size": draw(st.integers(1, 12)),
        "max_chunk_bytes": draw(st.sampled_from([1024, 1500, 3000, 16 * 1024 * 1024])),
        "concurrency": draw(st.integers(1, 4)),
        "cause": draw(st.sampled_from(CAUSES)),
        "at": draw(st.integers(0, 2) | st.integers(0, 10)),  # mostly early: more are reached
        "checkpoints": draw(st.lists(st.integers(0, 3), min_size=1, max_size=8)),
        "wait": draw(st.booleans()),
        "async_input": draw(st.booleans()),
    }


def hook_broke(cause: str) -> bool:
    return cause in ("progress", "chunk_hook")


def assert_outcomes_add_up(
    outcomes: list[ChunkOutcome], result: BulkResult, *, whole: bool
) -> None:
    """Each user in at most one outcome; in exactly one, agreeing with the result, if ``whole``."""
    positions = [p for o in outcomes for p in o.positions]
    assert len(positions) == len(set(positions)), "a user in two outcomes"
    for o in outcomes:
        assert o.accepted + len(o.rejected) + o.failed == len(o.positions) == len(o.user_ids)
        assert {r.position for r in o.rejected} <= set(o.positions)
        assert (o.index is None) == (o.tracking_id is None and o.exception is None)
        assert o.index is not None or all(r.local for r in o.rejected)
    if not whole:
        return
    assert sorted(positions) == list(range(result.submitted))
    assert sum(o.accepted for o in outcomes) == result.accepted
    rejected = sorted((r for o in outcomes for r in o.rejected), key=lambda r: r.position)
    assert tuple(rejected) == result.rejected
    failed = sorted((o for o in outcomes if o.exception is not None), key=lambda o: o.index or 0)
    assert [(o.index, o.positions, o.exception) for o in failed] == [
        (c.index, c.positions, c.exception) for c in result.failed_chunks
    ]
    tracked = sorted((o.index or 0, o.tracking_id) for o in outcomes if o.tracking_id)
    assert tuple(t for _, t in tracked) == result.tracking_ids


def make_item(operation: str, kind: str, uid: str) -> Any:
    if kind == "not_a_user":
        return 42
    if operation == "delete":
        return "" if kind == "empty_id" else uid
    user: dict[str, Any] = {"id": uid, "email": f"{uid[:8]}@example.com"}
    if kind == "bad_email":
        user["email"] = "no at sign"
    elif kind == "nan":
        user["score"] = float("nan")
    return user


class Server:
    """The batch and tracking API, with the run's one cause of trouble at request ``at``."""

    def __init__(self, spec: dict[str, Any], scope: anyio.CancelScope) -> None:
        self.spec = spec
        self.scope = scope
        self.requests = 0
        self.batches = 0
        self.applied: set[str] = set()
        self.triggered = False

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        spec, cause = self.spec, self.spec["cause"]
        number = self.requests
        self.requests += 1
        if cause == "cancel_request" and number == spec["at"]:
            self.triggered = True
            self.scope.cancel()
        checkpoints = spec["checkpoints"]
        for _ in range(checkpoints[number % len(checkpoints)]):
            await anyio.lowlevel.checkpoint()  # let other requests overlap this one
        if request.method == "GET":
            return httpx.Response(
                200, json={"stage": "PROCESSED", "total": 1, "success": 1, "error": 0}
            )
        batch = self.batches
        self.batches += 1
        if batch == spec["at"] and cause in ("401", "403", "bug", "bad_tracking"):
            self.triggered = True
            if cause == "bug":
                raise TransportBug("the transport broke")
            if cause == "bad_tracking":
                return httpx.Response(202, json={"trackingId": ""})
            return httpx.Response(int(cause))
        body = json.loads(request.content)
        errors = [
            {
                "code": "4",
                "title": "t",
                "details": "d",
                "source": {"pointer": f"/updated/{i}/email"},
            }
            for i, user in enumerate(body["updated"])
            if "@" not in user["email"]
        ]
        named = {int(e["source"]["pointer"].split("/")[2]) for e in errors}
        items = [*body["updated"], *body["deleted"]]
        self.applied |= {item["id"] for i, item in enumerate(items) if i not in named}
        if errors:
            return httpx.Response(400, json={"errors": errors, "trackingId": f"t{batch}"})
        return httpx.Response(202, json={"trackingId": f"t{batch}"})


@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=runs())
async def test_wherever_and_however_a_run_stops_every_user_read_is_in_exactly_one_bucket(
    spec: dict[str, Any],
) -> None:
    operation, cause, at = spec["operation"], spec["cause"], spec["at"]
    uids = [f"u{i}-" + "p" * pad for i, pad in enumerate(spec["pads"])]
    items = [make_item(operation, k, uid) for k, uid in zip(spec["kinds"], uids, strict=True)]
    ids = {
        i: uid
        for i, (kind, uid) in enumerate(zip(spec["kinds"], uids, strict=True))
        if kind not in ("not_a_user", "empty_id")
    }
    read = 0
    progress_calls = 0
    triggered = False

    scope = anyio.CancelScope()
    server = Server(spec, scope)

    def on_progress(progress: BulkProgress) -> None:
        nonlocal progress_calls, triggered
        progress_calls += 1
        if progress_calls - 1 == at and cause in ("progress", "cancel_progress"):
            triggered = True
            if cause == "progress":
                raise RuntimeError("the progress bar broke")
            scope.cancel()

    outcomes: list[ChunkOutcome] = []

    def on_chunk(chunk: ChunkOutcome) -> None:
        nonlocal triggered
        if len(outcomes) == at and cause == "chunk_hook":
            triggered = True
            raise RuntimeError("the rejects sink broke")
        outcomes.append(chunk)

    def take(position: int, item: Any) -> Any:
        nonlocal read, triggered
        if position == at and cause in ("input", "cancel_input"):
            triggered = True
            if cause == "input":
                raise ValueError("line 7 of the file is not JSON")
            scope.cancel()
        read += 1
        return item

    def sync_input() -> Iterator[Any]:
        for position, item in enumerate(items):
            yield take(position, item)

    async def async_input() -> AsyncIterator[Any]:
        for position, item in enumerate(items):
            if position % 3 == 0:
                await anyio.lowlevel.checkpoint()
            yield take(position, item)

    outcome: BulkResult | BulkError | None = None
    # The caller owns the async generator: closing it after a run that stopped
    # early is its business (trio warns about one left to the collector).
    async with connect(server) as client, aclosing(async_input()) as source:
        bulk = client.upsert_many if operation == "upsert" else client.delete_many
        with bulk_results_logged() as logged, scope:
            try:
                outcome = await bulk(
                    source if spec["async_input"] else sync_input(),
                    chunk_size=spec["chunk_size"],
                    max_chunk_bytes=spec["max_chunk_bytes"],
                    concurrency=spec["concurrency"],
                    wait=spec["wait"],
                    on_progress=on_progress,
                    on_chunk=on_chunk,
                    raise_on_failure=False,
                )
            except BulkError as exc:
                outcome = exc
    triggered = triggered or server.triggered
    event(f"{cause}, {'triggered' if triggered else 'not reached'}, {type(outcome).__name__}")

    # What the caller can reach, by cause.
    if outcome is None:
        assert scope.cancelled_caught
        assert triggered
        assert cause.startswith("cancel")
        [result] = logged
        assert isinstance(result.aborted_by, BulkCancelled)
    elif isinstance(outcome, BulkError):
        result = outcome.result
        assert triggered
        assert cause in ("401", "403", "progress", "chunk_hook", "bug", "input")
        assert outcome.__cause__ is result.aborted_by
        expected = {
            "401": AuthenticationError,
            "403": PermissionDeniedError,
            "progress": RuntimeError,
            "chunk_hook": RuntimeError,
            "bug": TransportBug,
            "input": ValueError,
        }[cause]
        assert isinstance(result.aborted_by, expected)
    else:
        assert isinstance(outcome, BulkResult)
        result = outcome
        assert result.aborted_by is None
        assert not (triggered and cause in ("401", "403", "progress", "chunk_hook", "bug", "input"))
        if cause == "bad_tracking" and triggered:
            assert any(
                isinstance(c.exception, UnexpectedResponseError) for c in result.failed_chunks
            )
        elif not triggered or cause.startswith("cancel"):
            # Nothing went wrong: only the bad items are out.
            assert not result.failed_chunks
            assert result.submitted == len(items)

    assert result.submitted == read
    assert_outcomes_add_up(outcomes, result, whole=outcome is not None and not hook_broke(cause))
    accepted = assert_each_user_in_one_bucket(result, ids, server.applied)
    assert all(spec["kinds"][p] == "valid" for p in accepted)
