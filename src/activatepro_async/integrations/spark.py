"""Bulk sync from Spark DataFrames: ``upsert_dataframe`` and ``delete_dataframe``.

Needs the ``spark`` extra: ``pip install 'activatepro-async[spark]'``.

>>> from activatepro_async.integrations.spark import upsert_dataframe
>>> result = upsert_dataframe(spark.table("crm.profiles"), concurrency=32)
>>> result.rejects.write.mode("overwrite").saveAsTable("crm.profile_rejects")

How a job runs, top to bottom:

1. On the driver, the DataFrame's columns are mapped to the API's keys as the
   ``activatepro import`` command maps a file's (``id``, ``email``,
   ``businessUnit``, any other column an attribute; ``mapping=`` renames) and
   turned, inside Spark's JVM, into values JSON can carry: timestamps become
   epoch microseconds (exact, whatever the session's time zone), decimals
   numbers, nested values JSON text with UTC timestamps.
2. Each partition runs as one Spark task. On the executor, the task takes its
   Python worker's client (one ``AsyncClient`` on one event-loop thread per
   worker process, made by the first task and reused by the next ones) and
   streams its rows through the bulk engine (:meth:`AsyncClient.upsert_many`):
   rows are read in batches on a helper thread, so only the chunks in flight
   are held, whatever the partition's size.
3. Each task returns its totals and its rejected rows as data. The job's output
   is kept by Spark (a local checkpoint, cut from the job's lineage), so reading
   :attr:`SparkBulkResult.rejects` later never sends anything again.

``concurrency`` is the budget of the whole job: each task gets
``max(1, concurrency // running_tasks)`` requests in flight, where
``running_tasks`` is ``min(task_slots, number of partitions)`` and
``task_slots`` defaults to ``sparkContext.defaultParallelism`` (the cores of
the executors). Within that, each task's bulk engine lowers its concurrency on
429/503 and raises it again as calls succeed.

The API key travels to executors as a Spark broadcast of an object whose repr
is ``'***'``, destroyed when the job ends: never a literal in a column, a plan
or a pickled closure. Without ``api_key=`` (and without ``ACTIVATEPRO_API_KEY``
on the driver) each executor reads its own ``ACTIVATEPRO_API_KEY``.

The workers' Python (``spark.pyspark.python`` with spark-submit, else
``PYSPARK_PYTHON``, else ``python3`` on the ``PATH``) needs the SDK installed;
when it cannot import it, the job raises :class:`ConfigurationError` saying so.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.to_thread
import attrs
from anyio.from_thread import BlockingPortal, start_blocking_portal

from .._retry import RetryPolicy
from ..bulk import DEFAULT_MAX_CHUNK_BYTES, BulkResult, Operation
from ..client import API_KEY_ENV, MAX_BATCH_ITEMS, AsyncClient, _check_api_key, _check_base_url
from ..client import _Secret as _Secret
from ..errors import ActivateProError, APIStatusError, BulkError, ConfigurationError

INSTALL_HINT = "pip install 'activatepro-async[spark]'"

try:
    from pyspark import TaskContext, cloudpickle
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
except ModuleNotFoundError as _exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        f"activatepro_async.integrations.spark needs pyspark: {INSTALL_HINT}", name=_exc.name
    ) from None

if TYPE_CHECKING:
    from pyspark import Broadcast
    from pyspark.sql import Column, DataFrame, Row, SparkSession

__all__ = [
    "INSTALL_HINT",
    "PARTITIONS_SCHEMA",
    "REJECTS_SCHEMA",
    "PartitionResult",
    "SparkBulkError",
    "SparkBulkResult",
    "delete_dataframe",
    "per_task_concurrency",
    "upsert_dataframe",
    "wire_names",
]

logger = logging.getLogger("activatepro_async")

#: The schema of :attr:`SparkBulkResult.rejects`: one row per user not stored.
REJECTS_SCHEMA = T.StructType(
    [
        T.StructField("partition", T.IntegerType(), False),
        # The row's 0-based index within its partition; null for an error naming no row.
        T.StructField("position", T.LongType(), True),
        T.StructField("id", T.StringType(), True),
        # "rejected": invalid (by the API, or locally when `local`); "failed": in a
        # chunk whose request failed after all retries; "unattributed": an error of a
        # partial batch that names no row.
        T.StructField("kind", T.StringType(), False),
        T.StructField("local", T.BooleanType(), False),
        T.StructField("error_codes", T.ArrayType(T.IntegerType(), False), False),
        T.StructField(
            "errors",
            T.ArrayType(
                T.StructType(
                    [
                        T.StructField("code", T.IntegerType(), False),
                        T.StructField("title", T.StringType(), True),
                        T.StructField("details", T.StringType(), True),
                        T.StructField("pointer", T.StringType(), True),
                    ]
                ),
                False,
            ),
            False,
        ),
        # For a failed chunk: the exception, "ServerError: 503 ...".
        T.StructField("failure", T.StringType(), True),
    ]
)

#: The schema of :meth:`SparkBulkResult.partitions_df`.
PARTITIONS_SCHEMA = T.StructType(
    [
        T.StructField("partition", T.IntegerType(), False),
        T.StructField("submitted", T.LongType(), False),
        T.StructField("accepted", T.LongType(), False),
        T.StructField("rejected", T.LongType(), False),
        T.StructField("failed", T.LongType(), False),
        T.StructField("tracking_ids", T.ArrayType(T.StringType(), False), False),
        T.StructField("retries", T.LongType(), False),
        T.StructField("seconds", T.DoubleType(), False),
        T.StructField("processed_success", T.LongType(), True),
        T.StructField("processed_error", T.LongType(), True),
        T.StructField("processing_errors", T.LongType(), True),
        T.StructField("tracking_failures", T.LongType(), False),
        T.StructField("aborted", T.StringType(), True),
        T.StructField("worker_pid", T.LongType(), False),
        T.StructField("client_reused", T.BooleanType(), False),
        T.StructField("attempt", T.IntegerType(), False),
    ]
)


# What the tasks return, one row per record: a partition's totals ("p") or a
# row not stored ("r"), in one schema so that one job makes both.
_OUTPUT_SCHEMA = T.StructType(
    [
        T.StructField("record", T.StringType(), False),
        T.StructField("partition", T.IntegerType(), False),
        *(T.StructField(f.name, f.dataType, True) for f in PARTITIONS_SCHEMA.fields[1:]),
        *(T.StructField(f.name, f.dataType, True) for f in REJECTS_SCHEMA.fields[1:]),
    ]
)
_NO_SUMMARY = (None,) * (len(PARTITIONS_SCHEMA.fields) - 1)
_NO_REJECT = (None,) * (len(REJECTS_SCHEMA.fields) - 1)


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@attrs.frozen
class PartitionResult:
    """What the task of one partition did (one row of :meth:`SparkBulkResult.partitions_df`).

    ``submitted == accepted + rejected + failed``. ``processed_success`` and
    ``processed_error`` are the server's totals with ``wait=True``, else
    ``None``; ``processing_errors`` is the part of ``processed_error`` that the
    API accepted but could not apply (e.g. an email taken in that business
    unit): the API gives only their number, so they are not in the rejects.
    ``aborted`` says why the task stopped early (a 401, no API key on
    the executor), else ``None``. ``worker_pid`` is the Python worker that ran
    the task; ``client_reused`` is true when an earlier task of that worker had
    made its client. ``attempt`` counts Spark's tries of the task from 0: a task
    that failed is run again on its own partition only.
    """

    partition: int
    submitted: int
    accepted: int
    rejected: int
    failed: int
    tracking_ids: tuple[str, ...]
    retries: int
    seconds: float
    processed_success: int | None
    processed_error: int | None
    processing_errors: int | None
    tracking_failures: int
    aborted: str | None
    worker_pid: int
    client_reused: bool
    attempt: int


class SparkBulkError(ActivateProError):
    """A DataFrame job did not store every row; ``result`` is its :class:`SparkBulkResult`.

    Raised at the end of a job with rejected or failed rows (unless
    ``raise_on_failure=False``), by :meth:`SparkBulkResult.raise_for_failures`,
    and always when a task had to stop early (a 401, no API key).

    >>> try:
    ...     upsert_dataframe(df)
    ... except SparkBulkError as exc:
    ...     exc.result.rejects.write.saveAsTable("crm.profile_rejects")
    """

    def __init__(self, message: str, *, result: SparkBulkResult) -> None:
        super().__init__(message)
        self.result = result


@attrs.frozen(repr=False)
class SparkBulkResult:
    """What a DataFrame job did with every row it read.

    ``partitions`` holds one :class:`PartitionResult` per partition (collected
    on the driver); ``rejects`` is a DataFrame (:data:`REJECTS_SCHEMA`) with one
    row per row not stored: its partition, position and id, and its error codes
    and details, or the failure of its chunk. Join it to your input on ``id``
    to see whole rows. ``submitted == accepted + rejected + failed``.

    ``rejects`` reads the job's output as Spark keeps it (a local checkpoint on
    the executors): reading it is cheap, sends nothing again and needs no key.
    Spark frees it once the result is garbage-collected; an executor lost in
    the meantime takes its part with it (reading ``rejects`` then fails), so
    store the rejects soon.
    """

    operation: Operation
    partitions: tuple[PartitionResult, ...]
    rejects: DataFrame
    #: Requests each task had in flight at most (before backing off on 429/503).
    concurrency_per_task: int
    #: How many tasks were taken to run at once when the budget was shared.
    running_tasks: int

    @property
    def submitted(self) -> int:
        """Rows read from the DataFrame."""
        return sum(p.submitted for p in self.partitions)

    @property
    def accepted(self) -> int:
        """Rows the API accepted."""
        return sum(p.accepted for p in self.partitions)

    @property
    def rejected(self) -> int:
        """Rows refused as invalid (by the API, or locally before sending)."""
        return sum(p.rejected for p in self.partitions)

    @property
    def failed(self) -> int:
        """Rows in chunks whose request failed after all retries (safe to send again)."""
        return sum(p.failed for p in self.partitions)

    @property
    def tracking_ids(self) -> list[str]:
        """Every tracking id of the job, by partition."""
        return [tid for p in self.partitions for tid in p.tracking_ids]

    @property
    def aborted(self) -> list[PartitionResult]:
        """The partitions whose task stopped early."""
        return [p for p in self.partitions if p.aborted is not None]

    @property
    def ok(self) -> bool:
        """True when every row was accepted (and, with ``wait=True``, processed)."""
        return not any(
            p.rejected
            or p.failed
            or p.aborted is not None
            or p.tracking_failures
            or p.processed_error
            for p in self.partitions
        )

    def partitions_df(self) -> DataFrame:
        """:attr:`partitions` as a small DataFrame (:data:`PARTITIONS_SCHEMA`)."""
        rows = [attrs.astuple(p, recurse=False) for p in self.partitions]
        rows = [(*row[:5], list(row[5]), *row[6:]) for row in rows]
        return self.rejects.sparkSession.createDataFrame(rows, PARTITIONS_SCHEMA)

    def summary(self) -> str:
        """One line for logs."""
        text = (
            f"{self.operation}: {self.submitted} rows in {len(self.partitions)} partitions, "
            f"{self.accepted} accepted, {self.rejected} rejected, {self.failed} failed, "
            f"{len(self.tracking_ids)} tracking ids, {self.concurrency_per_task} requests "
            f"per task x {self.running_tasks} tasks"
        )
        if any(p.processed_success is not None for p in self.partitions):
            success = sum(p.processed_success or 0 for p in self.partitions)
            error = sum(p.processed_error or 0 for p in self.partitions)
            later = sum(p.processing_errors or 0 for p in self.partitions)
            text += f"; processed {success} ok, {error} errors ({later} at processing)"
        if self.aborted:
            text += f"; {len(self.aborted)} partitions stopped early"
        return text

    def raise_for_failures(self) -> None:
        """Raise :class:`SparkBulkError` (with this result) unless :attr:`ok`."""
        if not self.ok:
            raise SparkBulkError(_failure_message(self), result=self)

    def __repr__(self) -> str:
        return f"<SparkBulkResult {self.summary()}>"


def _failure_message(result: SparkBulkResult) -> str:
    parts = [result.summary()]
    for p in result.aborted[:1]:
        parts.append(f"partition {p.partition} stopped early: {p.aborted}")
    parts.append("see .result.rejects for every row not stored")
    return "; ".join(parts)


# --------------------------------------------------------------------------
# Column mapping (driver)
# --------------------------------------------------------------------------

# How a selected column's value becomes a wire value on the executor.
_PLAIN = 0  # as it is (str, int, float, bool)
_MICROS = 1  # epoch microseconds of a TimestampType -> "2015-10-02T08:23:53Z"
_DATE = 2  # datetime.date -> "1982-08-30"
_JSON = 3  # JSON text of a nested value (made by to_json in the JVM) -> its value

# Nested timestamps are written by Spark's to_json, in UTC with Z; Spark's
# formatter has no "fraction only when there is one", so they always carry
# microseconds ("2020-03-01T23:30:00.000000Z"), which the API takes as well.
_JSON_OPTIONS = {
    "timeZone": "UTC",
    "timestampFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'",
    "dateFormat": "yyyy-MM-dd",
}


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def wire_names(
    columns: Iterable[str], mapping: Mapping[str, str | None] | None
) -> list[str | None]:
    """The wire key of each column: its name, its new name in ``mapping``, or ``None``.

    As ``activatepro import --map col=key`` (and ``--map col=``): a column
    mapped to ``None`` is left out. Raises ``ValueError`` for a mapped column
    that does not exist, or for two columns that end up with the same key.

    >>> wire_names(["user_id", "mail", "internal"], {"user_id": "id", "internal": None})
    ['id', 'mail', None]
    """
    columns = list(columns)
    mapping = dict(mapping or {})
    unknown = [name for name in mapping if name not in columns]
    if unknown:
        raise ValueError(
            f"mapping names columns the DataFrame does not have: {unknown} (its columns: {columns})"
        )
    names = [mapping.get(column, column) for column in columns]
    for name in names:
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(
                f"mapping gives the key {name!r}: map a column to a non-empty name, "
                "or to None to leave it out"
            )
    seen: dict[str, str] = {}
    for column, name in zip(columns, names, strict=True):
        if name is None:
            continue
        if name in seen:
            raise ValueError(
                f"columns {seen[name]!r} and {column!r} both map to {name!r}: "
                f"rename one with mapping=, or leave it out with mapping={{{column!r}: None}}"
            )
        seen[name] = column
    return names


def _column_plan(field: T.StructField, wire: str) -> tuple[Column | None, int]:
    """The select expression and value kind of one column; ``None`` drops it."""
    col = F.col(_quoted(field.name))
    kind = field.dataType
    if isinstance(kind, T.NullType):
        return None, _PLAIN  # always null: always left out
    if wire == "id" and isinstance(kind, T.IntegralType):
        # The API's ids are strings; warehouses often keep them as numbers.
        return col.cast("string"), _PLAIN
    if isinstance(kind, T.TimestampType):
        # Exact in any session time zone (a Python datetime from Spark is local time).
        return F.unix_micros(col), _MICROS
    if isinstance(kind, T.TimestampNTZType):
        raise TypeError(
            f"column {field.name!r} is TIMESTAMP_NTZ, a time with no time zone, and the API "
            f"stores UTC: convert it, e.g. F.to_utc_timestamp({field.name!r}, 'Europe/Berlin')"
        )
    if isinstance(kind, T.DateType):
        return col, _DATE
    if isinstance(kind, T.DecimalType):
        whole = kind.scale == 0 and kind.precision <= 18
        return col.cast("long" if whole else "double"), _PLAIN
    if isinstance(kind, (T.BinaryType, T.CalendarIntervalType, T.DayTimeIntervalType)):
        raise TypeError(
            f"column {field.name!r} is {kind.simpleString()}, which JSON cannot carry: "
            "convert it to a string or a number, or drop it"
        )
    if isinstance(kind, (T.ArrayType, T.MapType, T.StructType)):
        return F.to_json(col, _JSON_OPTIONS), _JSON
    return col, _PLAIN


def _plan_upsert(
    df: DataFrame, mapping: Mapping[str, str | None] | None
) -> tuple[list[Column], tuple[tuple[str, int], ...]]:
    fields = df.schema.fields
    names = wire_names((f.name for f in fields), mapping)
    for required in ("id", "email"):
        if required not in names:
            raise ValueError(
                f"no column maps to {required!r} (columns: {[f.name for f in fields]}): "
                f"name one {required!r} or pass mapping={{'your_column': {required!r}}}"
            )
    selects: list[Column] = []
    plan: list[tuple[str, int]] = []
    for field, wire in zip(fields, names, strict=True):
        if wire is None:
            continue
        col, kind = _column_plan(field, wire)
        if col is not None:
            selects.append(col)
            plan.append((wire, kind))
    return selects, tuple(plan)


def _plan_delete(df: DataFrame, id_column: str) -> list[Column]:
    fields = {f.name: f for f in df.schema.fields}
    if id_column not in fields:
        raise ValueError(
            f"no column {id_column!r} (columns: {list(fields)}): pass id_column= with the "
            "column that holds the user ids"
        )
    col, _ = _column_plan(fields[id_column], "id")
    assert col is not None
    kind = df.select(col).schema.fields[0].dataType
    if not isinstance(kind, T.StringType):
        raise TypeError(f"column {id_column!r} is {kind.simpleString()}: user ids are strings")
    return [col]


# --------------------------------------------------------------------------
# Rows to wire values (executor)
# --------------------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1)  # naive UTC, as models._format_datetime formats


def _micros_to_wire(micros: int) -> str:
    # The SDK's own format: isoformat in UTC with Z (a fraction only when there is one).
    return (_EPOCH + dt.timedelta(microseconds=micros)).isoformat() + "Z"


def _row_converter(plan: tuple[tuple[str, int], ...]) -> Callable[[Row], dict[str, Any]]:
    plain = [(i, name) for i, (name, kind) in enumerate(plan) if kind == _PLAIN]
    special = [(i, name, kind) for i, (name, kind) in enumerate(plan) if kind != _PLAIN]

    def convert(row: Row) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, name in plain:
            value = row[i]
            if value is not None:  # nulls are left out: an upsert never clears
                out[name] = value
        for i, name, kind in special:
            value = row[i]
            if value is None:
                continue
            if kind == _MICROS:
                out[name] = _micros_to_wire(value)
            elif kind == _DATE:
                out[name] = value.isoformat()
            else:
                out[name] = json.loads(value)
        return out

    return convert


def _delete_converter(row: Row) -> str | None:
    value: str | None = row[0]
    return value


class _Rows:
    """A partition's rows as an async iterator, read ``batch`` at a time on a worker thread.

    Reading a Spark partition blocks (the JVM computes it as we read): on the
    event loop thread it would hold up every request in flight. An error while
    reading is kept in ``error``, so that the task can fail with it and Spark
    run it again.
    """

    def __init__(self, rows: Iterable[Row], convert: Callable[[Row], Any], batch: int) -> None:
        self._source = iter(rows)
        self._convert = convert
        self._batch = batch
        self.error: BaseException | None = None

    def _take(self) -> list[Any]:
        try:
            return [self._convert(row) for row in itertools.islice(self._source, self._batch)]
        except BaseException as exc:
            self.error = exc
            raise

    async def __aiter__(self) -> AsyncGenerator[Any, None]:
        while True:
            items = await anyio.to_thread.run_sync(self._take)
            if not items:
                return
            for item in items:
                yield item


# --------------------------------------------------------------------------
# One client per Python worker process (executor)
# --------------------------------------------------------------------------


@attrs.frozen
class _ClientSettings:
    """Everything but the key that makes a client; hashable, picklable, no secret."""

    base_url: str
    timeout: float
    max_retries: int | None
    retry: RetryPolicy | None


class _WorkerClient:
    """An ``AsyncClient`` on an event loop thread of its own, shared by the tasks of a worker.

    Spark's Python worker runs one task at a time and, with worker reuse (the
    default), many tasks one after another: they all share this client and its
    connection pool.
    """

    def __init__(self, settings: _ClientSettings, api_key: str | None) -> None:
        self.pid = os.getpid()
        self._cm: AbstractContextManager[BlockingPortal] = start_blocking_portal("asyncio")
        self.portal = self._cm.__enter__()
        try:
            self.client = self.portal.call(self._make, settings, _Secret(api_key or ""))
        except BaseException:
            self._cm.__exit__(None, None, None)
            raise

    @staticmethod
    async def _make(settings: _ClientSettings, secret: _Secret) -> AsyncClient:
        # Made on the portal's loop, where its connections are used.
        return AsyncClient(
            secret.get() or None,
            base_url=settings.base_url,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            retry=settings.retry,
        )

    def close(self) -> None:
        try:
            if self.pid == os.getpid():
                self.portal.call(self.client.aclose)
        finally:
            if self.pid == os.getpid():
                self._cm.__exit__(None, None, None)


_WORKERS: dict[tuple[_ClientSettings, str], _WorkerClient] = {}
_WORKERS_LOCK = threading.Lock()
#: Clients kept per worker process (one per distinct settings and key); the oldest goes.
_MAX_WORKER_CLIENTS = 4


def _worker_client(settings: _ClientSettings, api_key: str | None) -> tuple[_WorkerClient, bool]:
    """This process's client for these settings and key, and whether it existed already."""
    # The key is in the cache's key only as a digest: this dict may be printed.
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()
    cache_key = (settings, digest)
    with _WORKERS_LOCK:
        found = _WORKERS.get(cache_key)
        if found is not None and found.pid == os.getpid():
            return found, True
        if found is not None:  # made before a fork: its thread is in the parent
            del _WORKERS[cache_key]
        worker = _WorkerClient(settings, api_key)
        _WORKERS[cache_key] = worker
        while len(_WORKERS) > _MAX_WORKER_CLIENTS:
            oldest = next(iter(_WORKERS))
            _WORKERS.pop(oldest).close()
        return worker, False


