"""Columnar input (Arrow tables, record batches, readers, C streams) for upsert_many/delete_many.

The dict path is the spec: for generated tables the bodies the columnar path
sends decode to the same users, and the results agree, as the dict path run on
``table.to_pylist()`` with the nulls dropped.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activatepro_async import (
    AsyncClient,
    BulkError,
    BulkResult,
    ConfigurationError,
    ErrorCode,
    RetryPolicy,
)
from activatepro_async._wire import MAX_USER_BYTES

from .helpers import API_KEY, Recorder, examples

pa = pytest.importorskip("pyarrow")
pc = pytest.importorskip("pyarrow.compute")

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., AsyncClient]


def accepting() -> Recorder:
    """A batch endpoint that accepts every chunk (tracking ids t1, t2, ...)."""
    count = iter(range(1, 10**9))
    return Recorder(lambda _request: httpx.Response(202, json={"trackingId": f"t{next(count)}"}))


def sent_users(recorder: Recorder, key: str = "updated") -> list[Any]:
    """Every user of every body, in the order they were sent (one worker: input order)."""
    return [user for r in recorder.requests for user in json.loads(r.content)[key]]


def outcome(result: BulkResult) -> dict[str, Any]:
    return {
        "submitted": result.submitted,
        "accepted": result.accepted,
        "failed": result.failed,
        "rejected": [
            (r.position, r.user_id, [(int(e.code), e.details, e.pointer) for e in r.errors])
            for r in result.rejected
        ],
    }


def dicts(table: Any) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if v is not None} for row in table.to_pylist()]


async def both(
    make_client: MakeClient, table: Any, operation: str = "upsert", **options: Any
) -> tuple[tuple[Recorder, BulkResult], tuple[Recorder, BulkResult]]:
    """Run ``table`` through the columnar path and its rows through the dict path."""
    runs = []
    rows = dicts(table)
    if operation == "delete":  # a table's delete sends the ids alone
        rows = [{"id": row["id"]} if "id" in row else {} for row in rows]
    for items in (table, rows):
        recorder = accepting()
        async with make_client(recorder) as client:
            bulk = client.upsert_many if operation == "upsert" else client.delete_many
            result = await bulk(items, concurrency=1, raise_on_failure=False, **options)
        runs.append((recorder, result))
    return runs[0], runs[1]


# -- the property: the same meaning as the dict path ----------------------------------

_IDS = st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=8))
_TEXT = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(['"', "\\", "\n\x00\x1f", "é✓"]))
_FLOATS = st.one_of(st.none(), st.floats(), st.sampled_from([1.0, -0.0, 1e15, 1e-5, math.nan]))
_TIMES = st.one_of(
    st.none(),
    st.datetimes(min_value=dt.datetime(1000, 1, 1), timezones=st.just(dt.timezone.utc)),
)


@st.composite
def tables(draw: st.DrawFn) -> Any:
    rows = draw(st.integers(0, 15))

    def column(strategy: st.SearchStrategy[Any]) -> list[Any]:
        return draw(st.lists(strategy, min_size=rows, max_size=rows))

    struct = pa.struct([("n", pa.int64()), ("s", pa.string()), ("d", pa.date32())])
    zone = draw(st.sampled_from(["UTC", "+02:00"]))
    data = {
        "id": pa.array(column(_IDS), pa.string()),
        "email": pa.array(column(_TEXT), pa.string()),
        "n": pa.array(column(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1))), pa.int64()),
        "f": pa.array(column(_FLOATS), pa.float64()),
        "ok": pa.array(column(st.one_of(st.none(), st.booleans())), pa.bool_()),
        "born": pa.array(column(st.one_of(st.none(), st.dates())), pa.date32()),
        "at": pa.array(column(_TIMES), pa.timestamp("us", tz="UTC")).cast(
            pa.timestamp("us", tz=zone)
        ),
        "nested": pa.array(
            column(
                st.one_of(
                    st.none(),
                    st.fixed_dictionaries(
                        {
                            "n": st.one_of(st.none(), st.integers(-5, 5)),
                            "s": st.one_of(st.none(), st.text(max_size=4)),
                            "d": st.one_of(st.none(), st.dates()),
                        }
                    ),
                )
            ),
            struct,
        ),
        "tags": pa.array(
            column(st.one_of(st.none(), st.lists(st.one_of(st.none(), _FLOATS), max_size=3))),
            pa.list_(pa.float64()),
        ),
    }
    names = draw(st.permutations(list(data)))  # the id need not come first
    return pa.table({name: data[name] for name in names})


@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    table=tables(),
    chunk_size=st.integers(1, 12),
    operation=st.sampled_from(["upsert", "delete"]),
)
async def test_columnar_bodies_and_results_agree_with_the_dict_path(
    make_client: MakeClient, table: Any, chunk_size: int, operation: str
) -> None:
    (columnar, got), (plain, expected) = await both(
        make_client, table, operation, chunk_size=chunk_size
    )
    key = "updated" if operation == "upsert" else "deleted"
    assert sent_users(columnar, key) == sent_users(plain, key)
    assert outcome(got) == outcome(expected)
    for request in columnar.requests:
        assert len(json.loads(request.content)[key]) <= chunk_size


async def test_bodies_are_byte_for_byte_the_dict_paths_for_plain_values(
    make_client: MakeClient,
) -> None:
    table = pa.table(
        {
            "id": ["a", "b"],
            "email": ['q"\\\n\t\x01é', None],
            "n": [1, None],
            "f": [1.0, 2.5],
            "ok": [True, False],
            "born": [dt.date(1982, 8, 30), None],
            "at": pa.array(
                [
                    dt.datetime(2015, 10, 2, 8, 23, 53, tzinfo=dt.timezone.utc),
                    dt.datetime(2015, 10, 2, 8, 23, 53, 5, tzinfo=dt.timezone.utc),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    (columnar, _), (plain, _) = await both(make_client, table)
    assert [r.content for r in columnar.requests] == [r.content for r in plain.requests]
    assert columnar.requests[0].content == (
        b'{"updated":[{"id":"a","email":"q\\"\\\\\\n\\t\\u0001\xc3\xa9","n":1,"f":1.0,'
        b'"ok":true,"born":"1982-08-30","at":"2015-10-02T08:23:53Z"},'
        b'{"id":"b","f":2.5,"ok":false,"at":"2015-10-02T08:23:53.000005Z"}],"deleted":[]}'
    )


# -- every kind of columnar input --------------------------------------------------------


class CStream:
    """A Polars-like object: it only exports ``__arrow_c_stream__``."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.table.__arrow_c_stream__(requested_schema)


