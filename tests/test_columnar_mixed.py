"""One run over dict rows and record batches mixed (what a JSON Lines reader hands over).

An iterable (sync or async) may hold dicts, Users or ids, and record batches
or tables, in any order, each batch with its own schema. Positions go on
across both kinds in input order; every user ends in exactly one place (sent,
rejected locally with its position, failed), as if the batches' rows had been
dicts (their nulls left out), and chunks hold ``chunk_size`` users whatever
kind they came in (a CLI reader that falls back to dicts for some blocks sends
the chunks the row path would).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activatepro_async import AsyncClient, BulkError, RetryPolicy, User

from .helpers import API_KEY, Recorder
from .test_columnar import _Hanging, accepting, dicts, outcome

pa = pytest.importorskip("pyarrow")

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., AsyncClient]


def bodies(recorder: Recorder, key: str = "updated") -> list[list[Any]]:
    return [json.loads(r.content)[key] for r in recorder.requests]


def flat(items: list[Any]) -> list[Any]:
    """The items as the dict path would be given them: each batch's rows as dicts."""
    rows: list[Any] = []
    for item in items:
        rows += dicts(item) if isinstance(item, pa.RecordBatch | pa.Table) else [item]
    return rows


async def upsert(make_client: MakeClient, items: Any, **options: Any) -> tuple[Recorder, Any, Any]:
    recorder = accepting()
    outcomes: list[Any] = []
    async with make_client(recorder) as client:
        result = await client.upsert_many(
            items, concurrency=1, raise_on_failure=False, on_chunk=outcomes.append, **options
        )
    return recorder, result, outcomes


async def arows(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def generated(items: list[Any]) -> Iterator[Any]:
    yield from items


# -- the property ---------------------------------------------------------------------

_IDS = st.sampled_from(["a", "b", "", None, "c"])
_VALUES = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=3), st.just(math.nan))


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {}
    uid = draw(_IDS)
    if uid is not None:
        row["id"] = uid
    for key in draw(st.lists(st.sampled_from(["n", "s", "t"]), max_size=2, unique=True)):
        row[key] = draw(_VALUES)
    return row


@st.composite
def batches(draw: st.DrawFn) -> Any:
    count = draw(st.integers(0, 6))
    ids = draw(st.lists(_IDS, min_size=count, max_size=count))
    columns: dict[str, Any] = {"id": pa.array(ids, pa.string())}
    if draw(st.booleans()):
        values = draw(st.lists(st.one_of(st.none(), st.floats(-3, 3), st.just(math.nan)),
                               min_size=count, max_size=count))  # fmt: skip
        columns["f"] = pa.array(values, pa.float64())
    if draw(st.booleans()):
        columns["s"] = pa.array(draw(st.lists(st.text(max_size=3), min_size=count,
                                              max_size=count)), pa.string())  # fmt: skip
    batch = pa.record_batch(columns)
    return pa.Table.from_batches([batch]) if draw(st.booleans()) else batch


mixed = st.lists(st.one_of(rows(), batches()), max_size=12)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    items=mixed,
    kind=st.sampled_from(["list", "generator", "async"]),
    chunk_size=st.integers(1, 4),
)
async def test_mixed_input_sends_and_accounts_as_the_dict_path_on_its_rows(
    make_client: MakeClient, items: list[Any], kind: str, chunk_size: int
) -> None:
    given_items: Any = {"list": list, "generator": generated, "async": arows}[kind](items)
    recorder, result, outcomes = await upsert(make_client, given_items, chunk_size=chunk_size)
    rows_items: Any = arows(flat(items)) if kind == "async" else flat(items)
    rows_recorder, rows_result, rows_outcomes = await upsert(
        make_client, rows_items, chunk_size=chunk_size
    )
    sent = [user for body in bodies(recorder) for user in body]
    assert sent == [user for body in bodies(rows_recorder) for user in body]
    if kind == "async" and not result.rejected:
        # Rows checked one by one (add()): the very chunks of the dict path. (A
        # user refused when encoded, NaN say, leaves a hole in the dict path's
        # chunk; the columnar path leaves it out first.)
        assert bodies(recorder) == bodies(rows_recorder)
    assert outcome(result) == outcome(rows_result)
    assert all(0 < len(body) <= chunk_size for body in bodies(recorder))
    # on_chunk saw every user once, and each user's position is its input place.
    positions = sorted(p for o in outcomes for p in o.positions)
    assert positions == list(range(result.submitted))
    assert positions == sorted(p for o in rows_outcomes for p in o.positions)


# -- the exact bodies -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["list", "generator", "async"])
async def test_a_batch_between_dicts_fills_their_chunk_and_positions_go_on(
    make_client: MakeClient, kind: str
) -> None:
    batch = pa.record_batch({"id": ["b0", "b1", "b2"], "n": [1, None, 3]})
    items = [{"id": "d0"}, batch, {"id": "d1"}, User(id="d2", email="x@example.com"), {"id": "d3"}]
    given_items: Any = {"list": list, "generator": generated, "async": arows}[kind](items)
    recorder, result, outcomes = await upsert(make_client, given_items, chunk_size=2)
    # The chunks the dict path sends: the batch's first row tops up d0's chunk,
    # its partial last chunk becomes the start of the rows' chunk.
    assert bodies(recorder) == [
        [{"id": "d0"}, {"id": "b0", "n": 1}],
        [{"id": "b1"}, {"id": "b2", "n": 3}],
        [{"id": "d1"}, {"id": "d2", "email": "x@example.com"}],
        [{"id": "d3"}],
    ]
    assert [o.positions for o in outcomes] == [(0, 1), (2, 3), (4, 5), (6,)]
    assert [o.user_ids for o in outcomes] == [("d0", "b0"), ("b1", "b2"), ("d1", "d2"), ("d3",)]
    assert (result.submitted, result.accepted, result.chunks) == (7, 7, 4)


