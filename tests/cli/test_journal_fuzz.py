"""Fuzzing the journal: a real journal, mangled, is refused in one line or resumes to a clean run.

The journal comes from real runs against the emulator: one stopped by a 401
after a chunk failed (503), then a resumed run with bigger chunks (so its first
chunk goes around the chunks journaled before it), stopped by a 401 again.
Each case mangles that journal (a changed byte or bit or digit, a truncation,
a repeated, lost or moved line, CRLF line ends, or a few of these at once),
and reruns the import against an emulator holding what the stopped runs had
stored. Either the rerun refuses the journal (exit 2, one line on stderr, the
journal untouched, nothing sent) or it ends exactly as a clean run does:
every row accounted for, and the emulator's users equal to a clean run's.

The cases are random from a seed printed at the start; replay a failure with
``ACTIVATEPRO_JOURNAL_FUZZ_SEED=<seed>``; ``ACTIVATEPRO_JOURNAL_FUZZ_CASES``
sets how many cases run.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from activatepro_async import RetryPolicy

from .conftest import (
    Invoke,
    assert_no_exception,
    assert_usage_error,
    new_emulator,
    summary,
    write,
)
from .journals import (
    FailAfter,
    FailBatches,
    batch_requests,
    stored,
)

ROWS = 120
CASES = int(os.environ.get("ACTIVATEPRO_JOURNAL_FUZZ_CASES", "54"))
SEED = int(os.environ.get("ACTIVATEPRO_JOURNAL_FUZZ_SEED", str(random.randrange(2**32))))
OPTIONS = ("--concurrency", "1", "--json", "--quiet")


def make_input(path: Path) -> str:
    """Rows with invalid emails (the API rejects them) and missing ids (refused locally)."""
    lines = ["id,email,firstName"]
    for i in range(ROWS):
        if i % 13 == 12:
            lines.append(f"u{i},broken-{i},N{i}")
        elif i % 17 == 16:
            lines.append(f",u{i}@example.com,N{i}")
        else:
            lines.append(f"u{i},u{i}@example.com,Zoë {i}")
    return write(path, "\n".join(lines) + "\n")


def whole_lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")


def join(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def flip_byte(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]


def flip_bit(rng: random.Random, data: bytes) -> bytes:
    at = rng.randrange(len(data))
    return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]


def change_digit(rng: random.Random, data: bytes) -> bytes:
    digits = [i for i, byte in enumerate(data) if 0x30 <= byte <= 0x39]
    at = rng.choice(digits)
    other = rng.choice([d for d in b"0123456789" if d != data[at]])
    return data[:at] + bytes([other]) + data[at + 1 :]


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def repeat_line(rng: random.Random, data: bytes) -> bytes:
    lines = whole_lines(data)
    lines.insert(rng.randrange(len(lines) + 1), rng.choice(lines))
    return join(lines)


def drop_line(rng: random.Random, data: bytes) -> bytes:
    lines = whole_lines(data)
    del lines[rng.randrange(len(lines))]
    return join(lines)


def swap_lines(rng: random.Random, data: bytes) -> bytes:
    lines = whole_lines(data)
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    lines[i], lines[j] = lines[j], lines[i]
    return join(lines)


def crlf(rng: random.Random, data: bytes) -> bytes:
    data = data.replace(b"\n", b"\r\n")
    return data[: len(data) - rng.randrange(60)]  # and maybe a torn last line


Mangle = Callable[[random.Random, bytes], bytes]
SIMPLE: list[Mangle] = [
    flip_byte, flip_bit, change_digit, truncate, repeat_line, drop_line, swap_lines, crlf,
]  # fmt: skip


def several(rng: random.Random, data: bytes) -> bytes:
    for mangle in rng.sample(SIMPLE, rng.randint(2, 3)):
        if data:
            data = mangle(rng, data)
    return data


MANGLES: list[Mangle] = [*SIMPLE, several]


def history(invoke: Invoke, tmp_path: Path, path: str) -> tuple[bytes, dict[str, Any]]:
    """The journal and the emulator's users after two stopped runs.

    The first run's first chunk fails (503), and a 401 stops it after its
    first window; the second run resends that chunk's rows in a bigger chunk
    with rows after the first window's, then a 401 stops it too.
    """
    emulator = new_emulator()
    journal = tmp_path / "history.journal"
    no_retries = RetryPolicy(max_retries=0)
    args = ("import", path, "--journal", str(journal), *OPTIONS)
    first = invoke(
        *args, "--chunk-size", "10", retry=no_retries,
        transport=FailAfter(FailBatches(emulator.transport(), {1}), batches=4),
    )  # fmt: skip
    second = invoke(
        *args, "--chunk-size", "15", retry=no_retries,
        transport=FailAfter(emulator.transport(), batches=2),
    )  # fmt: skip
    assert (first.exit_code, second.exit_code) == (2, 2), first.output + second.output
    data = journal.read_bytes()
    spans = [[c["lines"] for c in json.loads(line)["chunks"]] for line in data.splitlines()[1:]]
    # A chunk of the resumed run went around chunks the first run journaled.
    assert any(
        first < a and b < last
        for later, chunks in enumerate(spans)
        for first, last in chunks
        for earlier in spans[:later]
        for a, b in earlier
    ), spans
    return data, stored(emulator)


def test_a_mangled_journal_is_refused_in_one_line_or_resumes_to_a_clean_run(
    invoke: Invoke, tmp_path: Path
) -> None:
    print(f"journal fuzz seed {SEED}: replay with ACTIVATEPRO_JOURNAL_FUZZ_SEED={SEED}")
    path = make_input(tmp_path / "users.csv")
    clean_emulator = new_emulator()
    clean_run = invoke("import", path, *OPTIONS, transport=clean_emulator.transport())
    clean = stored(clean_emulator)
    expected = {key: summary(clean_run)[key] for key in ("rows", "accepted", "rejected")}
    assert clean_run.exit_code == 1
    assert expected["rejected"] > 0
    data, stopped = history(invoke, tmp_path, path)

    outcomes: Counter[str] = Counter()
    for case in range(CASES):
        rng = random.Random(f"{SEED}/{case}")
        mangle = MANGLES[case % len(MANGLES)]
        mangled = mangle(rng, data)
        where = f"seed {SEED}, case {case} ({mangle.__name__}): {mangled!r}"
        journal = tmp_path / f"case-{case}.journal"
        journal.write_bytes(mangled)
        emulator = new_emulator()
        emulator.seed(*stopped.values())
        run = ("import", path, "--journal", str(journal), "--chunk-size", "10", *OPTIONS)
        backend = ("asyncio", "trio")[case % 2]
        result = invoke(*run, transport=emulator.transport(), backend=backend)
        if result.exit_code == 2:
            assert_usage_error(result, str(journal))
            assert journal.read_bytes() == mangled, where
            assert batch_requests(emulator) == 0, where
            outcomes["refused"] += 1
            continue
        assert_no_exception(result)
        assert result.exit_code == 1, f"{where}\n{result.output}"
        counts = summary(result)
        assert {key: counts[key] for key in expected} == expected, where
        assert counts["failed"] == 0, where
        assert stored(emulator) == clean, where
        again = summary(invoke(*run, transport=emulator.transport(), backend=backend))
        assert (again["sent"], again["skipped"]) == (0, ROWS), where
        outcomes["resumed"] += 1
    print(f"journal fuzz: {dict(outcomes)}")
    # Truncations always resume, repeated lines never do.
    assert outcomes["refused"], outcomes
    assert outcomes["resumed"], outcomes
