"""AsyncClient.sync_users (and Client.sync_users) against the in-process emulator.

Requests are counted in the emulator's request log: what a sync sends is
exactly what changed since the API last confirmed it.
"""

from __future__ import annotations

import functools
import operator
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from activatepro_async import (
    AsyncClient,
    BulkError,
    ChunkOutcome,
    Client,
    DeleteGuardError,
    SyncResult,
    SyncStateError,
    User,
)
from activatepro_async._syncstate import SyncState
from activatepro_async.emulator import Emulator, Faults

from .helpers import posted_batches, sync_state_rows

pytestmark = pytest.mark.anyio

KEY = "test-key"


def users(
    n: int, changed: Iterator[int] | set[int] = frozenset(), start: int = 0
) -> list[dict[str, Any]]:
    changed = set(changed)
    return [
        {"id": f"u{i}", "email": f"u{i}@example.com", "firstName": "B" if i in changed else "A"}
        for i in range(start, n)
    ]


@pytest.fixture
def emulator() -> Emulator:
    return Emulator((KEY,), max_logged_requests=None)


@pytest.fixture
def state(tmp_path: Path) -> str:
    return str(tmp_path / "users.sync")


def client_of(emulator: Emulator, base_url: str = "http://emulator") -> AsyncClient:
    return AsyncClient(KEY, base_url=base_url, transport=emulator.transport(), max_retries=0)


async def sync(emulator: Emulator, state: str, items: Any, **kwargs: Any) -> SyncResult:
    kwargs.setdefault("chunk_size", 10)
    async with client_of(emulator, kwargs.pop("base_url", "http://emulator")) as client:
        return await client.sync_users(items, state=state, **kwargs)


async def test_first_run_sends_all_and_an_unchanged_rerun_sends_no_request(
    emulator: Emulator, state: str
) -> None:
    first = await sync(emulator, state, users(25))
    assert (first.new, first.changed, first.unchanged, first.sent, first.confirmed) == (
        25, 0, 0, 25, 25,
    )  # fmt: skip
    assert sorted(functools.reduce(operator.iadd, posted_batches(emulator), [])) == sorted(
        f"u{i}" for i in range(25)
    )
    assert first.ok
    assert first.state_users == 25
    assert set(sync_state_rows(state)) == {f"u{i}" for i in range(25)}

    before = len(emulator.requests)
    again = await sync(emulator, state, users(25))
    assert len(emulator.requests) == before  # not one request: no batch, no tracking poll
    assert (again.new, again.changed, again.unchanged, again.sent, again.confirmed) == (
        0, 0, 25, 0, 0,
    )  # fmt: skip


async def test_a_changed_row_is_resent_alone_and_key_order_does_not_matter(
    emulator: Emulator, state: str
) -> None:
    await sync(emulator, state, users(25))
    reordered = [dict(reversed(list(u.items()))) for u in users(25, {7})]
    # The same user as a User object hashes as its wire form.
    reordered[3] = User("u3", "u3@example.com", attributes={"firstName": "A"})
    before = len(emulator.requests)
    result = await sync(emulator, state, reordered)
    assert posted_batches(emulator, before) == [["u7"]]
    assert (result.changed, result.unchanged, result.confirmed) == (1, 24, 1)
    assert emulator.user("u7")["firstName"] == "B"  # type: ignore[index]


