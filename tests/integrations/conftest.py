"""Fixtures of the Spark tests: one local SparkSession, and ``activatepro serve`` on a real port.

Every test module here calls ``require_spark()`` first, so the folder is skipped
when pyspark or java is missing (a dev machine without the ``spark`` extra).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from ._support import ServedEmulator

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def serve(*args: str) -> Iterator[ServedEmulator]:
    server = ServedEmulator(*args)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def emulator() -> Iterator[ServedEmulator]:
    """A served emulator without faults that stores any attribute (for the type tests)."""
    yield from serve("--accept-unknown-attributes")


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    """One local Spark for the whole run: 2 workers, and 2 tries per task.

    ``local[2,2]`` is ``local[2]`` (two task slots) whose tasks may fail once
    and run again, as on a cluster; plain ``local[N]`` gives up at the first
    failure, which would leave Spark's retries untested.
    """
    from pyspark.sql import SparkSession

    # Spark binds to this machine's address otherwise (and says so on stderr).
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with pytest.MonkeyPatch.context() as patch:
        # The workers' Python is this one, with this checkout installed; else
        # PySpark starts "python3" from PATH, which lacks the SDK when the suite
        # runs as venv/bin/python without the venv activated (IDEs, cron).
        # PySpark reads PYSPARK_PYTHON when the session starts; the config
        # spark.pyspark.python takes effect only through spark-submit.
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        session = (
            SparkSession.builder.master("local[2,2]")
            .appName("activatepro-async tests")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.sql.shuffle.partitions", "4")
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        try:
            yield session
        finally:
            session.stop()
