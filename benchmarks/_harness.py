"""Shared helpers of the benchmarks: alternating rounds, summaries, CPU time, versions.

Machines here are noisy, so every figure is a ratio within one run: the contenders
take turns in each round (in a rotated order, so none always goes first), and
each is reported as the median of its rounds with the min and max.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from importlib import metadata
from typing import Any, TypeVar

import attrs

_T = TypeVar("_T")

#: The distributions whose versions a report names.
VERSIONED = (
    "activatepro-async",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "trio",
    "aiohttp",
    "httpx-aiohttp",
    "orjson",
    "uvloop",
)


@attrs.frozen
class Summary:
    """The median, min and max of a contender's rounds."""

    median: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        if not values:
            raise ValueError("no values to summarise")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def show(self, digits: int = 2) -> str:
        return f"{self.median:.{digits}f} ({self.min:.{digits}f}-{self.max:.{digits}f})"


def cpu_seconds() -> float:
    """CPU time of this process, user + system, all threads (not child processes)."""
    return time.process_time()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep the objects alive now (the generated users) out of the collector's scans.

    Otherwise every full collection walks the whole input again, and charges that
    to whichever contender happens to run then.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def alternate(
    names: Sequence[str], rounds: int, run_one: Callable[[str], _T]
) -> dict[str, list[_T]]:
    """Run every contender once per round, rotating the order each round.

    ``run_one(name)`` returns the measurement of one run; a full garbage
    collection before each keeps one contender's garbage off the next one's bill.
    """
    results: dict[str, list[_T]] = {name: [] for name in names}
    for round_no in range(rounds):
        shift = round_no % len(names) if names else 0
        for name in [*names[shift:], *names[:shift]]:
            gc.collect()
            results[name].append(run_one(name))
    return results


def versions(names: Iterable[str] = VERSIONED) -> dict[str, str]:
    """Installed versions of ``names``; the missing ones are left out."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def machine() -> dict[str, str]:
    """What ran the benchmark: CPU, cores, OS, Python."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
    }


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub markdown table, numbers right-aligned."""
    rows = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    right = [bool(rows) and all(_numeric(row[i]) for row in rows) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rules = [
        ("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right, strict=True)
    ]
    rule = "|" + "|".join(rules) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def header(command: str, extra: Mapping[str, str] | None = None) -> str:
    """The lines that say how and where a report was made."""
    facts = {**machine(), **(extra or {})}
    lines = [f"command: `{command}`"]
    lines += [f"{key}: {value}" for key, value in facts.items()]
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    return "\n".join(lines)


def _numeric(cell: str) -> bool:
    head = cell.split(" ", 1)[0].rstrip("x")
    try:
        float(head)
    except ValueError:
        return False
    return True
