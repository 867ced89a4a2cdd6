"""A real standalone Spark cluster on 127.0.0.1: a master and two workers, each its own process.

They are started with PySpark's own launcher (``bin/spark-class``, what
``sbin/start-master.sh`` and ``start-worker.sh`` run in a Spark distribution;
the pip package ships no ``sbin`` for them), the job with ``spark-submit
--master spark://...`` against ``activatepro serve`` (flat columns: the Arrow
path's columnar encoding, not its per-cell reading of nested ones), and the emulator's whole
state, written when it stops, is checked field by field. Every process is
started in a session of its own and its whole group is killed at the end,
whatever happens (the executors and their Python workers are children of the
workers).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._support import API_KEY, ServedEmulator, require_spark

require_spark()

import pyspark  # noqa: E402

SPARK_HOME = Path(pyspark.__file__).parent
# Under load a JVM takes tens of seconds to come up; these only guard against a hang.
START_TIMEOUT = 240.0
JOB_TIMEOUT = 420.0
ROWS = 40
PARTITIONS = 4

JOB = """
import datetime as dt, json, sys
from pyspark.sql import SparkSession, functions as F, types as T
from activatepro_async.integrations.spark import upsert_dataframe

master, base_url, api_key, ROWS, PARTITIONS = *sys.argv[1:4], *map(int, sys.argv[4:6])
spark = SparkSession.builder.master(master).appName("activatepro-cluster-test").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
n = F.col("n")
df = spark.range(0, ROWS, 1, PARTITIONS).withColumnRenamed("id", "n").select(
    n.alias("id"),  # an integer id: travels as a string
    F.when(n == 13, F.lit("not-an-email"))
    .otherwise(F.concat(F.lit("c"), n.cast("string"), F.lit("@example.com"))).alias("email"),
    F.when(n % 3 == 0, F.lit(None).cast("string")).otherwise(F.lit("Ada")).alias("firstName"),
    F.date_add(F.lit("1980-01-01").cast("date"), (n * 100).cast("int")).alias("birthday"),
    F.timestamp_micros(F.lit(1_443_774_233_000_000) + n * 250_000).alias("createdAt"),
    F.when(n % 2 == 0, F.lit(None).cast("double")).otherwise(n / 4).alias("score"),
)
result = upsert_dataframe(df, api_key=api_key, base_url=base_url, concurrency=4,
                          wait=True, raise_on_failure=False)
executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
print("RESULT " + json.dumps({
    "executors": executors,
    "partitions": [[p.partition, p.submitted, p.accepted, p.rejected, p.worker_pid]
                   for p in result.partitions],
    "rejects": [[r.partition, r.position, r.id, r.error_codes] for r in result.rejects.collect()],
}))
spark.stop()
"""


class Process:
    """A process in a session of its own, its output read to the end by a thread."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.command = command
        self.popen = subprocess.Popen(
            command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first line matching ``pattern``; fails with the output when it does not come."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    found = compiled.search(line)
                    if found:
                        return found
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self.popen.poll() is not None and not self._reader.is_alive()):
                    output = "".join(self.lines[-60:])
                    pytest.fail(f"{self.command[-1]}: no line like {pattern!r}:\n{output}")
                self._changed.wait(timeout=min(left, 1.0))

    def kill(self) -> None:
        """Stop the whole process group: TERM, then KILL what is left."""
        for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue
            # The JVM is gone; what it started may not be (an executor, a Python worker).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            break
        # The reader ends at the pipe's end (the group is gone): then the pipe is closed.
        self._reader.join(timeout=10)
        if self.popen.stdout is not None and not self._reader.is_alive():
            self.popen.stdout.close()


@pytest.fixture
def spark_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_"))}
    env |= {
        "SPARK_HOME": str(SPARK_HOME),
        "SPARK_LOCAL_IP": "127.0.0.1",
        # Small daemons: the master and the workers only schedule.
        "SPARK_DAEMON_MEMORY": "256m",
        # No REST server on its fixed port 6066, which a parallel run may hold.
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
        "SPARK_WORKER_DIR": str(tmp_path / "work"),
    }
    return env


