"""The command's columnar path: a Parquet file's record batches straight to the bulk engine.

The row path (:mod:`.engine` over :class:`~.readers.SourceRow` s) makes a dict
of every row; here a record batch goes to ``upsert_many`` as it is, after the
command's rules are applied to it at the Arrow level, on the event loop:

- rows an earlier run of the journal settled are left out (counted as skipped);
- columns are renamed and dropped by the plan's keys (``--map``):
  :func:`activatepro_async._columnar.rename_columns`;
- ``--type`` casts the typed columns with the plan's casters (cell by cell, in
  Python: those columns only);
- a row whose required keys are missing, empty or not strings, whose
  ``businessUnit`` is not a string, or whose cast failed, is a *candidate*:
  it is run through the row path's own :meth:`ColumnPlan.user` (or
  ``user_id``), so its reject has the row path's exact errors;
- what is left goes to the engine, which encodes it column by column.

So the rejects file, the journal and the summary are the row path's; a test
runs the same files through both. :func:`usable` says when this path cannot
keep that promise (a dry run, ``--type KEY=json``, a column the encoder
refuses as a whole, such as a naive timestamp, where the row path rejects row
by row): the command then takes the row path.

Positions: the engine numbers the rows it is given; :class:`SentRows` maps
them back to their batch, row and line for ``on_chunk``.
"""

from __future__ import annotations

import bisect
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from .._columnar import _Encoder, arrow_modules, literal, mask, rename_columns
from .readers import InputError, Part, SourceRow

if TYPE_CHECKING:
    from .engine import _Run
    from .mapping import ColumnPlan

__all__ = ["SentRows", "Settled", "arrow_batches", "mixed_items", "usable"]


def usable(plan: ColumnPlan, schema: Any, *, dry_run: bool) -> bool:
    """Whether a source of this Arrow ``schema`` can take the columnar path with ``plan``."""
    specs = {spec.partition(":")[0].strip().lower() for spec in plan.type_specs.values()}
    if dry_run or "json" in specs:
        return False  # a dry run checks each user; json casts make values of any type
    pa, _ = arrow_modules()
    keys = plan.keys(list(schema.names), "the file")
    kept = [(field, key) for field, key in zip(schema, keys, strict=True) if key is not None]
    typed = set(plan.casters)
    fields = [pa.field(key, field.type) for field, key in kept if key not in typed]
    try:
        _Encoder(pa.schema(fields), ids_only=plan.operation == "delete")
    except TypeError:
        return False  # the row path rejects such rows one by one
    return True


class _Segment:
    __slots__ = ("kept", "left", "part", "start")

    def __init__(self, start: int, part: Part, kept: list[int] | None) -> None:
        self.start = start
        self.part = part  # as read: the rejects file shows rows as the file holds them
        self.kept = kept  # the batch rows sent, by position - start (None: all of them)
        self.left = part.batch.num_rows if kept is None else len(kept)

    def line(self, position: int) -> int:
        offset = position - self.start
        return self.part.line(offset if self.kept is None else self.kept[offset])

    def row(self, position: int, raw: Callable[[Part, int], Any]) -> SourceRow:
        offset = position - self.start
        index = offset if self.kept is None else self.kept[offset]
        return SourceRow(self.part.line(index), None, raw(self.part, index), None)


class Settled:
    """What the run needs of the rows an ``on_chunk`` outcome settles (either path).

    Their count and first and last line (a chunk's journal entry names its
    span), and the rows it rejected, by position, with their cells.
    """

    __slots__ = ("count", "first", "last", "rejected")

    def __init__(self, count: int, first: int, last: int, rejected: dict[int, SourceRow]) -> None:
        self.count = count
        self.first = first
        self.last = last
        self.rejected = rejected


class SentRows:
    """The rows handed to the engine and not settled yet, by its input position.

    Kept as one segment per batch sent (its first position and, when rows were
    left out, which rows): an outcome of consecutive positions (every chunk but
    those the engine splits) is settled by segment, not row by row.
    """

    def __init__(self, raw: Callable[[Part, int], Any]) -> None:
        self.starts: list[int] = []
        self.segments: list[_Segment] = []
        self.raw = raw  # a row's cells as the rejects file shows them

    def add(self, start: int, part: Part, kept: list[int] | None) -> None:
        segment = _Segment(start, part, kept)
        if segment.left:
            self.starts.append(start)
            self.segments.append(segment)

    def _segment(self, position: int) -> _Segment:
        return self.segments[bisect.bisect_right(self.starts, position) - 1]

    def take(self, positions: tuple[int, ...], rejected: set[int]) -> Settled:
        """Settle the rows at ``positions``; those in ``rejected`` come back with their cells."""
        if not positions:
            return Settled(0, 0, 0, {})
        first, last = positions[0], positions[-1]
        rows = {p: self._segment(p).row(p, self.raw) for p in rejected}
        settled = Settled(
            len(positions), self._segment(first).line(first), self._segment(last).line(last), rows
        )
        if last - first + 1 == len(positions):  # consecutive: count them off by segment
            index = bisect.bisect_right(self.starts, first) - 1
            position = first
            while position <= last:
                segment = self.segments[index]
                end = min(last + 1, segment.start + _length(segment))
                segment.left -= end - position
                position = end
                index += 1
        else:
            for position in positions:
                self._segment(position).left -= 1
        self._drop_settled()
        return settled

    def _drop_settled(self) -> None:
        # Every row of a segment settled: let its batch go. Chunks settle
        # roughly in order, so the settled segments are mostly at the front.
        segments = self.segments
        if any(not segment.left for segment in segments):
            kept = [segment for segment in segments if segment.left]
            self.segments = kept
            self.starts = [segment.start for segment in kept]


