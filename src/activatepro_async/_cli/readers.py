"""Reading input files row by row, with line numbers: CSV, JSON Lines, one id per line, Parquet.

A reader never loads the whole file: it yields one :class:`SourceRow` per
record. A row that cannot be read (a CSV line with the wrong number of fields,
a JSON line that is not an object) is yielded too, with its ``problem``, so
the run reports it with its line number and goes on. Only what makes the rest
of the file unreadable (bytes that are not in the encoding, a missing or
broken header) raises :class:`InputError`.

Every format is read as bytes and decoded line by line, so an encoding error
names its exact line; a UTF-8 byte order mark at the start is dropped.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import stat
import sys
from collections.abc import Iterator
from typing import IO, Any, Literal

from .._wire import decode_json

__all__ = ["FORMATS", "InputError", "Source", "SourceRow", "detect_format", "open_source"]

Format = Literal["csv", "jsonl", "lines", "parquet"]
#: The formats, and the file extensions that name them.
FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "lines",
    ".ids": "lines",
    ".parquet": "parquet",
}

# A CSV cell may hold a JSON value (--type col=json) of up to the API's 1 MiB per user.
_FIELD_LIMIT = 2 * 1024 * 1024
# Rows decoded from Parquet at a time: the reader's memory stays flat.
_READ_ROWS = 8192


class InputError(Exception):
    """The input cannot be read on (the message names the file and line, and the fix)."""


class SourceRow:
    """One record of the input.

    ``line`` is the number of its first line in the file (1-based; a CSV record
    with quoted line breaks spans several). ``data`` maps column names (or JSON
    keys) to values, with empty CSV cells left out; it is ``None`` when the
    record could not be read, and ``problem`` says why. ``raw`` is what the
    rejects file shows: the CSV cells by column, the JSON object, or the text.
    """

    __slots__ = ("data", "line", "problem", "raw")

    def __init__(self, line: int, data: dict[str, Any] | None, raw: Any, problem: str | None):
        self.line = line
        self.data = data
        self.raw = raw
        self.problem = problem

    def __repr__(self) -> str:
        what = f"problem={self.problem!r}" if self.problem else f"data={self.data!r}"
        return f"SourceRow(line={self.line}, {what})"


def detect_format(path: str, given: str | None) -> Format:
    """The format named by ``--format``, else by the file's extension."""
    if given is not None:
        if given not in ("csv", "jsonl", "lines", "parquet"):
            raise InputError(f"unknown format {given!r}: use csv, jsonl, lines or parquet")
        return given  # type: ignore[return-value]
    if path == "-":
        raise InputError("reading stdin: say what it holds with --format csv, jsonl or lines")
    ext = os.path.splitext(path)[1].lower()
    if ext in FORMATS:
        return FORMATS[ext]
    known = ", ".join(FORMATS)
    raise InputError(
        f"cannot tell the format of {path} from its extension (known: {known}): "
        "pass --format csv, jsonl, lines or parquet"
    )