@pytest.mark.parametrize("kind", ["list", "async"])
async def test_consecutive_batches_of_one_schema_still_fill_whole_chunks(
    make_client: MakeClient, kind: str
) -> None:
    first = pa.record_batch({"id": ["a", "b", "c", "d", "e"]})
    second = pa.record_batch({"id": ["f", "g", "h", "i", "j", "k"]})
    items = [{"id": "x"}, first, second, {"id": "y"}, {"id": "z"}]
    given_items: Any = arows(items) if kind == "async" else items
    recorder, result, _ = await upsert(make_client, given_items, chunk_size=4)
    assert [[u["id"] for u in body] for body in bodies(recorder)] == [
        ["x", "a", "b", "c"],
        ["d", "e", "f", "g"],
        ["h", "i", "j", "k"],
        ["y", "z"],
    ]
    assert result.submitted == result.accepted == 14


async def test_local_rejects_of_both_kinds_carry_their_input_positions(
    make_client: MakeClient,
) -> None:
    batch = pa.record_batch({"id": ["b0", None, "b2"], "f": [math.nan, 1.0, 2.0]})
    items = [{"email": "no-id@example.com"}, batch, {"id": "d1", "f": math.inf}, {"id": "d2"}]
    recorder, result, outcomes = await upsert(make_client, items)
    assert bodies(recorder) == [[{"id": "b2", "f": 2.0}, {"id": "d2"}]]
    assert [(r.position, r.user_id) for r in result.rejected] == [
        (0, None),
        (1, "b0"),
        (2, None),
        (4, "d1"),
    ]
    assert [e.pointer for e in result.rejected[0].errors] == ["/id"]
    assert sorted(p for o in outcomes for p in o.positions) == list(range(6))
    assert (result.submitted, result.accepted) == (6, 2)


async def test_delete_many_takes_ids_and_batches_of_ids_mixed(make_client: MakeClient) -> None:
    recorder = accepting()
    async with make_client(recorder) as client:
        result = await client.delete_many(
            ["u1", pa.record_batch({"id": ["u2", "u3"], "other": [1, 2]}), {"id": "u4"}],
            chunk_size=10,
        )
    assert bodies(recorder, "deleted") == [[{"id": "u1"}, {"id": "u2"}, {"id": "u3"}, {"id": "u4"}]]
    assert [json.loads(r.content)["updated"] for r in recorder.requests] == [[]]
    assert (result.submitted, result.accepted) == (4, 4)


@pytest.mark.parametrize("where", ["rows", "batches"])
async def test_an_input_that_breaks_sends_what_was_read_of_both_kinds(
    make_client: MakeClient, where: str
) -> None:
    def items() -> Iterator[Any]:
        yield {"id": "d0"}
        yield pa.record_batch({"id": ["b0", "b1"]})
        if where == "rows":
            yield {"id": "d1"}
        raise OSError("the disk went away")

    recorder = accepting()
    async with make_client(recorder) as client:
        with pytest.raises(BulkError, match="reading the input failed") as info:
            await client.upsert_many(items(), concurrency=1)
    expected = ["d0", "b0", "b1"] + (["d1"] if where == "rows" else [])
    assert [u["id"] for body in bodies(recorder) for u in body] == expected
    assert info.value.result.submitted == info.value.result.accepted == len(expected)


async def test_a_failed_chunk_of_each_kind_is_accounted_with_its_positions(
    make_client: MakeClient,
) -> None:
    answers = iter([500, 202])

    def answer(_request: httpx.Request) -> httpx.Response:
        status = next(answers, 202)
        return httpx.Response(status, json={"trackingId": "t"} if status == 202 else {})

    items = [{"id": "d0"}, pa.record_batch({"id": ["b0", "b1"]}), {"id": "d1"}]
    async with make_client(Recorder(answer), retry=RetryPolicy(max_retries=0)) as client:
        result = await client.upsert_many(
            items, chunk_size=2, concurrency=1, raise_on_failure=False
        )
    assert [c.positions for c in result.failed_chunks] == [(0, 1)]
    assert [c.user_ids for c in result.failed_chunks] == [("d0", "b0")]
    assert (result.submitted, result.accepted, result.failed) == (4, 2, 2)


async def test_a_cancelled_mixed_run_accounts_for_every_user_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = anyio.Event()
    client = AsyncClient(API_KEY, base_url="https://api.example.test", transport=_Hanging(started))
    items = [{"id": "d0"}, pa.record_batch({"id": [f"b{i}" for i in range(5)]}), {"id": "d1"}]
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(lambda: client.upsert_many(items, chunk_size=2, concurrency=1))
        await started.wait()
        tg.cancel_scope.cancel()
    [record] = [r for r in caplog.records if hasattr(r, "bulk_result")]
    result = record.bulk_result
    # Each user read is failed once, with its position (the rest was never submitted).
    failed = sorted(p for chunk in result.failed_chunks for p in chunk.positions)
    assert failed == list(range(result.submitted))
    assert result.failed == result.submitted >= 1