def _users(count: int) -> Any:
    return pa.table(
        {
            "id": [f"u{i}" for i in range(count)],
            "email": [f"u{i}@example.com" for i in range(count)],
        }
    )


@pytest.mark.parametrize(
    "kind", ["table", "batch", "reader", "list of batches", "generator of batches", "c stream"]
)
async def test_each_kind_of_columnar_input_is_sent(make_client: MakeClient, kind: str) -> None:
    table = _users(25)
    batches = table.to_batches(max_chunksize=7)
    items: Any = {
        "table": table,
        "batch": table.combine_chunks().to_batches()[0],
        "reader": pa.RecordBatchReader.from_batches(table.schema, batches),
        "list of batches": batches,
        "generator of batches": (b for b in batches),
        "c stream": CStream(table),
    }[kind]
    recorder = accepting()
    async with make_client(recorder) as client:
        result = await client.upsert_many(items, chunk_size=10, concurrency=1)
    assert result.accepted == result.submitted == 25
    assert [len(json.loads(r.content)["updated"]) for r in recorder.requests] == [10, 10, 5]
    assert sent_users(recorder) == table.to_pylist()


async def test_polars_dataframe_is_sent(make_client: MakeClient) -> None:
    pl = pytest.importorskip("polars")
    frame = pl.DataFrame({"id": ["a", "b"], "email": ["a@x.test", None], "n": [1, 2]})
    recorder = accepting()
    async with make_client(recorder) as client:
        result = await client.upsert_many(frame)
    assert result.accepted == 2
    assert sent_users(recorder) == [{"id": "a", "email": "a@x.test", "n": 1}, {"id": "b", "n": 2}]