@atexit.register
def _close_worker_clients() -> None:
    # Runs when a worker's interpreter exits normally; Spark's daemon ends its
    # workers with os._exit, and then the OS closes the connections.
    with _WORKERS_LOCK:
        workers = list(_WORKERS.values())
        _WORKERS.clear()
    for worker in workers:
        try:
            worker.close()
        except Exception:  # noqa: S112 - nothing to do about it at exit
            continue


# --------------------------------------------------------------------------
# The task of one partition (executor)
# --------------------------------------------------------------------------


@attrs.frozen
class _Job:
    """What every task needs; travels in the pickled closure, so it holds no secret."""

    operation: Operation
    plan: tuple[tuple[str, int], ...]
    client: _ClientSettings
    chunk_size: int
    concurrency: int
    max_chunk_bytes: int
    wait: bool
    wait_timeout: float


# The records a task returns: ("p", summary fields...) once, ("r", reject fields...) per row.
_SUMMARY = "p"
_REJECT = "r"


def _reject_record(
    partition: int,
    position: int | None,
    user_id: str | None,
    kind: str,
    local: bool,
    errors: Iterable[Any],
    failure: str | None = None,
) -> tuple[Any, ...]:
    wire_errors = [(int(e.code), e.title, e.details, e.pointer) for e in errors]
    codes = [code for code, *_ in wire_errors]
    fields = (position, user_id, kind, local, codes, wire_errors, failure)
    return (_REJECT, partition, *_NO_SUMMARY, *fields)


