"""upsert_dataframe and delete_dataframe on small DataFrames, against a served emulator."""

from __future__ import annotations

import datetime as dt
import os
import pickle
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from activatepro_async import Client, NotFoundError

from ._support import API_KEY, ServedEmulator, require_spark

require_spark()

from pyspark import TaskContext  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

from activatepro_async.integrations.spark import (  # noqa: E402
    SparkBulkError,
    delete_dataframe,
    upsert_dataframe,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

UTC = dt.timezone.utc


def users(prefix: str, count: int) -> list[tuple[str, str]]:
    return [(f"{prefix}-{n}", f"{prefix}-{n}@example.com") for n in range(count)]


def frame(spark: SparkSession, rows: list[tuple[Any, ...]], partitions: int = 2) -> DataFrame:
    return spark.createDataFrame(rows, "id string, email string").repartition(partitions)


def stored(server: ServedEmulator, user_id: str) -> dict[str, Any] | None:
    with Client(server.api_key, base_url=server.base_url) as client:
        try:
            user = client.get_user(user_id)
        except NotFoundError:
            return None
    return {"id": user.id, "email": user.email, "businessUnit": user.business_unit,
            **user.attributes}  # fmt: skip


@pytest.fixture
def session_time_zone(spark: SparkSession) -> Iterator[None]:
    """A session time zone far from UTC, so a wrong conversion shows."""
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        yield
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)


def test_columns_map_as_the_import_command_maps_them_with_spark_types_as_wire_strings(
    spark: SparkSession, emulator: ServedEmulator, session_time_zone: None
) -> None:
    schema = T.StructType(
        [
            T.StructField("user_id", T.LongType()),
            T.StructField("mail", T.StringType()),
            T.StructField("bu", T.StringType()),
            T.StructField("firstName", T.StringType()),
            T.StructField("birthday", T.DateType()),
            T.StructField("createdAt", T.TimestampType()),
            T.StructField("score", T.DecimalType(10, 2)),
            T.StructField("visits", T.DecimalType(10, 0)),
            T.StructField("vip", T.BooleanType()),
            T.StructField("tags", T.ArrayType(T.StringType())),
            T.StructField(
                "address",
                T.StructType(
                    [
                        T.StructField("city", T.StringType()),
                        T.StructField("since", T.TimestampType()),
                        T.StructField("zip", T.StringType()),
                    ]
                ),
            ),
            T.StructField("internal", T.StringType()),
        ]
    )
    created = dt.datetime(2015, 10, 2, 8, 23, 53, 500000, tzinfo=UTC)
    since = dt.datetime(2020, 3, 1, 23, 30, tzinfo=UTC)
    row = (
        7001, "ada@example.com", "DE", "Ada", dt.date(1982, 8, 30), created,
        Decimal("12.50"), Decimal("42"), True, ["a", "b"], ("London", since, None), "x",
    )  # fmt: skip
    df = spark.createDataFrame([row], schema)

    result = upsert_dataframe(
        df,
        api_key=API_KEY,
        base_url=emulator.base_url,
        mapping={"user_id": "id", "mail": "email", "bu": "businessUnit", "internal": None},
        wait=True,
    )

    assert (result.accepted, result.rejected) == (1, 0)
    assert stored(emulator, "7001") == {
        "id": "7001",
        "email": "ada@example.com",
        "businessUnit": "DE",
        "firstName": "Ada",
        "birthday": "1982-08-30",
        "createdAt": "2015-10-02T08:23:53.500000Z",
        "score": 12.5,
        "visits": 42,
        "vip": True,
        "tags": ["a", "b"],
        # Nested: null fields left out, timestamps in UTC too (always with microseconds).
        "address": {"city": "London", "since": "2020-03-01T23:30:00.000000Z"},
    }


