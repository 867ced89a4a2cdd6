"""Wall time of ``activatepro import`` against a ten-line script, to the sink (issue 14).

The same generated rows (bench_memory's 7-field users) as a Parquet file and as
a CSV file; each contender runs in a fresh process against ``sink.py`` on
127.0.0.1, the contenders take turns in every round, and each figure is the
median of the rounds with the min and max:

- ``cli_parquet``: ``activatepro import users.parquet`` (needs the columnar path);
- ``cli_csv``: ``activatepro import users.csv`` (with the ``arrow`` extra the CLI
  reads CSV through the columnar path; without it, the standard library's reader);
- ``script_csv``: :data:`SCRIPT`, ten lines of ``csv.DictReader`` -> ``upsert_many``.

    python -m benchmarks.bench_import                    # 1,000,000 rows, 3 rounds
    python -m benchmarks.bench_import --rows 100000 --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs

from . import _arrow, _harness
from .bench_memory import generate_users
from .sink import running_sink

#: The hand-written contender: what a user writes without the CLI.
SCRIPT = """\
import csv, sys
import anyio
from activatepro_async import AsyncClient
async def main():
    with open(sys.argv[1], newline="", encoding="utf-8") as file:
        async with AsyncClient() as client:
            result = await client.upsert_many(csv.DictReader(file))
    assert result.accepted == int(sys.argv[2]), result.summary()
anyio.run(main)
"""


def write_csv(path: Path, rows: int) -> Path:
    if not path.exists():
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=_arrow.COLUMNS)
            writer.writeheader()
            writer.writerows(generate_users(rows))
    return path


@attrs.frozen
class Report:
    rows: int
    rounds: int
    #: wall seconds per contender, one per round
    seconds: dict[str, list[float]]
    #: contenders that could not run, and why
    not_measured: dict[str, str]

    def rate(self, name: str) -> _harness.Summary | None:
        if name not in self.seconds:
            return None
        return _harness.Summary.of([self.rows / s for s in self.seconds[name]])

    def ratio(self, name: str, baseline: str) -> _harness.Summary | None:
        """``name``'s wall time over ``baseline``'s, round by round."""
        if name not in self.seconds or baseline not in self.seconds:
            return None
        pairs = zip(self.seconds[name], self.seconds[baseline], strict=True)
        return _harness.Summary.of([a / b for a, b in pairs])

    def markdown(self) -> str:
        rows = []
        for name, seconds in self.seconds.items():
            ratio = self.ratio(name, "script_csv")
            rate = self.rate(name)
            rows.append(
                [
                    name,
                    _harness.Summary.of(seconds).show(),
                    rate.show(0) if rate else "-",
                    ratio.show() if ratio else "-",
                ]
            )
        rows += [
            [name, f"not measured: {why}", "-", "-"] for name, why in self.not_measured.items()
        ]
        return (
            f"{self.rows:,} rows of 7 columns, to the sink, one fresh process per run, "
            f"{self.rounds} rounds; median (min-max)\n\n"
            + _harness.markdown_table(["contender", "wall s", "rows/s", "/ script_csv"], rows)
        )


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    """``given`` as it is (the files are kept), or a temporary directory."""
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="bench-import-") as name:
        yield Path(name)


def run_benchmark(*, rows: int = 1_000_000, rounds: int = 3, workdir: Path | None = None) -> Report:
    """Run the contenders that can run here, alternating; the suite runs it tiny."""
    with _workdir(workdir) as where, running_sink() as sink:
        csv_path = write_csv(where / f"users-{rows}.csv", rows)
        commands: dict[str, list[str]] = {
            "cli_csv": [sys.executable, "-m", "activatepro_async", "import", str(csv_path)],
            "script_csv": [sys.executable, "-c", SCRIPT, str(csv_path), str(rows)],
        }
        not_measured: dict[str, str] = {}
        why = _arrow.cli_parquet_support(where, sink.url)
        if why is None:
            parquet = _arrow.write_parquet(where / f"users-{rows}.parquet", rows)
            commands = {
                "cli_parquet": [sys.executable, "-m", "activatepro_async", "import", str(parquet)],
                **commands,
            }
        else:
            not_measured["cli_parquet"] = why

        def one(name: str) -> float:
            env = {
                **os.environ,
                "ACTIVATEPRO_API_KEY": "benchmark-key",
                "ACTIVATEPRO_BASE_URL": sink.url,
            }
            started = time.perf_counter()
            subprocess.run(commands[name], check=True, capture_output=True, env=env, timeout=1800)
            return time.perf_counter() - started

        seconds = _harness.alternate(list(commands), rounds, one)
    return Report(rows=rows, rounds=rounds, seconds=seconds, not_measured=not_measured)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, help="keep the generated files here")
    args = parser.parse_args(argv)
    report = run_benchmark(rows=args.rows, rounds=args.rounds, workdir=args.workdir)
    given = sys.argv[1:] if argv is None else list(argv)
    print(_harness.header(" ".join(["python -m benchmarks.bench_import", *given])))
    print()
    print(report.markdown())


if __name__ == "__main__":
    main()
