"""Columnar input for the bulk engine: Arrow tables, record batches, Polars, Parquet.

``upsert_many``/``delete_many`` take a ``pyarrow.Table``, a ``RecordBatch``, a
``RecordBatchReader`` (or any iterable of record batches), or any object that
exports ``__arrow_c_stream__`` (a Polars DataFrame). The input is read batch by
batch, and a window of rows becomes JSON with Arrow's compute kernels, one call
per column, never a Python object per row:

1. each column becomes a string array of ``"name":<json>`` fragments (strings
   escaped only when a cell needs it; ints, bools, floats, dates and aware
   timestamps formatted as the dict path formats them), a null cell a null
   fragment;
2. the fragments of a row are joined with ``,`` skipping nulls (a null is left
   out: an upsert never clears) and wrapped in ``{...},``, so the window is one
   data buffer of users, and ``binary_length`` gives each user's size;
3. rows that cannot be sent are rejected locally, with the same codes and
   reasons as the dict path: null or empty id, NaN/infinity, over 1 MiB, more
   than fits in ``max_chunk_bytes``; the others are cut into chunks of at most
   ``chunk_size`` users and ``max_chunk_bytes``, each body the head, a slice of
   the data buffer and the tail.

Struct, list and map columns are encoded per cell in Python (the dict path's
own converter and encoder): correct, not fast. Columns of a type the API has
no form for (binary, decimal, time of day, durations) and naive timestamps are
refused before anything is sent, with what to do.

Integer ids travel as strings. The chunks go to the engine through
:meth:`_engine._Run.flush`: the ownership and accounting of :mod:`._engine`
hold unchanged. pyarrow is imported here only, and only for columnar input:
without it, such input is a :class:`~.errors.ConfigurationError` naming the
extra.
"""

from __future__ import annotations

import array
import importlib
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, overload

import anyio

from ._wire import (
    MAX_USER_BYTES,
    encode_json,
    id_problem,
    too_large_problem,
    unfit_problem,
    value_to_wire,
)
from .errors import ConfigurationError, ErrorCode

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectSendStream

    from ._engine import _Chunk, _Run

__all__ = [
    "ARROW_HINT",
    "NOTHING",
    "ArrowStream",
    "Feed",
    "arrow_modules",
    "is_arrow_item",
    "is_columnar",
    "produce",
    "record_batches",
    "rename_columns",
]

ARROW_HINT = "pip install 'activatepro-async[arrow]'"


class ArrowStream(Protocol):
    """What exports an Arrow C stream: a pyarrow Table or reader, a Polars DataFrame."""

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any: ...


#: Rows encoded in one go (a multiple of any chunk_size up to 1000): large enough
#: that the per-call cost of the kernels is spread thin, small enough to stay flat.
WINDOW_ROWS = 8000

# Why a row is not sent, most urgent first: the dict path finds them in this
# order (conversion, the id, encoding, the size, the chunk's byte cap).
_CONVERT, _ID, _ENCODE, _SIZE, _FIT = range(5)

_NaN_DETAILS: str | None = None

#: No item: the end of the input (the engine's sentinel is this one).
NOTHING: Any = object()
_NOTHING = NOTHING


def _non_finite_details() -> str:
    """The dict path's words for a NaN, from the encoder that says them."""
    global _NaN_DETAILS
    if _NaN_DETAILS is None:
        try:
            encode_json(math.nan)
        except ValueError as exc:
            _NaN_DETAILS = f"the user cannot be sent as JSON: {exc}"
        else:  # pragma: no cover - the encoder always refuses NaN
            _NaN_DETAILS = "the user cannot be sent as JSON: NaN"
    return _NaN_DETAILS


# -- what is columnar ---------------------------------------------------------------


def _from_pyarrow(kind: type) -> bool:
    return (getattr(kind, "__module__", None) or "").split(".")[0] == "pyarrow"


def is_columnar(obj: object) -> bool:
    """True for an Arrow table, batch or reader, or anything exporting an Arrow stream.

    Duck-typed, so it answers without pyarrow installed.
    """
    kind = type(obj)
    return hasattr(kind, "__arrow_c_stream__") or (
        _from_pyarrow(kind) and kind.__name__ in ("Table", "RecordBatch", "RecordBatchReader")
    )


def is_arrow_item(item: object) -> bool:
    """True for one item of an iterable of record batches (or tables)."""
    kind = type(item)
    return _from_pyarrow(kind) and kind.__name__ in ("RecordBatch", "Table")


