"""The live progress bar and the summary, drawn with rich.

The bar goes to stderr and only when stderr is a terminal, so a pipeline
(``activatepro import users.csv --json | jq``) sees no control characters;
the summary goes to stdout (plain text when stdout is not a terminal).
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from .engine import RowSource, Summary

__all__ = ["LiveProgress", "print_summary"]

# The bar is never narrower than this (else it is no bar) nor wider (a long
# bar says no more, and leaves the rate and ETA far from the counts).
_MIN_BAR = 10
_MAX_BAR = 40


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class LiveProgress:
    """A live two-line progress display of a run, drawn to fit the terminal's width.

    The first line is the bar with the percentage, the rate and the ETA; the
    second the counts (accepted, rejected, failed, read, sent, ...). What does
    not fit is left out by priority: on the first line the title, then the
    rate, then the ETA, before the bar gets narrower than 10 columns; on the
    second the later counts. Use it as a context manager; it draws nothing
    when ``enabled`` is false (stderr is not a terminal, or ``--quiet``).
    """

    def __init__(self, title: str, *, enabled: bool, console: Console | None = None) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self._title = title
        self._phase: str | None = None
        self._summary: Summary | None = None
        self._source: RowSource | None = None
        self._spinner = Spinner("dots")
        self._live = Live(
            self, console=self.console, refresh_per_second=8, transient=False, auto_refresh=True
        )

    def __enter__(self) -> LiveProgress:
        if self.enabled:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self._live.stop()

    def phase(self, text: str) -> None:
        """Name what the run does now (e.g. waiting for processing)."""
        self._phase = text

    def update(self, summary: Summary, source: RowSource) -> None:
        """Show the counts of ``summary``: the display reads them at its next refresh."""
        self._summary = summary
        self._source = source

    # -- drawing ---------------------------------------------------------------------

    def _spin(self) -> Text:
        frame = self._spinner.render(time.monotonic())
        return frame if isinstance(frame, Text) else Text(str(frame))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        summary, source = self._summary, self._source
        if summary is None or source is None:
            yield Text.assemble(self._spin(), f" {self._title}: starting")
            return
        yield self._bar_line(summary, source, width)
        yield self._counts_line(summary, width)

    def _bar_line(self, summary: Summary, source: RowSource, width: int) -> Table:
        processing = self._phase == "processing"
        total = source.total_bytes
        fraction: float | None = None
        read_share = 0.0
        if processing:  # the share of tracking ids followed to PROCESSED
            fraction = summary.tracked / summary.tracking_total if summary.tracking_total else 1.0
        elif total:
            # The share of the file read, scaled by the share of its rows settled.
            read_share = min(1.0, source.bytes_read / total)
            fraction = read_share * (summary.done / summary.rows if summary.rows else 0.0)
        rate = summary.rate
        eta = ""
        if not processing and fraction and 0 < fraction < 1 and rate > 0 and summary.rows:
            estimated_rows = summary.rows / max(read_share, 1e-9)
            eta = f"ETA {_duration((estimated_rows - summary.done) / rate)}"
        title = "processing" if processing else self._title
        percent = f"{fraction * 100:3.0f}%" if fraction is not None else ""
        cells = {
            "title": title,
            "percent": percent,
            "rate": f"{rate:,.0f} {summary.unit}/s",
            "eta": eta,
        }
        # The spinner, then what fits around a bar of at least _MIN_BAR.
        shown = ["percent"]
        used = 2 + len(percent) + 1 + _MIN_BAR
        for name in ("eta", "rate", "title"):
            if cells[name] and used + len(cells[name]) + 1 <= width:
                shown.append(name)
                used += len(cells[name]) + 1
        bar_width = max(1, min(_MAX_BAR, width - used + _MIN_BAR))
        bar = ProgressBar(
            total=1.0 if fraction is not None else None,
            completed=fraction or 0.0,
            width=bar_width,
        )
        row: list[Any] = [self._spin()]
        if "title" in shown:
            row.append(Text(title, style="bold"))
        row.append(bar)
        row.extend(Text(cells[name]) for name in ("percent", "rate", "eta") if name in shown)
        grid = Table.grid(padding=(0, 1))
        for _ in row:
            grid.add_column(no_wrap=True)
        grid.add_row(*row)
        return grid

    def _counts_line(self, summary: Summary, width: int) -> Text:
        parts: list[tuple[str, str]] = []
        if self._phase == "processing":
            parts.append((f"tracking ids done {summary.tracked:,}/{summary.tracking_total:,}", ""))
        parts.append((f"accepted {summary.accepted:,}", "green"))
        rejected = summary.rejected
        parts.append((f"rejected {rejected:,}", "red" if rejected else "dim"))
        if summary.failed:
            parts.append((f"failed {summary.failed:,}", "red"))
        parts.append((f"read {summary.rows:,}", ""))
        parts.append((f"sent {summary.sent:,}", ""))
        if summary.skipped:
            parts.append((f"skipped {summary.skipped:,}", ""))
        line = Text("  ")
        for text, style in parts:
            sep = " · " if len(line) > 2 else ""
            if len(line) + len(sep) + len(text) > width:
                break
            line.append(sep)
            line.append(text, style=style)
        return line


#: The rows of a sync's counts (``activatepro sync``), in the summary's order.
_SYNC_ROWS = (
    ("new", "not in the state"),
    ("changed", "another hash than the confirmed one"),
    ("unchanged", "not sent"),
    ("sent", ""),
    ("confirmed", "processed by the API: in the state"),
    ("unconfirmed", "accepted, not processed cleanly: sent again next run"),
    ("missing", "in the state, not in this export"),
    ("deleted", "deleted, and the delete processed"),
)


def _count(value: int) -> str:
    return f"{value:,}"


def _reading_text(reading: dict[str, Any]) -> str:
    """``CSV, delimiter ';' (detected), gzip``: how the input was read."""
    parts = [
        {"csv": "CSV", "jsonl": "JSON Lines", "lines": "one id a line"}.get(
            str(reading.get("format")), str(reading.get("format"))
        )
    ]
    if reading.get("delimiter") is not None:
        how = "detected; --delimiter to change" if reading.get("detected") else "--delimiter"
        parts.append(f"delimiter {reading['delimiter']!r} ({how})")
        if reading.get("quotechar", '"') != '"':
            parts.append(f"quote {reading['quotechar']!r}")
    if reading.get("compression"):
        parts.append(str(reading["compression"]))
    return ", ".join(parts)


def print_summary(
    summary: Summary, console: Console, *, title: str | None = None, footer: str | None = None
) -> None:
    """Print the summary a person reads at a glance (``footer`` replaces the verdict).

    It says what the API accepted (took for processing), what it then stored
    (deleted, for a delete) and how many accepted users failed at processing,
    which the API counts but does not name.
    """
    deleting = summary.operation == "delete"
    what = "Dry run of" if summary.dry_run else ("Deleted from" if deleting else "Imported")
    unit = summary.unit
    head = Text.assemble(
        (title or f"{what} {summary.input}", "bold"),
        f"  {summary.rows:,} {unit} in {summary.elapsed:.1f} s",
        (f"  {summary.rate:,.0f} {unit}/s", "bold cyan"),
    )
    console.print(head)
    if summary.reading is not None:
        console.print(Text(f"read as {_reading_text(summary.reading)}", style="dim"))
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim", no_wrap=True)
    table.add_column(justify="right", no_wrap=True)
    table.add_column()
    if summary.skipped:
        table.add_row("skipped", _count(summary.skipped), "settled by earlier runs (journal)")
    for key, note in _SYNC_ROWS if summary.sync is not None else ():
        table.add_row(key, _count(summary.sync[key]), note)  # type: ignore[index]
    if summary.dry_run:
        table.add_row("valid", Text(_count(summary.valid), style="green"), "would be sent")
    else:
        table.add_row(
            "accepted",
            Text(_count(summary.accepted), style="green"),
            "taken by the API for processing",
        )
    table.add_row(
        "rejected",
        Text(_count(summary.rejected), style="red" if summary.rejected else ""),
        (
            ("refused here or by the API" if not summary.dry_run else "would not be sent")
            + (f": see {summary.rejects_file}" if summary.rejects_file else "")
        )
        if summary.rejected
        else "",
    )
    if summary.reasons:
        table.add_row("", "", Text("errors by reason (a row may have several):", style="dim"))
    for name, count in summary.reasons.most_common(8):
        table.add_row("", Text(_count(count), style="red"), name)
    if len(summary.reasons) > 8:
        table.add_row("", "", f"... and {len(summary.reasons) - 8} more reasons")
    if not summary.dry_run:
        table.add_row(
            "failed",
            Text(_count(summary.failed), style="red" if summary.failed else ""),
            (
                f"not sent after all retries, in {len(summary.failed_chunks)} chunks: "
                "rerun to send them again"
                if summary.failed_chunks
                else ""
            ),
        )
        for chunk in summary.failed_chunks[:3]:
            lines = chunk["lines"]
            where = f"lines {lines[0]}-{lines[1]}" if lines else "chunk"
            table.add_row("", "", Text(f"{where}: {chunk['error']}", style="red"))
        retries = f"{summary.retries:,} retries"
        if summary.lowest_concurrency < summary.max_concurrency:
            retries += (
                f"; concurrency {summary.max_concurrency} -> {summary.lowest_concurrency} "
                "on 429/503 (adaptive)"
            )
        table.add_row("chunks", _count(summary.chunks), retries)
        _processing_rows(table, summary, "deleted" if deleting else "stored")
    if summary.duplicate_rows:
        shown = summary.duplicate_lines
        lines = ("line " if len(shown) == 1 else "lines ") + ", ".join(map(str, shown))
        if summary.duplicate_rows > len(shown):
            lines += ", ..."
        table.add_row(
            "repeated ids",
            Text(_count(summary.duplicate_rows), style="yellow"),
            f"rows repeat an earlier row's id ({lines})"
            + ("" if deleting else ": the API merges them into one user"),
        )
    if summary.journal is not None:
        table.add_row("journal", "", _journal_text(summary.journal))
    if summary.stopped_by:
        table.add_row("stopped", "", Text(summary.stopped_by, style="red"))
    console.print(table)
    if footer is not None:
        console.print(footer)
    elif summary.ok:
        done = "valid" if summary.dry_run else "accepted"
        if summary.tracking is not None and not summary.dry_run:
            done = "deleted" if deleting else "stored"
        console.print(Text(f"OK: every row was {done}", style="bold green"))
    else:
        verb = "would not be sent" if summary.dry_run else "were not stored"
        if deleting and not summary.dry_run:
            verb = "were not deleted"
        where = (
            f"the rejects are in {summary.rejects_file}"
            if summary.rejects_file
            else "pass --rejects FILE to keep them"
        )
        if not summary.rejected:
            where = "see above"
        console.print(Text(f"Some rows {verb}: {where}", style="bold red"))


def _processing_rows(table: Table, summary: Summary, done: str) -> None:
    """What became of the accepted users once processed (``--wait``), or that it is not known."""
    tracking = summary.tracking
    if tracking is None:
        # A sync follows its tracking ids itself: its "confirmed" row says how it went.
        if summary.accepted and summary.sync is None:
            table.add_row("processed", "", f"not followed: --wait shows how many were {done}")
        return
    table.add_row(done, Text(_count(tracking["success"]), style="green"), f"processed and {done}")
    failed = summary.processing_errors
    table.add_row(
        "failed later",
        Text(_count(failed), style="red" if failed else ""),
        (
            "accepted, then refused when processed (e.g. an email taken in the business "
            "unit): the API counts them and does not say which users"
        )
        if failed
        else "none of the accepted failed at processing",
    )
    if summary.tracking_failures:
        table.add_row(
            "not followed",
            Text(_count(len(summary.tracking_failures)), style="yellow"),
            "tracking ids not followed to PROCESSED",
        )


def _journal_text(journal: dict[str, Any]) -> str:
    text = str(journal["path"])
    if journal.get("resumed"):
        text += f" (resumed: {journal['chunks_before']:,} chunks accepted by earlier runs)"
    return text