def _summary_record(partition: int, *fields: Any) -> tuple[Any, ...]:
    return (_SUMMARY, partition, *fields, *_NO_REJECT)


def _records(
    partition: int, result: BulkResult, seconds: float, reused: bool
) -> Iterator[tuple[Any, ...]]:
    """The output of one task: a record per row not stored, then the partition's totals."""
    for rejected in result.rejected:
        yield _reject_record(
            partition,
            rejected.position,
            rejected.user_id,
            "rejected",
            rejected.local,
            rejected.errors,
        )
    for chunk in result.failed_chunks:
        exc = chunk.exception
        errors = exc.errors if isinstance(exc, APIStatusError) else []
        failure = f"{type(exc).__name__}: {exc}"
        for position, user_id in zip(chunk.positions, chunk.user_ids, strict=True):
            yield _reject_record(partition, position, user_id, "failed", False, errors, failure)
    for error in result.unattributed_errors:
        yield _reject_record(partition, None, None, "unattributed", False, [error])
    tracking = result.tracking
    aborted = result.aborted_by
    yield _summary_record(
        partition,
        result.submitted,
        result.accepted,
        len(result.rejected),
        result.failed,
        list(result.tracking_ids),
        result.retries,
        seconds,
        None if tracking is None else tracking.success,
        None if tracking is None else tracking.error,
        result.processing_errors,
        len(result.tracking_failures),
        None if aborted is None else f"{type(aborted).__name__}: {aborted}",
        os.getpid(),
        reused,
        _attempt(),
    )


