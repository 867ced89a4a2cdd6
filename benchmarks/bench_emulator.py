"""How many users per second does the emulator apply, in-process and over loopback?

The question behind it: the emulator must never be the bottleneck of a demo or
a benchmark; applying a 1000-user batch, validation included, should cost well
under 10 ms.

    python benchmarks/bench_emulator.py            # full size (about half a minute)
    python benchmarks/bench_emulator.py --stdlib-json   # without orjson (an optional speed-up)
    python benchmarks/bench_emulator.py --tiny     # a smoke run, as the test suite does

Figures are the median, min and max over several rounds (for ``core``, over
every batch of every round):

- ``core``: one 1000-user ``POST /users/batch`` through the in-process
  transport (JSON parsing, validation, enqueueing, the response) plus
  ``process_pending()`` (applying it to the store): the cost of one batch.
- ``in-process``: the same through an ``httpx.AsyncClient`` on
  ``emulator.transport()``, as a test using the emulator would run it.
- ``loopback``: ``Emulator.serve()`` (uvicorn on 127.0.0.1) with an
  ``httpx.AsyncClient`` sending batches over 4 concurrent connections.

Every batch creates new users (the store grows as it would during an import).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from activatepro_async.emulator import Emulator

#: What the benchmark reads the time from: seconds, wall and CPU (a test injects its own).
Clock = Callable[[], float]

HEADERS = {
    "X-XNG-AuthToken": "test-key",
    "X-XNG-ApiVersion": "2",
    "Content-Type": "application/json",
}


def make_batch(start: int, size: int) -> bytes:
    """A batch of ``size`` realistic new users, ids from ``start``."""
    users = [
        {
            "id": f"user-{i}",
            "email": f"user.{i}@example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "gender": "female",
            "birthday": "1815-12-10",
            "createdAt": "2015-10-02T08:23:53Z",
            "phone": "+4930123456",
            "businessUnit": "DE",
        }
        for i in range(start, start + size)
    ]
    return json.dumps({"updated": users}).encode()


def summary(rates: list[float]) -> dict[str, float]:
    return {"median": statistics.median(rates), "min": min(rates), "max": max(rates)}


async def bench_core(
    batch_size: int,
    batches: int,
    rounds: int,
    clock: Clock = time.perf_counter,
    cpu_clock: Clock = time.process_time,
) -> dict[str, float]:
    """Seconds per batch, parse + validate + apply, over every batch of every round.

    Each batch is timed alone, so the median is the cost of a batch and the
    max shows the occasional full garbage collection of the whole process.
    """
    per_batch: list[float] = []
    cpu_per_batch: list[float] = []
    for r in range(rounds):
        emulator = Emulator(max_logged_requests=1)
        transport = emulator.transport()
        bodies = [make_batch((r * batches + b) * batch_size, batch_size) for b in range(batches)]
        requests = [
            httpx.Request("POST", "http://e/users/batch", headers=HEADERS, content=body)
            for body in bodies
        ]
        gc.collect()
        for request in requests:
            start = clock()
            cpu_start = cpu_clock()
            response = await transport.handle_async_request(request)
            emulator.process_pending()
            cpu_per_batch.append(cpu_clock() - cpu_start)
            per_batch.append(clock() - start)
            assert response.status_code == 202, response.read()
        assert len(emulator.users) == batches * batch_size
    # CPU time too: on a shared machine, wall time also counts the waits for a core.
    return {**summary(per_batch), "cpu_median": statistics.median(cpu_per_batch)}


async def bench_in_process(
    batch_size: int, batches: int, rounds: int, clock: Clock = time.perf_counter
) -> dict[str, float]:
    """Users applied per second through httpx.AsyncClient and the in-process transport."""
    rates: list[float] = []
    for r in range(rounds):
        emulator = Emulator(max_logged_requests=1)
        bodies = [make_batch((r * batches + b) * batch_size, batch_size) for b in range(batches)]
        async with httpx.AsyncClient(transport=emulator.transport(), base_url="http://e") as http:
            start = clock()
            for body in bodies:
                response = await http.post("/users/batch", content=body, headers=HEADERS)
                assert response.status_code == 202
            emulator.process_pending()
            rates.append(batches * batch_size / (clock() - start))
        assert len(emulator.users) == batches * batch_size
    return summary(rates)


async def bench_loopback(
    batch_size: int,
    batches: int,
    rounds: int,
    concurrency: int = 4,
    clock: Clock = time.perf_counter,
) -> dict[str, float]:
    """Users applied per second through uvicorn on 127.0.0.1."""
    rates: list[float] = []
    for r in range(rounds):
        emulator = Emulator(max_logged_requests=1)
        bodies = [make_batch((r * batches + b) * batch_size, batch_size) for b in range(batches)]
        async with emulator.serve() as base_url, httpx.AsyncClient(base_url=base_url) as http:
            await http.get("/users/warm-up", headers=HEADERS)
            queue = list(bodies)

            async def worker(queue: list[bytes] = queue) -> None:
                while queue:  # one event loop: pop() needs no lock
                    response = await http.post("/users/batch", content=queue.pop(), headers=HEADERS)
                    assert response.status_code == 202

            start = clock()
            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(worker)
            emulator.process_pending()
            rates.append(batches * batch_size / (clock() - start))
        assert len(emulator.users) == batches * batch_size
    return summary(rates)


async def run_async(
    tiny: bool, clock: Clock = time.perf_counter, cpu_clock: Clock = time.process_time
) -> dict[str, Any]:
    batch_size, batches, rounds = (10, 2, 2) if tiny else (1000, 20, 7)
    core = await bench_core(batch_size, batches, rounds, clock, cpu_clock)
    in_process = await bench_in_process(batch_size, batches, rounds, clock)
    loopback = await bench_loopback(batch_size, batches if tiny else 10, rounds, clock=clock)
    return {
        "batch_size": batch_size,
        "core_ms_per_batch": {k: v * 1000 for k, v in core.items()},
        "core_users_per_s": {k: batch_size / v for k, v in core.items() if k != "cpu_median"},
        "in_process_users_per_s": in_process,
        "loopback_users_per_s": loopback,
    }


def run(
    tiny: bool = True, *, clock: Clock = time.perf_counter, cpu_clock: Clock = time.process_time
) -> dict[str, Any]:
    """Run the benchmark (tiny: 2 rounds of 2 batches of 10 users, for the test suite).

    Returns its figures; ``clock`` and ``cpu_clock`` give the wall and CPU time.
    """
    return anyio.run(run_async, tiny, clock, cpu_clock)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a smoke run with a few users")
    parser.add_argument(
        "--stdlib-json",
        action="store_true",
        help="use the standard library's json even if orjson is installed",
    )
    args = parser.parse_args()
    from activatepro_async.emulator import _json

    if args.stdlib_json:
        _json.loads = _json._std_loads
        _json.dumps = _json._std_dumps
    json_lib = "json (stdlib)" if _json.loads is _json._std_loads else "orjson"
    results = run(tiny=args.tiny)
    print(f"python {platform.python_version()} on {platform.machine()}, JSON: {json_lib}")
    size = results["batch_size"]
    core = results["core_ms_per_batch"]
    print(
        f"core: {core['median']:.2f} ms per {size}-user batch "
        f"(min {core['min']:.2f}, max {core['max']:.2f}; CPU time {core['cpu_median']:.2f}); "
        f"{results['core_users_per_s']['median']:,.0f} users/s"
    )
    for name in ("in_process", "loopback"):
        figures = results[f"{name}_users_per_s"]
        print(
            f"{name.replace('_', '-')}: {figures['median']:,.0f} users/s "
            f"(min {figures['min']:,.0f}, max {figures['max']:,.0f})"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
