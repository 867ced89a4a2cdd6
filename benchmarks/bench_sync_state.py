"""How much does ``activatepro sync`` save over ``activatepro import``? (issue 15's goals)

    python -m benchmarks.bench_sync_state                      # 1,000,000 rows, 3 rounds
    python -m benchmarks.bench_sync_state --rows 20000 --rounds 1   # a quick look

Every contender is a fresh process (``python -m activatepro_async ...``, or
this module's ``--read-hash`` for the baseline), so each pays the same
interpreter start, and runs against one ``activatepro serve`` on 127.0.0.1.
The contenders take turns in each round; a ratio is taken within a round.

(a) An unchanged rerun: ``sync`` of the export against a state that holds all
    of it, over *only reading and hashing* the same file (the same reader,
    ``--map`` rules and content hash, nothing else). Goal <= 1.5x, and 0
    requests (the summary's ``sent`` and ``chunks``: no batch, so no tracking
    poll either). The state file's size per million users is reported.
(b) 1% of the rows changed: ``sync`` of the changed export (against a fresh
    copy of the same state each round) over a full ``import`` of the export.
    Goal <= 0.2x.

:func:`section_sync_state` is what ``run_all`` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import _harness

KEY = "bench-key"
COMMAND = [sys.executable, "-m", "activatepro_async"]


def make_export(path: Path, rows: int, changed_every: int | None = None) -> None:
    """A CRM export of ``rows`` users; every ``changed_every``-th one with a new first name."""
    with path.open("w", encoding="utf-8") as out:
        out.write("id,email,firstName,lastName,gender,birthday,businessUnit\n")
        for i in range(rows):
            name = "Changed" if changed_every and i % changed_every == 0 else "Ada"
            out.write(f"user-{i},user.{i}@example.com,{name},Lovelace,female,1815-12-10,DE\n")


def read_and_hash(path: str) -> int:
    """The baseline: read the export as ``sync`` does and hash each user, nothing more."""
    from activatepro_async._cli.mapping import ColumnPlan
    from activatepro_async._cli.readers import open_source
    from activatepro_async._syncstate import content_hash

    plan = ColumnPlan()
    count = 0
    with open_source(path) as source:
        source.prepare()
        for row in source:
            if row.data is not None:
                user, problems = plan.user(row.data)
                if not problems:
                    content_hash(user)
                    count += 1
    return count


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any] | None]:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[2:5])} failed ({done.returncode}): {done.stderr}")
    lines = done.stdout.strip().splitlines()
    data = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return elapsed, data


def _serve() -> tuple[subprocess.Popen[str], str]:
    command = [*COMMAND, "serve", "--port", "0", "--api-key", KEY, "--log-level", "error"]
    command += ["--request-log-bytes", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if "listening on " in line:
            url = line.split("listening on ", 1)[1].split()[0]
            # The rest of its output is never read: it prints nothing more until it stops.
            return process, url
    raise RuntimeError("activatepro serve did not start")


def run(rows: int = 1_000_000, rounds: int = 3) -> dict[str, Any]:
    """Measure (a) and (b); seconds of each contender per round, the ratios, the state size."""
    work = Path(tempfile.mkdtemp(prefix="bench-sync-state-"))
    server, url = _serve()
    try:
        export, changed = work / "export.csv", work / "changed.csv"
        make_export(export, rows)
        make_export(changed, rows, changed_every=100)
        env = {**os.environ, "ACTIVATEPRO_API_KEY": KEY, "ACTIVATEPRO_BASE_URL": url}
        base = work / "base.sync"
        _timed([*COMMAND, "sync", str(export), "--state", str(base), "--quiet", "--json"], env)
        state = work / "run.sync"

        def sync(csv: Path) -> tuple[float, dict[str, Any] | None]:
            shutil.copyfile(base, state)  # untimed: each round starts from the same state
            return _timed([*COMMAND, "sync", str(csv), "--state", str(state), "-q", "--json"], env)

        contenders = {
            "read_and_hash": lambda: _timed(
                [sys.executable, "-m", "benchmarks.bench_sync_state", "--read-hash", str(export)],
                env,
            ),
            "sync_unchanged": lambda: sync(export),
            "sync_1pct_changed": lambda: sync(changed),
            "import_full": lambda: _timed(
                [*COMMAND, "import", str(export), "--quiet", "--json"], env
            ),
        }
        measured = _harness.alternate(list(contenders), rounds, lambda name: contenders[name]())
        seconds = {name: [t for t, _ in runs] for name, runs in measured.items()}
        unchanged = [data for _, data in measured["sync_unchanged"]]
        one_pct = [data for _, data in measured["sync_1pct_changed"]]
        requests = max(d["chunks"] + d["sync"]["sent"] for d in unchanged if d)
        sent_1pct = max(d["sync"]["sent"] for d in one_pct if d)
        state_bytes = base.stat().st_size
    finally:
        server.terminate()
        server.wait(timeout=60)
        if server.stdout is not None:
            server.stdout.close()
        shutil.rmtree(work, ignore_errors=True)
    ratio_a = [
        u / r for u, r in zip(seconds["sync_unchanged"], seconds["read_and_hash"], strict=True)
    ]
    ratio_b = [
        s / i for s, i in zip(seconds["sync_1pct_changed"], seconds["import_full"], strict=True)
    ]
    return {
        "rows": rows,
        "rounds": rounds,
        "seconds": {name: _harness.Summary.of(values) for name, values in seconds.items()},
        "unchanged_vs_read_hash": _harness.Summary.of(ratio_a),
        "one_pct_vs_import": _harness.Summary.of(ratio_b),
        "unchanged_requests": requests,
        "one_pct_sent": sent_1pct,
        "state_bytes": state_bytes,
        "state_mb_per_million": state_bytes / rows * 1e6 / 2**20,
    }


def markdown(report: dict[str, Any]) -> str:
    a, b = report["unchanged_vs_read_hash"], report["one_pct_vs_import"]
    goals = [
        ["(a) unchanged rerun / read+hash", "<= 1.5", a.show(), a.median <= 1.5],
        ["(a) requests of the unchanged rerun", "0", report["unchanged_requests"],
         report["unchanged_requests"] == 0],
        ["(b) 1% changed sync / full import", "<= 0.2", b.show(), b.median <= 0.2],
    ]  # fmt: skip
    rows = [
        [what, goal, value, "**met**" if met else "**not met**"] for what, goal, value, met in goals
    ]
    times = [[name, s.show(3)] for name, s in report["seconds"].items()]
    return "\n\n".join(
        [
            _harness.markdown_table(["measure", "goal", "median (min-max)", "goal"], rows),
            _harness.markdown_table(["contender", "seconds, median (min-max)"], times),
            f"{report['rows']:,} rows, {report['rounds']} rounds; the 1% run sent "
            f"{report['one_pct_sent']:,} users. State file: {report['state_bytes']:,} bytes, "
            f"**{report['state_mb_per_million']:.1f} MiB per million users**.",
        ]
    )


def section_sync_state(rows: int = 1_000_000, rounds: int = 3) -> tuple[str, dict[str, Any]]:
    """Issue 15's measurements as a RESULTS.md section: (markdown, facts)."""
    report = run(rows, rounds)
    return markdown(report), report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--read-hash", metavar="CSV", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.read_hash:
        print(read_and_hash(args.read_hash))
        return
    command = "python -m benchmarks.bench_sync_state " + " ".join(argv or sys.argv[1:])
    text, _ = section_sync_state(args.rows, args.rounds)
    print(_harness.header(command.strip()))
    print()
    print(text)


if __name__ == "__main__":
    main()
