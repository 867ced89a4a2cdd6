"""The executor side of a job: the function Spark runs on each partition, and its client.

Each partition runs as one Spark task. The task takes its Python worker's
client (a :class:`~activatepro_async.Client`, the SDK's one portal-hosted
``AsyncClient``: made by the worker's first task, reused by the next ones, and
fork-safe) and streams its rows through the bulk engine: the rows are read
and converted in batches on a worker thread (:class:`~.._threads.ThreadedReader`),
so only the chunks in flight are held, whatever the partition's size. The task
returns its totals and its rejected rows as records (:func:`._results.records`).

A partition reaches the task in one of two forms: as Arrow record batches
(``mapInArrow``, the default: :func:`arrow_function`, :func:`run_arrow_task`)
or as Spark's Python rows (``mapPartitionsWithIndex``: :func:`partition_function`,
:func:`run_task`). Both give the same records for the same partition.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from ..._retry import RetryPolicy
from ..._threads import ThreadedReader
from ...bulk import BulkResult, Operation
from ...client import _Secret
from ...errors import ActivateProError, BulkError, ConfigurationError
from ...sync import Client
from ._columns import Plan, batch_converter, delete_converter, row_converter
from ._pyspark import INSTALL_HINT, TaskContext, cloudpickle
from ._results import records, records_batch

if TYPE_CHECKING:
    # pyarrow ships no type hints (pyarrow-stubs does, unpinned here).
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    from pyspark import Broadcast
    from pyspark.sql import Row

__all__ = [
    "ClientSettings",
    "Job",
    "arrow_function",
    "partition_function",
    "run_arrow_task",
    "run_task",
    "workers_without_sdk",
]


@attrs.frozen
class ClientSettings:
    """Everything but the key that makes a client; hashable, picklable, no secret."""

    base_url: str
    timeout: float
    max_retries: int | None
    retry: RetryPolicy | None


@attrs.frozen
class Job:
    """What every task needs; travels in the pickled closure, so it holds no secret."""

    operation: Operation
    plan: Plan
    client: ClientSettings
    chunk_size: int
    concurrency: int
    max_chunk_bytes: int
    wait: bool
    wait_timeout: float


# -- one client per Python worker process -------------------------------------------

_CLIENTS: dict[tuple[ClientSettings, str], tuple[int, Client]] = {}
_CLIENTS_LOCK = threading.Lock()
#: Clients kept per worker process (one per distinct settings and key); the oldest goes.
_MAX_WORKER_CLIENTS = 4


def _worker_client(settings: ClientSettings, api_key: str | None) -> tuple[Client, bool]:
    """This process's client for these settings and key, and whether it existed already.

    Spark's Python worker runs one task at a time and, with worker reuse (the
    default), many tasks one after another: they all share the client and its
    connection pool. Each ``Client`` closes itself when the worker exits.
    """
    # The key is in the cache's key only as a digest: this dict may be printed.
    digest = hashlib.sha256((api_key or "").encode()).hexdigest()
    cache_key = (settings, digest)
    with _CLIENTS_LOCK:
        found = _CLIENTS.get(cache_key)
        if found is not None and found[0] == os.getpid():
            return found[1], True
        # (A client made before a fork is replaced: its tasks were the parent's.)
        client = Client(
            api_key,
            base_url=settings.base_url,
            timeout=settings.timeout,
            max_retries=settings.max_retries,
            retry=settings.retry,
        )
        _CLIENTS[cache_key] = (os.getpid(), client)
        while len(_CLIENTS) > _MAX_WORKER_CLIENTS:
            _CLIENTS.pop(next(iter(_CLIENTS)))[1].close()
        return client, False


# -- the task of one partition ------------------------------------------------------


def _send(client: Client, job: Job, source: ThreadedReader[Any] | _Batches) -> BulkResult:
    """Stream ``source`` (users, ids to delete, or record batches) through the bulk engine."""
    run = client.upsert_many if job.operation == "upsert" else client.delete_many
    try:
        return run(
            source,
            chunk_size=job.chunk_size,
            concurrency=job.concurrency,
            max_chunk_bytes=job.max_chunk_bytes,
            wait=job.wait,
            wait_timeout=job.wait_timeout,
            raise_on_failure=False,
        )
    except BulkError as exc:
        if source.error is not None:
            # Reading the partition failed (Spark's own error): fail the task,
            # so Spark runs it again, on this partition only.
            raise source.error from None
        return exc.result  # stopped early (401/403): its result says so


def _send_rows(client: Client, job: Job, rows: Iterable[Sequence[Any]]) -> BulkResult:
    """The Row path: Spark's Python rows (or tuples of the same values), one by one.

    They are read ``chunk_size`` at a time on a worker thread: reading a
    partition blocks on the JVM, which would hold up every request in flight.
    """
    # A null id goes too: the bulk engine rejects it locally, with its position.
    convert = row_converter(job.plan) if job.operation == "upsert" else delete_converter
    return _send(client, job, ThreadedReader(map(convert, rows), batch=job.chunk_size))


def _send_batches(client: Client, job: Job, batches: Iterable[pa.RecordBatch]) -> BulkResult:
    """The Arrow path: the record batches ``mapInArrow`` hands a task.

    They go to the SDK's columnar path (``upsert_many`` of record batches),
    which reads them on a worker thread and encodes them column by column:
    no Python object per row. A DataFrame with nested columns (JSON text from
    the JVM) is read per cell instead, into the values the Row path reads.
    """
    convert = batch_converter(job.plan)
    if convert is None:
        return _send_rows(client, job, _values_of(batches))
    return _send(client, job, _Batches(map(convert, batches)))


class _Batches:
    """A partition's record batches, keeping what reading them raised (as ThreadedReader does)."""

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self._batches = batches
        self.error: BaseException | None = None

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._batches
        except BaseException as exc:
            self.error = exc
            raise