async def test_a_one_row_and_an_empty_table(make_client: MakeClient) -> None:
    recorder = accepting()
    async with make_client(recorder) as client:
        one = await client.upsert_many(_users(1))
        none = await client.upsert_many(_users(0))
        nothing = await client.upsert_many(pa.table({"id": pa.array([], pa.string())}).to_batches())
    assert (one.submitted, one.accepted, one.chunks) == (1, 1, 1)
    assert (none.submitted, none.chunks) == (0, 0)
    assert (nothing.submitted, nothing.chunks) == (0, 0)
    assert len(recorder.requests) == 1


async def test_delete_many_sends_integer_ids_as_strings(make_client: MakeClient) -> None:
    recorder = accepting()
    async with make_client(recorder) as client:
        table = pa.table({"id": pa.array([1, 42, None], pa.int64())})
        result = await client.delete_many(table, raise_on_failure=False)
    assert sent_users(recorder, "deleted") == [{"id": "1"}, {"id": "42"}]
    assert [(r.position, r.errors[0].pointer) for r in result.rejected] == [(2, "/id")]
    assert result.accepted == 2


async def test_positions_count_over_the_whole_stream(make_client: MakeClient) -> None:
    schema = pa.schema([("id", pa.string()), ("f", pa.float64())])
    batches = [
        pa.record_batch([pa.array(["a", "b"]), pa.array([1.0, math.nan])], schema=schema),
        pa.record_batch([pa.array([None, "d"]), pa.array([1.0, math.inf])], schema=schema),
    ]
    recorder = accepting()
    async with make_client(recorder) as client:
        result = await client.upsert_many(iter(batches), raise_on_failure=False)
    assert [(r.position, r.user_id, r.errors[0].code) for r in result.rejected] == [
        (1, "b", ErrorCode.INVALID_JSON),
        (2, None, ErrorCode.INVALID_FIELD),
        (3, "d", ErrorCode.INVALID_JSON),
    ]
    assert sent_users(recorder) == [{"id": "a", "f": 1.0}]


async def test_users_over_a_mib_and_over_max_chunk_bytes_are_rejected_like_dicts(
    make_client: MakeClient,
) -> None:
    big = "x" * MAX_USER_BYTES
    table = pa.table(
        {"id": ["a", "b", "c", "d", "e"], "s": ["y" * 1500, big, "z" * 10, "w" * 740, "v" * 740]}
    )
    (columnar, got), (plain, expected) = await both(make_client, table, max_chunk_bytes=1500)
    assert outcome(got) == outcome(expected)
    assert [r.content for r in columnar.requests] == [r.content for r in plain.requests]
    codes = [(r.position, r.errors[0].code) for r in got.rejected]
    assert codes == [(0, ErrorCode.MAX_BATCH_SIZE), (1, ErrorCode.INVALID_FIELD)]
    assert len(columnar.requests) == 2  # c and d fit one body, e does not fit with them


# -- what cannot be sent -------------------------------------------------------------------


async def test_naive_timestamps_are_refused_before_sending(make_client: MakeClient) -> None:
    table = pa.table({"id": ["a"], "at": pa.array([dt.datetime(2020, 1, 1)], pa.timestamp("us"))})
    recorder = accepting()
    async with make_client(recorder) as client:
        with pytest.raises(TypeError, match=r"'at' holds timestamps without a time zone.*UTC"):
            await client.upsert_many(table)
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (pa.array([b"x"], pa.binary()), "cast it to string"),
        (pa.array([1], pa.decimal128(5, 2)), "cast it to float64 or string"),
    ],
)
async def test_columns_with_no_json_form_are_refused(
    make_client: MakeClient, column: Any, message: str
) -> None:
    recorder = accepting()
    async with make_client(recorder) as client:
        with pytest.raises(TypeError, match=message):
            await client.upsert_many(pa.table({"id": ["a"], "x": column}))
    assert recorder.requests == []


async def test_a_float_id_column_is_refused(make_client: MakeClient) -> None:
    async with make_client(accepting()) as client:
        with pytest.raises(TypeError, match="the id column is double"):
            await client.upsert_many(pa.table({"id": [1.5]}))


