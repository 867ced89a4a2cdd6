"""The live progress bar and the summary, drawn with rich.

The bar goes to stderr and only when stderr is a terminal, so a pipeline
(``activatepro import users.csv --json | jq``) sees no control characters;
the summary goes to stdout (plain text when stdout is not a terminal).
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from .engine import RowSource, Summary

__all__ = ["LiveProgress", "print_summary"]

_SCALE = 10_000


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class LiveProgress:
    """A rich progress bar showing rows read, sent, accepted, rejected, rate and ETA.

    Use it as a context manager; it draws nothing when ``enabled`` is false
    (stderr is not a terminal, or ``--quiet``).
    """

    def __init__(self, title: str, *, enabled: bool, console: Console | None = None) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.enabled = enabled and self.console.is_terminal
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[counts]}"),
            console=self.console,
            disable=not self.enabled,
            refresh_per_second=8,
            transient=False,
        )
        self._title = title
        self._task: TaskID = self._progress.add_task(title, total=_SCALE, counts="starting")
        self._last = 0.0
        self._phase: str | None = None

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def phase(self, text: str) -> None:
        """Name what the run does now (e.g. waiting for processing)."""
        self._phase = text

    def update(self, summary: Summary, source: RowSource) -> None:
        """Show the counts of ``summary`` (at most about ten times a second)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        done = summary.done
        total_units = source.total_bytes
        fraction: float | None = None
        if total_units:
            # Units read so far, scaled by the share of the rows read that are settled.
            read_share = min(1.0, source.bytes_read / total_units)
            fraction = read_share * (done / summary.rows if summary.rows else 0.0)
        parts = [f"read {summary.rows:,}", f"sent {summary.sent:,}"]
        if summary.skipped:
            parts.append(f"skipped {summary.skipped:,}")
        parts.append(f"[green]accepted {summary.accepted:,}[/]")
        rejected = summary.rejected
        parts.append(f"[{'red' if rejected else 'dim'}]rejected {rejected:,}[/]")
        failed = summary.failed
        if failed:
            parts.append(f"[red]failed {failed:,}[/]")
        rate = summary.rate
        parts.append(f"{rate:,.0f} {summary.unit}/s")
        if fraction and 0 < fraction < 1 and rate > 0 and summary.rows:
            estimated_rows = summary.rows / min(1.0, max(source.bytes_read / total_units, 1e-9))  # type: ignore[operator]
            parts.append(f"ETA {_duration((estimated_rows - done) / rate)}")
        description = self._title
        if self._phase == "processing":
            description = "processing"
            parts.append(f"tracking ids done {summary.tracked:,}/{summary.tracking_total:,}")
        completed = _SCALE * (fraction if fraction is not None else 0.0)
        if self._phase == "processing":
            completed = _SCALE
        self._progress.update(
            self._task,
            completed=completed,
            counts=" · ".join(parts),
            description=description,
            total=_SCALE if total_units else None,
        )


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


def print_summary(
    summary: Summary, console: Console, *, title: str | None = None, footer: str | None = None
) -> None:
    """Print the summary a person reads at a glance (``footer`` replaces the verdict)."""
    what = (
        "Dry run of"
        if summary.dry_run
        else ("Deleted from" if summary.operation == "delete" else "Imported")
    )
    elapsed = summary.elapsed
    head = Text.assemble(
        (title or f"{what} {summary.input}", "bold"),
        f"  {summary.rows:,} {summary.unit} in {elapsed:.1f} s",
        (f"  {summary.rate:,.0f} {summary.unit}/s", "bold cyan"),
    )
    console.print(head)
    table = Table.grid(padding=(0, 2))
    table.add_column(style="dim")
    table.add_column(justify="right")
    table.add_column()
    if summary.skipped:
        table.add_row("skipped", _count(summary.skipped), "settled by earlier runs (journal)")
    for key, note in _SYNC_ROWS if summary.sync is not None else ():
        table.add_row(key, _count(summary.sync[key]), note)  # type: ignore[index]
    if summary.dry_run:
        table.add_row("valid", Text(_count(summary.valid), style="green"), "would be sent")
    else:
        table.add_row("accepted", Text(_count(summary.accepted), style="green"), "")
    table.add_row(
        "rejected",
        Text(_count(summary.rejected), style="red" if summary.rejected else ""),
        f"see {summary.rejects_file}" if summary.rejects_file and summary.rejected else "",
    )
    for name, count in summary.reasons.most_common(8):
        table.add_row("", Text(_count(count), style="red"), name)
    if len(summary.reasons) > 8:
        table.add_row("", "", f"... and {len(summary.reasons) - 8} more reasons")
    if not summary.dry_run:
        table.add_row(
            "failed",
            Text(_count(summary.failed), style="red" if summary.failed else ""),
            (
                f"in {len(summary.failed_chunks)} chunks: rerun to send them again"
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
    tracking = summary.tracking
    if tracking is not None:
        detail = f"{tracking['success']:,} stored, {tracking['error']:,} errors"
        if summary.processing_errors:
            detail += f" ({summary.processing_errors:,} of them at processing)"
        table.add_row("processed", _count(tracking["total"]), detail)
    if summary.tracking_failures:
        table.add_row(
            "not followed",
            Text(_count(len(summary.tracking_failures)), style="yellow"),
            "tracking ids not followed to PROCESSED",
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
        console.print(Text(f"OK: every row was {done}", style="bold green"))
    else:
        verb = "would not be sent" if summary.dry_run else "were not stored"
        where = (
            f"the rejects are in {summary.rejects_file}"
            if summary.rejects_file
            else "pass --rejects FILE to keep them"
        )
        console.print(Text(f"Some rows {verb}: {where}", style="bold red"))


def _journal_text(journal: dict[str, Any]) -> str:
    text = str(journal["path"])
    if journal.get("resumed"):
        text += f" (resumed: {journal['chunks_before']:,} chunks accepted by earlier runs)"
    return text
