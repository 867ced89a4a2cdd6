"""A whole job: 200,000 rows in 8 partitions, some invalid, against a faulty served emulator."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from activatepro_async import AsyncClient, NotFoundError, RetryPolicy

from ._support import ServedEmulator, require_spark

require_spark()

from pyspark.sql import functions as F  # noqa: E402

from activatepro_async.integrations.spark import SparkBulkError, upsert_dataframe  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROWS = 200_000
PARTITIONS = 8
BAD_EMAIL_EVERY = 97  # code 4
BAD_UNIT_EVERY = 89  # code 8
FAULTS = "500,502,503,504,429,drop,truncate,html"
# Short waits keep the test fast; more retries keep 10% faults from failing a chunk.
FAST_RETRY = RetryPolicy(max_retries=10, initial_backoff=0.05, max_backoff=1.0)


def is_invalid(n: int) -> bool:
    return n % BAD_EMAIL_EVERY == 0 or n % BAD_UNIT_EVERY == 0


@pytest.fixture(scope="module")
def state_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator") / "state.jsonl"


@pytest.fixture(scope="module")
def faulty_emulator(state_file: Path) -> Iterator[ServedEmulator]:
    """A fresh emulator (so its whole state is this job's) answering 10% of requests badly."""
    server = ServedEmulator(
        "--fault-rate", "0.1", "--fault-kinds", FAULTS, "--fault-seed", "11",
        "--fault-retry-after", "0.1", "--dump-on-exit", str(state_file),
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()


def profiles(spark: SparkSession) -> DataFrame:
    n = F.col("id")
    text = n.cast("string")
    return spark.range(0, ROWS, 1, PARTITIONS).select(
        F.concat(F.lit("big-"), text).alias("id"),
        F.when(n % BAD_EMAIL_EVERY == 0, F.lit("not-an-email"))
        .otherwise(F.concat(F.lit("big-"), text, F.lit("@example.com")))
        .alias("email"),
        F.when(n % BAD_UNIT_EVERY == 0, F.lit("bad unit!"))
        .when(n % 2 == 0, F.lit("DE"))
        .otherwise(F.lit("UK"))
        .alias("businessUnit"),
        F.concat(F.lit("Ada "), text).alias("firstName"),
        F.when(n % 3 == 0, F.lit(None).cast("string"))
        .otherwise(F.lit("Lovelace"))
        .alias("lastName"),
        F.date_add(F.lit("1980-01-01").cast("date"), (n % 10_000).cast("int")).alias("birthday"),
        F.timestamp_seconds(F.lit(1_600_000_000) + n).alias("createdAt"),
    )


def expected_user(n: int) -> dict[str, Any]:
    import datetime as dt

    user: dict[str, Any] = {
        "id": f"big-{n}",
        "email": f"big-{n}@example.com",
        "businessUnit": "DE" if n % 2 == 0 else "UK",
        "firstName": f"Ada {n}",
        "birthday": (dt.date(1980, 1, 1) + dt.timedelta(days=n % 10_000)).isoformat(),
        "createdAt": dt.datetime.fromtimestamp(1_600_000_000 + n, dt.timezone.utc)
        .replace(tzinfo=None)
        .isoformat()
        + "Z",
    }
    if n % 3:
        user["lastName"] = "Lovelace"
    return user


async def read_back(server: ServedEmulator, valid: list[int], invalid: list[int]) -> None:
    """GET a sample of the valid users (all fields as sent) and every invalid one (none)."""
    stored: dict[int, dict[str, Any]] = {}
    missing: list[int] = []
    limiter = anyio.CapacityLimiter(32)
    async with AsyncClient(server.api_key, base_url=server.base_url, retry=FAST_RETRY) as client:

        async def get(n: int) -> None:
            async with limiter:
                try:
                    user = await client.get_user(f"big-{n}")
                except NotFoundError:
                    missing.append(n)
                    return
                stored[n] = {
                    "id": user.id,
                    "email": user.email,
                    "businessUnit": user.business_unit,
                    **user.attributes,
                }

        async with anyio.create_task_group() as tg:
            for n in [*valid, *invalid]:
                tg.start_soon(get, n)
    assert sorted(missing) == sorted(invalid)
    for n in valid:
        assert stored[n] == expected_user(n)


@pytest.mark.slow
def test_a_faulty_200k_row_job_stores_exactly_the_valid_rows_and_returns_the_invalid_ones(
    spark: SparkSession, faulty_emulator: ServedEmulator, state_file: Path
) -> None:
    df = profiles(spark)
    invalid = [n for n in range(ROWS) if is_invalid(n)]
    valid_count = ROWS - len(invalid)

    started = time.perf_counter()
    with pytest.raises(SparkBulkError) as raised:
        upsert_dataframe(
            df,
            api_key=faulty_emulator.api_key,
            base_url=faulty_emulator.base_url,
            concurrency=8,
            wait=True,
            retry=FAST_RETRY,
        )
    seconds = time.perf_counter() - started
    print(f"\n200,000 rows through local[2] in {seconds:.1f} s ({ROWS / seconds:,.0f} rows/s)")
    result = raised.value.result

    # The totals: every row accounted for, the faults absorbed by retries.
    assert len(result.partitions) == PARTITIONS
    assert [p.partition for p in result.partitions] == list(range(PARTITIONS))
    assert all(p.submitted == ROWS // PARTITIONS for p in result.partitions)
    assert (result.submitted, result.accepted, result.rejected, result.failed) == (
        ROWS,
        valid_count,
        len(invalid),
        0,
    )
    assert sum(p.retries for p in result.partitions) > 0, "no fault was met"
    assert len(result.tracking_ids) == ROWS // 1000
    # The server's own counts for the tracking ids the job kept.
    assert sum(p.processed_success or 0 for p in result.partitions) == valid_count
    assert sum(p.processed_error or 0 for p in result.partitions) == len(invalid)

    # The rejects: exactly the invalid rows, each at its place, with its codes.
    rejects = result.rejects.collect()
    assert len(rejects) == len(invalid)
    seen = set()
    for row in rejects:
        n = row.partition * (ROWS // PARTITIONS) + row.position
        assert row.id == f"big-{n}"
        assert (row.kind, row.local, row.failure) == ("rejected", False, None)
        codes = {4} if n % BAD_EMAIL_EVERY == 0 else set()
        codes |= {8} if n % BAD_UNIT_EVERY == 0 else set()
        assert set(row.error_codes) == codes
        assert all(e.pointer.startswith("/updated/") for e in row.errors)
        seen.add(n)
    assert sorted(seen) == invalid

    # The server's state, read back through the API for a sample ...
    started = time.perf_counter()
    pick = random.Random(5)
    valid = pick.sample([n for n in range(ROWS) if not is_invalid(n)], 500)
    anyio.run(read_back, faulty_emulator, valid, pick.sample(invalid, 500))
    print(f"read back 1000 users in {time.perf_counter() - started:.1f} s")

    # ... and whole: the server writes every stored user when it stops.
    faulty_emulator.stop()
    stored = [json.loads(line) for line in state_file.read_text().splitlines()]
    for user in stored:
        user.pop("xngId")
    assert stored == [expected_user(n) for n in sorted(set(range(ROWS)) - set(invalid), key=str)]