def _attempt() -> int:
    context = TaskContext.get()
    return 0 if context is None else context.attemptNumber()


def _partition_result(row: Row) -> PartitionResult:
    values = row.asDict()
    values["tracking_ids"] = tuple(values["tracking_ids"])
    return PartitionResult(**values)


async def _run_partition(client: AsyncClient, job: _Job, rows: Iterable[Row]) -> BulkResult:
    if job.operation == "upsert":
        items = _Rows(rows, _row_converter(job.plan), job.chunk_size)
        run = client.upsert_many
    else:
        items = _Rows(rows, _delete_converter, job.chunk_size)
        run = client.delete_many  # type: ignore[assignment]  # same shape, other item type
    try:
        return await run(
            items,
            chunk_size=job.chunk_size,
            concurrency=job.concurrency,
            max_chunk_bytes=job.max_chunk_bytes,
            wait=job.wait,
            wait_timeout=job.wait_timeout,
            raise_on_failure=False,
        )
    except BulkError as exc:
        if items.error is not None:
            # Reading the partition failed (Spark's own error): fail the task,
            # so Spark runs it again, on this partition only.
            raise items.error from None
        return exc.result  # stopped early (401/403): its result says so


def _partition_function(
    job: _Job, secret: Broadcast[_Secret] | None
) -> Callable[[int, Iterable[Row]], Iterator[tuple[Any, ...]]]:
    """The function Spark runs on each partition.

    Spark ships it by value, and it refers to nothing of this package: the job
    travels as pickled bytes, loaded once the SDK is imported. So a worker
    whose Python lacks the SDK runs it and says so in a line that
    :func:`_run_job` turns into a ``ConfigurationError`` on the driver, instead
    of dying in Spark's unpickling with a bare ``ModuleNotFoundError``. The
    closure holds ``job`` (no secret) and the broadcast *handle* of the key,
    which pickles as the broadcast's id only.
    """
    # cloudpickle, as Spark's own: a RetryPolicy may hold a lambda.
    state: bytes = cloudpickle.dumps(job)  # type: ignore[no-untyped-call]
    # Locals, not module globals, so that nothing in the closure needs this module.
    missing = _NO_SDK_ON_WORKERS
    hint = INSTALL_HINT

    def run(partition: int, rows: Iterable[Row]) -> Iterator[tuple[Any, ...]]:
        import pickle
        import sys

        try:
            from activatepro_async.integrations import spark as sdk
        except ImportError as exc:  # the SDK, or one of its dependencies
            raise ModuleNotFoundError(
                f"{missing}: {sys.executable} says {exc}. Point the workers at a Python "
                "that has the SDK (spark.pyspark.python, or PYSPARK_PYTHON before the "
                f"session is built), or install it into that one: {hint}",
                name=exc.name,
            ) from None
        return sdk._run_task(pickle.loads(state), secret, partition, rows)  # noqa: S301

    return run


