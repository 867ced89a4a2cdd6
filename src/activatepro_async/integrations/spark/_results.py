"""What a job gives back: the schemas, :class:`SparkBulkResult` and its parts, and the
records in which each task hands its outcome to the driver."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from ...bulk import BulkResult, Operation
from ...errors import ActivateProError, APIStatusError
from ._pyspark import T, TaskContext

if TYPE_CHECKING:
    # pyarrow ships no type hints (pyarrow-stubs does, unpinned here).
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    from pyspark.sql import DataFrame, Row

__all__ = [
    "OUTPUT_SCHEMA",
    "PARTITIONS_SCHEMA",
    "REJECT",
    "REJECTS_SCHEMA",
    "SUMMARY",
    "PartitionResult",
    "SparkBulkError",
    "SparkBulkResult",
    "failure_message",
    "partition_result",
    "records",
    "records_batch",
]

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
OUTPUT_SCHEMA = T.StructType(
    [
        T.StructField("record", T.StringType(), False),
        T.StructField("partition", T.IntegerType(), False),
        *(T.StructField(f.name, f.dataType, True) for f in PARTITIONS_SCHEMA.fields[1:]),
        *(T.StructField(f.name, f.dataType, True) for f in REJECTS_SCHEMA.fields[1:]),
    ]
)
_NO_SUMMARY = (None,) * (len(PARTITIONS_SCHEMA.fields) - 1)
_NO_REJECT = (None,) * (len(REJECTS_SCHEMA.fields) - 1)


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
            raise SparkBulkError(failure_message(self), result=self)

    def __repr__(self) -> str:
        return f"<SparkBulkResult {self.summary()}>"


def failure_message(result: SparkBulkResult) -> str:
    parts = [result.summary()]
    for p in result.aborted[:1]:
        parts.append(f"partition {p.partition} stopped early: {p.aborted}")
    parts.append("see .result.rejects for every row not stored")
    return "; ".join(parts)


# The records a task returns: ("p", summary fields...) once, ("r", reject fields...) per row.
SUMMARY = "p"
REJECT = "r"


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
    return (REJECT, partition, *_NO_SUMMARY, *fields)


def _summary_record(partition: int, *fields: Any) -> tuple[Any, ...]:
    return (SUMMARY, partition, *fields, *_NO_REJECT)


def records(
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


def records_batch(found: list[tuple[Any, ...]]) -> pa.RecordBatch:
    """Records as one Arrow batch of :data:`OUTPUT_SCHEMA` (what ``mapInArrow`` returns)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(OUTPUT_SCHEMA)
    columns = list(zip(*found, strict=True)) if found else [()] * len(schema)
    arrays = [pa.array(values, type=f.type) for values, f in zip(columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _attempt() -> int:
    context = TaskContext.get()
    return 0 if context is None else context.attemptNumber()


def partition_result(row: Row) -> PartitionResult:
    """The :class:`PartitionResult` of a summary record, read back on the driver."""
    values = row.asDict()
    values["tracking_ids"] = tuple(values["tracking_ids"])
    return PartitionResult(**values)
