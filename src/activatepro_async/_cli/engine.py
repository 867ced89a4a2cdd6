"""One import (or delete) run of the command, on the SDK's bulk engine.

The path of a run: rows come from a reader (:mod:`.readers`) in batches read
in a worker thread (so a slow pipe never stalls the requests in flight); each
row becomes a user through the :class:`~.mapping.ColumnPlan`, or a reject;
the users go to :meth:`AsyncClient.upsert_many` (or ``delete_many``) one
*window* at a time; when a window's bulk run has finished, its accepted chunks
and its rejects are written to the journal and the rejects file. With
``wait``, every tracking id is then polled to ``PROCESSED``.

Why windows: the bulk engine reports a chunk's tracking id as the chunk
finishes, but its rejected users only in the result of the whole run. A
chunk can be journaled only together with its rejects (else a crash would
lose them), so the run is cut into windows of ``concurrency * 4`` chunks:
within one, the engine's concurrency (adaptive on 429/503) works as usual;
a crash resends at most the window in flight.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import attrs

from ..errors import (
    ActivateProError,
    ApiError,
    AuthenticationError,
    BulkError,
    ErrorCode,
    NotFoundError,
    PermissionDeniedError,
)
from .mapping import ColumnPlan, api_checks, read_problem
from .rejects import RejectsWriter, reject_record

if TYPE_CHECKING:
    from ..bulk import BulkProgress, BulkResult
    from ..client import AsyncClient
    from .journal import Journal
    from .readers import SourceRow

__all__ = ["Progress", "RowSource", "RunOptions", "Summary", "run"]

_READ_BATCH = 1000


class RowSource(Protocol):
    """What the run reads: rows, and how far it got (for the progress bar)."""

    name: str
    bytes_read: int
    total_bytes: int | None

    def __iter__(self) -> Iterator[SourceRow]: ...

    def raw_row(self, row: SourceRow) -> Any: ...


class Progress(Protocol):
    """Where a run reports its counts as they change (the live bar, or nothing)."""

    def update(self, summary: Summary, source: RowSource) -> None: ...

    def phase(self, text: str) -> None: ...


class StopRun(Exception):
    """The run had to stop early for a reason the user must fix (exit 2)."""


@attrs.define
class RunOptions:
    """How a run sends: the bulk engine's settings and the command's modes."""

    operation: str = "upsert"
    chunk_size: int = 1000
    concurrency: int = 8
    wait: bool = False
    wait_timeout: float = 300.0
    dry_run: bool = False
    #: Rows per window; ``None``: ``chunk_size * concurrency * 4``.
    window_rows: int | None = None

    @property
    def window(self) -> int:
        """The rows of one window."""
        if self.window_rows is not None:
            return self.window_rows
        return self.chunk_size * max(self.concurrency, 1) * 4


@attrs.define
class Summary:
    """What a run did with every row: the counts the summary and ``--json`` show.

    ``rows == skipped_accepted + accepted + rejected + failed (+ valid on a dry run)``
    where ``accepted`` and ``rejected`` include what earlier runs of a journal
    settled (``skipped`` rows).
    """

    operation: str
    input: str
    dry_run: bool = False
    #: What a row is called in the summary ("users" in the demo).
    unit: str = "rows"
    rows: int = 0
    skipped: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    valid: int = 0
    failed: int = 0
    retries: int = 0
    chunks: int = 0
    concurrency: int = 0
    max_concurrency: int = 0
    lowest_concurrency: int = 0
    started: float = attrs.field(factory=time.perf_counter)
    elapsed: float = 0.0
    reasons: Counter[str] = attrs.field(factory=Counter)
    failed_chunks: list[dict[str, Any]] = attrs.field(factory=list)
    tracking: dict[str, int] | None = None
    tracked: int = 0
    tracking_total: int = 0
    tracking_failures: list[str] = attrs.field(factory=list)
    tracking_expired: int = 0
    rejects_file: str | None = None
    journal: dict[str, Any] | None = None
    stopped_by: str | None = None
    # The counts of the window in flight (from the bulk engine's progress).
    live_accepted: int = 0
    live_rejected: int = 0
    live_failed: int = 0
    live_sent: int = 0

    @property
    def processing_errors(self) -> int:
        """Users the API accepted but could not apply (e.g. an email taken in that BU)."""
        return 0 if self.tracking is None else self.tracking.get("processing_errors", 0)

    @property
    def ok(self) -> bool:
        """True when every row was stored (or, on a dry run, would be sent)."""
        return not (
            self.rejected
            or self.failed
            or self.processing_errors
            or self.tracking_failures
            or self.stopped_by
        )

    @property
    def exit_code(self) -> int:
        """0 when every row was accepted, else 1."""
        return 0 if self.ok else 1

    @property
    def done(self) -> int:
        """Rows settled so far: accepted, rejected, failed (or valid on a dry run)."""
        return (
            self.accepted
            + self.rejected
            + self.failed
            + self.valid
            + self.live_accepted
            + self.live_rejected
            + self.live_failed
        )

    @property
    def rate(self) -> float:
        """Rows settled per second of this run (skipped rows not counted)."""
        elapsed = self.elapsed or (time.perf_counter() - self.started)
        return (self.done - self.skipped) / elapsed if elapsed > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The machine-readable summary (``--json``)."""
        return {
            "command": self.operation if self.operation != "upsert" else "import",
            "input": self.input,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "rows": self.rows,
            "skipped": self.skipped,
            "sent": self.sent,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "valid": self.valid if self.dry_run else None,
            "failed": self.failed,
            "rejected_by_reason": dict(self.reasons.most_common()),
            "failed_chunks": self.failed_chunks,
            "chunks": self.chunks,
            "retries": self.retries,
            "lowest_concurrency": self.lowest_concurrency,
            "elapsed_s": round(self.elapsed, 3),
            "rows_per_s": round(self.rate, 1),
            "tracking": self.tracking,
            "tracking_not_followed": len(self.tracking_failures),
            "tracking_expired": self.tracking_expired,
            "rejects_file": self.rejects_file,
            "journal": self.journal,
            "stopped_by": self.stopped_by,
        }