def _run_task(
    job: _Job, secret: Broadcast[_Secret] | None, partition: int, rows: Iterable[Row]
) -> Iterator[tuple[Any, ...]]:
    """The task of one partition, on the executor: its records (see :func:`_records`)."""
    started = time.perf_counter()
    api_key = None if secret is None else secret.value.get()
    try:
        worker, reused = _worker_client(job.client, api_key)
    except ActivateProError as exc:  # e.g. no ACTIVATEPRO_API_KEY on this executor
        nothing = BulkResult(job.operation, submitted=0, accepted=0, aborted_by=exc)
        yield from _records(partition, nothing, time.perf_counter() - started, False)
        return
    result = worker.portal.call(_run_partition, worker.client, job, rows)
    yield from _records(partition, result, time.perf_counter() - started, reused)


# What a worker that cannot import the SDK says; the driver finds it in Spark's error.
_NO_SDK_ON_WORKERS = "Spark's Python workers cannot import activatepro_async"
_NO_SDK_LINE = re.compile(rf"ModuleNotFoundError: ({re.escape(_NO_SDK_ON_WORKERS)}[^\r\n]*)")


def _workers_without_sdk(exc: Exception) -> ConfigurationError | None:
    """The error to raise for a job whose workers could not import the SDK, else ``None``."""
    found = _NO_SDK_LINE.search(str(exc))
    return None if found is None else ConfigurationError(found.group(1))