class Source:
    """An open input: iterate it for :class:`SourceRow` s; ``bytes_read`` grows as it goes.

    ``total_bytes`` is the file's size (``None`` for stdin or a pipe), for the ETA.
    """

    def __init__(
        self,
        stream: IO[bytes],
        *,
        name: str,
        fmt: Format,
        encoding: str = "utf-8",
        delimiter: str | None = None,
        owned: bool = True,
    ) -> None:
        self.name = name
        self.format: Format = fmt
        self.encoding = encoding
        self.delimiter = (
            delimiter if delimiter is not None else ("\t" if name.endswith(".tsv") else ",")
        )
        self.bytes_read = 0
        self.rows_read = 0
        self.header: list[str] | None = None
        self._csv: tuple[Any, int] | None = None
        self._pq: Any = None
        self._stream = stream
        self._owned = owned
        self.total_bytes: int | None = None
        try:
            st = os.fstat(stream.fileno())
        except (OSError, AttributeError, ValueError):
            pass
        else:
            if stat.S_ISREG(st.st_mode):
                self.total_bytes = st.st_size

    def close(self) -> None:
        """Close the file (not stdin)."""
        if self._owned:
            self._stream.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lines -----------------------------------------------------------------

    def _decoded_lines(self) -> Iterator[str]:
        """The file's lines as text, line endings kept; counts the bytes read."""
        encoding = self.encoding
        for number, raw in enumerate(self._stream, 1):
            self.bytes_read += len(raw)
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{self.name} line {number} is not valid {encoding} "
                    f"(byte 0x{raw[exc.start]:02x} at column {exc.start + 1}): "
                    "save the file as UTF-8, or pass its encoding with --encoding"
                ) from None
            if number == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield text

    def __iter__(self) -> Iterator[SourceRow]:
        if self.format == "csv":
            return self._csv_rows()
        if self.format == "jsonl":
            return self._jsonl_rows()
        if self.format == "parquet":
            return self._parquet_rows()
        return self._id_rows()

    # -- CSV -------------------------------------------------------------------

    def prepare(self) -> None:
        """Read what comes before the rows (a CSV header), so options can be checked first."""
        if self.format == "parquet":
            self.header = list(self._parquet().schema_arrow.names)
            return
        if self.format == "csv" and self._csv is None:
            if csv.field_size_limit() < _FIELD_LIMIT:
                csv.field_size_limit(_FIELD_LIMIT)
            reader = csv.reader(self._decoded_lines(), delimiter=self.delimiter)
            last = 0
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    raise InputError(
                        f"{self.name} is empty: a CSV file needs a header line"
                    ) from None
                except csv.Error as exc:
                    raise InputError(
                        f"{self.name} line {last + 1}: the header is not CSV: {exc}"
                    ) from None
                start, last = last + 1, reader.line_num
                if cells and not (len(cells) == 1 and not cells[0].strip()):
                    self.header = self._check_header(cells, start)
                    break
            self._csv = (reader, last)

    def _csv_rows(self) -> Iterator[SourceRow]:
        self.prepare()
        assert self._csv is not None
        assert self.header is not None
        reader, last = self._csv
        header = self.header
        width = len(header)
        while True:
            # The hot loop is a plain for; a csv.Error (a cell over the size
            # limit) leaves it, is reported, and the loop goes on after it.
            try:
                for cells in reader:
                    start, last = last + 1, reader.line_num
                    if len(cells) == width:
                        data = dict(zip(header, cells))  # noqa: B905 - lengths checked
                        if "" in cells:
                            # CSV has no null, and an upsert must not clear
                            # what the file does not mention: leave empty cells out.
                            data = {name: cell for name, cell in data.items() if cell}
                        self.rows_read += 1
                        yield SourceRow(start, data, cells, None)
                    elif not cells or (len(cells) == 1 and not cells[0].strip()):
                        continue  # a blank line
                    else:
                        self.rows_read += 1
                        yield SourceRow(
                            start,
                            None,
                            cells,
                            f"the record has {len(cells)} fields, the header has {width} "
                            "(an unquoted delimiter or quote in a cell?)",
                        )
                return
            except csv.Error as exc:
                start, last = last + 1, reader.line_num
                self.rows_read += 1
                yield SourceRow(start, None, None, f"not a readable CSV record: {exc}")

    def _check_header(self, cells: list[str], line: int) -> list[str]:
        header = [cell.strip() for cell in cells]
        for index, name in enumerate(header, 1):
            if not name:
                raise InputError(
                    f"{self.name} line {line}: column {index} of the header has no name"
                )
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise InputError(f"{self.name} line {line}: the header names column {name!r} twice")
            seen.add(name)
        return header

    def raw_row(self, row: SourceRow) -> Any:
        """The record as the rejects file shows it: cells by column where possible."""
        header = self.header
        if isinstance(row.raw, list) and header is not None and len(row.raw) == len(header):
            return dict(zip(header, row.raw, strict=True))
        return row.raw

    # -- JSON Lines -------------------------------------------------------------

    def _jsonl_rows(self) -> Iterator[SourceRow]:
        for number, text in enumerate(self._decoded_lines(), 1):
            stripped = text.strip()
            if not stripped:
                continue
            self.rows_read += 1
            try:
                value = decode_json(stripped)
            except (ValueError, RecursionError) as exc:
                detail = (
                    f"{exc.msg} at column {exc.colno}"
                    if isinstance(exc, json.JSONDecodeError)
                    else str(exc) or type(exc).__name__
                )
                yield SourceRow(number, None, stripped, f"not valid JSON: {detail}")
                continue
            if not isinstance(value, dict):
                yield SourceRow(
                    number, None, value, f"a JSON {_json_kind(value)}, not an object (a user)"
                )
                continue
            yield SourceRow(number, value, value, None)

    # -- Parquet -----------------------------------------------------------------------

    def _parquet(self) -> Any:
        """The file as a ``pyarrow.parquet.ParquetFile`` (read once, its footer first)."""
        if self._pq is None:
            try:
                pq = importlib.import_module("pyarrow.parquet")  # the arrow extra, for Parquet only
            except ImportError:
                raise InputError(
                    f"{self.name} is Parquet, which needs pyarrow: "
                    "pip install 'activatepro-async[arrow]'"
                ) from None
            try:
                self._pq = pq.ParquetFile(self._stream)
            except Exception as exc:  # pyarrow's ArrowInvalid, OSError: not Parquet
                raise InputError(f"{self.name} is not a readable Parquet file: {exc}") from None
        return self._pq

    @property
    def total_rows(self) -> int:
        """The rows of a Parquet file, from its footer (a row's ``line`` is its number)."""
        return int(self._parquet().metadata.num_rows)

    @property
    def arrow_schema(self) -> Any:
        """The Arrow schema of a Parquet file (the columnar path can read it), else None."""
        return self._parquet().schema_arrow if self.format == "parquet" else None

    def arrow_parts(self) -> Iterator[tuple[Any, int]]:
        """A Parquet file's record batches, each with the line (row number) of its first row."""
        parquet = self._parquet()
        total = max(self.total_rows, 1)
        number = 0
        try:
            for batch in parquet.iter_batches(batch_size=_READ_ROWS):
                yield batch, number + 1
                number += batch.num_rows
                self.rows_read = number
                if self.total_bytes is not None:
                    self.bytes_read = self.total_bytes * number // total
        except Exception as exc:  # a damaged page: what was read is sent, then the run stops
            raise InputError(
                f"{self.name} row {number + 1}: the Parquet file cannot be read on: {exc}"
            ) from None

    def _parquet_rows(self) -> Iterator[SourceRow]:
        # A row's "line" is its number (1-based); its nulls are left out, like
        # empty CSV cells: an upsert never clears what the file does not hold.
        parquet = self._parquet()
        total = max(self.total_rows, 1)
        number = 0
        try:
            for batch in parquet.iter_batches(batch_size=_READ_ROWS):
                for row in batch.to_pylist():
                    number += 1
                    data = {k: v for k, v in row.items() if v is not None}
                    self.rows_read += 1
                    yield SourceRow(number, data, row, None)
                if self.total_bytes is not None:
                    self.bytes_read = self.total_bytes * number // total
        except InputError:
            raise
        except Exception as exc:  # a damaged page: what was read is sent, then the run stops
            raise InputError(
                f"{self.name} row {number + 1}: the Parquet file cannot be read on: {exc}"
            ) from None

    # -- one id per line ----------------------------------------------------------

    def _id_rows(self) -> Iterator[SourceRow]:
        for number, text in enumerate(self._decoded_lines(), 1):
            value = text.strip()
            if value:
                self.rows_read += 1
                yield SourceRow(number, {"id": value}, value, None)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def open_source(
    path: str, fmt: str | None = None, *, encoding: str = "utf-8", delimiter: str | None = None
) -> Source:
    """Open ``path`` (``-`` is stdin) as a :class:`Source`; :class:`InputError` says why not."""
    kind = detect_format(path, fmt)
    try:
        "".encode(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r}: use e.g. utf-8 or latin-1") from None
    if delimiter is not None and len(delimiter) != 1:
        raise InputError(f"--delimiter must be one character, got {delimiter!r}")
    if path == "-" and kind == "parquet":
        raise InputError(
            "Parquet cannot be read from stdin (its footer is at its end): pass a file"
        )
    if path == "-":
        return Source(
            sys.stdin.buffer,
            name="-",
            fmt=kind,
            encoding=encoding,
            delimiter=delimiter,
            owned=False,
        )
    try:
        stream = open(path, "rb")  # noqa: SIM115 - Source owns and closes it
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if os.path.isdir(path):  # pragma: no cover - open() already refuses on POSIX
        stream.close()
        raise InputError(f"{path} is a directory: pass a file")
    return Source(stream, name=path, fmt=kind, encoding=encoding, delimiter=delimiter)
