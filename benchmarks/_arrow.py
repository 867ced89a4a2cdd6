"""What the columnar benchmarks of issue 14 share: whether they can run, and their inputs.

The columnar path (``upsert_many`` of a ``pyarrow.Table``, ``activatepro import
x.parquet``) may be missing (no pyarrow, or an SDK without the path): each
``*_support`` function then says why, and the benchmark reports its goal as
"not measured: <why>" instead of failing.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

#: The seven columns of the benchmark users (bench_transport.make_users).
COLUMNS = ("id", "email", "businessUnit", "firstName", "lastName", "birthday", "createdAt")
_BATCH_ROWS = 100_000


def pyarrow_missing() -> str | None:
    """Why pyarrow cannot be used here, or None."""
    if importlib.util.find_spec("pyarrow") is None:
        return "pyarrow is not installed (pip install -e '.[arrow]')"
    return None


@functools.cache
def arrow_support() -> str | None:
    """Why ``upsert_many`` cannot take a ``pyarrow.Table`` here, or None when it can.

    Asked of the SDK itself: a two-row table is upserted against a mock API,
    and both rows must be accepted, as their JSON.
    """
    missing = pyarrow_missing()
    if missing is not None:
        return missing
    import anyio
    import pyarrow as pa

    from activatepro_async import AsyncClient

    bodies: list[bytes] = []

    def handle(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(202, json={"trackingId": "t"})

    async def probe() -> int:
        transport = httpx.MockTransport(handle)
        async with AsyncClient("probe-key", transport=transport, max_retries=0) as client:
            result = await client.upsert_many(
                pa.table({"id": ["a", "b"], "email": ["a@x.org", "b@x.org"]})
            )
        return int(result.accepted)

    try:
        accepted = anyio.run(probe)
    except Exception as exc:  # any refusal means: not there yet
        return f"upsert_many does not take a pyarrow.Table here ({type(exc).__name__}: {exc})"
    if accepted != 2 or not bodies:
        return f"upsert_many accepted {accepted} of a 2-row pyarrow.Table"
    return None


def table_of(users: Sequence[dict[str, Any]]) -> Any:
    """The users as one ``pyarrow.Table`` (string columns), built before any clock starts."""
    import pyarrow as pa

    return pa.table({name: [user[name] for user in users] for name in COLUMNS})


def _batches(rows: int) -> Iterator[Any]:
    import pyarrow as pa

    from .bench_memory import generate_users

    users = generate_users(rows)
    while batch := [next(users) for _ in range(min(_BATCH_ROWS, rows))]:
        rows -= len(batch)
        yield pa.RecordBatch.from_pylist(batch)
        if rows == 0:
            break


def write_parquet(path: Path, rows: int) -> Path:
    """``rows`` benchmark users (bench_memory's) as a Parquet file, written in flat memory."""
    import pyarrow.parquet as pq

    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    writer = None
    try:
        for batch in _batches(rows):
            if writer is None:
                writer = pq.ParquetWriter(partial, batch.schema)
            writer.write_batch(batch)
    finally:
        if writer is not None:
            writer.close()
    partial.rename(path)
    return path


def cli_parquet_support(workdir: Path, base_url: str) -> str | None:
    """Why ``activatepro import x.parquet`` cannot run here, or None when it can."""
    missing = pyarrow_missing()
    if missing is not None:
        return missing
    probe = write_parquet(workdir / "probe-10.parquet", 10)
    done = run_cli(["import", str(probe)], base_url)
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        last = said[-1] if said else "no message"
        return f"activatepro import cannot read Parquet here (exit {done.returncode}: {last})"
    return None


def run_cli(args: Sequence[str], base_url: str) -> subprocess.CompletedProcess[str]:
    """``activatepro ARGS`` in a fresh process, against ``base_url``."""
    env = {**os.environ, "ACTIVATEPRO_API_KEY": "benchmark-key", "ACTIVATEPRO_BASE_URL": base_url}
    command = [sys.executable, "-m", "activatepro_async", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