async def test_without_pyarrow_columnar_input_names_the_extra(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] == "pyarrow":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    table = _users(1)
    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    monkeypatch.setattr("importlib.import_module", lambda name: no_pyarrow(name))
    recorder = accepting()
    async with make_client(recorder) as client:
        for items in (table, CStream(table)):
            with pytest.raises(
                ConfigurationError, match=r"pip install 'activatepro-async\[arrow\]'"
            ):
                await client.upsert_many(items)
    assert recorder.requests == []


# -- the run's guarantees hold for columnar input too -------------------------------------


async def test_a_reader_that_breaks_sends_what_was_read_and_accounts_for_it(
    make_client: MakeClient,
) -> None:
    def batches() -> Any:
        yield _users(5).to_batches()[0]
        raise OSError("the disk went away")

    recorder = accepting()
    outcomes: list[Any] = []
    async with make_client(recorder) as client:
        with pytest.raises(BulkError, match="reading the input failed after 5 items") as info:
            await client.upsert_many(batches(), on_chunk=outcomes.append)
    assert info.value.result.accepted == info.value.result.submitted == 5
    assert sorted(p for o in outcomes for p in o.positions) == [0, 1, 2, 3, 4]
    assert len(sent_users(recorder)) == 5


async def test_failed_chunks_and_on_chunk_partition_every_row(make_client: MakeClient) -> None:
    answers = iter([500, 202, 500, 202])

    def answer(_request: httpx.Request) -> httpx.Response:
        status = next(answers, 202)
        return httpx.Response(status, json={"trackingId": "t"} if status == 202 else {})

    table = pa.table({"id": ["a", None, "c", "d", "e", "f", "g"], "f": [1.0] * 7})
    outcomes: list[Any] = []
    async with make_client(Recorder(answer), retry=RetryPolicy(max_retries=0)) as client:
        result = await client.upsert_many(
            table, chunk_size=2, concurrency=1, on_chunk=outcomes.append, raise_on_failure=False
        )
    assert sorted(p for o in outcomes for p in o.positions) == list(range(7))
    assert [c.positions for c in result.failed_chunks] == [(0, 2), (5, 6)]
    assert [c.user_ids for c in result.failed_chunks] == [("a", "c"), ("f", "g")]
    assert (result.accepted, len(result.rejected), result.failed) == (2, 1, 4)


async def test_batches_whose_schemas_differ_are_each_encoded_by_their_own(
    make_client: MakeClient,
) -> None:
    first = pa.record_batch({"id": ["a"], "n": [1]})
    second = pa.record_batch({"n": ["two"], "id": pa.array([2], pa.int32())})
    recorder = accepting()
    async with make_client(recorder) as client:
        await client.upsert_many([first, second, pa.table({"id": ["z"]})])
    assert sent_users(recorder) == [{"id": "a", "n": 1}, {"n": "two", "id": "2"}, {"id": "z"}]


async def test_a_cancelled_columnar_run_accounts_for_every_row_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = anyio.Event()
    client = AsyncClient(API_KEY, base_url="https://api.example.test", transport=_Hanging(started))
    async with client, anyio.create_task_group() as tg:
        tg.start_soon(lambda: client.upsert_many(_users(30), chunk_size=10, concurrency=2))
        await started.wait()
        tg.cancel_scope.cancel()
    [record] = [r for r in caplog.records if hasattr(r, "bulk_result")]
    result = record.bulk_result
    assert result.submitted == 30  # one window: read and accounted for at once
    assert result.failed == 30
    assert [c.positions for c in result.failed_chunks] == [
        tuple(range(10)),
        tuple(range(10, 20)),
        tuple(range(20, 30)),
    ]


class _Hanging(httpx.AsyncBaseTransport):
    """A transport whose requests never answer (the run is cancelled while they wait)."""

    def __init__(self, started: Any) -> None:
        self.started = started

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


