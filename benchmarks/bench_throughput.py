"""Wall-clock throughput with realistic latency: the sink delays each answer (issue 7, run 2).

N users in 1000-user batches go to ``sink.py`` started with ``--delay-ms`` (20 by
default), so a request takes at least that long, as an API across a network does.
Contenders, alternated in every round:

- ``sdk``: ``AsyncClient.upsert_many(users, concurrency=8)``;
- ``raw_httpx``: the naive raw httpx loop, ``post(json=batch)``, 8 in flight;
- ``tuned_httpx``: orjson bytes as ``content=``, 8 in flight (only with orjson);
- ``requests_loop``: a ``requests.Session`` posting one batch after the other,
  what most teams write first (only with requests).

    python -m benchmarks.bench_throughput                 # 100,000 users, 5 rounds
    python -m benchmarks.bench_throughput --users 20000 --delay-ms 50
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import attrs

from . import _harness
from .bench_transport import JSON_HEADERS as HEADERS
from .bench_transport import PATH as BATCH_PATH
from .bench_transport import (
    Chunk,
    Run,
    chunked,
    make_users,
    naive_httpx,
    sdk_upsert_many,
    tuned_httpx,
)
from .sink import running_sink

CONCURRENCY = 8


def requests_loop(run: Run) -> None:
    """One batch after the other on a kept-alive ``requests.Session``."""
    import requests

    with requests.Session() as session:
        for chunk in run.chunks:
            response = session.post(
                run.url + BATCH_PATH,
                json={"updated": chunk, "deleted": []},
                headers=HEADERS,
                timeout=30,
            )
            if response.status_code != 202 or "trackingId" not in response.json():
                raise RuntimeError(f"the sink answered {response.status_code}")


def _async(contender: Callable[[Run], Any]) -> Callable[[Run], None]:
    def run(the_run: Run) -> None:
        anyio.run(contender, the_run)

    return run


CONTENDERS: dict[str, tuple[Callable[[Run], None], tuple[str, ...]]] = {
    "sdk": (_async(sdk_upsert_many), ()),
    "raw_httpx": (_async(naive_httpx), ()),
    "tuned_httpx": (_async(tuned_httpx), ("orjson",)),
    "requests_loop": (requests_loop, ("requests",)),
}


@attrs.frozen
class Report:
    users: int
    delay_ms: float
    rounds: int
    #: users per second, per contender, one per round
    rates: dict[str, list[float]]

    def rate(self, name: str) -> _harness.Summary:
        return _harness.Summary.of(self.rates[name])

    def ratio(self, name: str, baseline: str) -> _harness.Summary | None:
        """``name``'s throughput over ``baseline``'s, round by round."""
        if name not in self.rates or baseline not in self.rates:
            return None
        pairs = zip(self.rates[name], self.rates[baseline], strict=True)
        return _harness.Summary.of([a / b for a, b in pairs])

    def markdown(self) -> str:
        rows = []
        for name in self.rates:
            cells = [name, self.rate(name).show(0)]
            for baseline in ("requests_loop", "raw_httpx", "tuned_httpx"):
                ratio = self.ratio(name, baseline)
                cells.append(ratio.show() if ratio else "-")
            rows.append(cells)
        headers = ["contender", "users/s", "/ requests_loop", "/ raw_httpx", "/ tuned_httpx"]
        return (
            f"{self.users:,} users in batches of 1000, sink delay {self.delay_ms:g} ms, "
            f"{self.rounds} rounds; median (min-max)\n\n" + _harness.markdown_table(headers, rows)
        )

    def as_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def available() -> list[str]:
    return [
        name
        for name, (_, needs) in CONTENDERS.items()
        if all(importlib.util.find_spec(module) is not None for module in needs)
    ]


def run_benchmark(
    *,
    users: int = 100_000,
    rounds: int = 5,
    delay_ms: float = 20.0,
    contenders: Sequence[str] | None = None,
    chunk_size: int = 1000,
) -> Report:
    """Each contender pushes ``users`` once per round, alternating; the suite runs it tiny."""
    names = list(contenders) if contenders else available()
    chunks: list[Chunk] = chunked(make_users(users), chunk_size)
    with _harness.frozen_heap(), running_sink(delay_ms) as sink:
        run = Run(sink.url, chunks, CONCURRENCY)

        def once(name: str) -> float:
            started = time.perf_counter()
            CONTENDERS[name][0](run)
            return run.users / (time.perf_counter() - started)

        # Imports and first connections are paid here, outside the rounds.
        warm = Run(sink.url, chunks[: CONCURRENCY * 2], CONCURRENCY)
        for name in names:
            CONTENDERS[name][0](warm)
        rates = _harness.alternate(names, rounds, once)
    return Report(users=run.users, delay_ms=delay_ms, rounds=rounds, rates=rates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--contenders", nargs="+", choices=sorted(CONTENDERS))
    parser.add_argument("--json", metavar="PATH", help="also write the raw rates here")
    args = parser.parse_args(argv)
    report = run_benchmark(
        users=args.users, rounds=args.rounds, delay_ms=args.delay_ms, contenders=args.contenders
    )
    given = sys.argv[1:] if argv is None else argv
    print(_harness.header(" ".join(["python -m benchmarks.bench_throughput", *given])))
    print()
    print(report.markdown())
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report.as_json(), out, indent=1)


if __name__ == "__main__":
    main()
