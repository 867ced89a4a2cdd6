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
   Python worker's client (a :class:`~activatepro_async.Client`: one
   ``AsyncClient`` on an event-loop thread of its own per worker process, made
   by the first task and reused by the next ones) and
   streams its partition through the bulk engine (:meth:`AsyncClient.upsert_many`):
   by default as Arrow record batches (``DataFrame.mapInArrow``), encoded
   column by column by the SDK's columnar path; with ``arrow=False`` as
   Spark's Python rows. Either way the partition is read in batches on a
   helper thread, so only the chunks in flight are held, whatever its size.
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

The package, by job: :mod:`._jobs` (the entry points, on the driver),
:mod:`._columns` (Spark's types to the row rules of :mod:`activatepro_async._rows`),
:mod:`._executor` (the function Spark runs on each partition, and its client),
:mod:`._results` (the schemas and :class:`SparkBulkResult`).
"""

from __future__ import annotations

from ._columns import wire_names
from ._jobs import delete_dataframe, per_task_concurrency, upsert_dataframe

# Every module imports pyspark through ._pyspark, which says what to install without it.
from ._pyspark import INSTALL_HINT
from ._results import (
    PARTITIONS_SCHEMA,
    REJECTS_SCHEMA,
    PartitionResult,
    SparkBulkError,
    SparkBulkResult,
)

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