def test_rename_columns_follows_the_row_rules_keys() -> None:
    from activatepro_async._columnar import rename_columns
    from activatepro_async._rows import RowRules, Spelling

    rules = RowRules(
        {"customer": "id", "internal": None},
        spelling=Spelling("--map", "--map {column}={key}", "--map {column}="),
    )
    table = pa.table({"customer": [7], "email": ["a@x.test"], "internal": [1]})
    keys = rules.keys(table.schema.names, "users.parquet")
    for data in (table, table.to_batches()[0]):
        renamed = rename_columns(data, keys)
        assert renamed.schema.names == ["id", "email"]
        assert renamed.column(0).to_pylist() == [7]
    with pytest.raises(ValueError, match="2 keys for 3 columns"):
        rename_columns(table, ["id", "email"])


# -- the Arrow types, one by one -------------------------------------------------------------


async def test_every_supported_arrow_type_is_sent_as_its_python_value_would_be(
    make_client: MakeClient,
) -> None:
    at = dt.datetime(2015, 10, 2, 8, 23, 53, 120, tzinfo=dt.timezone.utc)
    table = pa.table(
        {
            'we"ird\\ näme': ["x"],
            "id": pa.array(["a"]).dictionary_encode(),
            "large": pa.array(["l"], pa.large_string()),
            "view": pa.array(["v"], pa.string_view()),
            "f32": pa.array([0.1], pa.float32()),
            "u64": pa.array([2**64 - 1], pa.uint64()),
            "i8": pa.array([-5], pa.int8()),
            "d64": pa.array([dt.date(1982, 8, 30)], pa.date64()),
            "ns": pa.array([1_443_774_233_000_120_999], pa.timestamp("ns", tz="UTC")),
            "ms": pa.array([at.replace(microsecond=0)], pa.timestamp("ms", tz="+01:00")),
            "nothing": pa.nulls(1),
            "words": pa.array([["a", None]], pa.large_list(pa.string())),
            "pairs": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
        }
    )
    recorder = accepting()
    async with make_client(recorder) as client:
        await client.upsert_many(table)
    [user] = sent_users(recorder)
    assert user == {
        "id": "a",
        'we"ird\\ näme': "x",
        "large": "l",
        "view": "v",
        "f32": pa.array([0.1], pa.float32()).to_pylist()[0],
        "u64": 2**64 - 1,
        "i8": -5,
        "d64": "1982-08-30",
        "ns": "2015-10-02T08:23:53.000120Z",  # cut to microseconds
        "ms": "2015-10-02T08:23:53Z",
        "words": ["a", None],
        "pairs": [["k", 1]],
    }


async def test_many_tiny_batches_are_combined_into_full_chunks(make_client: MakeClient) -> None:
    table = pa.concat_tables([_users(3)] * 400)  # 400 chunks of 3 rows
    recorder = accepting()
    async with make_client(recorder) as client:
        result = await client.upsert_many(table, chunk_size=1000)
    assert result.accepted == 1200
    assert [len(json.loads(r.content)["updated"]) for r in recorder.requests] == [1000, 200]


async def test_an_id_column_of_nulls_rejects_every_row(make_client: MakeClient) -> None:
    recorder = accepting()
    async with make_client(recorder) as client:
        result = await client.upsert_many(
            pa.table({"id": pa.nulls(3), "email": ["a", "b", "c"]}), raise_on_failure=False
        )
        no_id = await client.upsert_many(pa.table({"email": ["a"]}), raise_on_failure=False)
    assert [(r.position, r.errors[0].details) for r in result.rejected] == [
        (0, "the user has no id"),
        (1, "the user has no id"),
        (2, "the user has no id"),
    ]
    assert [r.errors[0].pointer for r in no_id.rejected] == ["/id"]
    assert recorder.requests == []