def arrow_modules() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.compute)``, or a ConfigurationError naming the extra."""
    try:
        pa = importlib.import_module("pyarrow")
        pc = importlib.import_module("pyarrow.compute")
    except ImportError as exc:
        raise ConfigurationError(
            f"Arrow input (a table, record batches, a Polars DataFrame) needs pyarrow: {ARROW_HINT}"
        ) from exc
    return pa, pc


def literal(pa: Any, value: str | bool | int, type: Any) -> Any:
    """A pyarrow scalar of ``value`` (a string, large string, bool or int64), from its bytes.

    ``pa.scalar`` and ``pa.array`` of Python objects, and a compute function given
    a Python literal, first ask whether the object is a pandas one, importing
    pandas to ask: 0.3-0.5 s of CPU at a run's start, in a process that never
    uses it (benchmarks/PROFILE.md). Built from buffers, nothing is asked.
    """
    if isinstance(value, str):
        data = value.encode()
        offsets = array.array("q" if pa.types.is_large_string(type) else "i", [0, len(data)])
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    elif isinstance(value, bool):
        buffers = [None, pa.py_buffer(bytes([value]))]
    else:
        buffers = [None, pa.py_buffer(array.array("q", [value]))]
    return pa.Array.from_buffers(type, 1, buffers)[0]


def mask(pa: Any, keep: list[bool]) -> Any:
    """``keep`` as an Arrow boolean array, without ``pa.array`` (see :func:`literal`)."""
    as_bytes = pa.Array.from_buffers(pa.uint8(), len(keep), [None, pa.py_buffer(bytes(keep))])
    return as_bytes.cast(pa.bool_())


def record_batches(source: Any) -> Iterator[Any]:
    """The record batches of ``source``, read lazily (a table's are its chunks, no copy)."""
    pa, _ = arrow_modules()
    if isinstance(source, pa.RecordBatch):
        yield source
    elif isinstance(source, pa.Table):
        yield from source.to_batches()
    elif isinstance(source, pa.RecordBatchReader):
        yield from source
    elif hasattr(type(source), "__arrow_c_stream__"):
        yield from pa.RecordBatchReader.from_stream(source)
    else:  # an iterable of batches or tables
        for item in source:
            yield from _batches_of(pa, item)


def _batches_of(pa: Any, item: Any) -> Iterator[Any]:
    """One item of an iterable of batches, as batches."""
    if isinstance(item, pa.RecordBatch):
        yield item
    elif isinstance(item, pa.Table):
        yield from item.to_batches()
    else:
        raise TypeError(
            f"an iterable of record batches holds {type(item).__name__}: "
            "give batches (or tables) only"
        )


class _Rebatcher:
    """Cuts batches into windows of exactly ``rows`` rows; small ones of one schema combined."""

    def __init__(self, rows: int) -> None:
        self.pa, _ = arrow_modules()
        self.rows = rows
        self.pending: list[Any] = []  # of one schema, fewer than `rows` rows in all
        self.count = 0

    def add(self, batch: Any) -> Iterator[Any]:
        """The windows ``batch`` completes."""
        if batch.num_rows and self.pending and not batch.schema.equals(self.pending[0].schema):
            yield from self.rest()
        while batch.num_rows:
            head, batch = (
                batch.slice(0, self.rows - self.count),
                batch.slice(self.rows - self.count),
            )
            self.pending.append(head)
            self.count += head.num_rows
            if self.count == self.rows:
                yield from self.rest()

    def rest(self) -> Iterator[Any]:
        """The rows not in a window yet, as one (at the end, or before another schema)."""
        if self.pending:
            window = _combine(self.pa, self.pending)
            self.pending, self.count = [], 0
            yield window


def _windows(batches: Iterator[Any], rows: int) -> Iterator[Any]:
    """The windows of ``batches`` (see :class:`_Rebatcher`)."""
    rebatcher = _Rebatcher(rows)
    try:
        for batch in batches:
            yield from rebatcher.add(batch)
    except Exception:
        # The input broke: what was read is sent first, as in the dict path.
        yield from rebatcher.rest()
        raise
    yield from rebatcher.rest()


def _combine(pa: Any, batches: list[Any]) -> Any:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


# -- the columns ---------------------------------------------------------------------

_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
_SHORT = {"\b": "\\b", "\f": "\\f"}
# A slice position past the end of any cell: binary_replace_slice there appends.
_END = 2**62
# What JSON must escape in a string: the encoders escape exactly these.
# The bytes a JSON string may hold as they are: deleting them from a column's
# data buffer (bytes.translate, one fast C pass) leaves what needs escaping.
_PLAIN_BYTES = bytes(b for b in range(256) if b >= 0x20 and b not in b'"\\')
_RARE_BYTES = bytes(b for b in range(256) if b >= 0x20 or b in b"\t\n\r")


def _holds(data: memoryview, keep: bytes) -> bool:
    """Whether ``data`` holds a byte not in ``keep``."""
    return bool(bytes(data).translate(None, keep))


def _column_kind(pa: Any, name: str, kind: Any) -> str:
    """How a column of Arrow type ``kind`` is encoded; TypeError for what has no JSON form."""
    types = pa.types
    if types.is_dictionary(kind):
        return _column_kind(pa, name, kind.value_type)
    if types.is_null(kind):
        return "null"
    if types.is_string(kind) or types.is_large_string(kind) or _is(types, "is_string_view", kind):
        return "string"
    if types.is_boolean(kind):
        return "bool"
    if types.is_integer(kind):
        return "int"
    if types.is_floating(kind):
        return "float"
    if types.is_date(kind):
        return "date"
    if types.is_timestamp(kind):
        if kind.tz is None:
            raise TypeError(
                f"column {name!r} holds timestamps without a time zone: the API stores UTC, "
                "so say which zone they are in, e.g. "
                f"pc.assume_timezone(table[{name!r}], 'Europe/Berlin') or "
                f"table[{name!r}].cast(pa.timestamp('us', tz='UTC')) if they are UTC"
            )
        return "timestamp"
    if (
        types.is_struct(kind)
        or types.is_list(kind)
        or types.is_large_list(kind)
        or types.is_fixed_size_list(kind)
        or types.is_map(kind)
        or _is(types, "is_list_view", kind)
        or _is(types, "is_large_list_view", kind)
    ):
        return "nested"
    hint = "cast it to float64 or string" if types.is_decimal(kind) else "cast it to string"
    raise TypeError(
        f"column {name!r} is {kind}, which JSON has no form for: {hint}, or leave it out "
        "(table.drop_columns)"
    )


def _is(types: Any, test: str, kind: Any) -> bool:
    check = getattr(types, test, None)  # newer pyarrow only
    return bool(check(kind)) if check is not None else False


class _Problems:
    """The first reason each row of a window cannot be sent, by rank then column."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[int, ErrorCode, str, str | None]] = {}

    def note(
        self, row: int, rank: int, code: ErrorCode, details: str, pointer: str | None = None
    ) -> None:
        old = self.rows.get(row)
        if old is None or old[0] > rank:
            self.rows[row] = (rank, code, details, pointer)


class _Encoder:
    """How the rows of one schema become JSON; made once per schema."""

    def __init__(self, schema: Any, *, ids_only: bool = False) -> None:
        self.pa, self.pc = arrow_modules()
        self.large = self.pa.large_string()
        self.one = literal(self.pa, 1, self.pa.int64())
        names: list[str] = list(schema.names)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise TypeError(
                f"the input has two columns named {dupes[0]!r}: a user has each key once; "
                "rename or drop one"
            )
        self.id_index: int | None = names.index("id") if "id" in names else None
        self.columns: list[tuple[int, str, str]] = []
        for index, field in enumerate(schema):
            if ids_only and index != self.id_index:
                continue  # a delete sends the id alone
            kind = _column_kind(self.pa, field.name, field.type)
            if index == self.id_index:
                if kind not in ("string", "int", "null"):
                    raise TypeError(
                        f"the id column is {field.type}: ids are strings (integers are sent "
                        "as strings); cast it with table.cast or pc.cast"
                    )
                kind = "id" if kind != "null" else "null"
            if kind != "null":
                self.columns.append((index, field.name, kind))

    def scalar(self, text: str) -> Any:
        return literal(self.pa, text, self.large)

    def text(self, array: Any) -> Any:
        """``array`` decoded from a dictionary and as a large string array."""
        pa = self.pa
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        return array.cast(self.large)

    def escaped(self, array: Any, *, escape: bool = True) -> Any:
        """``array``'s cells as the text of JSON strings (escaped where a cell needs it)."""
        pc = self.pc
        text = self.text(array)
        if escape and _holds(_data(self.pa, text), _PLAIN_BYTES):
            for old, new in _ESCAPES:
                text = pc.replace_substring(text, old, new)
            if _holds(_data(self.pa, text), _RARE_BYTES):
                for code in range(0x20):
                    char = chr(code)
                    if char in "\n\r\t":
                        continue  # escaped above
                    new = _SHORT.get(char, f"\\u{code:04x}")
                    text = pc.replace_substring(text, char, new)
        return text

    def values(self, kind: str, array: Any, problems: _Problems) -> tuple[str, Any, str]:
        """Each cell of one column as JSON: ``(open, text, close)``, ``open + text + close``.

        ``text`` is null for a null cell; ``open``/``close`` are the quotes of a
        string (the closing one of a timestamp with its ``Z``), or empty.
        """
        pa, pc = self.pa, self.pc
        if kind == "string":
            return '"', self.escaped(array), '"'
        if kind == "id":
            # Never null: a row with every input null would be dropped by
            # binary_join_element_wise(null_handling="skip") in pyarrow 26 (its
            # rows would shift), and a row without an id is rejected anyway.
            text = self.text(array)
            if text.null_count:
                text = pc.fill_null(text, self.scalar(""))
            return '"', self.escaped(text, escape=not pa.types.is_integer(array.type)), '"'
        if kind == "int":
            return "", self.text(array), ""
        if kind == "bool":
            return "", pc.if_else(array, self.scalar("true"), self.scalar("false")), ""
        if kind == "float":
            numbers = array.cast(pa.float64())
            bad = pc.invert(pc.fill_null(pc.is_finite(numbers), literal(pa, True, pa.bool_())))
            if pc.any(bad).as_py():
                for row in pc.indices_nonzero(bad).to_pylist():
                    problems.note(row, _ENCODE, ErrorCode.INVALID_JSON, _non_finite_details())
            text = numbers.cast(self.large)
            # Arrow writes 1.0 as "1": keep it a float, as the dict path does.
            whole = pc.match_substring_regex(text, r"^-?[0-9]+$")
            point = pc.binary_replace_slice(text, start=_END, stop=_END, replacement=".0")
            return "", pc.if_else(whole, point, text), ""
        if kind == "date":
            if pa.types.is_date64(array.type):
                array = array.cast(pa.date32())
            return '"', self.text(array), '"'
        if kind == "timestamp":
            utc = array.cast(pa.timestamp("us", tz="UTC"), safe=False)
            text = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%S")
            # datetime.isoformat: the fraction only when it is not zero.
            text = pc.replace_substring_regex(text.cast(self.large), r"\.000000$", "")
            return '"', text, 'Z"'
        return "", self.nested(array, problems), ""

    def nested(self, array: Any, problems: _Problems) -> Any:
        """Struct, list and map cells, one by one with the dict path's converter and encoder."""
        out: list[str | None] = []
        for row, value in enumerate(array.to_pylist()):
            if value is None:
                out.append(None)
                continue
            try:
                wire = value_to_wire(value)
            except (ValueError, TypeError) as exc:
                problems.note(row, _CONVERT, ErrorCode.INVALID_FIELD, str(exc))
                out.append(None)
                continue
            try:
                encoded = encode_json(wire)
            except (ValueError, TypeError, RecursionError) as exc:
                problems.note(
                    row, _ENCODE, ErrorCode.INVALID_JSON, f"the user cannot be sent as JSON: {exc}"
                )
                out.append(None)
                continue
            out.append(encoded.decode())
        return self.pa.array(out, self.large)

    def join(self, batch: Any, problems: _Problems) -> Any:
        """Each row of ``batch`` as ``{...},``: one pass over each column, then one join.

        The text between two cells (a closing quote, the comma, the next key
        and its opening quote) is one literal. A column without nulls in this
        window gets it as the prefix of its cells (one ``binary_replace_slice``,
        a pass of memcpy); a column with nulls gets its own ``,"key":`` prefix
        and closing suffix, so that a null cell (left out: an upsert never
        clears) takes its key with it when the join skips it. The id column,
        first, is never null. Each column is touched by one kernel (two if it
        has nulls, or is the last) instead of a prefix, a suffix and a join
        input each: binary_join_element_wise was the largest cost, and it
        grows with its inputs.
        """
        pc = self.pc
        ordered = sorted(self.columns, key=lambda column: column[2] != "id")  # stable
        inputs: list[Any] = []
        literal = "{"  # what goes before the next cell
        for index, name, kind in ordered:
            open_, text, close = self.values(kind, batch.column(index), problems)
            key = ("," if inputs or literal != "{" else "") + encode_json(name).decode() + ":"
            if text.null_count == 0 or kind == "id":
                inputs.append(_prefixed(pc, literal + key + open_, text))
                literal = close
            else:
                if literal:
                    inputs.append(self.scalar(literal))
                text = _prefixed(pc, key + open_, text)
                if close:
                    text = pc.binary_replace_slice(text, start=_END, stop=_END, replacement=close)
                inputs.append(text)
                literal = ""
        last = inputs[-1]
        if last.null_count:
            inputs.append(self.scalar(literal + "},"))
        else:
            inputs[-1] = pc.binary_replace_slice(
                last, start=_END, stop=_END, replacement=literal + "},"
            )
        if len(inputs) == 1:
            return inputs[0]
        return pc.binary_join_element_wise(*inputs, self.scalar(""), null_handling="skip")

    # -- a window ------------------------------------------------------------------

    def encode(
        self, batch: Any, *, max_chunk_bytes: int, overhead: int
    ) -> tuple[Any, Any, Any, _Problems]:
        """One window: its users as ``{...},`` strings, their sizes, ids, and the problems."""
        pa, pc = self.pa, self.pc
        rows = batch.num_rows
        problems = _Problems()
        column = None if self.id_index is None else batch.column(self.id_index)
        if column is None or pa.types.is_null(column.type):
            ids = pa.nulls(rows, self.large)
        else:
            ids = self.text(column)
        missing = pc.is_null(ids)
        empty = pc.fill_null(pc.equal(ids, self.scalar("")), literal(pa, False, pa.bool_()))
        if pc.any(missing).as_py():
            for row in pc.indices_nonzero(missing).to_pylist():
                problems.note(row, _ID, ErrorCode.INVALID_FIELD, id_problem(None), "/id")
        if pc.any(empty).as_py():
            for row in pc.indices_nonzero(empty).to_pylist():
                problems.note(row, _ID, ErrorCode.INVALID_FIELD, id_problem(""), "/id")
        if column is None or pa.types.is_null(column.type):
            # No row has an id: nothing to encode (each row is rejected above).
            users = pa.repeat(self.scalar("{},"), rows)
            return users, pc.subtract(pc.binary_length(users), self.one), ids, problems
        users = self.join(batch, problems)
        if len(users) != rows:  # pragma: no cover - the id fragment above prevents it
            raise RuntimeError(f"pyarrow joined {rows} rows into {len(users)}")
        sizes = pc.subtract(pc.binary_length(users), self.one)  # without the comma
        too_large = pc.greater(sizes, literal(pa, MAX_USER_BYTES, pa.int64()))
        if pc.any(too_large).as_py():
            for row in pc.indices_nonzero(too_large).to_pylist():
                size = sizes[row].as_py()
                problems.note(
                    row,
                    _SIZE,
                    ErrorCode.INVALID_FIELD,
                    too_large_problem(size),
                )
        unfit = pc.greater(sizes, literal(pa, max_chunk_bytes - overhead, pa.int64()))
        if pc.any(unfit).as_py():
            for row in pc.indices_nonzero(unfit).to_pylist():
                size = sizes[row].as_py()
                problems.note(
                    row,
                    _FIT,
                    ErrorCode.MAX_BATCH_SIZE,
                    unfit_problem(size, max_chunk_bytes),
                )
        return users, sizes, ids, problems


def _prefixed(pc: Any, prefix: str, text: Any) -> Any:
    """``prefix + cell`` per cell (null stays null): a pass of memcpy."""
    return pc.binary_replace_slice(text, start=0, stop=0, replacement=prefix)


def _data(pa: Any, array: Any) -> memoryview:
    """The bytes of every value of a large string array, back to back (no copy)."""
    buffers = array.buffers()
    offsets = pa.Array.from_buffers(
        pa.int64(), len(array) + 1, [None, buffers[1]], offset=array.offset
    )
    start, end = offsets[0].as_py(), offsets[len(array)].as_py()
    return memoryview(buffers[2])[start:end]


# A window's work: (rows read, pieces to send, rejects as engine arguments).
_Reject = tuple[int, "str | None", ErrorCode, str, "str | None"]
# A chunk's body, ids and input positions (what _engine.Run.new_chunk takes).
_Piece = tuple[bytes, Sequence[str], Sequence[int]]
_Window = tuple[int, list[_Piece], list[_Reject]]


class _Lazy(Sequence[Any]):
    """An Arrow array's values, made Python objects only when first read.

    A chunk's ids (and positions, where a window had rejects) are read only
    when the API names one of its users, the chunk fails, or a hook takes its
    outcome: a chunk accepted whole (most of them) never makes them, which
    was a Python string per user.
    """

    __slots__ = ("array", "values")

    def __init__(self, array: Any) -> None:
        self.array = array
        self.values: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.array)

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self.read()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.read())

    def read(self) -> list[Any]:
        values = self.values
        if values is None:
            values = self.values = self.array.to_pylist()
        return values


