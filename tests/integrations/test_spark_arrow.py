"""The Arrow path (``mapInArrow``) against the Row path: the same users stored, the same result."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from activatepro_async import ConfigurationError

from ._support import API_KEY, ServedEmulator, require_spark

require_spark()

from pyspark.sql import types as T  # noqa: E402

from activatepro_async.integrations.spark import (  # noqa: E402
    SparkBulkResult,
    _executor,
    _jobs,
    delete_dataframe,
    upsert_dataframe,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

UTC = dt.timezone.utc

SCHEMA = T.StructType(
    [
        T.StructField("user_id", T.LongType()),
        T.StructField("email", T.StringType()),
        T.StructField("businessUnit", T.StringType()),
        T.StructField("firstName", T.StringType()),
        T.StructField("birthday", T.DateType()),
        T.StructField("createdAt", T.TimestampType()),
        T.StructField("score", T.DecimalType(10, 2)),
        T.StructField("ratio", T.DoubleType()),
        T.StructField("visits", T.IntegerType()),
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
        T.StructField("prefs", T.MapType(T.StringType(), T.IntegerType())),
    ]
)
WHOLE = dt.datetime(2015, 10, 2, 8, 23, 53, tzinfo=UTC)
FRACTION = dt.datetime(2015, 10, 2, 8, 23, 53, 500000, tzinfo=UTC)
# Far from 1970, both sides, and before the epoch.
OLD = dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
ROWS: list[tuple[Any, ...]] = [
    (1, "a@example.com", "DE", "Ada", dt.date(1982, 8, 30), WHOLE, Decimal("12.50"), 0.1, 7,
     True, ["a", "b"], ("London", FRACTION, None), {"k": 1}),
    (2, "b@example.com", None, None, None, None, None, None, None, None, None, None, None),
    (3, "c@example.com", "UK", "Bo", dt.date(1900, 1, 1), FRACTION, Decimal("-0.01"), -2.5, 0,
     False, [], (None, None, None), {}),
    (4, "d@example.com", None, "Ünïcode ☃", dt.date(2099, 12, 31), OLD, None, 1e300, -1,
     None, [None, "x"], ("Paris", OLD, "75001"), None),
    (5, "not-an-email", "DE", "Bad", None, None, None, None, None, None, None, None, None),
    (None, "noid@example.com", None, "NoId", None, None, None, None, None, None, None, None, None),
    (7, None, None, "NoEmail", None, None, None, None, None, None, None, None, None),
    (8, "h@example.com", "bad unit!", None, None, WHOLE, None, None, None, None, None, None, None),
]  # fmt: skip


def frame(spark: SparkSession) -> DataFrame:
    # Slices, not repartition: the same rows in the same partitions on every run.
    return spark.createDataFrame(spark.sparkContext.parallelize(ROWS, 3), SCHEMA)


@pytest.fixture
def session_time_zone(spark: SparkSession) -> Iterator[None]:
    """A session time zone far from UTC: mapInArrow's timestamps carry it (tz=...)."""
    before = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        yield
    finally:
        spark.conf.set("spark.sql.session.timeZone", before)


def run_and_dump(
    tmp_path: Path, name: str, job: Callable[[str], SparkBulkResult]
) -> tuple[SparkBulkResult, list[dict[str, Any]]]:
    """Run ``job`` against a fresh emulator; its result, and every user the emulator stored."""
    dump = tmp_path / f"{name}.jsonl"
    server = ServedEmulator("--accept-unknown-attributes", "--dump-on-exit", str(dump))
    try:
        result = job(server.base_url)
    finally:
        server.stop()
    users = [json.loads(line) for line in dump.read_text().splitlines()]
    for user in users:
        user.pop("xngId")  # the emulator's own id for each user
    return result, users