# --------------------------------------------------------------------------
# The job (driver)
# --------------------------------------------------------------------------


def per_task_concurrency(concurrency: int, task_slots: int, partitions: int) -> int:
    """Requests in flight per task so that the whole job has at most ``concurrency``.

    At most ``min(task_slots, partitions)`` tasks run at once; each gets an
    equal share, and at least one.

    >>> per_task_concurrency(32, task_slots=8, partitions=200)
    4
    """
    running = max(1, min(task_slots, partitions))
    return max(1, concurrency // running)


def _check_classic(df: Any) -> None:
    """Refuse, with a clear message, what this integration cannot drive."""
    module = type(df).__module__
    if module.startswith("pyspark.sql.connect"):
        raise TypeError(
            "upsert_dataframe/delete_dataframe need classic Spark (they run each partition "
            "with the RDD API), and this DataFrame is from Spark Connect: run the job on a "
            "cluster in classic mode (e.g. Databricks single-user access mode)"
        )
    if not hasattr(df, "sparkSession") or not hasattr(df, "rdd"):
        raise TypeError(f"expected a pyspark.sql.DataFrame, got {type(df).__name__}")


def _resolve_secret(api_key: str | None) -> _Secret | None:
    """The key to broadcast, or ``None`` to let each executor read its environment."""
    if api_key is None and not os.environ.get(API_KEY_ENV, "").strip():
        return None
    return _Secret(_check_api_key(api_key))


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _run_job(
    df: DataFrame,
    selects: list[Column],
    job: _Job,
    *,
    api_key: str | None,
    budget: int,
    task_slots: int | None,
    raise_on_failure: bool,
) -> SparkBulkResult:
    spark: SparkSession = df.sparkSession
    sc = spark.sparkContext
    rdd = df.select(*selects).rdd
    partitions = rdd.getNumPartitions()
    slots = task_slots if task_slots is not None else sc.defaultParallelism
    _check_positive("task_slots", slots)
    running = max(1, min(slots, partitions))
    per_task = per_task_concurrency(budget, slots, partitions)
    if budget < running:
        logger.warning(
            "concurrency=%d is below the %d tasks that run at once: each task still sends "
            "one request at a time, so up to %d are in flight; coalesce the DataFrame to "
            "%d partitions to keep to the budget",
            budget, running, running, budget,
        )  # fmt: skip
    job = attrs.evolve(job, concurrency=per_task)

    secret = _resolve_secret(api_key)
    broadcast = sc.broadcast(secret) if secret is not None else None
    output = rdd.mapPartitionsWithIndex(_partition_function(job, broadcast))
    # Names the job in Spark's UI and logs (no key in it).
    previous = sc.getLocalProperty(_JOB_DESCRIPTION)
    sc.setJobDescription(
        f"activatepro-async {job.operation}_dataframe: {partitions} partitions to "
        f"{job.client.base_url}, {per_task} requests in flight per task"
    )
    try:
        # One run, whose output Spark keeps cut from its lineage (a local
        # checkpoint): the totals and the rejects are both read from it, so
        # reading the rejects later sends nothing again and needs no key.
        kept = spark.createDataFrame(output, _OUTPUT_SCHEMA).localCheckpoint(eager=True)
    except Exception as exc:
        # Spark's error holds the workers' traceback, a few pages of JVM and
        # Python frames; when it is the missing SDK, one line says what to do.
        error = _workers_without_sdk(exc)
        if error is None:
            raise
        raise error from None
    finally:
        # None removes the property again (a Java null).
        sc.setLocalProperty(_JOB_DESCRIPTION, previous)  # type: ignore[arg-type]
        if broadcast is not None:
            broadcast.destroy()
    summaries = kept.where(F.col("record") == _SUMMARY).select(*PARTITIONS_SCHEMA.names)
    results = tuple(
        sorted((_partition_result(row) for row in summaries.collect()), key=_by_partition)
    )
    rejects = kept.where(F.col("record") == _REJECT).select(*REJECTS_SCHEMA.names)
    result = SparkBulkResult(
        operation=job.operation,
        partitions=results,
        rejects=rejects,
        concurrency_per_task=per_task,
        running_tasks=running,
    )
    if result.aborted:
        raise SparkBulkError(_failure_message(result), result=result)
    if raise_on_failure:
        result.raise_for_failures()
    return result


_JOB_DESCRIPTION = "spark.job.description"


def _by_partition(p: PartitionResult) -> int:
    return p.partition


def upsert_dataframe(
    df: DataFrame,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    concurrency: int = 16,
    task_slots: int | None = None,
    mapping: Mapping[str, str | None] | None = None,
    chunk_size: int = MAX_BATCH_ITEMS,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    wait: bool = False,
    wait_timeout: float = 300.0,
    timeout: float = 30.0,
    max_retries: int | None = None,
    retry: RetryPolicy | None = None,
    raise_on_failure: bool = True,
) -> SparkBulkResult:
    """Create or update one user per row of ``df``, from Spark's executors.

    Columns map to the API's keys as in ``activatepro import``: ``id``,
    ``email``, ``businessUnit``, and any other column is a custom attribute
    under its own name; ``mapping={"column": "key"}`` renames, and
    ``mapping={"column": None}`` leaves a column out. Nulls are left
    out (an upsert never clears), dates become ``"1982-08-30"``, timestamps
    ``"2015-10-02T08:23:53Z"`` (UTC), integer ids strings, decimals numbers,
    arrays, maps and structs JSON values.

    >>> result = upsert_dataframe(spark.table("crm.profiles"), concurrency=32,
    ...                           mapping={"user_id": "id", "bu": "businessUnit"})
    >>> result.accepted, result.rejects.count()

    Args:
        api_key: sent to the executors as a broadcast secret; defaults to the
            driver's ``ACTIVATEPRO_API_KEY``, else each executor's.
        base_url: defaults to the driver's ``ACTIVATEPRO_BASE_URL``, then the API.
        concurrency: requests in flight for the whole job, shared by the tasks
            that run at once (see :func:`per_task_concurrency`).
        task_slots: how many tasks run at once; defaults to
            ``sparkContext.defaultParallelism``.
        chunk_size, max_chunk_bytes, wait, wait_timeout: as in
            :meth:`AsyncClient.upsert_many`, per task.
        timeout, max_retries, retry: as in :class:`AsyncClient`.
        raise_on_failure: raise :class:`SparkBulkError` (holding the result)
            when a row was rejected or failed.

    Returns a :class:`SparkBulkResult`; a task that stops early (a 401, no key
    on an executor) raises :class:`SparkBulkError` whatever ``raise_on_failure``.
    Workers whose Python cannot import the SDK raise :class:`ConfigurationError`
    naming that Python: set ``spark.pyspark.python`` (or ``PYSPARK_PYTHON``).
    """
    _check_classic(df)
    selects, plan = _plan_upsert(df, mapping)
    job = _new_job("upsert", plan, base_url, chunk_size, max_chunk_bytes, wait, wait_timeout,
                   timeout, max_retries, retry)  # fmt: skip
    _check_positive("concurrency", concurrency)
    return _run_job(
        df, selects, job, api_key=api_key, budget=concurrency, task_slots=task_slots,
        raise_on_failure=raise_on_failure,
    )  # fmt: skip


def delete_dataframe(
    df: DataFrame,
    *,
    id_column: str = "id",
    api_key: str | None = None,
    base_url: str | None = None,
    concurrency: int = 16,
    task_slots: int | None = None,
    chunk_size: int = MAX_BATCH_ITEMS,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    wait: bool = False,
    wait_timeout: float = 300.0,
    timeout: float = 30.0,
    max_retries: int | None = None,
    retry: RetryPolicy | None = None,
    raise_on_failure: bool = True,
) -> SparkBulkResult:
    """Delete the user of each row of ``df``, named by ``id_column`` (as :func:`upsert_dataframe`).

    Unknown ids succeed; a row with a null id is rejected locally.

    >>> result = delete_dataframe(spark.table("crm.deleted_profiles"), id_column="user_id")
    """
    _check_classic(df)
    selects = _plan_delete(df, id_column)
    job = _new_job("delete", (), base_url, chunk_size, max_chunk_bytes, wait, wait_timeout,
                   timeout, max_retries, retry)  # fmt: skip
    _check_positive("concurrency", concurrency)
    return _run_job(
        df, selects, job, api_key=api_key, budget=concurrency, task_slots=task_slots,
        raise_on_failure=raise_on_failure,
    )  # fmt: skip


def _new_job(
    operation: Literal["upsert", "delete"],
    plan: tuple[tuple[str, int], ...],
    base_url: str | None,
    chunk_size: int,
    max_chunk_bytes: int,
    wait: bool,
    wait_timeout: float,
    timeout: float,
    max_retries: int | None,
    retry: RetryPolicy | None,
) -> _Job:
    # Checked on the driver, so a wrong setting fails before any task starts.
    _check_positive("chunk_size", chunk_size)
    if chunk_size > MAX_BATCH_ITEMS:
        raise ValueError(f"chunk_size must be at most {MAX_BATCH_ITEMS}, got {chunk_size}")
    settings = _ClientSettings(
        base_url=_check_base_url(base_url),
        timeout=float(timeout),
        max_retries=max_retries,
        retry=retry,
    )
    return _Job(
        operation=operation,
        plan=plan,
        client=settings,
        chunk_size=chunk_size,
        concurrency=1,
        max_chunk_bytes=max_chunk_bytes,
        wait=wait,
        wait_timeout=wait_timeout,
    )
