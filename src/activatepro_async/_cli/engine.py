"""One import (or delete) run of the command, on the SDK's bulk engine.

The path of a run: rows come from a reader (:mod:`.readers`) in batches read
in a worker thread (so a slow pipe never stalls the requests in flight); each
row becomes a user through the :class:`~.mapping.ColumnPlan`, or a reject;
the users go to one :meth:`AsyncClient.upsert_many` (or ``delete_many``) run
over the whole input. Its ``on_chunk`` hook says what became of each chunk
(and of users it refused itself) as it happens: the run writes the rejects
file and the journal from that alone, and the live counts too. With
``wait``, every tracking id (this run's and the journal's) is then polled to
``PROCESSED`` by the bulk engine's poller. ``activatepro sync`` is this run
with a :class:`Stage` (the SDK's :class:`~activatepro_async.incremental.Syncer`):
it leaves out the unchanged rows, hears every outcome, and confirms the
users the API processed (and deletes the missing ones) once the sending ends.

Crash safety: a chunk is journaled only together with its rejects, rejects
file first, then the journal line, so a kill at any moment loses no reject.
Settled chunks are journaled in groups of about ``concurrency * 4`` chunks'
rows (one fsync each, not one per chunk): a kill resends at most the chunks
in flight and the ones settled since the last journal line.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import attrs

from .._threads import ThreadedReader
from ..bulk import wait_for_all
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

T = TypeVar("T")

if TYPE_CHECKING:
    from ..bulk import BulkProgress, BulkResult, ChunkOutcome
    from ..client import AsyncClient
    from ..models import TrackingStatus
    from .columnar import SentRows, Settled
    from .journal import Journal
    from .readers import Part, SourceRow

__all__ = ["Progress", "RowSource", "RunOptions", "Summary", "run"]

_READ_BATCH = 1000


class RowSource(Protocol):
    """What the run reads: rows, and how far it got (for the progress bar).

    A source may also have ``reading``, a dict that says how it was read
    (format, CSV dialect, compression): the summary shows it.
    """

    name: str
    bytes_read: int
    total_bytes: int | None

    def __iter__(self) -> Iterator[SourceRow]: ...

    def raw_row(self, row: SourceRow) -> Any: ...


class Progress(Protocol):
    """Where a run reports its counts as they change (the live bar, or nothing)."""

    def update(self, summary: Summary, source: RowSource) -> None: ...

    def phase(self, text: str) -> None: ...


class Stage(Protocol):
    """What a run may add between its rows and the bulk run: the sync's choice and state.

    :class:`~activatepro_async.incremental.Syncer` is the one there is
    (``activatepro sync``): it leaves out the unchanged rows, hears every
    chunk's outcome, and confirms (and deletes) once the sending is done.
    """

    unchanged: int

    def select(
        self, items: AsyncIterator[tuple[Any, SourceRow]], complete: Callable[[], bool]
    ) -> AsyncIterator[tuple[Any, SourceRow]]: ...

    def on_chunk(self, outcome: ChunkOutcome) -> None: ...

    async def finish(
        self,
        client: AsyncClient,
        *,
        complete: bool,
        chunk_size: int,
        concurrency: int,
        timeout: float,
    ) -> BulkResult | None: ...

    def counts(self) -> dict[str, int]: ...


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
    #: Send a Parquet file's record batches as they are (False: a dict per row).
    columnar: bool = True

    @property
    def journal_rows(self) -> int:
        """Settled rows per journal line (about four rounds of requests: one fsync)."""
        return self.chunk_size * max(self.concurrency, 1) * 4

    @property
    def failed_chunks_to_stop(self) -> int:
        """Chunks failing in a row, none accepted between, that stop the sending.

        After all retries: the API is down or unreachable, and going on would
        only fail the same way (as many chunks as four rounds of requests).
        """
        return max(self.concurrency, 1) * 4


@attrs.define
class Summary:
    """What a run did with every row: the counts the summary and ``--json`` show.

    ``rows == skipped_accepted + accepted + rejected + failed (+ valid on a dry run)
    (+ unchanged on a sync)`` where ``accepted`` and ``rejected`` include what
    earlier runs of a journal settled (``skipped`` rows).
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
    #: How the input was read (the source's ``reading``): format, delimiter, compression.
    reading: dict[str, Any] | None = None
    #: Rows whose id an earlier row of this run had, and the lines of the first few.
    duplicate_rows: int = 0
    duplicate_lines: list[int] = attrs.field(factory=list)

    #: Rows a sync did not send: their hash is the one the API confirmed.
    unchanged: int = 0
    #: A sync's counts (new, changed, unchanged, sent, confirmed, ...); None for an import.
    sync: dict[str, int] | None = None

    #: How many lines of repeated ids the summary names.
    DUPLICATE_LINES_SHOWN: ClassVar[int] = 5

    @property
    def processing_errors(self) -> int:
        """Users the API accepted but could not apply (e.g. an email taken in that BU)."""
        return 0 if self.tracking is None else self.tracking.get("processing_errors", 0)

    @property
    def stored(self) -> int | None:
        """Users processed and stored (deleted, for a delete); None unless followed (``--wait``)."""
        return None if self.tracking is None else self.tracking.get("success", 0)

    @property
    def ok(self) -> bool:
        """True when every row was stored (or, on a dry run, would be sent)."""
        return not (
            self.rejected
            or self.failed
            or self.processing_errors
            or self.tracking_failures
            or self.stopped_by
            or (self.sync is not None and (self.sync["unconfirmed"] or self.sync["not_deleted"]))
        )

    @property
    def exit_code(self) -> int:
        """0 when every row was accepted, else 1."""
        return 0 if self.ok else 1

    @property
    def done(self) -> int:
        """Rows settled so far: accepted, rejected, failed (or valid on a dry run)."""
        return self.accepted + self.rejected + self.failed + self.valid + self.unchanged

    @property
    def rate(self) -> float:
        """Rows settled per second of this run (skipped rows not counted)."""
        elapsed = self.elapsed or (time.perf_counter() - self.started)
        return (self.done - self.skipped) / elapsed if elapsed > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """The machine-readable summary (``--json``)."""
        command = self.operation if self.operation != "upsert" else "import"
        return {
            "command": "sync" if self.sync is not None else command,
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
            # Errors, not rows: a rejected row may have several.
            "rejected_by_reason": dict(self.reasons.most_common()),
            "failed_chunks": self.failed_chunks,
            "chunks": self.chunks,
            "retries": self.retries,
            "lowest_concurrency": self.lowest_concurrency,
            "elapsed_s": round(self.elapsed, 3),
            "rows_per_s": round(self.rate, 1),
            "tracking": self.tracking,
            ("deleted" if self.operation == "delete" else "stored"): self.stored,
            "failed_at_processing": None if self.tracking is None else self.processing_errors,
            "duplicate_ids": {"rows": self.duplicate_rows, "lines": self.duplicate_lines},
            "read_as": self.reading,
            "tracking_not_followed": len(self.tracking_failures),
            "tracking_expired": self.tracking_expired,
            "rejects_file": self.rejects_file,
            "journal": self.journal,
            "stopped_by": self.stopped_by,
            "sync": self.sync,
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
        stage: Stage | None = None,
    ) -> None:
        self.client = client
        self.stage = stage
        self.source = source
        self.plan = plan
        self.options = options
        self.journal = journal
        self.rejects = rejects
        self.progress = progress
        self.summary = Summary(options.operation, source.name, dry_run=options.dry_run)
        self.summary.rejects_file = rejects.path
        self.summary.reading = getattr(source, "reading", None)
        # The ids seen so far, as their 64-bit str hashes (about 70 bytes each
        # in a set, a third less than the ids): enough to count repeats, which
        # the API merges into one user. A collision (odds about n**2 / 2**65)
        # would only miscount a repeat; nothing is dropped on it.
        self.seen_ids: set[int] = set()
        self.summary.concurrency = options.concurrency
        self.summary.max_concurrency = options.concurrency
        self.summary.lowest_concurrency = options.concurrency
        # (tracking id, users the API rejected, from an earlier run of the journal)
        self.tracking: list[tuple[str, int, bool]] = []
        self.input_error: BaseException | None = None
        # The rows handed to the bulk engine and not settled yet, by its input position.
        self.sent: dict[int, SourceRow] = {}
        # Settled, not yet written: the rejects and the accepted chunks of the next journal line.
        self.unwritten_rejects: list[dict[str, Any]] = []
        self.unwritten_chunks: list[dict[str, Any]] = []
        self.unwritten_rows = 0
        self.failed_in_a_row = 0
        #: Set when too many chunks failed in a row: the API is down, stop sending.
        self.api_down: Exception | None = None
        #: The rows sent on the columnar path (a Parquet file), else None.
        self.columnar: SentRows | None = None

    # -- reading ----------------------------------------------------------------------

    def settle_locally(self, row: SourceRow) -> Any | None:
        """The item to send for a row, or None when the row is settled here."""
        summary = self.summary
        summary.rows += 1
        journal = self.journal
        if journal is not None and journal.is_done(row.line):
            summary.skipped += 1
            return None
        if row.data is None:
            self.reject(row, None, "read", [read_problem(row.problem or "unreadable")])
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
            self.reject(row, user_id if isinstance(user_id, str) else None, stage, problems)
            return None
        self.count_repeat(user_id, row.line)
        if self.options.dry_run:
            summary.valid += 1
            return None
        return item

    def count_repeat(self, user_id: str, line: int) -> None:
        """Count a row whose id an earlier row of the run had."""
        seen = self.seen_ids
        before = len(seen)
        seen.add(hash(user_id))
        if len(seen) == before:
            summary = self.summary
            summary.duplicate_rows += 1
            if len(summary.duplicate_lines) < summary.DUPLICATE_LINES_SHOWN:
                summary.duplicate_lines.append(line)

    def count_repeats(self, ids: list[Any], part: Part, kept: list[int] | None) -> None:
        """Count the repeats among a batch's ids (``kept``: the batch rows they are of)."""
        hashes = set(map(hash, ids))
        if len(hashes) == len(ids) and self.seen_ids.isdisjoint(hashes):
            self.seen_ids |= hashes  # no repeat: the common case, in C
            return
        rows = range(len(ids)) if kept is None else kept
        for row, user_id in zip(rows, ids, strict=True):
            self.count_repeat(user_id, part.line(row))

    def reject(
        self,
        row: SourceRow,
        user_id: str | None,
        stage: str,
        errors: list[ApiError] | tuple[ApiError, ...],
    ) -> None:
        self.summary.rejected += 1
        for error in errors:
            self.summary.reasons[reason(error)] += 1
        self.unwritten_rejects.append(
            reject_record(row.line, user_id, stage, self.source.raw_row(row), errors)
        )
        self.unwritten_rows += 1

    async def items(self, rows: AsyncIterator[SourceRow]) -> AsyncIterator[Any]:
        """The items to send, one per row not settled locally (nor left out by the stage)."""
        pairs = self.pairs(rows)
        if self.stage is not None:
            pairs = self.stage.select(pairs, self.read_whole)
        async for item, row in pairs:
            self.sent[self.summary.sent] = row
            self.summary.sent += 1
            yield item

    def read_whole(self) -> bool:
        """Whether the input was read to its end (not cut by an error, nor by a down API)."""
        return self.input_error is None and self.api_down is None

    async def read(self, parts: AsyncIterator[T]) -> AsyncIterator[T]:
        """What the reader reads (rows, or a columnar source's parts), while sending must go on.

        The one read loop of both paths: it ends at the input's end; when the
        input breaks (what was read is still sent, then the error is raised);
        and when the API is down: there is more to send, and it would only
        fail alike. The part then read is not counted: it was not settled, a
        rerun reads it again.
        """
        while True:
            try:
                part = await parts.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:  # the input broke: send what was read, then stop
                self.input_error = exc
                return
            if self.api_down is not None:
                self.stop_sending()
                return
            yield part

    async def pairs(self, rows: AsyncIterator[SourceRow]) -> AsyncIterator[tuple[Any, SourceRow]]:
        """Each row not settled locally, with its item; stops when sending must."""
        read = 0
        async for row in self.read(rows):
            item = self.settle_locally(row)
            read += 1
            if read % 256 == 0:
                if self.stage is not None:
                    self.summary.unchanged = self.stage.unchanged
                self.progress.update(self.summary, self.source)
            if item is not None:
                yield item, row
            elif self.unwritten_rows >= self.options.journal_rows:
                self.write()

    def stop_sending(self) -> None:
        cause = self.api_down
        self.summary.stopped_by = (
            f"{self.failed_in_a_row} chunks in a row failed ({type(cause).__name__}: "
            f"{cause}); stopped sending: fix the cause and rerun (with --journal to "
            "skip what was accepted)"
        )

    # -- what became of the rows sent ----------------------------------------------------

    def on_chunk(self, outcome: ChunkOutcome) -> None:
        """Account for settled rows: counts, rejects, the journal (the bulk engine's hook)."""
        summary = self.summary
        if self.stage is not None:
            self.stage.on_chunk(outcome)
        settled = self.settle(outcome)
        for user in outcome.rejected:
            stage = "local" if user.local else "api"
            self.reject(settled.rejected[user.position], user.user_id, stage, user.errors)
        count = settled.count
        if outcome.exception is not None:
            exc = outcome.exception
            summary.failed += count
            summary.failed_chunks.append(
                {
                    "lines": [settled.first, settled.last] if count else None,
                    "users": count,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
            self.failed_in_a_row += 1
            if self.failed_in_a_row >= self.options.failed_chunks_to_stop:
                self.api_down = exc
        elif outcome.tracking_id is not None:
            self.failed_in_a_row = 0
            self.api_down = None
            summary.accepted += outcome.accepted
            api_rejected = len(outcome.rejected)
            self.unwritten_chunks.append(
                {
                    "lines": [settled.first, settled.last],
                    "users": count,
                    "rejected": api_rejected,
                    "tracking_id": outcome.tracking_id,
                }
            )
            self.unwritten_rows += count - api_rejected  # the rejected ones counted in reject()
            self.tracking.append((outcome.tracking_id, api_rejected, False))
        if self.unwritten_rows >= self.options.journal_rows:
            self.write()
        self.progress.update(summary, self.source)

    def settle(self, outcome: ChunkOutcome) -> Settled:
        """The rows an outcome settles, from where they were kept (sent as rows or in a batch)."""
        columnar, sent = self.columnar, self.sent
        if columnar is None:
            return _settle_rows([sent.pop(p) for p in outcome.positions], outcome)
        rejected = {user.position for user in outcome.rejected}
        if not sent:
            return columnar.take(outcome.positions, rejected)
        # JSON Lines (mixed_items): a chunk holds rows of one kind; the local
        # rejects of an outcome may be of both.
        rows = [p for p in outcome.positions if p in sent]
        if len(rows) == len(outcome.positions):
            return _settle_rows([sent.pop(p) for p in outcome.positions], outcome)
        in_batches = tuple(p for p in outcome.positions if p not in sent)
        batch = columnar.take(in_batches, rejected.intersection(in_batches))
        if not rows:
            return batch
        by_rows = _settle_rows([sent.pop(p) for p in rows], outcome, rows)
        from .columnar import Settled

        return Settled(
            by_rows.count + batch.count,
            min(by_rows.first, batch.first),
            max(by_rows.last, batch.last),
            {**by_rows.rejected, **batch.rejected},
        )

    def on_progress(self, progress: BulkProgress) -> None:
        summary = self.summary
        summary.concurrency = progress.concurrency
        summary.lowest_concurrency = min(summary.lowest_concurrency, progress.concurrency)

    def write(self) -> None:
        """Write what was settled: rejects first, then the journal line that names them.

        A crash between the two repeats a reject line at worst (the rerun
        rejects the row again), and never loses one.
        """
        chunks, rejects = self.unwritten_chunks, self.unwritten_rejects
        self.unwritten_chunks, self.unwritten_rejects, self.unwritten_rows = [], [], 0
        self.rejects.write(rejects)
        if self.journal is not None and not self.options.dry_run:
            self.journal.record(chunks, rejects)

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

    async def send(self, rows: AsyncIterator[Any], keys: list[str | None] | None = None) -> None:
        """One bulk run over every row; what it settles is written as it goes.

        With ``keys``, ``rows`` are a Parquet file's record batches (the columnar path).
        """
        client = self.client
        if self.options.dry_run or client is None:
            async for _ in self.items(rows):
                pass  # a dry run settles every row in settle_locally()
            return
        bulk = client.upsert_many if self.plan.operation == "upsert" else client.delete_many
        result: BulkResult
        stop: BaseException | None = None
        items: AsyncIterator[Any] = self.items(rows)
        if keys is not None:
            from .columnar import arrow_batches

            items = arrow_batches(self, rows, keys)
        elif self.columnar is not None:
            from .columnar import mixed_items

            items = mixed_items(self, rows)
        try:
            result = await bulk(
                items,
                chunk_size=self.options.chunk_size,
                concurrency=self.options.concurrency,
                on_progress=self.on_progress,
                on_chunk=self.on_chunk,
                raise_on_failure=False,
            )
        except BulkError as exc:
            result = exc.result
            stop = exc.__cause__ or exc
        summary = self.summary
        summary.retries += result.retries
        summary.chunks += result.chunks
        for error in result.unattributed_errors:
            summary.reasons[reason(error)] += 1
        summary.failed_chunks.sort(key=lambda c: c["lines"] or [0])
        if stop is not None:
            if not isinstance(stop, ActivateProError):
                raise stop  # the journal or rejects file could not be written (disk full), a bug
            if isinstance(stop, (AuthenticationError, PermissionDeniedError)):
                raise StopRun(
                    f"the API refused the key ({getattr(stop, 'status_code', '?')}): check "
                    "--api-key / ACTIVATEPRO_API_KEY and --base-url"
                ) from stop
            if summary.stopped_by is None:
                summary.stopped_by = f"{type(stop).__name__}: {stop}"

    def columnar_keys(self) -> list[str | None] | None:
        """The plan's keys for the source's columns when it takes the columnar path, else None."""
        schema = getattr(self.source, "arrow_schema", None)
        # A sync's stage picks rows one by one (their hashes): it takes the row path.
        if schema is None or self.client is None or not self.options.columnar or self.stage:
            if (
                self.client is not None
                and self.options.columnar
                and not self.stage
                and getattr(self.source, "json_blocks", False)
            ):
                # JSON Lines: keys per block (mixed_items); the rows of the
                # blocks pyarrow does not read are kept in self.sent.
                from .columnar import SentRows

                self.columnar = SentRows(self.source.arrow_raw)  # type: ignore[attr-defined]
            return None
        from .columnar import SentRows, usable

        if not usable(self.plan, schema, dry_run=self.options.dry_run):
            return None
        self.columnar = SentRows(self.source.arrow_raw)  # type: ignore[attr-defined]
        return self.plan.keys(list(schema.names), self.source.name)

    async def run(self) -> Summary:
        summary = self.summary
        self.resume()
        keys = self.columnar_keys()
        # Abandoned on cancel (Ctrl-C), so a read blocked on an idle pipe cannot hang the exit.
        blocks = keys is not None or self.columnar is not None
        source: Any = self.source.arrow_parts() if blocks else self.source  # type: ignore[attr-defined]
        rows = aiter(
            ThreadedReader(source, batch=1 if blocks else _READ_BATCH, abandon_on_cancel=True)
        )
        try:
            await self.send(rows, keys)
        finally:
            # Also on Ctrl-C or a 401: what was settled is written (no await here).
            self.write()
            await rows.aclose()
        if self.stage is not None and self.client is not None:
            # Also after a broken input: what the API took is confirmed (nothing deleted).
            await self.finish_stage(self.stage, self.client)
        if self.input_error is not None:
            raise self.input_error
        if self.stage is None and self.options.wait and self.client is not None and self.tracking:
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

    async def finish_stage(self, stage: Stage, client: AsyncClient) -> None:
        """The stage's end: the sync confirms what the API processed, then deletes."""
        summary = self.summary
        summary.unchanged = stage.unchanged
        self.progress.phase("processing")
        try:
            deletes = await stage.finish(
                client,
                complete=self.read_whole() and summary.stopped_by is None,
                chunk_size=self.options.chunk_size,
                concurrency=self.options.concurrency,
                timeout=self.options.wait_timeout,
            )
        except ActivateProError as exc:  # the delete guard, an unwritable state
            raise StopRun(str(exc)) from None
        if deletes is not None:
            summary.retries += deletes.retries
            summary.chunks += deletes.chunks
        summary.sync = stage.counts()

    async def wait_all(self, client: AsyncClient) -> None:
        """Poll every tracking id with the bulk engine's poller; add up the server's counts."""
        summary = self.summary
        totals = {"total": 0, "success": 0, "error": 0, "processing_errors": 0}
        summary.tracking_total = len(self.tracking)

        def done(i: int, status: TrackingStatus | Exception) -> None:
            tracking_id, rejected, earlier = self.tracking[i]
            if isinstance(status, NotFoundError) and earlier:
                # Older than 24 hours: an earlier run's write, long processed.
                summary.tracking_expired += 1
            elif isinstance(status, Exception):
                summary.tracking_failures.append(tracking_id)
            else:
                totals["total"] += status.total
                totals["success"] += status.success
                totals["error"] += status.error
                totals["processing_errors"] += max(0, status.error - rejected)
            summary.tracked += 1
            summary.tracking = dict(totals)
            self.progress.update(summary, self.source)

        await wait_for_all(
            client,
            [tracking_id for tracking_id, _, _ in self.tracking],
            concurrency=self.options.concurrency,
            timeout=self.options.wait_timeout,
            on_done=done,
        )
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
    stage: Stage | None = None,
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
        stage=stage,
    )
    if on_summary is not None:
        on_summary(the_run.summary)
    return await the_run.run()


def _settle_rows(
    rows: list[SourceRow], outcome: ChunkOutcome, positions: list[int] | None = None
) -> Settled:
    """The row path's :class:`~.columnar.Settled`: the rows by position, in hand.

    ``positions``: the rows' positions, when they are only some of the outcome's.
    """
    from .columnar import Settled

    given = outcome.positions if positions is None else positions
    by_position = dict(zip(given, rows, strict=True))
    rejected = {
        user.position: by_position[user.position]
        for user in outcome.rejected
        if user.position in by_position
    }
    if not rows:
        return Settled(0, 0, 0, rejected)
    return Settled(len(rows), rows[0].line, rows[-1].line, rejected)