def _values_of(batches: Iterable[pa.RecordBatch]) -> Iterator[tuple[Any, ...]]:
    for batch in batches:
        # (Every column of a batch has its length.)
        yield from zip(*(column.to_pylist() for column in batch.columns), strict=True)


def _task(
    job: Job,
    secret: Broadcast[_Secret] | None,
    partition: int,
    send: Callable[[Client], BulkResult],
) -> Iterator[tuple[Any, ...]]:
    started = time.perf_counter()
    api_key = None if secret is None else secret.value.get()
    try:
        client, reused = _worker_client(job.client, api_key)
    except ActivateProError as exc:  # e.g. no ACTIVATEPRO_API_KEY on this executor
        nothing = BulkResult(job.operation, submitted=0, accepted=0, aborted_by=exc)
        yield from records(partition, nothing, time.perf_counter() - started, False)
        return
    result = send(client)
    yield from records(partition, result, time.perf_counter() - started, reused)


def run_task(
    job: Job, secret: Broadcast[_Secret] | None, partition: int, rows: Iterable[Row]
) -> Iterator[tuple[Any, ...]]:
    """The task of one partition on the Row path: its records (see :func:`._results.records`)."""
    return _task(job, secret, partition, lambda client: _send_rows(client, job, rows))


def run_arrow_task(
    job: Job, secret: Broadcast[_Secret] | None, batches: Iterable[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The task of one partition on the Arrow path (``mapInArrow``): its records, in one batch."""
    context = TaskContext.get()
    partition = 0 if context is None else context.partitionId()
    found = _task(job, secret, partition, lambda client: _send_batches(client, job, batches))
    yield records_batch(list(found))


# -- what Spark ships -----------------------------------------------------------------

# What a worker that cannot import the SDK says; the driver finds it in Spark's error.
_NO_SDK_ON_WORKERS = "Spark's Python workers cannot import activatepro_async"
_NO_SDK_LINE = re.compile(rf"ModuleNotFoundError: ({re.escape(_NO_SDK_ON_WORKERS)}[^\r\n]*)")
# PySpark's worker imports these for mapInArrow before it runs the SDK's function.
_NO_ARROW_LINE = re.compile(r"ModuleNotFoundError: No module named '(pyarrow|pandas)'")


def partition_function(
    job: Job, secret: Broadcast[_Secret] | None
) -> Callable[[int, Iterable[Row]], Iterator[tuple[Any, ...]]]:
    """The function Spark runs on each partition on the Row path (``mapPartitionsWithIndex``)."""
    return _shipped(job, secret, "run_task")


def arrow_function(
    job: Job, secret: Broadcast[_Secret] | None
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function Spark runs on each partition on the Arrow path (``mapInArrow``)."""
    return _shipped(job, secret, "run_arrow_task")


def _shipped(job: Job, secret: Broadcast[_Secret] | None, entry: str) -> Callable[..., Any]:
    """A function that runs :mod:`._executor`'s ``entry`` with the job, on the executor.

    Spark ships it by value, and it refers to nothing of this package: the job
    travels as pickled bytes, loaded once the SDK is imported. So a worker
    whose Python lacks the SDK runs it and says so in a line that
    :func:`workers_without_sdk` turns into a ``ConfigurationError`` on the
    driver, instead of dying in Spark's unpickling with a bare
    ``ModuleNotFoundError``. The closure holds ``job`` (no secret) and the
    broadcast *handle* of the key, which pickles as the broadcast's id only.
    """
    # cloudpickle, as Spark's own: a RetryPolicy may hold a lambda.
    state: bytes = cloudpickle.dumps(job)  # type: ignore[no-untyped-call]
    # Locals, not module globals, so that nothing in the closure needs this module.
    missing = _NO_SDK_ON_WORKERS
    hint = INSTALL_HINT

    def run(*args: Any) -> Iterator[Any]:
        import pickle
        import sys

        try:
            from activatepro_async.integrations.spark import _executor as sdk
        except ImportError as exc:  # the SDK, or one of its dependencies
            raise ModuleNotFoundError(
                f"{missing}: {sys.executable} says {exc}. Point the workers at a Python "
                "that has the SDK (spark.pyspark.python, or PYSPARK_PYTHON before the "
                f"session is built), or install it into that one: {hint}",
                name=exc.name,
            ) from None
        task: Callable[..., Iterator[Any]] = getattr(sdk, entry)
        return task(pickle.loads(state), secret, *args)  # noqa: S301

    return run


def workers_without_sdk(exc: Exception) -> ConfigurationError | None:
    """The error to raise for a job whose workers could not import the SDK, else ``None``."""
    text = str(exc)
    found = _NO_SDK_LINE.search(text)
    if found is not None:
        return ConfigurationError(found.group(1))
    arrow = _NO_ARROW_LINE.search(text)
    if arrow is not None:
        return ConfigurationError(
            f"Spark's Python workers cannot import {arrow.group(1)}, which PySpark needs to "
            "hand them Arrow batches (mapInArrow): point the workers at a Python that has "
            "the SDK (spark.pyspark.python, or PYSPARK_PYTHON before the session is built), "
            f"or install it into that one: {INSTALL_HINT}; arrow=False sends Python rows instead"
        )
    return None