@pytest.fixture
def cluster(spark_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A master and two one-core workers; yields the master's ``spark://`` URL."""
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    started: list[Process] = []
    try:
        master = Process(
            [spark_class, "org.apache.spark.deploy.master.Master",
             "--host", "127.0.0.1", "--port", "0", "--webui-port", "0"],
            spark_env, tmp_path,
        )  # fmt: skip
        started.append(master)
        url = master.wait_for(r"Starting Spark master at (spark://127\.0\.0\.1:\d+)").group(1)
        master.wait_for(r"New state: ALIVE")
        for _ in range(2):
            started.append(
                Process(
                    [spark_class, "org.apache.spark.deploy.worker.Worker", url,
                     "--host", "127.0.0.1", "--port", "0", "--webui-port", "0",
                     "--cores", "1", "--memory", "1g"],
                    spark_env, tmp_path,
                )
            )  # fmt: skip
        for worker in started[1:]:
            worker.wait_for(r"Successfully registered with master")
        yield url
    finally:
        for process in reversed(started):
            process.kill()


def expected_user(n: int) -> dict[str, Any]:
    created = dt.datetime(2015, 10, 2, 8, 23, 53, tzinfo=dt.timezone.utc)
    created += dt.timedelta(microseconds=n * 250_000)
    user: dict[str, Any] = {
        "id": str(n),
        "email": f"c{n}@example.com",
        "birthday": (dt.date(1980, 1, 1) + dt.timedelta(days=n * 100)).isoformat(),
        "createdAt": created.replace(tzinfo=None).isoformat() + "Z",
    }
    if n % 2:
        user["score"] = n / 4
    if n % 3:
        user["firstName"] = "Ada"
    return user


@pytest.mark.slow  # five JVMs: the master, two workers, their executors, and the driver
def test_a_job_on_a_standalone_cluster_stores_every_valid_row_field_by_field(
    cluster: str, spark_env: dict[str, str], tmp_path: Path
) -> None:
    dump = tmp_path / "state.jsonl"
    server = ServedEmulator("--accept-unknown-attributes", "--dump-on-exit", str(dump))
    script = tmp_path / "job.py"
    script.write_text(JOB)
    command = [
        str(SPARK_HOME / "bin" / "spark-submit"), "--master", cluster,
        "--conf", f"spark.pyspark.python={sys.executable}",
        "--conf", f"spark.pyspark.driver.python={sys.executable}",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.executor.memory=512m",
        "--conf", "spark.cores.max=2",
        # Both executors up before the first task, so that both run some.
        "--conf", "spark.scheduler.minRegisteredResourcesRatio=1.0",
        "--conf", "spark.scheduler.maxRegisteredResourcesWaitingTime=300s",
        str(script), cluster, server.base_url, API_KEY, str(ROWS), str(PARTITIONS),
    ]  # fmt: skip
    driver = Process(command, spark_env, tmp_path)
    try:
        line = driver.wait_for(r"^RESULT (.*)$", timeout=JOB_TIMEOUT)
        assert driver.popen.wait(timeout=120) == 0, "".join(driver.lines[-40:])
    finally:
        driver.kill()
        server.stop()
    outcome = json.loads(line.group(1))

    assert outcome["executors"] == 2
    partitions = outcome["partitions"]
    assert [p[:4] for p in partitions] == [
        [i, ROWS // PARTITIONS, ROWS // PARTITIONS - (i == 1), int(i == 1)]
        for i in range(PARTITIONS)
    ]
    # The tasks ran in the Python workers of both executors.
    assert len({pid for *_, pid in partitions}) >= 2
    # Row 13 is the second partition's fourth.
    assert outcome["rejects"] == [[1, 3, "13", [4]]]
    stored = [json.loads(text) for text in dump.read_text().splitlines()]
    for user in stored:
        user.pop("xngId")
    assert stored == [expected_user(n) for n in sorted(set(range(ROWS)) - {13}, key=str)]
    assert API_KEY not in "".join(driver.lines)