async def test_adding_or_removing_orjson_changes_no_users_hash(
    state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from activatepro_async import _wire
    from activatepro_async.emulator import DEFAULT_ATTRIBUTES, AttributeType

    emulator = Emulator((KEY,), attributes={**DEFAULT_ATTRIBUTES, "score": AttributeType.FLOAT})
    if _wire._orjson is None:  # pragma: no cover - the [fast] extra is a dev dependency
        pytest.skip("orjson is not installed")
    # Floats that orjson and the standard library write differently ("1e-7", "1e-07").
    tiny = [{**user, "score": 1e-7 * (i + 1)} for i, user in enumerate(users(10))]
    await sync(emulator, state, tiny)  # with the [fast] extra's orjson
    monkeypatch.setattr(_wire, "_orjson", None)  # then without it
    before = len(emulator.requests)
    again = await sync(emulator, state, tiny)
    assert (again.unchanged, again.sent) == (10, 0)
    assert len(emulator.requests) == before


async def test_a_batch_processed_with_errors_confirms_none_of_its_users(
    emulator: Emulator, state: str
) -> None:
    # u13's email is taken in its business unit: the API accepts the batch, and
    # then fails to apply u13 (tracking error 1), naming no one.
    emulator.seed({"id": "owner", "email": "taken@example.com"})
    items = users(30)
    items[13]["email"] = "taken@example.com"
    result = await sync(emulator, state, items, raise_on_failure=False)
    assert (result.sent, result.confirmed, result.unconfirmed) == (30, 20, 10)
    assert not result.ok
    assert set(sync_state_rows(state)) == {f"u{i}" for i in range(30)} - {
        f"u{i}" for i in range(10, 20)
    }
    with pytest.raises(BulkError, match="10 not confirmed"):
        result.raise_for_failures()

    # The next run sends that batch again, all of it, and nothing else.
    before = len(emulator.requests)
    again = await sync(emulator, state, items, raise_on_failure=False)
    assert posted_batches(emulator, before) == [[f"u{i}" for i in range(10, 20)]]
    assert (again.changed, again.new, again.unchanged) == (0, 10, 20)


async def test_rejected_users_are_not_confirmed_and_keep_their_input_position(
    emulator: Emulator, state: str
) -> None:
    items = users(20)
    items[4]["email"] = "not-an-email"
    outcomes: list[ChunkOutcome] = []
    result = await sync(emulator, state, items, raise_on_failure=False, on_chunk=outcomes.append)
    assert [(r.position, r.user_id) for r in result.rejected] == [(4, "u4")]
    assert result.confirmed == 19
    assert "u4" not in sync_state_rows(state)
    assert sorted(p for o in outcomes for p in o.positions) == list(range(20))

    # Only the rejected one is sent again; with an unchanged export after it, its
    # positions are those of the input, not of the users sent.
    before = len(emulator.requests)
    outcomes.clear()
    again = await sync(emulator, state, items, raise_on_failure=False, on_chunk=outcomes.append)
    assert posted_batches(emulator, before) == [["u4"]]
    assert [o.positions for o in outcomes] == [(4,)]
    assert [r.position for r in again.rejected] == [4]
    with pytest.raises(BulkError):
        await sync(emulator, state, items)


async def test_a_failed_chunk_is_not_confirmed_and_is_resent(
    emulator: Emulator, state: str
) -> None:
    emulator.faults = Faults(schedule=["503"])  # the first batch fails (no retries)
    result = await sync(emulator, state, users(20), concurrency=1, raise_on_failure=False)
    assert (result.failed, result.confirmed) == (10, 10)
    before = len(emulator.requests)
    again = await sync(emulator, state, users(20), concurrency=1)
    assert posted_batches(emulator, before) == [[f"u{i}" for i in range(10)]]
    assert again.ok
    assert again.state_users == 20


async def test_delete_missing_deletes_exactly_the_missing_ids(
    emulator: Emulator, state: str
) -> None:
    await sync(emulator, state, users(30))
    emulator.seed({"id": "not-ours", "email": "other@example.com"})  # never in the state
    kept = [u for u in users(30) if u["id"] not in ("u5", "u17")]
    before = len(emulator.requests)
    result = await sync(emulator, state, kept, delete_missing=True)
    assert posted_batches(emulator, before) == [
        ["u17", "u5"]
    ]  # one delete batch (in id order), no upsert
    assert (result.missing, result.deleted, result.unchanged) == (2, 2, 28)
    assert set(emulator.users) == {u["id"] for u in kept} | {"not-ours"}
    assert set(sync_state_rows(state)) == {u["id"] for u in kept}
    again = await sync(emulator, state, kept, delete_missing=True)
    assert (again.missing, again.deleted, again.sent) == (0, 0, 0)


@pytest.mark.parametrize("export", [[], users(20)])
async def test_the_guard_refuses_a_mass_delete_before_sending_anything(
    emulator: Emulator, state: str, export: list[dict[str, Any]]
) -> None:
    await sync(emulator, state, users(30))
    rows = sync_state_rows(state)
    changed = [dict(u, firstName="C") for u in export]  # would be sent, if allowed
    before = len(emulator.requests)
    with pytest.raises(DeleteGuardError, match=r"delete \d+ of the 30 users .*--max-delete"):
        await sync(emulator, state, changed, delete_missing=True)
    assert len(emulator.requests) == before
    assert sync_state_rows(state) == rows

    # Allowed explicitly (a count): the run goes through.
    result = await sync(emulator, state, changed, delete_missing=True, max_delete=30)
    assert result.deleted == 30 - len(export)
    assert set(emulator.users) == {u["id"] for u in export}


async def test_a_state_of_another_base_url_or_options_is_refused(
    emulator: Emulator, state: str
) -> None:
    await sync(emulator, state, users(5), options={"mapping": 1})
    rows = sync_state_rows(state)
    before = len(emulator.requests)
    with pytest.raises(SyncStateError, match="belongs to base URL http://emulator"):
        await sync(emulator, state, users(5), options={"mapping": 1}, base_url="http://other")
    with pytest.raises(SyncStateError, match=r'this run is for .*"mapping": 2'):
        await sync(emulator, state, users(5), options={"mapping": 2})
    assert len(emulator.requests) == before
    assert sync_state_rows(state) == rows


async def test_a_file_that_is_not_ours_is_refused_and_left_untouched(
    emulator: Emulator, tmp_path: Path
) -> None:
    other = tmp_path / "app.db"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    junk = tmp_path / "junk.sync"
    junk.write_bytes(b"not a database at all " * 100)
    for path, needle in ((other, "another program's SQLite file"), (junk, "is not a sync state")):
        content = path.read_bytes()
        with pytest.raises(SyncStateError, match=needle):
            await sync(emulator, str(path), users(3))
        assert path.read_bytes() == content
    with pytest.raises(SyncStateError, match="is a directory"):
        await sync(emulator, str(tmp_path), users(3))
    assert emulator.requests == []


def _tamper(path: str, sql: str) -> None:
    db = sqlite3.connect(path)
    db.execute(sql)
    db.commit()
    db.close()


@pytest.mark.parametrize(
    ("sql", "needle"),
    [
        ("INSERT INTO users VALUES ('x', x'00')", "16-byte hash"),
        ("INSERT INTO users VALUES (x'07', x'00000000000000000000000000000000')", "16-byte hash"),
        ("INSERT INTO users VALUES ('', x'00000000000000000000000000000000')", "16-byte hash"),
        ("UPDATE users SET hash = 'text' WHERE id = 'u1'", "16-byte hash"),
        ("CREATE TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM users; END", "tables differ"),
        ("DROP TABLE meta", "tables differ"),
        ("INSERT INTO meta VALUES ('other', 'x')", "meta table"),
        ("PRAGMA user_version = 9", "layout version 9"),
        ("PRAGMA application_id = 7", "another program's SQLite file"),
        ("UPDATE meta SET value = 'not json'", "options this SDK cannot read"),
        (
            "INSERT INTO users VALUES (CAST(x'ff' AS TEXT), x'00000000000000000000000000000000')",
            "damaged",
        ),
    ],
)
async def test_a_damaged_state_is_refused(
    emulator: Emulator, state: str, sql: str, needle: str
) -> None:
    await sync(emulator, state, users(3))
    _tamper(state, sql)
    before = len(emulator.requests)
    with pytest.raises(SyncStateError, match=needle):
        await sync(emulator, state, users(3))
    assert len(emulator.requests) == before


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _truncate(path: str) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])
    Path(path + "-wal").unlink(missing_ok=True)


