"""The live progress display, rendered at the widths of real terminals."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from activatepro_async._cli.engine import Summary
from activatepro_async._cli.progress import LiveProgress

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Source:
    name = "export.csv"
    bytes_read = 40_000
    total_bytes = 100_000


def rendered(width: int, **counts: int) -> list[str]:
    """The last frame the display drew on a terminal ``width`` columns wide, as lines."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=width, color_system=None)
    state = Summary("upsert", "export.csv", **counts)
    state.elapsed = 2.0  # a known rate: settled rows / 2 s
    with LiveProgress("importing", enabled=True, console=console) as live:
        live.update(state, Source())  # type: ignore[arg-type]
    frames = _ANSI.sub("", out.getvalue()).replace("\r", "\n")
    lines = [line.rstrip() for line in frames.splitlines() if line.strip()]
    return lines[-2:]


BUSY = {"rows": 17_152, "sent": 16_964, "accepted": 16_500, "rejected": 230, "failed": 1_000}


@pytest.mark.parametrize("width", [80, 120])
def test_bar_percentage_rate_and_eta_show_at_80_columns_and_more(width: int) -> None:
    bar, counts = rendered(width, **BUSY)
    assert all(len(line) <= width for line in (bar, counts)), (bar, counts)
    assert "━" in bar
    assert re.search(r"\b\d{1,3}%", bar), bar
    assert "8,865 rows/s" in bar
    assert re.search(r"ETA \d+:\d\d", bar), bar
    assert "importing" in bar
    # The detail is on its own line, the most telling counts first.
    assert counts.lstrip().startswith("accepted 16,500 · rejected 230 · failed 1,000")
    assert "read 17,152" in counts


def test_at_40_columns_the_bar_and_percentage_stay_and_detail_drops_by_priority() -> None:
    bar, counts = rendered(40, **BUSY)
    assert all(len(line) <= 40 for line in (bar, counts)), (bar, counts)
    assert "━" in bar
    assert re.search(r"\b\d{1,3}%", bar), bar
    assert "ETA" in bar
    assert "importing" not in bar  # the title goes first
    assert counts.strip() == "accepted 16,500 · rejected 230"


def test_without_a_known_size_there_is_no_percentage_or_eta() -> None:
    class Pipe(Source):
        total_bytes = None  # type: ignore[assignment]

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system=None)
    state = Summary("upsert", "-", rows=10, accepted=10)
    state.elapsed = 1.0
    live = LiveProgress("importing", enabled=True, console=console)
    live.update(state, Pipe())  # type: ignore[arg-type]
    console.print(live)
    text = _ANSI.sub("", out.getvalue())
    assert "10 rows/s" in text
    assert "%" not in text
    assert "ETA" not in text


def test_while_processing_the_bar_follows_the_tracking_ids() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80, color_system=None)
    state = Summary("upsert", "export.csv", rows=10, sent=10, accepted=10)
    state.tracked, state.tracking_total = 3, 10
    live = LiveProgress("importing", enabled=True, console=console)
    live.phase("processing")
    live.update(state, Source())  # type: ignore[arg-type]
    console.print(live)
    bar, counts = _ANSI.sub("", out.getvalue()).splitlines()
    assert bar.startswith("⠋ processing ")
    assert " 30% " in bar
    assert counts.strip().startswith("tracking ids done 3/10 · accepted 10")