def _length(segment: _Segment) -> int:
    return segment.part.batch.num_rows if segment.kept is None else len(segment.kept)


async def arrow_batches(
    run: _Run, parts: AsyncIterator[Part], keys: list[str | None]
) -> AsyncIterator[Any]:
    """The batches to send, one per part read; the rows settled here are settled on the loop."""
    async for part in run.read(parts):
        out = settle_part(run, part, keys)
        if out is not None:
            yield out


async def mixed_items(
    run: _Run, parts: AsyncIterator[Part | list[SourceRow]]
) -> AsyncIterator[Any]:
    """A JSON Lines file's items: a batch per block pyarrow read, a dict per row of the others.

    Each block's own columns make its keys (JSON Lines has no header); a
    block whose columns the plan cannot take as a batch (:func:`usable`, or
    keys it refuses) is read by the row code after all. The engine takes both
    kinds in one run, numbering them on in this order, as ``summary.sent`` does.
    """
    plan, source = run.plan, run.source
    async for part in run.read(parts):
        if isinstance(part, Part):
            names = list(part.batch.schema.names)
            try:
                keys = plan.keys(names, source.name)
            except ValueError:
                keys = None  # what the plan says of such a row, the row code says row by row
            if keys is not None and usable(plan, part.batch.schema, dry_run=False):
                out = settle_part(run, part, keys)
                if out is not None:
                    yield out
                continue
            part = list(source.arrow_rows(part))  # type: ignore[attr-defined]
        for row in part:
            item = run.settle_locally(row)
            if item is not None:
                run.sent[run.summary.sent] = row
                run.summary.sent += 1
                yield item
        run.progress.update(run.summary, source)
        if run.unwritten_rows >= run.options.journal_rows:
            run.write()


def settle_part(run: _Run, part: Part, keys: list[str | None]) -> Any | None:
    """Settle here what a part's rows the command settles itself; the batch to send, if any."""
    pa, pc = arrow_modules()
    plan, summary, journal = run.plan, run.summary, run.journal
    sent = run.columnar
    assert sent is not None
    batch = part.batch
    rows = batch.num_rows
    summary.rows += rows + len(part.unreadable)
    keep = [True] * rows
    if journal is not None and journal.resumed:
        for index in range(rows):
            if journal.is_done(part.line(index)):
                keep[index] = False
                summary.skipped += 1
    renamed = rename_columns(batch, keys)
    candidates: set[int] = set()
    for key, cast in plan.casters.items():
        if key not in renamed.schema.names:
            continue
        values: list[Any] = []
        for index, value in enumerate(renamed.column(key).to_pylist()):
            if value is not None:
                try:
                    value = cast(value)
                except ValueError:
                    candidates.add(index)  # the row path says why
                    value = None
            values.append(value)
        try:
            column = pa.array(values)
        except (OverflowError, pa.ArrowException) as exc:
            raise InputError(
                f"{run.source.name}: the values --type gives {key!r} do not fit one Arrow "
                f"column ({exc}): rerun with --reader stdlib"
            ) from None
        at = renamed.schema.get_field_index(key)
        renamed = pa.RecordBatch.from_arrays(
            [column if i == at else renamed.column(i) for i in range(renamed.num_columns)],
            names=renamed.schema.names,
        )
    for key in renamed.schema.names:
        if key not in plan.required and key != "businessUnit":
            continue
        column = renamed.column(key)
        text = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        if key == "businessUnit":  # a string or nothing
            if not text and not pa.types.is_null(column.type):
                candidates.update(pc.indices_nonzero(pc.is_valid(column)).to_pylist())
        elif not text:
            candidates.update(range(rows))  # not a string: the row path says so
        else:
            # Arrow literals, not "" and True: see literal() (pandas).
            empty = pc.equal(column, literal(pa, "", column.type))
            missing = pc.fill_null(empty, literal(pa, True, pa.bool_()))
            candidates.update(pc.indices_nonzero(missing).to_pylist())
    # Settled here in line order, the unreadable records among them, as the row path does.
    local: list[tuple[int, int | SourceRow]] = [
        (part.line(index), index) for index in candidates if keep[index]
    ]
    local += [(row.line, row) for row in part.unreadable]
    for _, what in sorted(local, key=lambda pair: pair[0]):
        if isinstance(what, SourceRow):
            run.settle_locally(what)  # counted in summary.rows above
            summary.rows -= 1
            continue
        cells = sent.raw(part, what)
        data = {k: v for k, v in batch.slice(what, 1).to_pylist()[0].items() if v is not None}
        if plan.operation == "upsert":
            item, problems = plan.user(data)
            user_id = item.get("id")
        else:
            user_id, problems = plan.user_id(data)
        if problems:
            row = SourceRow(part.line(what), data, cells, None)
            run.reject(row, user_id if isinstance(user_id, str) else None, "local", problems)
            keep[what] = False
    kept = None if all(keep) else [index for index in range(rows) if keep[index]]
    out = renamed if kept is None else renamed.filter(mask(pa, keep))
    if "id" in out.schema.names:  # repeats are counted as the row path counts them
        run.count_repeats(out.column("id").to_pylist(), part, kept)
    sent.add(summary.sent, part, kept)
    summary.sent += out.num_rows
    run.progress.update(summary, run.source)
    if run.unwritten_rows >= run.options.journal_rows:
        run.write()
    return out if out.num_rows else None