async def test_a_truncated_state_file_is_refused(emulator: Emulator, state: str) -> None:
    await sync(emulator, state, users(200))
    _truncate(state)
    with pytest.raises(SyncStateError):
        await sync(emulator, state, users(200))


async def test_a_state_in_use_by_another_sync_is_refused(emulator: Emulator, state: str) -> None:
    await sync(emulator, state, users(3))
    held = SyncState.open(state, base_url="http://emulator", options={})
    try:
        with pytest.raises(SyncStateError, match="in use by another running sync"):
            await sync(emulator, state, users(3))
    finally:
        held.close()
    assert (await sync(emulator, state, users(3))).unchanged == 3


async def test_an_input_that_breaks_confirms_what_was_taken_and_deletes_nothing(
    emulator: Emulator, state: str
) -> None:
    await sync(emulator, state, users(30))

    async def broken() -> AsyncIterator[dict[str, Any]]:
        for user in users(30, {1, 2}):
            if user["id"] == "u25":
                raise OSError("the export was cut")
            yield user

    with pytest.raises(BulkError, match="the export was cut"):
        await sync(emulator, state, broken(), delete_missing=True, max_delete="100%")
    assert set(emulator.users) == {f"u{i}" for i in range(30)}  # nothing deleted
    # What was read is sent, as upsert_many does; the guard never applies to a cut input.
    assert emulator.user("u1")["firstName"] == "B"  # type: ignore[index]
    again = await sync(emulator, state, users(30, {1, 2}))
    assert again.sent == 0  # confirmed by the broken run