@pytest.mark.parametrize(
    "rows",
    [
        [{"id": None, "email": "a"}, {"id": "1", "email": "b"}],  # a null id
        [{"email": "a"}],  # no id column at all
        [{"id": "", "email": "a"}, {"id": None, "email": "b"}],  # empty, then null
    ],
    ids=["null", "absent", "empty"],
)
async def test_a_user_without_an_id_is_rejected_in_the_same_words_on_both_paths(
    make_client: MakeClient, rows: list[dict[str, Any]]
) -> None:
    # One wording (``_wire.id_problem``) for the dict path and the Arrow path: a user
    # reading the rejects file cannot tell which path ran.
    def seen(result: Any) -> list[Any]:
        return [
            (r.position, r.user_id, r.local, [(e.code, e.details, e.pointer) for e in r.errors])
            for r in result.rejected
        ]

    async with make_client(accepting()) as client:
        as_dicts = await client.upsert_many(rows, raise_on_failure=False)
        as_arrow = await client.upsert_many(pa.Table.from_pylist(rows), raise_on_failure=False)
    assert seen(as_arrow) == seen(as_dicts)
    assert len(as_dicts.rejected) == sum(not row.get("id") for row in rows)


async def test_two_columns_of_one_name_are_refused(make_client: MakeClient) -> None:
    table = pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"])], names=["id", "id"])
    async with make_client(accepting()) as client:
        with pytest.raises(TypeError, match="two columns named 'id'"):
            await client.upsert_many(table)


def test_the_sync_client_takes_a_table(backend: str) -> None:
    from activatepro_async import Client

    recorder = accepting()
    with Client(
        "k" * 16, base_url="https://api.example.test", transport=recorder.transport, backend=backend
    ) as client:
        result = client.upsert_many(_users(3))
    assert result.accepted == 3


async def test_an_async_iterable_of_batches_is_columnar_too(make_client: MakeClient) -> None:
    async def batches() -> Any:
        for batch in _users(25).to_batches(max_chunksize=7):
            yield batch
        raise OSError("the pipe broke")

    recorder = accepting()
    async with make_client(recorder) as client:
        with pytest.raises(BulkError, match="after 25 items") as info:
            await client.upsert_many(batches(), chunk_size=10)
    assert info.value.result.accepted == 25
    assert sent_users(recorder) == _users(25).to_pylist()


async def test_a_null_last_column_and_a_row_of_only_an_id_are_the_dict_paths_bytes(
    make_client: MakeClient,
) -> None:
    # The literal between two cells goes with the next column's cells when that
    # column has no nulls, and a column with nulls carries its own: every layout
    # of dense and null columns, the last one included, must end alike.
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "dense": ["x", "y", "z"],
            "holes": [None, "h", None],
            "after": [1, 2, 3],
            "last": [None, None, "l"],
        }
    )
    only_id = pa.table({"id": ["a", "b"], "none": pa.array([None, None], pa.string())})
    for data in (table, only_id, table.select(["id", "holes"]), table.select(["last", "id"])):
        (columnar, _), (plain, _) = await both(make_client, data)
        assert sent_users(columnar) == sent_users(plain)
        if data.schema.names[0] == "id":  # the id goes first: the same bytes then
            assert [r.content for r in columnar.requests] == [r.content for r in plain.requests]
    (columnar, _), _ = await both(make_client, only_id)
    assert columnar.requests[0].content == b'{"updated":[{"id":"a"},{"id":"b"}],"deleted":[]}'


async def test_a_user_the_api_names_after_a_local_reject_has_its_own_position_and_id(
    make_client: MakeClient,
) -> None:
    # A chunk's ids and positions are read from Arrow only when needed: here a
    # 400 names the second user of the first chunk, which follows a row rejected
    # locally, so its input position is 2, not 1.
    def answer(request: httpx.Request) -> httpx.Response:
        if b'"id":"c"' in request.content:
            return httpx.Response(
                400,
                json={
                    "trackingId": "t",
                    "errors": [
                        {"code": "4", "title": "t", "source": {"pointer": "/updated/1/email"}}
                    ],
                },
            )
        return httpx.Response(202, json={"trackingId": "t2"})

    table = pa.table({"id": ["a", None, "c", "d"], "email": ["a@x", "b@x", "bad", "d@x"]})
    async with make_client(Recorder(answer)) as client:
        result = await client.upsert_many(
            table, chunk_size=2, concurrency=1, raise_on_failure=False
        )
    assert [(r.position, r.user_id, r.local) for r in result.rejected] == [
        (1, None, True),
        (2, "c", False),
    ]
    assert (result.accepted, result.failed) == (2, 0)