def comparable(result: SparkBulkResult, *, details: bool = True) -> tuple[Any, ...]:
    """What a result says, less what differs between any two runs (time, pids, tracking ids).

    ``details=False`` leaves out the words of each reject's errors (their codes stay).
    """
    partitions = [
        (p.partition, p.submitted, p.accepted, p.rejected, p.failed, p.retries,
         p.processed_success, p.processed_error, p.processing_errors, p.tracking_failures,
         p.aborted, p.attempt, len(p.tracking_ids))
        for p in result.partitions
    ]  # fmt: skip
    rejects = sorted(
        (tuple(row) if details else (*row[:6], row.failure) for row in result.rejects.collect()),
        key=lambda r: (r[0], r[1] or -1),
    )
    return (result.operation, partitions, rejects, result.concurrency_per_task)


NESTED = ("tags", "address", "prefs")


@pytest.mark.parametrize(
    "nested",
    # Without nested columns the columnar path encodes the batches; with them,
    # their cells (JSON text from the JVM) are read one by one.
    [False, True],
    ids=["flat-columnar", "nested-per-cell"],
)
def test_both_paths_store_the_same_users_field_by_field_and_give_the_same_result(
    spark: SparkSession, tmp_path: Path, session_time_zone: None, nested: bool
) -> None:
    df = frame(spark) if nested else frame(spark).drop(*NESTED)

    def upsert(arrow: bool) -> Callable[[str], SparkBulkResult]:
        return lambda base_url: upsert_dataframe(
            df, api_key=API_KEY, base_url=base_url, mapping={"user_id": "id"},
            wait=True, raise_on_failure=False, arrow=arrow,
        )  # fmt: skip

    rows_result, rows_state = run_and_dump(tmp_path, "rows", upsert(False))
    arrow_result, arrow_state = run_and_dump(tmp_path, "arrow", upsert(True))

    assert arrow_state == rows_state
    assert comparable(arrow_result) == comparable(rows_result)
    # And what they agree on is right: the wire strings of each type, nulls left out.
    expected = {
        "1": {
            "id": "1", "email": "a@example.com", "businessUnit": "DE", "firstName": "Ada",
            "birthday": "1982-08-30", "createdAt": "2015-10-02T08:23:53Z", "score": 12.5,
            "ratio": 0.1, "visits": 7, "vip": True, "tags": ["a", "b"],
            "address": {"city": "London", "since": "2015-10-02T08:23:53.500000Z"},
            "prefs": {"k": 1},
        },
        "2": {"id": "2", "email": "b@example.com"},
        "3": {
            "id": "3", "email": "c@example.com", "businessUnit": "UK", "firstName": "Bo",
            "birthday": "1900-01-01", "createdAt": "2015-10-02T08:23:53.500000Z",
            "score": -0.01, "ratio": -2.5, "visits": 0, "vip": False, "tags": [],
            "address": {}, "prefs": {},
        },
        "4": {
            "id": "4", "email": "d@example.com", "firstName": "Ünïcode ☃",
            "birthday": "2099-12-31", "createdAt": "1969-12-31T23:59:59.999999Z",
            "ratio": 1e300, "visits": -1, "tags": [None, "x"],
            "address": {"city": "Paris", "since": "1969-12-31T23:59:59.999999Z", "zip": "75001"},
        },
    }  # fmt: skip
    if not nested:
        expected = {
            uid: {k: v for k, v in user.items() if k not in NESTED}
            for uid, user in expected.items()
        }
    assert {user["id"]: user for user in arrow_state} == expected
    # The rejects: no id locally; a bad email, no email and a bad unit by the API.
    got = [(r.id, r.kind, r.local, r.error_codes) for r in arrow_result.rejects.collect()]
    assert sorted(got, key=repr) == sorted(
        [("5", "rejected", False, [4]), (None, "rejected", True, [2]),
         ("7", "rejected", False, [2]), ("8", "rejected", False, [8])],
        key=repr,
    )  # fmt: skip


