"""The executor side without a JVM: the task of one partition, and each worker's clients."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from activatepro_async.client import _Secret

from ..helpers import run_python
from ._support import API_KEY, ServedEmulator, require_spark

require_spark()

from activatepro_async.integrations.spark import _executor, _jobs, _results  # noqa: E402


class Broadcast:
    """What ``secret.value`` gives on an executor."""

    def __init__(self, key: str) -> None:
        self.value = _Secret(key)


@pytest.fixture(scope="module")
def server() -> Iterator[ServedEmulator]:
    served = ServedEmulator()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(autouse=True)
def no_clients_left() -> Iterator[None]:
    yield
    for _, client in _executor._CLIENTS.values():
        client.close()
    _executor._CLIENTS.clear()


def job(base_url: str, operation: str = "upsert", chunk_size: int = 10) -> _executor.Job:
    plan = (("id", 0), ("email", 0)) if operation == "upsert" else ()
    return _jobs._new_job(
        operation,  # type: ignore[arg-type]
        plan, base_url, chunk_size, 1 << 20, False, 1.0, 5.0, 0, None,
    )  # fmt: skip


def summary(records: list[tuple[Any, ...]]) -> dict[str, Any]:
    """The totals record of a task, by field name."""
    [found] = [r for r in records if r[0] == "p"]
    return dict(zip(_results.OUTPUT_SCHEMA.names, found, strict=True))


def test_a_task_streams_its_rows_through_the_workers_client_and_reuses_it(
    server: ServedEmulator,
) -> None:
    rows = [(f"ex-{n}", f"ex-{n}@example.com") for n in range(25)] + [(None, "x@example.com")]
    first = list(_executor.run_task(job(server.base_url), Broadcast(API_KEY), 0, iter(rows)))
    totals = summary(first)
    counts = [totals[name] for name in ("submitted", "accepted", "rejected", "failed")]
    assert counts == [26, 25, 1, 0]
    assert (totals["worker_pid"], totals["client_reused"]) == (os.getpid(), False)
    second = list(_executor.run_task(job(server.base_url), Broadcast(API_KEY), 1, iter(rows[:3])))
    assert summary(second)["client_reused"] is True  # same settings and key: same client


def test_a_partition_that_breaks_while_read_fails_the_task_with_its_own_error(
    server: ServedEmulator,
) -> None:
    def rows() -> Iterator[tuple[str, str]]:
        for n in range(15):
            yield (f"broken-{n}", f"broken-{n}@example.com")
        raise OSError("the executor lost its shuffle file")

    # Spark runs a failed task again on its partition; a stopped run would not.
    with pytest.raises(OSError, match="lost its shuffle file"):
        list(_executor.run_task(job(server.base_url), Broadcast(API_KEY), 0, rows()))


def test_an_executor_without_a_key_reports_the_stop_in_its_records(
    server: ServedEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACTIVATEPRO_API_KEY", raising=False)
    totals = summary(list(_executor.run_task(job(server.base_url), None, 0, iter([]))))
    assert totals["aborted"].startswith("ConfigurationError: no API key")


def test_a_worker_keeps_a_client_per_settings_and_key_and_closes_the_oldest() -> None:
    settings = job("http://127.0.0.1:9").client
    made = [_executor._worker_client(settings, f"key-{n}") for n in range(5)]
    assert [reused for _, reused in made] == [False] * 5
    assert _executor._worker_client(settings, "key-4") == (made[4][0], True)
    oldest = made[0][0]
    with pytest.raises(RuntimeError, match="this Client is closed"):
        oldest.get_user("u1")
    # The cache may be printed: the keys are in it as digests only.
    assert "key-" not in repr(_executor._CLIENTS)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")
def test_a_forked_worker_makes_its_own_client_and_the_parent_keeps_its_own() -> None:
    script = textwrap.dedent(
        """
        import os
        from activatepro_async.integrations.spark import _executor, _jobs

        settings = _jobs._new_job(
            "upsert", (), "http://127.0.0.1:9", 10, 1 << 20, False, 1.0, 1.0, 0, None
        ).client
        parent, _ = _executor._worker_client(settings, "k")
        pid = os.fork()
        if pid == 0:
            child, reused = _executor._worker_client(settings, "k")
            os._exit(0 if child is not parent and not reused else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, "the child reused the parent's client"
        assert _executor._worker_client(settings, "k") == (parent, True)
        print("done")
        """
    )
    done = run_python(script, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "done"), done.stderr


def test_an_arrow_task_gives_the_records_a_row_task_gives_for_the_same_values(
    server: ServedEmulator,
) -> None:
    import pyarrow as pa

    rows = [(f"arrow-{n}", f"arrow-{n}@example.com") for n in range(25)]
    rows += [(None, "x@example.com"), ("arrow-bad", "no-at-sign"), ("arrow-x", None)]
    table = pa.table({"id": [r[0] for r in rows], "email": [r[1] for r in rows]})
    # Batches of uneven sizes, an empty one among them: positions run on across batches.
    batches = [*table.slice(0, 7).to_batches(), pa.RecordBatch.from_pylist([], table.schema)]
    batches += table.slice(7).to_batches(max_chunksize=5)

    by_rows = list(_executor.run_task(job(server.base_url), Broadcast(API_KEY), 0, iter(rows)))
    [batch] = list(_executor.run_arrow_task(job(server.base_url), Broadcast(API_KEY), batches))

    def same(records: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        # The time taken, whether the client was new and the tracking ids differ
        # between two tasks; the number of tracking ids does not.
        names = _results.OUTPUT_SCHEMA.names
        drop = {names.index(n) for n in ("seconds", "client_reused")}
        ids = names.index("tracking_ids")
        return [
            tuple(len(v) if i == ids and v else v for i, v in enumerate(r) if i not in drop)
            for r in records
        ]

    assert batch.schema.names == _results.OUTPUT_SCHEMA.names
    as_tuples = [tuple(row.values()) for row in batch.to_pylist()]
    # (Arrow gives the error structs back as dicts, the Row path holds tuples.)
    for records in (as_tuples, by_rows):
        index = _results.OUTPUT_SCHEMA.names.index("errors")
        for n, record in enumerate(records):
            if record[index] is not None:
                errors = [tuple(e.values()) if isinstance(e, dict) else e for e in record[index]]
                records[n] = (*record[:index], errors, *record[index + 1 :])
    assert same(as_tuples) == same(by_rows)
    totals = summary(by_rows)
    assert [totals[n] for n in ("submitted", "accepted", "rejected")] == [28, 25, 3]


def test_an_arrow_partition_that_breaks_while_read_fails_the_task_with_its_own_error(
    server: ServedEmulator,
) -> None:
    import pyarrow as pa

    def batches() -> Iterator[pa.RecordBatch]:
        yield pa.record_batch({"id": ["b-1", "b-2"], "email": ["b1@example.com", None]})
        raise OSError("the executor lost its shuffle file")

    # As on the Row path: Spark runs the failed task again, on its partition only.
    with pytest.raises(OSError, match="lost its shuffle file"):
        list(_executor.run_arrow_task(job(server.base_url), Broadcast(API_KEY), batches()))


def test_a_null_id_to_delete_reads_the_same_on_the_row_and_the_arrow_path() -> None:
    # No JVM: the Row path's converter and the columnar path, on the same ids.
    import pyarrow as pa

    from activatepro_async import Client
    from activatepro_async.emulator import Emulator
    from activatepro_async.integrations.spark._columns import delete_converter

    emulator = Emulator((API_KEY,))
    rows = [("a",), (None,), ("b",)]
    details = []
    with Client(API_KEY, base_url="http://e", transport=emulator.transport()) as client:
        for items in (map(delete_converter, rows), pa.table({"id": [r[0] for r in rows]})):
            result = client.delete_many(items, raise_on_failure=False)
            [reject] = result.rejected
            details.append(
                (reject.position, [(e.code, e.details, e.pointer) for e in reject.errors])
            )
    assert details[0] == details[1] == (1, [(2, "the user has no id", "/id")])
