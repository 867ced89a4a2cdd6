"""Peak RSS of a process streaming N generated users through ``upsert_many`` (issue 7, run 3).

Each measurement is a fresh Python process (``--child``) that generates its users
one at a time (a generator, as a file reader would), streams them through
``AsyncClient.upsert_many`` to ``sink.py`` on 127.0.0.1 and reports its peak
resident set size. The sizes alternate over the rounds; the figure that matters
is the difference between the large and the small run: memory flat in the input
size means it is about zero.

    python -m benchmarks.bench_memory                    # 1,000,000 vs 100,000 users, 3 rounds
    python -m benchmarks.bench_memory --sizes 200000 20000 --rounds 2
    python -m benchmarks.bench_memory --arrow --sizes 10000000 1000000  # issue 14

With ``--arrow`` the users are Parquet files (written first, outside the measured
processes), streamed record batch by record batch (``ParquetFile.iter_batches``)
through ``upsert_many``'s columnar path.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs

from . import _harness
from .sink import running_sink

ROOT = Path(__file__).resolve().parents[1]
_UNITS = ("DE", "AT", "CH", "FR")
_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")


def generate_users(count: int) -> Iterator[dict[str, Any]]:
    """``count`` users of 7 fields, made one at a time."""
    for i in range(count):
        yield {
            "id": f"user-{i:08d}",
            "email": f"user.{i}@example.com",
            "businessUnit": _UNITS[i % 4],
            "firstName": _FIRST[i % 8],
            "lastName": "Lovelace",
            "birthday": f"19{50 + i % 50}-{1 + i % 12:02d}-{1 + i % 28:02d}",
            "createdAt": "2024-01-01T08:00:53Z",
        }


def child(users: int, url: str) -> dict[str, Any]:
    """Stream ``users`` through ``upsert_many`` in this process; its peak RSS."""
    import anyio

    from activatepro_async import AsyncClient

    async def main() -> int:
        async with AsyncClient("benchmark-key", base_url=url, max_retries=0) as client:
            result = await client.upsert_many(generate_users(users))
        return result.accepted

    started_mb = peak_rss_mb()
    accepted = anyio.run(main)
    if accepted != users:
        raise RuntimeError(f"accepted {accepted} of {users} users")
    return {"users": users, "peak_rss_mb": peak_rss_mb(), "start_rss_mb": started_mb}


def arrow_child(parquet: str, users: int, url: str) -> dict[str, Any]:
    """Stream a Parquet file's record batches through ``upsert_many``; this process's peak RSS."""
    import anyio
    import pyarrow.parquet as pq

    from activatepro_async import AsyncClient

    async def main() -> int:
        async with AsyncClient("benchmark-key", base_url=url, max_retries=0) as client:
            # pre_buffer=False: by path, pyarrow's pre-buffered reads keep every
            # row group's bytes for the reader's life (+1.2 MiB per 100,000 rows,
            # PROFILE.md section 9), which measured the reader's growth, not ours.
            reader = pq.ParquetFile(parquet, pre_buffer=False)
            result = await client.upsert_many(reader.iter_batches())
        return int(result.accepted)

    started_mb = peak_rss_mb()
    accepted = anyio.run(main)
    if accepted != users:
        raise RuntimeError(f"accepted {accepted} of {users} users")
    return {"users": users, "peak_rss_mb": peak_rss_mb(), "start_rss_mb": started_mb}


def peak_rss_mb() -> float:
    """This process's peak RSS in MiB, since its exec.

    Linux's ``VmHWM`` belongs to the address space that exec made; ``ru_maxrss`` of
    a forked child starts at the parent's RSS, so a child of a big parent (run_all,
    after its other runs) would report the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return _harness.peak_rss_mb()


@attrs.frozen
class Report:
    sizes: tuple[int, ...]
    rounds: int
    #: peak RSS in MiB per size, one per round
    peaks: dict[int, list[float]]

    def difference(self) -> _harness.Summary:
        """Largest size's peak minus the smallest's, round by round."""
        large, small = max(self.sizes), min(self.sizes)
        pairs = zip(self.peaks[large], self.peaks[small], strict=True)
        return _harness.Summary.of([a - b for a, b in pairs])

    def markdown(self) -> str:
        rows = [
            [f"{size:,} users", _harness.Summary.of(self.peaks[size]).show(1)]
            for size in self.sizes
        ]
        rows.append(["difference", self.difference().show(1)])
        return (
            f"peak RSS in MiB, one fresh process per run, {self.rounds} rounds; "
            "median (min-max)\n\n" + _harness.markdown_table(["run", "peak RSS MiB"], rows)
        )


def run_benchmark(
    *,
    sizes: Sequence[int] = (1_000_000, 100_000),
    rounds: int = 3,
    timeout: float = 240,
    arrow_dir: Path | None = None,
) -> Report:
    """Run one child process per size and round, alternating; the suite runs it tiny.

    With ``arrow_dir``, each size is a Parquet file there (written if missing)
    and the children stream it through the columnar path.
    """
    peaks: dict[int, list[float]] = {size: [] for size in sizes}
    files: dict[int, Path] = {}
    if arrow_dir is not None:
        from ._arrow import write_parquet

        files = {size: write_parquet(arrow_dir / f"users-{size}.parquet", size) for size in sizes}
    with running_sink() as sink:
        for round_no in range(rounds):
            order = list(sizes) if round_no % 2 == 0 else list(reversed(sizes))
            for size in order:
                command = [sys.executable, "-m", "benchmarks.bench_memory", "--child"]
                command += ["--users", str(size), "--url", sink.url]
                if size in files:
                    command += ["--parquet", str(files[size])]
                out = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=timeout if not files else max(timeout, size / 5000),
                    cwd=ROOT,
                ).stdout
                peaks[size].append(json.loads(out.strip().splitlines()[-1])["peak_rss_mb"])
    return Report(sizes=tuple(sizes), rounds=rounds, peaks=peaks)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--parquet", help=argparse.SUPPRESS)
    parser.add_argument("--arrow", action="store_true", help="stream Parquet files (issue 14)")
    args = parser.parse_args(argv)
    if args.child:
        if args.parquet:
            print(json.dumps(arrow_child(args.parquet, args.users, args.url)))
        else:
            print(json.dumps(child(args.users, args.url)))
        return
    if args.arrow:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bench-memory-") as where:
            report = run_benchmark(sizes=args.sizes, rounds=args.rounds, arrow_dir=Path(where))
    else:
        report = run_benchmark(sizes=args.sizes, rounds=args.rounds)
    given = sys.argv[1:] if argv is None else argv
    print(_harness.header(" ".join(["python -m benchmarks.bench_memory", *given])))
    print()
    print(report.markdown())


if __name__ == "__main__":
    main()
