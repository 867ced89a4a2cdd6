"""The Spark integration's pieces that need no job: mapping, planning, budget, formats, import."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from ..helpers import run_python
from ._support import require_spark

require_spark()

from activatepro_async.integrations import spark as integration  # noqa: E402
from activatepro_async.integrations.spark import (  # noqa: E402
    _columns,
    per_task_concurrency,
    wire_names,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def test_wire_names_applies_the_row_rules_in_mapping_words() -> None:
    # The rules are tested once (tests/test_rows.py); here, only Spark's spelling of them.
    names = wire_names(["user_id", "mail", "x"], {"user_id": "id", "x": None})
    assert names == ["id", "mail", None]
    with pytest.raises(ValueError, match=r"^mapping= names column 'userid', which the DataFrame"):
        wire_names(["user_id", "email"], {"userid": "id"})
    with pytest.raises(ValueError, match=r"or leave it out with mapping=\{'user_id': None\}$"):
        wire_names(["id", "user_id", "email"], {"user_id": "id"})


def test_each_spark_type_travels_as_its_wire_value_and_nulls_are_left_out(
    spark: SparkSession,
) -> None:
    df = spark.createDataFrame([], "id string, email string, t timestamp, d date, tags array<int>")
    selects, plan = _columns.plan_upsert(df, None)
    assert len(selects) == len(plan) == 5
    convert = _columns.row_converter(plan)
    when = dt.datetime(2015, 10, 2, 8, 23, 53, 500000, tzinfo=dt.timezone.utc)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    # What the JVM hands over for the selected columns: micros, a date, JSON text.
    micros = (when - epoch) // dt.timedelta(microseconds=1)
    row = ("1", "a@example.com", micros, dt.date(1982, 8, 30), "[1,2]")
    assert convert(row) == {
        "id": "1",
        "email": "a@example.com",
        "t": "2015-10-02T08:23:53.500000Z",
        "d": "1982-08-30",
        "tags": [1, 2],
    }
    assert convert(("1", None, None, None, None)) == {"id": "1"}


@pytest.mark.parametrize(
    ("concurrency", "task_slots", "partitions", "per_task"),
    [(32, 8, 200, 4), (32, 8, 2, 16), (3, 8, 100, 1), (16, 2, 8, 8), (7, 2, 8, 3)],
)
def test_each_task_gets_an_equal_share_of_the_budget_and_at_least_one(
    concurrency: int, task_slots: int, partitions: int, per_task: int
) -> None:
    assert per_task_concurrency(concurrency, task_slots, partitions) == per_task


def test_an_upsert_needs_a_column_for_the_id_and_one_for_the_email(spark: SparkSession) -> None:
    df = spark.createDataFrame([], "user_id string, email string")
    with pytest.raises(
        ValueError, match=r"the DataFrame has no 'id' column.*with mapping=\{'COLUMN': 'id'\}"
    ):
        integration.upsert_dataframe(df, api_key="k")
    with pytest.raises(ValueError, match="has no 'email' column"):
        integration.upsert_dataframe(df.drop("email"), api_key="k", mapping={"user_id": "id"})


@pytest.mark.parametrize(
    ("column_type", "message"),
    [
        ("timestamp_ntz", "TIMESTAMP_NTZ, a time with no time zone"),
        ("binary", "binary, which JSON cannot carry"),
    ],
)
def test_columns_the_api_cannot_take_are_refused_on_the_driver(
    spark: SparkSession, column_type: str, message: str
) -> None:
    df = spark.createDataFrame([], f"id string, email string, x {column_type}")
    with pytest.raises(TypeError, match=message):
        integration.upsert_dataframe(df, api_key="k")


def test_a_delete_needs_its_id_column_and_string_ids(spark: SparkSession) -> None:
    df = spark.createDataFrame([], "user_id string, score double")
    with pytest.raises(ValueError, match=r"^id_column= names column 'id', which the DataFrame"):
        integration.delete_dataframe(df, api_key="k")
    # Only the ids are read: another column of the same name is no clash.
    both = spark.createDataFrame([], "id string, user_id string")
    assert len(_columns.plan_delete(both, "user_id")) == 1
    with pytest.raises(TypeError, match="'score' is double: user ids are strings"):
        integration.delete_dataframe(df, id_column="score", api_key="k")


def test_settings_are_checked_on_the_driver_before_any_task(spark: SparkSession) -> None:
    df = spark.createDataFrame([], "id string, email string")
    with pytest.raises(ValueError, match="chunk_size must be at most 1000"):
        integration.upsert_dataframe(df, api_key="k", chunk_size=1001)
    with pytest.raises(ValueError, match="concurrency must be a positive int"):
        integration.upsert_dataframe(df, api_key="k", concurrency=0)
    with pytest.raises(ValueError, match="base_url must be an http"):
        integration.upsert_dataframe(df, api_key="k", base_url="ftp://x")


def test_a_spark_connect_dataframe_is_refused_with_what_to_do() -> None:
    connect_frame = type("DataFrame", (), {"__module__": "pyspark.sql.connect.dataframe"})()
    with pytest.raises(TypeError, match=r"need classic Spark .* Spark Connect"):
        integration.upsert_dataframe(connect_frame)


def test_something_else_than_a_dataframe_is_refused() -> None:
    with pytest.raises(TypeError, match=r"expected a pyspark\.sql\.DataFrame, got list"):
        integration.delete_dataframe([{"id": "1"}])  # type: ignore[arg-type]  # on purpose


def test_importing_the_sdk_does_not_import_pyspark() -> None:
    done = run_python(
        "import sys, activatepro_async, activatepro_async.integrations\n"
        "assert 'pyspark' not in sys.modules, 'pyspark was imported'\n"
    )
    assert done.returncode == 0, done.stderr


def test_without_pyspark_the_import_says_which_extra_to_install() -> None:
    done = run_python(
        "import sys\n"
        "sys.modules['pyspark'] = None  # as if it were not installed\n"
        "import activatepro_async.integrations.spark\n"
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "ModuleNotFoundError: activatepro_async.integrations.spark needs pyspark: "
        "pip install 'activatepro-async[spark]'"
    )