@pytest.mark.parametrize("value", ["lots", "-1", "101%", True, 1.5])
async def test_a_bad_max_delete_is_refused_before_the_state_is_touched(
    emulator: Emulator, state: str, value: Any
) -> None:
    with pytest.raises((ValueError, TypeError), match="max_delete"):
        await sync(emulator, state, users(3), max_delete=value)
    assert not _exists(state)


async def test_one_user_instead_of_a_list_is_a_type_error(emulator: Emulator, state: str) -> None:
    with pytest.raises(TypeError, match="wrap it in a list"):
        await sync(emulator, state, users(1)[0])


async def test_items_the_engine_rejects_are_rejected_as_upsert_many_would(
    emulator: Emulator, state: str
) -> None:
    items: list[Any] = [
        *users(3),
        {"email": "no-id@example.com"},
        42,
        {"id": "n", "x": float("nan")},
    ]
    result = await sync(emulator, state, items, raise_on_failure=False)
    assert sorted(r.position for r in result.rejected) == [3, 4, 5]
    assert all(r.local for r in result.rejected)
    assert result.confirmed == 3
    assert set(sync_state_rows(state)) == {"u0", "u1", "u2"}


def test_the_sync_facade_syncs_too(emulator: Emulator, tmp_path: Path, backend: str) -> None:
    path = str(tmp_path / "facade.sync")
    with Client(
        KEY, base_url="http://emulator", transport=emulator.transport(), backend=backend
    ) as client:
        first = client.sync_users(users(12), state=path, chunk_size=5)
        again = client.sync_users(users(12, {0}), state=path, chunk_size=5)
    assert (first.confirmed, again.changed, again.unchanged) == (12, 1, 11)


async def test_a_state_in_a_missing_folder_is_refused(emulator: Emulator, tmp_path: Path) -> None:
    with pytest.raises(SyncStateError, match="cannot open the sync state"):
        await sync(emulator, str(tmp_path / "nowhere" / "users.sync"), users(3))


