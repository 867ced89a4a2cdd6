"""What a process pays before its first row: no import nor setup that its run does not use.

Each check runs in a fresh interpreter (this one has imported everything already).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path

import pytest

from .helpers import run_python

#: The command's import and delete of a Parquet file, then ``upsert_many`` of an Arrow
#: table, against the in-process emulator; prints the outcome and what was imported
#: (not pq.read_table: pyarrow.dataset imports pandas).
ARROW_RUNS = """
import json, sys
import anyio
import pyarrow.parquet as pq
from click.testing import CliRunner
from activatepro_async import AsyncClient
from activatepro_async._cli.options import CliEnv
from activatepro_async.cli import main
from activatepro_async.emulator import Emulator

emulator = Emulator(("k",), accept_unknown_attributes=True)
env = {"ACTIVATEPRO_API_KEY": "k", "ACTIVATEPRO_BASE_URL": None}
out = {}
for command in ("import", "delete"):
    result = CliRunner().invoke(
        main, [command, sys.argv[1], "--json"], obj=CliEnv(transport=emulator.transport()), env=env
    )
    summary = json.loads(result.stdout)
    out[command] = [result.exit_code, summary["accepted"], summary["rejected"]]

async def api():
    async with AsyncClient("k", base_url="http://x", transport=emulator.transport()) as client:
        result = await client.upsert_many(
            pq.ParquetFile(sys.argv[2]).read(), raise_on_failure=False
        )
    out["api"] = [result.accepted, sorted(r.position for r in result.rejected)]

anyio.run(api)
out["pandas"] = "pandas" in sys.modules
print(json.dumps(out))
print("done")
"""


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="pandas is not installed")
def test_arrow_runs_never_import_pandas(tmp_path: Path) -> None:
    # pyarrow imports pandas (0.3-0.5 s of CPU) the first time it converts a Python
    # object, to ask whether it is a pandas one: a "" or a True given to a compute
    # function was enough. Rows rejected locally, NaN and a missing id take the
    # paths that filter and mask.
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    command_file = tmp_path / "u.parquet"
    pq.write_table(
        pa.table(
            {
                "id": ["u1", "", "u3", None],
                "email": ["a@example.com", "b@example.com", "c@example.com", "d@example.com"],
                "businessUnit": ["UK", None, "DE", "UK"],
            }
        ),
        command_file,
    )
    api_file = tmp_path / "api.parquet"
    pq.write_table(
        pa.table(
            {
                "id": pa.array([1, 2, 3, 4], pa.int64()),
                "email": [f"u{n}@example.com" for n in range(4)],
                "score": [1.5, float("nan"), None, 2.0],
                "vip": [True, False, None, True],
                "seen": pa.array(
                    [dt.datetime(2015, 10, 2, 8, 23, 53, tzinfo=dt.timezone.utc)] * 4,
                    pa.timestamp("us", tz="UTC"),
                ),
                "since": pa.array([dt.date(1982, 8, 30)] * 4, pa.date32()),
            }
        ),
        api_file,
    )
    result = run_python(ARROW_RUNS, str(command_file), str(api_file), timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("done"), result.stdout + result.stderr
    out = json.loads(result.stdout.splitlines()[0])
    assert out["import"][1:] == [2, 2]
    assert out["delete"][1:] == [2, 2]
    assert out["api"] == [3, [1]]  # the NaN score
    assert out["pandas"] is False


#: What ``import activatepro_async`` must leave unimported: each is needed on some paths only
#: (thread portals: the sync Client; aiohttp: the [fast] transport's first request on
#: asyncio; pyarrow and pandas: columnar input).
NOT_AT_IMPORT = ("anyio.from_thread", "aiohttp", "httpx_aiohttp", "pyarrow", "pandas", "numpy")


def test_importing_the_package_loads_only_what_every_program_needs() -> None:
    script = (
        "import sys, activatepro_async\n"
        f"print([name for name in {NOT_AT_IMPORT!r} if name in sys.modules])\n"
        "print(activatepro_async.Client.__name__)\n"
        "print('done')\n"
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "Client", "done"]
