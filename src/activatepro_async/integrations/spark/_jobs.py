"""The driver side of a job: ``upsert_dataframe`` and ``delete_dataframe``.

A job checks its settings and plans its columns (:mod:`._columns`) before any
task starts, shares the concurrency budget among the tasks that run at once,
broadcasts the key, runs one Spark job of the partition function
(:mod:`._executor`) and reads its records back into a :class:`SparkBulkResult`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from ..._retry import RetryPolicy
from ..._wire import DEFAULT_MAX_CHUNK_BYTES, MAX_BATCH_ITEMS
from ...client import API_KEY_ENV, _check_api_key, _check_base_url, _Secret
from ...errors import ConfigurationError
from ._columns import Plan, plan_delete, plan_upsert
from ._executor import ClientSettings, Job, arrow_function, partition_function, workers_without_sdk
from ._pyspark import INSTALL_HINT, F
from ._results import (
    OUTPUT_SCHEMA,
    PARTITIONS_SCHEMA,
    REJECT,
    REJECTS_SCHEMA,
    SUMMARY,
    PartitionResult,
    SparkBulkError,
    SparkBulkResult,
    failure_message,
    partition_result,
)

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

__all__ = ["delete_dataframe", "per_task_concurrency", "upsert_dataframe"]

logger = logging.getLogger("activatepro_async")


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
    # Asked of the type: ``df.rdd`` is a property that plans and compiles the
    # whole query (a second time, as the job plans its own select).
    if not hasattr(df, "sparkSession") or not hasattr(type(df), "rdd"):
        raise TypeError(f"expected a pyspark.sql.DataFrame, got {type(df).__name__}")


def _resolve_secret(api_key: str | None) -> _Secret | None:
    """The key to broadcast, or ``None`` to let each executor read its environment."""
    if api_key is None and not os.environ.get(API_KEY_ENV, "").strip():
        return None
    return _Secret(_check_api_key(api_key))


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _use_arrow(df: DataFrame, arrow: bool | None) -> bool:
    """Whether the tasks read Arrow batches (``mapInArrow``) or Spark's Python rows.

    ``None`` takes Arrow when this PySpark and this Python can, else rows (with a
    warning: the job is slower, not different); ``True`` insists on Arrow.
    """
    if arrow is not None and not isinstance(arrow, bool):
        raise TypeError(f"arrow must be True, False or None, got {arrow!r}")
    if arrow is False:
        return False
    lacking = [name for name in ("pyarrow", "pandas") if importlib.util.find_spec(name) is None]
    if not hasattr(df, "mapInArrow"):
        why = "this PySpark has no DataFrame.mapInArrow (it came in 3.3)"
    elif lacking:
        # PySpark's mapInArrow needs both on the driver and on the workers.
        why = f"PySpark's mapInArrow needs {' and '.join(lacking)}, which this Python lacks"
    else:
        return True
    if arrow:
        raise ConfigurationError(f"arrow=True, but {why}: {INSTALL_HINT}, or pass arrow=False")
    logger.warning(
        "sending Spark's Python rows, which is slower than Arrow batches, because %s: %s",
        why, INSTALL_HINT,
    )  # fmt: skip
    return False


def _run_job(
    df: DataFrame,
    selects: list[Column],
    job: Job,
    *,
    api_key: str | None,
    budget: int,
    task_slots: int | None,
    raise_on_failure: bool,
    arrow: bool | None,
) -> SparkBulkResult:
    spark: SparkSession = df.sparkSession
    sc = spark.sparkContext
    use_arrow = _use_arrow(df, arrow)
    selected = df.select(*selects)
    # (Planning only: .rdd computes nothing until a job runs.)
    partitions = selected.rdd.getNumPartitions()
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
    output: DataFrame
    if use_arrow:
        output = selected.mapInArrow(arrow_function(job, broadcast), OUTPUT_SCHEMA)
    else:
        rows = selected.rdd.mapPartitionsWithIndex(partition_function(job, broadcast))
        output = spark.createDataFrame(rows, OUTPUT_SCHEMA)
    # Names the job in Spark's UI and logs (no key in it).
    previous = sc.getLocalProperty(_JOB_DESCRIPTION)
    sc.setJobDescription(
        f"activatepro-async {job.operation}_dataframe: {partitions} partitions to "
        f"{job.client.base_url}, {per_task} requests in flight per task, "
        f"{'Arrow batches' if use_arrow else 'Python rows'}"
    )
    try:
        # One run, whose output Spark keeps cut from its lineage (a local
        # checkpoint): the totals and the rejects are both read from it, so
        # reading the rejects later sends nothing again and needs no key.
        # Not eager: the one Spark job is the collect of the totals, which
        # stores every partition's output as it goes and cuts the lineage when
        # it ends (an eager checkpoint is a count job first, then this one).
        kept = output.localCheckpoint(eager=False)
        summaries = kept.where(F.col("record") == SUMMARY).select(*PARTITIONS_SCHEMA.names)
        collected = summaries.collect()
    except Exception as exc:
        # Spark's error holds the workers' traceback, a few pages of JVM and
        # Python frames; when it is the missing SDK, one line says what to do.
        error = workers_without_sdk(exc)
        if error is None:
            raise
        raise error from None
    finally:
        # None removes the property again (a Java null).
        sc.setLocalProperty(_JOB_DESCRIPTION, previous)  # type: ignore[arg-type]
        if broadcast is not None:
            broadcast.destroy()
    results = tuple(sorted((partition_result(row) for row in collected), key=_by_partition))
    rejects = kept.where(F.col("record") == REJECT).select(*REJECTS_SCHEMA.names)
    result = SparkBulkResult(
        operation=job.operation,
        partitions=results,
        rejects=rejects,
        concurrency_per_task=per_task,
        running_tasks=running,
    )
    if result.aborted:
        raise SparkBulkError(failure_message(result), result=result)
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
    arrow: bool | None = None,
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
        chunk_size: as in :meth:`AsyncClient.upsert_many`, per task.
        max_chunk_bytes: as in :meth:`AsyncClient.upsert_many`, per task.
        wait: as in :meth:`AsyncClient.upsert_many`, per task.
        wait_timeout: as in :meth:`AsyncClient.upsert_many`, per task.
        timeout: as in :class:`AsyncClient`.
        max_retries: as in :class:`AsyncClient`.
        retry: as in :class:`AsyncClient`.
        raise_on_failure: raise :class:`SparkBulkError` (holding the result)
            when a row was rejected or failed.
        arrow: how the executors read the partitions: ``None`` (the default)
            as Arrow record batches (``DataFrame.mapInArrow``) when PySpark
            and pyarrow allow it, else as Python rows; ``True`` insists on
            Arrow (:class:`ConfigurationError` when it cannot); ``False``
            reads Spark's Python rows, the slower path, kept as a fallback
            and for comparison. The result is the same either way.

    Returns a :class:`SparkBulkResult`; a task that stops early (a 401, no key
    on an executor) raises :class:`SparkBulkError` whatever ``raise_on_failure``.
    Workers whose Python cannot import the SDK raise :class:`ConfigurationError`
    naming that Python: set ``spark.pyspark.python`` (or ``PYSPARK_PYTHON``).
    """
    _check_classic(df)
    selects, plan = plan_upsert(df, mapping)
    job = _new_job("upsert", plan, base_url, chunk_size, max_chunk_bytes, wait, wait_timeout,
                   timeout, max_retries, retry)  # fmt: skip
    _check_positive("concurrency", concurrency)
    return _run_job(
        df, selects, job, api_key=api_key, budget=concurrency, task_slots=task_slots,
        raise_on_failure=raise_on_failure, arrow=arrow,
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
    arrow: bool | None = None,
) -> SparkBulkResult:
    """Delete the user of each row of ``df``, named by ``id_column`` (as :func:`upsert_dataframe`).

    Unknown ids succeed; a row with a null id is rejected locally. ``arrow``
    is as in :func:`upsert_dataframe`.

    >>> result = delete_dataframe(spark.table("crm.deleted_profiles"), id_column="user_id")
    """
    _check_classic(df)
    selects = plan_delete(df, id_column)
    job = _new_job("delete", (), base_url, chunk_size, max_chunk_bytes, wait, wait_timeout,
                   timeout, max_retries, retry)  # fmt: skip
    _check_positive("concurrency", concurrency)
    return _run_job(
        df, selects, job, api_key=api_key, budget=concurrency, task_slots=task_slots,
        raise_on_failure=raise_on_failure, arrow=arrow,
    )  # fmt: skip


def _new_job(
    operation: Literal["upsert", "delete"],
    plan: Plan,
    base_url: str | None,
    chunk_size: int,
    max_chunk_bytes: int,
    wait: bool,
    wait_timeout: float,
    timeout: float,
    max_retries: int | None,
    retry: RetryPolicy | None,
) -> Job:
    # Checked on the driver, so a wrong setting fails before any task starts.
    _check_positive("chunk_size", chunk_size)
    if chunk_size > MAX_BATCH_ITEMS:
        raise ValueError(f"chunk_size must be at most {MAX_BATCH_ITEMS}, got {chunk_size}")
    settings = ClientSettings(
        base_url=_check_base_url(base_url),
        timeout=float(timeout),
        max_retries=max_retries,
        retry=retry,
    )
    return Job(
        operation=operation,
        plan=plan,
        client=settings,
        chunk_size=chunk_size,
        concurrency=1,
        max_chunk_bytes=max_chunk_bytes,
        wait=wait,
        wait_timeout=wait_timeout,
    )