def _positions(positions: Any) -> Sequence[int]:
    """A chunk's input positions: a range as it is, an Arrow array read lazily."""
    return positions if isinstance(positions, range) else _Lazy(positions)


class _Windows:
    """Reads the input window by window and encodes each (in a worker thread)."""

    def __init__(
        self,
        source: Any,
        *,
        head: bytes,
        tail: bytes,
        chunk_size: int,
        max_chunk_bytes: int,
        ids_only: bool,
    ) -> None:
        self.pa, self.pc = arrow_modules()
        self.rows = rows = max(chunk_size, (WINDOW_ROWS // chunk_size) * chunk_size)
        # (None: the batches come one by one, to encode_window.)
        self.windows = _windows(record_batches(source), rows) if source is not None else iter(())
        self.head, self.tail = head, tail
        self.overhead = len(head) + len(tail)
        self.chunk_size = chunk_size
        self.max_chunk_bytes = max_chunk_bytes
        self.ids_only = ids_only
        self.encoder: _Encoder | None = None
        self.encoder_schema: Any = None

    def next(self, base: int) -> _Window | None:
        """The next window, its first row at input position ``base``; None at the end."""
        batch = next(self.windows, None)
        return None if batch is None else self.encode_window(batch, base)

    def encode_window(self, batch: Any, base: int) -> _Window:
        """One window, its first row at input position ``base``."""
        if self.encoder is None or not self.encoder_schema.equals(batch.schema):
            self.encoder = _Encoder(batch.schema, ids_only=self.ids_only)
            self.encoder_schema = batch.schema
        return self.encode(self.encoder, batch, base)

    def encode(self, encoder: _Encoder, batch: Any, base: int) -> _Window:
        pa, pc = self.pa, self.pc
        rows = batch.num_rows
        users, sizes, ids, problems = encoder.encode(
            batch, max_chunk_bytes=self.max_chunk_bytes, overhead=self.overhead
        )
        rejects: list[_Reject] = []
        positions: Any
        if problems.rows:
            keep = [True] * rows
            for row in sorted(problems.rows):
                rank, code, details, pointer = problems.rows[row]
                keep[row] = False
                uid = None if rank == _ID else ids[row].as_py() or None
                rejects.append((base + row, uid, code, details, pointer))
            kept = mask(pa, keep)
            users, sizes, ids = users.filter(kept), sizes.filter(kept), ids.filter(kept)
            positions = pc.add(pc.indices_nonzero(kept), literal(pa, base, pa.int64()))
        else:
            positions = range(base, base + rows)
        pieces: list[_Piece] = []
        for start in range(0, len(users), self.chunk_size):
            stop = min(start + self.chunk_size, len(users))
            pieces += self.pack(
                users.slice(start, stop - start),
                sizes.slice(start, stop - start),
                ids.slice(start, stop - start),
                positions[start:stop],
            )
        return rows, pieces, rejects

    def pack(self, users: Any, sizes: Any, ids: Any, positions: Any) -> list[_Piece]:
        """Bodies for one chunk's users: one, or more where ``max_chunk_bytes`` cuts it.

        ``positions`` is a range, or an Arrow array where rows were rejected.
        """
        total = self.pc.sum(sizes).as_py() + len(users) - 1 + self.overhead
        if total <= self.max_chunk_bytes:
            return [(self.body(users), _Lazy(ids), _positions(positions))]
        # Over the byte cap: cut where the next user would not fit (each fits alone).
        pieces = []
        start, size = 0, self.overhead
        for index, user_size in enumerate(sizes.to_pylist()):
            added = user_size + (1 if index > start else 0)
            if index > start and size + added > self.max_chunk_bytes:
                pieces.append(self.piece(users, ids, positions, start, index))
                start, size, added = index, self.overhead, user_size
            size += added
        pieces.append(self.piece(users, ids, positions, start, len(users)))
        return pieces

    def piece(self, users: Any, ids: Any, positions: Any, start: int, stop: int) -> _Piece:
        count = stop - start
        return (
            self.body(users.slice(start, count)),
            _Lazy(ids.slice(start, count)),
            _positions(positions[start:stop]),
        )

    def body(self, users: Any) -> bytes:
        data = _data(self.pa, users)
        return b"".join((self.head, data[:-1], self.tail))  # the last comma left out


async def produce(run: _Run, source: Any, send: MemoryObjectSendStream[_Chunk]) -> None:
    """The engine's producer for columnar input that is not an iterable of items.

    A table, a batch, a reader, a C stream: read and encoded a window at a
    time in a worker thread (Arrow's kernels let go of the GIL, so the event
    loop goes on sending); each window's rows are accounted for back on the
    loop (:meth:`Feed.hand_over`). A window that was read but not accounted
    for (a cancellation while in the thread) was never submitted.
    """
    feed = Feed(run, send, source)
    while True:
        window = await anyio.to_thread.run_sync(feed.windows.next, run.submitted)
        if window is None:
            return
        await feed.hand_over(window)


class Feed:
    """The record batches among a run's items, sent as they come between its dict rows.

    One per run, made at the first batch (its encoder is kept while the
    schema holds). A *stretch* is a run of consecutive batches of one schema:
    they are cut into windows (small ones of one schema combined) and their
    rows numbered on from ``run.submitted``. Chunks fall where they would if
    every row were a dict: the engine fills the chunk being filled with a
    batch's first rows (:meth:`_Run.top_up`), and the last, partial chunk of a
    stretch that rows follow is not sent: its rows become the start of the
    rows' chunk (:meth:`hand_over`). The item that ends a stretch (a dict, a
    User, an id) is handed back to the engine's row loop.
    """

    def __init__(self, run: _Run, send: MemoryObjectSendStream[_Chunk], source: Any = None):
        self.run, self.send = run, send
        self.pa, _ = arrow_modules()
        self.windows = _Windows(
            source,
            head=run.head,
            tail=run.tail,
            chunk_size=run.chunk_size,
            max_chunk_bytes=run.max_chunk_bytes,
            ids_only=run.operation == "delete",
        )

    async def hand_over(self, window: _Window, batch: Any = None, base: int = 0) -> None:
        """Account for one window's rows on the loop, without an await before its chunks exist.

        With ``batch`` (the window's rows, the first at input position ``base``):
        the rows of a last chunk that is not full go to the chunk being filled
        instead, as the rows they are (:func:`batch_rows`).
        """
        run = self.run
        rows, pieces, rejects = window
        run.submitted += rows
        for reject in rejects:
            run.reject_local(*reject)
        if batch is None or not pieces or len(pieces[-1][1]) >= run.chunk_size:
            await run.flush(self.send, [run.new_chunk(*piece) for piece in pieces])
            return
        *pieces, (_, _, positions) = pieces
        chunks = [run.new_chunk(*piece) for piece in pieces]
        picked = self.pa.array([position - base for position in positions], self.pa.int64())
        for position, row in zip(positions, batch_rows(run, batch.take(picked)), strict=True):
            run.keep(row, position)
        await run.flush(self.send, chunks, seal=False)

    async def stretch(self, first: Any, items: Iterator[Any]) -> Any:
        """Send ``first`` and the batches after it; the next other item, or ``_NOTHING``.

        A sync iterator is read in the worker thread too (it may be a file's reader).
        Each window is handed over once the next is read (the last is handed
        over knowing whether rows follow).
        """
        ended: list[Any] = []
        windows = self.stretch_windows(first, items, ended)
        held: tuple[_Window, Any, int] | None = None
        try:
            while (got := await anyio.to_thread.run_sync(next, windows, None)) is not None:
                if held is not None:
                    await self.hand_over(held[0])
                held = got
        except Exception:
            if held is not None:
                await self.hand_over(held[0])  # what was read is sent first
            raise
        if held is not None and ended:
            await self.hand_over(*held)  # rows follow: its partial last chunk becomes theirs
        elif held is not None:
            await self.hand_over(held[0])
        return ended[0] if ended else _NOTHING

    def stretch_windows(
        self, first: Any, items: Iterator[Any], ended: list[Any]
    ) -> Iterator[tuple[_Window, Any, int]]:
        base = self.run.submitted  # nothing else numbers rows during a stretch

        def batches() -> Iterator[Any]:
            item = first
            while True:
                yield from _batches_of(self.pa, item)
                item = next(items, _NOTHING)
                if item is _NOTHING:
                    return
                if not self.goes_on(first, item):
                    ended.append(item)
                    return

        for batch in _windows(batches(), self.windows.rows):
            window = self.windows.encode_window(batch, base)
            yield window, batch, base
            base += window[0]

    async def stretch_async(self, first: Any, items: AsyncIterator[Any]) -> Any:
        """:meth:`stretch` of an async iterator: read on the loop, windows encoded in a thread."""
        rebatcher = _Rebatcher(self.windows.rows)
        self.held: tuple[_Window, Any, int] | None = None
        self.base = self.run.submitted
        item = first
        while True:
            for batch in list(_batches_of(self.pa, item)):
                await self.encode(rebatcher.add(batch))
            try:
                item = await anext(items)
            except StopAsyncIteration:
                item = _NOTHING
                break
            except Exception:
                await self.encode(rebatcher.rest())  # what was read is sent first
                if (held := self.release()) is not None:
                    await self.hand_over(held[0])
                raise
            if not self.goes_on(first, item):
                break
        await self.encode(rebatcher.rest())
        if (held := self.release()) is not None:
            if item is not _NOTHING:
                await self.hand_over(*held)  # rows follow: its partial last chunk becomes theirs
            else:
                await self.hand_over(held[0])
        return item

    def release(self) -> tuple[_Window, Any, int] | None:
        """The window :meth:`encode` holds back, no longer held."""
        held, self.held = self.held, None
        return held

    @staticmethod
    def goes_on(first: Any, item: Any) -> bool:
        """Whether ``item`` is of the stretch ``first`` began: a batch of its schema.

        Another schema ends it, as a row does: the chunk its rows end in is
        filled with the next batch's first rows (one encoder per stretch, and
        chunks of ``chunk_size`` users whatever the schemas).
        """
        return is_arrow_item(item) and item.schema.equals(first.schema)

    async def encode(self, batches: Iterator[Any]) -> None:
        for batch in list(batches):
            window = await anyio.to_thread.run_sync(self.windows.encode_window, batch, self.base)
            if self.held is not None:
                await self.hand_over(self.held[0])
            self.held = (window, batch, self.base)
            self.base += window[0]


def check(source: Any, operation: str) -> None:
    """Refuse, before the run starts, columnar input that cannot be sent at all.

    pyarrow missing is a ConfigurationError; a column with no JSON form (or a
    naive timestamp, or a non-string id column) a TypeError, when the schema is
    known without reading (a table, a batch, a reader).
    """
    arrow_modules()
    schema = getattr(source, "schema", None)
    if schema is not None and _from_pyarrow(type(schema)):
        _Encoder(schema, ids_only=operation == "delete")


def batch_rows(run: _Run, batch: Any) -> Iterator[dict[str, Any]]:
    """A batch's rows as the dict path's items of ``run``, with the columnar path's meaning.

    A delete sends the ids alone (:class:`_Encoder`'s ``ids_only``).
    """
    if run.operation == "delete":
        names = batch.schema.names
        batch = batch.select(["id"] if "id" in names else [])
    return as_rows(batch)


def as_rows(source: Any) -> Iterator[dict[str, Any]]:
    """Columnar input as the dict path's users: one dict per row, nulls left out.

    For what needs each user as a value (a sync hashes each one); the meaning
    is the columnar path's: an integer id column travels as strings.
    """
    pa, _ = arrow_modules()
    for batch in record_batches(source):
        index = batch.schema.get_field_index("id")
        integer_ids = index >= 0 and pa.types.is_integer(batch.schema.field(index).type)
        for row in batch.to_pylist():
            user = {key: value for key, value in row.items() if value is not None}
            if integer_ids and "id" in user:
                user["id"] = str(user["id"])
            yield user


# -- the row rules at the Arrow level ------------------------------------------------


def rename_columns(data: Any, keys: Sequence[str | None]) -> Any:
    """``data`` (a ``RecordBatch`` or ``Table``) with each column renamed to its wire key.

    ``keys`` holds the key of each column in order, ``None`` to leave it out:
    what :meth:`~._rows.RowRules.keys` answers for the columns (so ``--map``
    and Spark's ``mapping=`` checks and messages stay the row path's). Only
    metadata changes: the column buffers are shared, not copied. Values are
    not cast (``--type``'s casters work on single values).

    >>> import pyarrow as pa
    >>> batch = pa.record_batch({"user_id": [1], "mail": ["a@x.test"], "internal": [0]})
    >>> rename_columns(batch, ["id", "email", None]).schema.names
    ['id', 'email']
    """
    pa, _ = arrow_modules()
    names = list(data.schema.names)
    if len(keys) != len(names):
        raise ValueError(f"{len(keys)} keys for {len(names)} columns ({', '.join(names)})")
    kept = [(index, key) for index, key in enumerate(keys) if key is not None]
    columns = [data.column(index) for index, _ in kept]
    renamed = [key for _, key in kept]
    if isinstance(data, pa.Table):
        return pa.Table.from_arrays(columns, names=renamed)
    return pa.RecordBatch.from_arrays(columns, names=renamed)