def test_both_paths_delete_the_same_ids_and_reject_the_same_null_ids(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = [(f"gone-{n}",) for n in range(12)] + [(None,), ("kept-x",)]

    def delete(arrow: bool) -> Callable[[str], SparkBulkResult]:
        def job(base_url: str) -> SparkBulkResult:
            users = [(f"gone-{n}", f"g{n}@example.com") for n in range(12)]
            users.append(("kept", "kept@example.com"))
            upsert_dataframe(
                spark.createDataFrame(users, "id string, email string"),
                api_key=API_KEY, base_url=base_url, wait=True, arrow=arrow,
            )  # fmt: skip
            df = spark.createDataFrame(spark.sparkContext.parallelize(rows, 3), "uid string")
            return delete_dataframe(
                df, id_column="uid", api_key=API_KEY, base_url=base_url, wait=True,
                raise_on_failure=False, arrow=arrow,
            )  # fmt: skip

        return job

    rows_result, rows_state = run_and_dump(tmp_path, "rows", delete(False))
    arrow_result, arrow_state = run_and_dump(tmp_path, "arrow", delete(True))

    assert arrow_state == rows_state == [{"id": "kept", "email": "kept@example.com"}]
    # The null id: the same code, position, kind and words on both paths.
    assert comparable(arrow_result) == comparable(rows_result)
    for result in (arrow_result, rows_result):
        [reject] = result.rejects.collect()
        assert [(e.code, e.details) for e in reject.errors] == [(2, "the user has no id")]
    assert (arrow_result.submitted, arrow_result.accepted, arrow_result.rejected) == (14, 13, 1)


@pytest.fixture
def map_in_arrow_calls(monkeypatch: pytest.MonkeyPatch, spark: SparkSession) -> list[int]:
    """Counts the driver's calls of DataFrame.mapInArrow (the Arrow path's one way in)."""
    cls = type(spark.range(1))
    original = cls.mapInArrow
    calls: list[int] = []

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "mapInArrow", spy)
    return calls


def two_users(spark: SparkSession) -> DataFrame:
    return spark.createDataFrame(
        [("path-1", "p1@example.com"), ("path-2", "p2@example.com")], "id string, email string"
    )


def test_the_default_is_arrow_and_arrow_false_reads_python_rows(
    spark: SparkSession, emulator: ServedEmulator, map_in_arrow_calls: list[int]
) -> None:
    for arrow, calls in ((None, 1), (True, 2), (False, 2)):
        result = upsert_dataframe(
            two_users(spark), api_key=API_KEY, base_url=emulator.base_url, arrow=arrow
        )
        assert (result.accepted, len(map_in_arrow_calls)) == (2, calls)


def test_without_pyarrow_the_default_falls_back_to_rows_and_arrow_true_says_what_to_install(
    spark: SparkSession,
    emulator: ServedEmulator,
    map_in_arrow_calls: list[int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = _jobs.importlib.util.find_spec
    monkeypatch.setattr(
        _jobs.importlib.util, "find_spec", lambda name: None if name == "pyarrow" else real(name)
    )
    with pytest.raises(ConfigurationError, match=r"^arrow=True, but PySpark's mapInArrow needs "):
        upsert_dataframe(two_users(spark), api_key=API_KEY, base_url=emulator.base_url, arrow=True)

    with caplog.at_level(logging.WARNING, logger="activatepro_async"):
        result = upsert_dataframe(two_users(spark), api_key=API_KEY, base_url=emulator.base_url)
    assert result.accepted == 2
    assert map_in_arrow_calls == []
    assert "sending Spark's Python rows" in caplog.text
    assert "pyarrow" in caplog.text


def test_arrow_takes_only_true_false_or_none(spark: SparkSession) -> None:
    with pytest.raises(TypeError, match="arrow must be True, False or None, got 'yes'"):
        upsert_dataframe(two_users(spark), base_url="http://127.0.0.1:9", arrow="yes")  # type: ignore[arg-type]


def test_a_worker_without_pyarrow_is_one_line_saying_what_to_install() -> None:
    spark_error = RuntimeError(
        'Py4J says:\n  File "/x/pyspark.zip/pyspark/worker.py", line 1920, in read_udfs\n'
        "    import pyarrow as pa\nModuleNotFoundError: No module named 'pyarrow'\n\tat org..."
    )
    error = _executor.workers_without_sdk(spark_error)
    assert isinstance(error, ConfigurationError)
    message = str(error)
    assert message.startswith("Spark's Python workers cannot import pyarrow, ")
    assert "\n" not in message
    for what_to_do in ("spark.pyspark.python", "PYSPARK_PYTHON", "[spark]", "arrow=False"):
        assert what_to_do in message
