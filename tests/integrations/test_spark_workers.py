"""The Python of Spark's workers: the suite pins it; a job whose workers lack the SDK says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import activatepro_async
from activatepro_async import RetryPolicy

from ._support import API_KEY, ServedEmulator, require_spark

require_spark()

import pyspark  # noqa: E402

from activatepro_async.integrations.spark import INSTALL_HINT, upsert_dataframe  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# A driver with the SDK, as a user's job would be; its workers get another Python.
JOB = """
import json, sys
from pyspark.sql import SparkSession
from activatepro_async import ConfigurationError
from activatepro_async.integrations.spark import upsert_dataframe

spark = SparkSession.builder.getOrCreate()
spark.sparkContext.setLogLevel("OFF")
df = spark.createDataFrame([("1", "one@example.com")], "id string, email string")
try:
    # Python rows, then Arrow batches (whose workers need pyarrow before the SDK).
    for arrow in (False, None):
        try:
            upsert_dataframe(df, api_key=sys.argv[1], base_url="http://127.0.0.1:9", arrow=arrow)
            outcome = {"type": None}
        except Exception as exc:
            outcome = {"type": type(exc).__name__, "message": str(exc),
                       "configuration": isinstance(exc, ConfigurationError)}
        print("OUTCOME " + json.dumps(outcome))
finally:
    spark.stop()
"""


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_")}


def bare_python(tmp_path: Path) -> Path:
    """A venv of the same Python without the SDK: Spark can run its workers there."""
    home = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(home)
    python = home / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    probe = subprocess.run(
        [str(python), "-c", "import activatepro_async"],
        env=clean_env(),
        capture_output=True,
        timeout=60,
    )
    assert probe.returncode != 0, "the bare venv can import the SDK: the test would prove nothing"
    return python


@pytest.mark.parametrize("sdk_on_path", [False, True], ids=["no-sdk", "sdk-without-anyio"])
def test_the_shipped_function_says_which_python_cannot_import_the_sdk_and_the_driver_reads_it(
    tmp_path: Path, sdk_on_path: bool
) -> None:
    from pyspark import cloudpickle

    from activatepro_async.integrations.spark import _executor, _jobs

    bare = bare_python(tmp_path)
    if sdk_on_path:  # the package's source is there, anyio and httpx are not
        purelib = subprocess.run(
            [str(bare), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        source = Path(activatepro_async.__file__).resolve().parents[1]
        (Path(purelib) / "sdk.pth").write_text(f"{source}\n")
    job = _jobs._new_job(
        "upsert", (), "http://127.0.0.1:9", 1000, 1 << 20, False, 1.0, 1.0, None, None
    )
    shipped = tmp_path / "function.pickle"
    shipped.write_bytes(cloudpickle.dumps(_executor.partition_function(job, None)))
    # What a Spark worker has: PySpark's own zips on its path, and the bytes Spark ships.
    zips = sorted((Path(pyspark.__file__).parent / "python" / "lib").glob("*.zip"))
    assert zips
    worker = "import pickle, sys; list(pickle.loads(open(sys.argv[1], 'rb').read())(0, []))"
    env = clean_env() | {"PYTHONPATH": os.pathsep.join(map(str, zips))}
    ran = subprocess.run(
        [str(bare), "-c", worker, str(shipped)], env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode != 0
    missing = "anyio" if sdk_on_path else "activatepro_async"
    # The driver finds the worker's line in Spark's error (here, the bare traceback).
    error = _executor.workers_without_sdk(RuntimeError(f"Py4J says:\n{ran.stderr}"))
    assert error is not None, ran.stderr
    assert str(error) == ran.stderr.strip().splitlines()[-1].removeprefix("ModuleNotFoundError: ")
    assert f"{bare} says No module named '{missing}'" in str(error)
    for what_to_do in ("spark.pyspark.python", "PYSPARK_PYTHON", INSTALL_HINT):
        assert what_to_do in str(error)


def test_a_spark_error_of_another_kind_is_left_as_it_is() -> None:
    from activatepro_async.integrations.spark import _executor

    other = RuntimeError("ModuleNotFoundError: No module named 'activatepro_async'")
    assert _executor.workers_without_sdk(other) is None


def test_the_workers_run_in_the_python_that_runs_the_suite(spark: SparkSession) -> None:
    # Else they run whatever "python3" is on PATH: another environment when the
    # suite is started as venv/bin/python without activating the venv.
    prefixes = spark.sparkContext.parallelize([0], 1).map(lambda _: sys.prefix).collect()
    assert prefixes == [sys.prefix]


@pytest.mark.slow  # its own spark-submit: a second JVM
def test_a_job_whose_workers_cannot_import_the_sdk_fails_with_one_line_saying_what_to_do(
    tmp_path: Path,
) -> None:
    bare = bare_python(tmp_path)
    env = clean_env()
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    script = tmp_path / "job.py"
    script.write_text(JOB)
    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    # As a job on a cluster is started: spark-submit, with the workers' Python set
    # by spark.pyspark.python (the driver's own is the one with the SDK).
    command = [
        str(spark_submit), "--master", "local[1]",
        "--conf", f"spark.pyspark.python={bare}",
        "--conf", f"spark.pyspark.driver.python={sys.executable}",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.driver.bindAddress=127.0.0.1",
        str(script), API_KEY,
    ]  # fmt: skip
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=420)
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith("OUTCOME ")]
    outcome, arrow_outcome = (json.loads(line.removeprefix("OUTCOME ")) for line in lines)

    # Arrow batches: PySpark's worker needs pyarrow before it runs the SDK's function.
    assert arrow_outcome["configuration"], arrow_outcome
    arrow_message = arrow_outcome["message"]
    assert "\n" not in arrow_message
    assert arrow_message.startswith("Spark's Python workers cannot import pyarrow, ")
    for what_to_do in ("spark.pyspark.python", "PYSPARK_PYTHON", INSTALL_HINT, "arrow=False"):
        assert what_to_do in arrow_message

    # Python rows: the SDK's own function says which Python lacks the SDK.
    assert outcome["type"] == "ConfigurationError", outcome
    assert outcome["configuration"]
    message = outcome["message"]
    assert "\n" not in message  # one line, not Spark's pages of JVM and Python frames
    assert message.startswith("Spark's Python workers cannot import activatepro_async: ")
    assert f"{bare} says No module named 'activatepro_async'" in message
    for what_to_do in ("spark.pyspark.python", "PYSPARK_PYTHON", INSTALL_HINT):
        assert what_to_do in message
    assert API_KEY not in run.stdout + run.stderr


def test_the_job_reaches_the_workers_as_spark_ships_functions_a_lambda_in_its_retry_too(
    spark: SparkSession, emulator: ServedEmulator
) -> None:
    # The job travels pickled apart from the function Spark ships; it must take
    # whatever Spark's own pickling takes.
    df = spark.createDataFrame([("lambda-1", "l1@example.com"), ("lambda-2", "l2@example.com")],
                               "id string, email string")  # fmt: skip
    result = upsert_dataframe(
        df,
        api_key=API_KEY,
        base_url=emulator.base_url,
        retry=RetryPolicy(jitter=lambda delay: delay / 2),
    )
    assert (result.submitted, result.accepted) == (2, 2)