def test_null_cells_are_left_out_so_an_upsert_never_clears_an_attribute(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    schema = "id string, email string, firstName string, lastName string"
    first = spark.createDataFrame([("null-1", "null-1@example.com", "Ada", "Byron")], schema)
    upsert_dataframe(first, api_key=API_KEY, base_url=emulator.base_url, wait=True)
    second = spark.createDataFrame([("null-1", "null-1@example.com", None, "Lovelace")], schema)
    upsert_dataframe(second, api_key=API_KEY, base_url=emulator.base_url, wait=True)

    user = stored(emulator, "null-1")
    assert user is not None
    assert (user["firstName"], user["lastName"]) == ("Ada", "Lovelace")


def test_delete_dataframe_deletes_the_ids_of_a_column_and_rejects_null_ids(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    rows = users("del", 30)
    upsert_dataframe(frame(spark, rows), api_key=API_KEY, base_url=emulator.base_url, wait=True)
    to_delete = spark.createDataFrame(
        [(uid,) for uid, _ in rows[:20]] + [(None,)], "user_id string"
    ).repartition(3)

    with pytest.raises(SparkBulkError) as raised:
        delete_dataframe(
            to_delete, id_column="user_id", api_key=API_KEY, base_url=emulator.base_url, wait=True
        )

    result = raised.value.result
    assert (result.operation, result.submitted, result.accepted, result.rejected) == (
        "delete",
        21,
        20,
        1,
    )
    [reject] = result.rejects.collect()
    assert (reject.id, reject.kind, reject.local, reject.error_codes) == (
        None,
        "rejected",
        True,
        [2],
    )
    assert stored(emulator, "del-0") is None
    assert stored(emulator, "del-19") is None
    assert stored(emulator, "del-20") is not None


def test_an_empty_dataframe_sends_nothing_and_is_ok(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    result = upsert_dataframe(frame(spark, [], 3), api_key=API_KEY, base_url=emulator.base_url)
    assert (result.submitted, result.ok, result.tracking_ids) == (0, True, [])
    assert result.rejects.count() == 0


def test_rows_the_api_refuses_come_back_in_the_rejects_with_their_codes(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    rows = [*users("rej", 10), ("rej-bad", "no-at-sign"), (None, "noid@example.com")]
    result = upsert_dataframe(
        frame(spark, rows, 3), api_key=API_KEY, base_url=emulator.base_url, raise_on_failure=False
    )

    assert (result.submitted, result.accepted, result.rejected, result.failed) == (12, 10, 2, 0)
    assert not result.ok
    got = sorted((r.id, r.kind, r.local, r.error_codes) for r in result.rejects.collect() if r.id)
    assert got == [("rej-bad", "rejected", False, [4])]
    assert result.rejects.where(F.col("id").isNull()).count() == 1  # no id: refused locally


def test_chunks_that_fail_after_all_retries_come_back_as_rows_with_their_failure(
    spark: SparkSession,
) -> None:
    down = ServedEmulator("--fault-rate", "1", "--fault-kinds", "503", "--fault-retry-after", "0")
    try:
        with pytest.raises(SparkBulkError) as raised:
            upsert_dataframe(
                frame(spark, users("down", 30), 3),
                api_key=API_KEY,
                base_url=down.base_url,
                chunk_size=10,
                max_retries=0,
            )
    finally:
        down.stop()

    result = raised.value.result
    assert (result.submitted, result.accepted, result.failed) == (30, 0, 30)
    rejects = result.rejects.collect()
    assert sorted(r.id for r in rejects) == sorted(uid for uid, _ in users("down", 30))
    for row in rejects:
        assert row.kind == "failed"
        assert row.failure.startswith("ServerError: 503")
        assert row.error_codes == [10]


def test_a_wrong_key_stops_every_task_and_the_job_raises(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    with pytest.raises(SparkBulkError, match="AuthenticationError") as raised:
        upsert_dataframe(
            frame(spark, users("key", 10)),
            api_key="not-the-key-0b7d",
            base_url=emulator.base_url,
            raise_on_failure=False,  # a stop is raised whatever this says
        )
    result = raised.value.result
    assert [p.aborted is not None for p in result.partitions] == [True, True]
    assert "not-the-key-0b7d" not in str(raised.value)


def test_an_email_taken_in_the_business_unit_counts_as_a_processing_error(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    rows = [("taken-1", "taken@example.com"), ("taken-2", "taken@example.com")]
    df = spark.createDataFrame(rows, "id string, email string").coalesce(1)

    with pytest.raises(SparkBulkError) as raised:
        upsert_dataframe(df, api_key=API_KEY, base_url=emulator.base_url, wait=True)

    result = raised.value.result
    [partition] = result.partitions
    # Accepted by the API, refused when applied: the API only counts those.
    assert (partition.accepted, partition.rejected) == (2, 0)
    assert (partition.processed_success, partition.processed_error) == (1, 1)
    assert partition.processing_errors == 1
    assert "1 at processing" in str(raised.value)


def test_with_no_key_anywhere_every_task_stops_and_the_job_says_why(
    spark: SparkSession, emulator: ServedEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.environ.get("ACTIVATEPRO_API_KEY"):
        pytest.skip("this environment sets ACTIVATEPRO_API_KEY, which the executors inherit")
    with pytest.raises(SparkBulkError, match="ConfigurationError: no API key") as raised:
        upsert_dataframe(frame(spark, users("nokey", 4)), base_url=emulator.base_url)
    assert all(p.aborted for p in raised.value.result.partitions)


def _fail_first_attempt_of_partition_2(index: int, numbers: Iterator[int]) -> Iterator[Any]:
    for count, n in enumerate(numbers):
        context = TaskContext.get()
        if index == 2 and count == 150 and context is not None and context.attemptNumber() == 0:
            raise RuntimeError("the warehouse hiccuped")
        yield (f"retry-{n}", f"retry-{n}@example.com")


def test_a_task_that_fails_is_run_again_and_resends_only_its_own_partition(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    numbers = spark.sparkContext.parallelize(range(1000), 4)
    rows = numbers.mapPartitionsWithIndex(_fail_first_attempt_of_partition_2)
    df = spark.createDataFrame(rows, "id string, email string")

    result = upsert_dataframe(
        df, api_key=API_KEY, base_url=emulator.base_url, chunk_size=100, wait=True
    )

    assert [p.attempt for p in result.partitions] == [0, 0, 1, 0]
    assert [p.submitted for p in result.partitions] == [250, 250, 250, 250]
    assert (result.accepted, result.rejected, result.failed) == (1000, 0, 0)
    assert sum(p.processed_success or 0 for p in result.partitions) == 1000
    assert stored(emulator, "retry-500") is not None  # the first row of partition 2
    assert stored(emulator, "retry-999") is not None


def test_each_python_worker_makes_one_client_and_its_later_tasks_reuse_it(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    result = upsert_dataframe(
        frame(spark, users("pool", 80), 8), api_key=API_KEY, base_url=emulator.base_url
    )

    made: dict[int, int] = {}
    for p in result.partitions:
        made[p.worker_pid] = made.get(p.worker_pid, 0) + (not p.client_reused)
    assert all(count <= 1 for count in made.values())
    # Eight tasks ran on at most two workers at a time: most of them reused a client.
    assert sum(made.values()) < len(result.partitions)


@pytest.mark.parametrize("arrow", [True, False], ids=["arrow", "rows"])
def test_a_job_runs_one_spark_job_and_reading_its_rejects_later_sends_nothing_again(
    spark: SparkSession, emulator: ServedEmulator, arrow: bool
) -> None:
    # A Spark job costs its scheduling and a pass over every partition: the
    # totals and the local checkpoint the rejects are read from come from one.
    prefix = f"onejob-{arrow}"
    rows = [*users(prefix, 10), (None, f"{prefix}@example.com")]
    # (Not frame()'s repartition: a shuffle is a job of its own under AQE.)
    df = spark.createDataFrame(spark.sparkContext.parallelize(rows, 3), "id string, email string")
    sc = spark.sparkContext
    sc.setJobGroup(prefix, "counted")
    try:
        result = upsert_dataframe(
            df, api_key=API_KEY, base_url=emulator.base_url, raise_on_failure=False, arrow=arrow
        )
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    assert len(sc.statusTracker().getJobIdsForGroup(prefix)) == 1
    # Nor does the job plan the input's own .rdd (a second planning of the query).
    assert "rdd" not in vars(df)  # PySpark 4: a cached_property
    assert getattr(df, "_lazy_rdd", None) is None  # PySpark 3.5

    with Client(emulator.api_key, base_url=emulator.base_url) as client:
        client.delete_user(f"{prefix}-0")
    [reject] = result.rejects.collect()  # read after the job: from what Spark kept
    assert (reject.id, reject.kind, reject.local) == (None, "rejected", True)
    assert result.rejects.count() == 1
    assert stored(emulator, f"{prefix}-0") is None  # not upserted a second time
    assert result.accepted == 10


@pytest.mark.parametrize(
    ("partitions", "task_slots", "per_task", "running"),
    [(8, None, 4, 2), (1, None, 8, 1), (8, 4, 2, 4), (8, 16, 1, 8)],
)
def test_the_concurrency_budget_is_shared_by_the_tasks_that_run_at_once(
    spark: SparkSession,
    emulator: ServedEmulator,
    partitions: int,
    task_slots: int | None,
    per_task: int,
    running: int,
) -> None:
    result = upsert_dataframe(
        frame(spark, users(f"budget{partitions}-{task_slots}", 16), partitions),
        api_key=API_KEY,
        base_url=emulator.base_url,
        concurrency=8,
        task_slots=task_slots,
    )
    assert (result.concurrency_per_task, result.running_tasks) == (per_task, running)


def test_the_api_key_shows_in_no_repr_plan_conf_or_pickled_closure(
    spark: SparkSession, emulator: ServedEmulator, capsys: pytest.CaptureFixture[str]
) -> None:
    from pyspark import cloudpickle

    from activatepro_async.client import _Secret
    from activatepro_async.integrations.spark import _executor, _jobs

    result = upsert_dataframe(
        frame(spark, [*users("secret", 4), ("secret-bad", "bad")]),
        api_key=API_KEY,
        base_url=emulator.base_url,
        raise_on_failure=False,
    )
    result.rejects.explain(extended=True)
    result.partitions_df().explain(extended=True)
    shown = [
        capsys.readouterr().out,
        repr(result),
        result.summary(),
        repr(result.partitions),
        repr(result.rejects.collect()),
        repr(result.partitions_df().collect()),
        repr(spark.sparkContext.getConf().getAll()),
    ]
    assert "Scan ExistingRDD" in shown[0]  # the plans were printed
    for text in shown:
        assert API_KEY not in text

    # What Spark ships to executors: the closure pickles the broadcast's id, not its value.
    job = _jobs._new_job(
        "upsert", (), emulator.base_url, 1000, 1 << 20, False, 1.0, 1.0, None, None
    )
    secret = spark.sparkContext.broadcast(_Secret(API_KEY))
    try:
        function = _executor.partition_function(job, secret)
        assert API_KEY.encode() not in cloudpickle.dumps(function)
        assert API_KEY not in repr(function)
        assert API_KEY not in repr(secret.value)
    finally:
        # Pickling a broadcast registers it for the next job Spark ships; a
        # destroyed one would fail that job ("used after it was destroyed").
        spark.sparkContext._pickled_broadcast_vars.clear()
        secret.destroy()
    assert API_KEY.encode() not in pickle.dumps(job)
