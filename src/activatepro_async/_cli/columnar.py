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
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .._columnar import _Encoder, arrow_modules, rename_columns
from .readers import InputError, SourceRow

if TYPE_CHECKING:
    from .engine import _Run
    from .mapping import ColumnPlan

__all__ = ["SentRows", "arrow_batches", "usable"]


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
    __slots__ = ("batch", "first_line", "kept", "left", "start")

    def __init__(self, start: int, batch: Any, kept: list[int] | None, first_line: int) -> None:
        self.start = start
        self.batch = batch  # as read: the rejects file shows rows as the file holds them
        self.kept = kept  # the batch rows sent, by position - start (None: all of them)
        self.first_line = first_line
        self.left = batch.num_rows if kept is None else len(kept)


class SentRows:
    """The rows handed to the engine and not settled yet, by its input position."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.segments: list[_Segment] = []

    def add(self, start: int, batch: Any, kept: list[int] | None, first_line: int) -> None:
        segment = _Segment(start, batch, kept, first_line)
        if segment.left:
            self.starts.append(start)
            self.segments.append(segment)

    def take(self, positions: tuple[int, ...], raw: set[int]) -> list[SourceRow]:
        """The rows at ``positions``, settled now; those in ``raw`` with their cells."""
        rows: list[SourceRow] = []
        for position in positions:
            index = bisect.bisect_right(self.starts, position) - 1
            segment = self.segments[index]
            offset = position - segment.start
            row = offset if segment.kept is None else segment.kept[offset]
            cells = segment.batch.slice(row, 1).to_pylist()[0] if position in raw else None
            rows.append(SourceRow(segment.first_line + row, None, cells, None))
            segment.left -= 1
            if not segment.left:  # every row of it settled: let the batch go
                del self.starts[index], self.segments[index]
        return rows


async def arrow_batches(
    run: _Run, parts: AsyncIterator[tuple[Any, int]], keys: list[str | None]
) -> AsyncIterator[Any]:
    """The batches to send, one per batch read; the rows settled here are settled on the loop."""
    pa, pc = arrow_modules()
    plan, summary, journal = run.plan, run.summary, run.journal
    sent = run.columnar
    assert sent is not None
    while True:
        try:
            batch, first_line = await parts.__anext__()
        except StopAsyncIteration:
            return
        except Exception as exc:  # the input broke: send what was read, then stop
            run.input_error = exc
            return
        if run.api_down is not None:
            run.stop_sending()
            return
        rows = batch.num_rows
        summary.rows += rows
        keep = [True] * rows
        if journal is not None and journal.resumed:
            for index in range(rows):
                if journal.is_done(first_line + index):
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
                missing = pc.fill_null(pc.equal(column, ""), True)
                candidates.update(pc.indices_nonzero(missing).to_pylist())
        for index in sorted(candidates):
            if not keep[index]:
                continue
            cells = batch.slice(index, 1).to_pylist()[0]
            data = {k: v for k, v in cells.items() if v is not None}
            if plan.operation == "upsert":
                item, problems = plan.user(data)
                user_id = item.get("id")
            else:
                user_id, problems = plan.user_id(data)
            if problems:
                row = SourceRow(first_line + index, data, cells, None)
                run.reject(row, user_id if isinstance(user_id, str) else None, "local", problems)
                keep[index] = False
        kept = None if all(keep) else [index for index in range(rows) if keep[index]]
        out = renamed if kept is None else renamed.filter(pa.array(keep, pa.bool_()))
        if "id" in out.schema.names:  # repeats are counted as the row path counts them
            indices = range(rows) if kept is None else kept
            for index, user_id in zip(indices, out.column("id").to_pylist(), strict=True):
                run.count_repeat(user_id, first_line + index)
        sent.add(summary.sent, batch, kept, first_line)
        summary.sent += out.num_rows
        run.progress.update(summary, run.source)
        if run.unwritten_rows >= run.options.journal_rows:
            run.write()
        if out.num_rows:
            yield out