@pytest.mark.parametrize("kind", ["aiohttp", "httpx"])
async def test_a_sync_over_a_real_socket_on_each_transport(
    emulator: Emulator, state: str, kind: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .loopback import assert_picked, use_transport

    use_transport(kind, anyio_backend, monkeypatch)
    async with emulator.serve() as base_url, AsyncClient(KEY, base_url=base_url) as client:
        first = await client.sync_users(users(30), state=state, chunk_size=10)
        assert_picked(client, kind)
        again = await client.sync_users(users(30, {2}), state=state, delete_missing=True)
    assert (first.confirmed, again.changed, again.unchanged, again.confirmed) == (30, 1, 29, 1)
    assert emulator.user("u2")["firstName"] == "B"  # type: ignore[index]


async def test_an_arrow_table_syncs_as_its_rows_would(emulator: Emulator, state: str) -> None:
    # sync_users takes what upsert_many takes: a table's rows are hashed as the
    # dicts the API gets (nulls left out, integer ids as strings), so the same
    # users as dicts afterwards are unchanged.
    pa = pytest.importorskip("pyarrow")
    table = pa.table(
        {
            "id": pa.array(range(12), pa.int64()),
            "email": [f"u{i}@example.com" for i in range(12)],
            "firstName": ["A" if i % 3 else None for i in range(12)],
        }
    )
    first = await sync(emulator, state, table)
    assert (first.new, first.sent, first.confirmed) == (12, 12, 12)
    assert "firstName" not in emulator.users["0"]  # a null is left out, never sent
    assert emulator.users["1"]["firstName"] == "A"
    as_dicts = [
        {k: v for k, v in row.items() if v is not None} | {"id": str(row["id"])}
        for row in table.to_pylist()
    ]
    again = await sync(emulator, state, as_dicts)
    assert (again.unchanged, again.sent) == (12, 0)


async def test_a_repeated_id_is_judged_against_its_previous_row(
    emulator: Emulator, state: str
) -> None:
    # An export that lists a user twice: the first row pops the id from the
    # state, so the repeat used to count as new and be sent on every run.
    twice = [*users(5), users(5)[2]]
    first = await sync(emulator, state, twice)
    assert (first.new, first.unchanged, first.sent, first.confirmed) == (5, 1, 5, 5)
    before = len(emulator.requests)
    again = await sync(emulator, state, twice)
    assert len(emulator.requests) == before  # an unchanged export sends nothing
    assert (again.new, again.changed, again.unchanged, again.sent) == (0, 0, 6, 0)
    # A, B, A: the last row must still reach the API, which applies it on top.
    back = users(5) + users(5, {1})[1:2] + users(5)[1:2]
    before = len(emulator.requests)
    third = await sync(emulator, state, back)
    assert posted_batches(emulator, before) == [["u1", "u1"]]
    assert (third.unchanged, third.changed, third.sent) == (5, 2, 2)
    assert emulator.user("u1")["firstName"] == "A"  # type: ignore[index]
    fourth = await sync(emulator, state, users(5))  # the state holds what the API has
    assert (fourth.unchanged, fourth.sent) == (5, 0)


@pytest.mark.parametrize("kind", ["list", "async"])
async def test_an_iterable_of_record_batches_syncs_as_its_rows_would(
    emulator: Emulator, state: str, kind: str
) -> None:
    # upsert_many takes an (async) iterable of record batches; sync_users used
    # to pass them on whole: the Syncer counted a batch as one unhashed user
    # and the engine sent its rows columnar, so on_chunk broke (KeyError).
    pa = pytest.importorskip("pyarrow")
    table = pa.Table.from_pylist(users(9, {4}))

    def batches_of() -> Any:
        parts = table.to_batches(max_chunksize=4)
        if kind == "list":
            return parts

        async def gen() -> AsyncIterator[Any]:
            for part in parts:
                yield part

        return gen()

    await sync(emulator, state, users(9))
    before = len(emulator.requests)
    result = await sync(emulator, state, batches_of())
    assert posted_batches(emulator, before) == [["u4"]]
    assert (result.new, result.changed, result.unchanged, result.confirmed) == (0, 1, 8, 1)
    assert result.ok


async def test_an_id_of_a_str_subclass_is_confirmed_by_its_text(
    emulator: Emulator, state: str
) -> None:
    # upsert_many sends a StrEnum (or numpy.str_) id as its text; the Syncer
    # took only exact str ids, so such a user was new and unconfirmed forever.
    import enum

    class Tier(str, enum.Enum):
        GOLD = "u1"

    class Text(str):
        pass

    def items() -> list[dict[str, Any]]:
        first, second = users(2)
        return [first | {"id": Text("u0")}, second | {"id": Tier.GOLD}]

    first = await sync(emulator, state, items())
    assert (first.new, first.confirmed, first.unconfirmed) == (2, 2, 0)
    assert set(sync_state_rows(state)) == {"u0", "u1"}
    again = await sync(emulator, state, items())
    assert (again.unchanged, again.sent) == (2, 0)
    assert again.ok