def reason(error: ApiError) -> str:
    """The key of "rejected by reason": the title and code of an error."""
    code = int(error.code)
    return f"{error.title or 'Error'} ({code})" if code else error.title or "Unreadable Record"


class _NoProgress:
    def update(self, summary: Summary, source: RowSource) -> None:
        pass

    def phase(self, text: str) -> None:
        pass


@attrs.define
class _Window:
    """The rows of one window that went to the bulk engine, by input position."""

    rows: list[SourceRow] = attrs.field(factory=list)
    rejects: list[dict[str, Any]] = attrs.field(factory=list)
    chunks: list[BulkProgress] = attrs.field(factory=list)
    read: int = 0


class _Run:
    def __init__(
        self,
        client: AsyncClient | None,
        source: RowSource,
        plan: ColumnPlan,
        options: RunOptions,
        *,
        journal: Journal | None,
        rejects: RejectsWriter,
        progress: Progress,
    ) -> None:
        self.client = client
        self.source = source
        self.plan = plan
        self.options = options
        self.journal = journal
        self.rejects = rejects
        self.progress = progress
        self.summary = Summary(options.operation, source.name, dry_run=options.dry_run)
        self.summary.rejects_file = rejects.path
        self.summary.concurrency = options.concurrency
        self.summary.max_concurrency = options.concurrency
        self.summary.lowest_concurrency = options.concurrency
        # (tracking id, users the API rejected, from an earlier run of the journal)
        self.tracking: list[tuple[str, int, bool]] = []
        self.exhausted = False
        self.input_error: BaseException | None = None

    # -- reading ----------------------------------------------------------------------

    async def rows(self) -> AsyncGenerator[SourceRow, None]:
        iterator = iter(self.source)

        def take() -> list[SourceRow]:
            batch = []
            for row in iterator:
                batch.append(row)
                if len(batch) >= _READ_BATCH:
                    break
            return batch

        while True:
            # Abandoned on cancel (Ctrl-C), so a read blocked on an idle pipe cannot hang the exit.
            batch = await anyio.to_thread.run_sync(take, abandon_on_cancel=True)
            if not batch:
                return
            for row in batch:
                yield row

    def settle_locally(self, window: _Window, row: SourceRow) -> Any | None:
        """The item to send for a row, or None when the row is settled here."""
        summary = self.summary
        summary.rows += 1
        window.read += 1
        journal = self.journal
        if journal is not None and journal.is_done(row.line):
            summary.skipped += 1
            return None
        if row.data is None:
            self.reject(window, row, None, "read", [read_problem(row.problem or "unreadable")])
            return None
        item: Any
        if self.plan.operation == "upsert":
            item, problems = self.plan.user(row.data)
            if not problems and self.options.dry_run:
                problems = api_checks(item)
            user_id = item.get("id")
        else:
            item, problems = self.plan.user_id(row.data)
            user_id = item
        if problems:
            stage = "dry-run" if self.options.dry_run else "local"
            self.reject(window, row, user_id if isinstance(user_id, str) else None, stage, problems)
            return None
        if self.options.dry_run:
            summary.valid += 1
            return None
        return item

    def reject(
        self,
        window: _Window,
        row: SourceRow,
        user_id: str | None,
        stage: str,
        errors: list[ApiError] | tuple[ApiError, ...],
    ) -> None:
        self.summary.rejected += 1
        for error in errors:
            self.summary.reasons[reason(error)] += 1
        window.rejects.append(
            reject_record(row.line, user_id, stage, self.source.raw_row(row), errors)
        )

    # -- one window ---------------------------------------------------------------------

    async def window_items(
        self, rows: AsyncIterator[SourceRow], window: _Window
    ) -> AsyncIterator[Any]:
        limit = self.options.window
        while window.read < limit:
            try:
                row = await rows.__anext__()
            except StopAsyncIteration:
                self.exhausted = True
                return
            except Exception as exc:  # the input broke: send what was read, then stop
                self.input_error = exc
                self.exhausted = True
                return
            item = self.settle_locally(window, row)
            if window.read % 256 == 0:
                self.progress.update(self.summary, self.source)
            if item is not None:
                window.rows.append(row)
                yield item

    async def send_window(self, rows: AsyncIterator[SourceRow]) -> None:
        window = _Window()
        summary = self.summary
        if self.options.dry_run or self.client is None:
            async for _ in self.window_items(rows, window):
                pass  # a dry run settles every row in settle_locally()
            self.finish_window(window, None)
            return

        def on_progress(progress: BulkProgress) -> None:
            if progress.chunk_tracking_id is not None:
                window.chunks.append(progress)
            summary.live_accepted = progress.accepted
            summary.live_rejected = progress.rejected
            summary.live_failed = progress.failed
            summary.concurrency = progress.concurrency
            summary.lowest_concurrency = min(summary.lowest_concurrency, progress.concurrency)
            summary.live_sent = progress.submitted
            self.progress.update(summary, self.source)

        client = self.client
        bulk = client.upsert_many if self.plan.operation == "upsert" else client.delete_many
        result: BulkResult | None = None
        stop: BaseException | None = None
        try:
            result = await bulk(
                self.window_items(rows, window),
                chunk_size=self.options.chunk_size,
                concurrency=self.options.concurrency,
                on_progress=on_progress,
                raise_on_failure=False,
            )
        except BulkError as exc:
            result = exc.result
            stop = exc.__cause__ or exc
        summary.live_accepted = summary.live_rejected = summary.live_failed = 0
        summary.live_sent = 0
        self.finish_window(window, result)
        if stop is not None:
            if isinstance(stop, (AuthenticationError, PermissionDeniedError)):
                raise StopRun(
                    f"the API refused the key ({getattr(stop, 'status_code', '?')}): check "
                    "--api-key / ACTIVATEPRO_API_KEY and --base-url"
                ) from stop
            summary.stopped_by = f"{type(stop).__name__}: {stop}"
            self.exhausted = True

    def finish_window(self, window: _Window, result: BulkResult | None) -> None:
        """Account for a finished window; journal its accepted chunks and its rejects."""
        summary = self.summary
        chunks: list[dict[str, Any]] = []
        if result is not None:
            summary.sent += result.submitted
            summary.accepted += result.accepted
            summary.retries += result.retries
            summary.chunks += result.chunks
            api_rejected: Counter[int] = Counter()
            positions = {p: c for c in window.chunks for p in c.chunk_positions}
            for rejected in result.rejected:
                row = window.rows[rejected.position]
                self.reject(
                    window,
                    row,
                    rejected.user_id,
                    "local" if rejected.local else "api",
                    rejected.errors,
                )
                owner = positions.get(rejected.position)
                if owner is not None:
                    api_rejected[owner.chunk_index] += 1
            for error in result.unattributed_errors:
                summary.reasons[reason(error)] += 1
            for failed in result.failed_chunks:
                summary.failed += len(failed.positions)
                lines = [window.rows[p].line for p in failed.positions]
                summary.failed_chunks.append(
                    {
                        "lines": [lines[0], lines[-1]] if lines else None,
                        "users": len(lines),
                        "error": f"{type(failed.exception).__name__}: {failed.exception}",
                    }
                )
            if result.failed_chunks and not window.chunks and not self.exhausted:
                # Not one chunk of the window got through, after all retries: the
                # API is down or unreachable. Going on would only fail the same
                # way, window after window.
                exc = result.failed_chunks[0].exception
                summary.stopped_by = (
                    f"every chunk of a window failed ({type(exc).__name__}: {exc}); "
                    "stopped sending: fix the cause and rerun (with --journal to skip "
                    "what was accepted)"
                )
                self.exhausted = True
            for progress in sorted(window.chunks, key=lambda p: p.chunk_index):
                first = window.rows[progress.chunk_positions[0]].line
                last = window.rows[progress.chunk_positions[-1]].line
                chunks.append(
                    {
                        "lines": [first, last],
                        "users": len(progress.chunk_positions),
                        "rejected": api_rejected[progress.chunk_index],
                        "tracking_id": progress.chunk_tracking_id,
                    }
                )
                assert progress.chunk_tracking_id is not None
                self.tracking.append(
                    (progress.chunk_tracking_id, api_rejected[progress.chunk_index], False)
                )
        # Rejects first into their file, then the journal: a crash between the
        # two repeats a reject line at worst, and never loses one.
        self.rejects.write(window.rejects)
        if self.journal is not None and not self.options.dry_run:
            self.journal.record(chunks, window.rejects)
        self.progress.update(summary, self.source)

    # -- the whole run ----------------------------------------------------------------------

    def resume(self) -> None:
        """Count what earlier runs of the journal settled; copy their rejects over."""
        journal = self.journal
        if journal is None or not journal.resumed:
            return
        summary = self.summary
        summary.accepted += journal.accepted
        records = sorted(journal.rejects.values(), key=lambda r: r["line"])
        summary.rejected += len(records)
        for record in records:
            for error in record.get("errors", ()):
                summary.reasons[reason(_error_from_json(error))] += 1
        self.rejects.write(records)
        self.tracking.extend((c.tracking_id, c.rejected, True) for c in journal.chunks)

    async def run(self) -> Summary:
        summary = self.summary
        self.resume()
        rows = self.rows()
        try:
            while not self.exhausted:
                await self.send_window(rows)
        finally:
            await rows.aclose()
        if self.input_error is not None:
            raise self.input_error
        if self.options.wait and self.client is not None and self.tracking:
            self.progress.phase("processing")
            await self.wait_all(self.client)
        summary.elapsed = time.perf_counter() - summary.started
        if self.journal is not None:
            summary.journal = {
                "path": self.journal.path,
                "resumed": self.journal.resumed,
                "chunks_before": len(self.journal.chunks),
            }
        self.progress.update(summary, self.source)
        return summary

    async def wait_all(self, client: AsyncClient) -> None:
        summary = self.summary
        totals = {"total": 0, "success": 0, "error": 0, "processing_errors": 0}
        todo = iter(self.tracking)
        summary.tracking_total = len(self.tracking)

        async def poll() -> None:
            for tracking_id, rejected, earlier in todo:
                try:
                    status = await client.wait_for_tracking(
                        tracking_id, timeout=self.options.wait_timeout
                    )
                except NotFoundError:
                    # Older than 24 hours: an earlier run's write, long processed.
                    if earlier:
                        summary.tracking_expired += 1
                    else:
                        summary.tracking_failures.append(tracking_id)
                except (ActivateProError, OSError):
                    summary.tracking_failures.append(tracking_id)
                else:
                    totals["total"] += status.total
                    totals["success"] += status.success
                    totals["error"] += status.error
                    totals["processing_errors"] += max(0, status.error - rejected)
                summary.tracked += 1
                summary.tracking = dict(totals)
                self.progress.update(summary, self.source)

        async with anyio.create_task_group() as tg:
            for _ in range(max(1, min(self.options.concurrency, len(self.tracking)))):
                tg.start_soon(poll)
        summary.tracking = totals


def _error_from_json(data: dict[str, Any]) -> ApiError:
    code = int(data.get("code") or 0)
    try:
        known: ErrorCode | int = ErrorCode(code)
    except ValueError:
        known = code
    return ApiError(
        code=known,
        title=str(data.get("title") or ""),
        details=str(data.get("details") or ""),
        pointer=data.get("pointer"),
    )


async def run(
    client: AsyncClient | None,
    source: RowSource,
    plan: ColumnPlan,
    options: RunOptions,
    *,
    journal: Journal | None = None,
    rejects: RejectsWriter | None = None,
    progress: Progress | None = None,
    on_summary: Callable[[Summary], None] | None = None,
) -> Summary:
    """Import (or delete) every row of ``source``; ``client`` may be None on a dry run.

    Raises :class:`StopRun` when the API refuses the key, and the reader's
    :class:`~.readers.InputError` when the input breaks (after sending what
    was read before).
    """
    the_run = _Run(
        client,
        source,
        plan,
        options,
        journal=journal,
        rejects=rejects if rejects is not None else RejectsWriter(None),
        progress=progress if progress is not None else _NoProgress(),
    )
    if on_summary is not None:
        on_summary(the_run.summary)
    return await the_run.run()
