"""Reading input files row by row, with line numbers: CSV, JSON Lines, one id per line, Parquet.

A reader never loads the whole file: it yields one :class:`SourceRow` per
record. A row that cannot be read (a CSV line with the wrong number of fields,
a JSON line that is not an object) is yielded too, with its ``problem``, so
the run reports it with its line number and goes on. Only what makes the rest
of the file unreadable (bytes that are not in the encoding, a missing or
broken header) raises :class:`InputError`.

Every format is read as bytes and decoded line by line, so an encoding error
names its exact line; a UTF-8 byte order mark at the start is dropped.

Two pieces are for any reader of the command's files, not only these:

- :func:`open_decompressed` opens a file (gzip or zstd, told by its first
  bytes, or plain) as a stream of its decompressed bytes, read as it goes;
- :func:`sniff_dialect` tells the delimiter and quote character of CSV text
  from its first lines.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import importlib
import io
import itertools
import json
import os
import re
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, Literal, cast

from .._wire import decode_json

__all__ = [
    "COMPRESSIONS",
    "DELIMITERS",
    "FORMATS",
    "ZSTD_HINT",
    "InputError",
    "Part",
    "Source",
    "SourceRow",
    "compression_of",
    "count_lines",
    "detect_format",
    "open_decompressed",
    "open_source",
    "sniff_dialect",
]

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
# Bytes of CSV the columnar path parses at a time (about 12,000 rows of 7 columns).
_BLOCK = 1 << 20

#: The extensions of compressed files, and their compression; the file's first
#: bytes decide (stdin has no extension, and an extension may lie).
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}
#: What to install to read ``.zst`` files.
ZSTD_HINT = "pip install 'activatepro-async[zstd]'"

#: The delimiters :func:`sniff_dialect` chooses from: what spreadsheets and
#: database exports write (Excel in much of Europe writes ``;``).
DELIMITERS = ",;\t|"
# How much of the file the sniffer reads: enough lines to see a pattern, few
# enough that a huge first cell does not stall it.
_SNIFF_LINES = 50
_SNIFF_CHARS = 64 * 1024


class InputError(Exception):
    """The input cannot be read on (the message names the file and line, and the fix)."""


class Part:
    """Rows read as one record batch (every column as the file holds it), and their lines.

    ``lines`` is the line of the first row when the rows are on consecutive
    lines (a Parquet file, a plain CSV block), else each row's line. ``unreadable``
    are the records between them that could not be read (a CSV record with the
    wrong number of fields): the run rejects them as the row path does.
    """

    __slots__ = ("batch", "lines", "unreadable")

    def __init__(self, batch: Any, lines: int | list[int], unreadable: list[SourceRow]) -> None:
        self.batch = batch
        self.lines = lines
        self.unreadable = unreadable

    def line(self, row: int) -> int:
        """The line of the batch's row ``row``."""
        lines = self.lines
        return lines + row if isinstance(lines, int) else lines[row]


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
    ext = os.path.splitext(_uncompressed_name(path))[1].lower()
    if ext in FORMATS:
        return FORMATS[ext]
    known = ", ".join(FORMATS)
    raise InputError(
        f"cannot tell the format of {path} from its extension (known: {known}, each "
        "also as .gz or .zst): pass --format csv, jsonl, lines or parquet"
    )


def _uncompressed_name(path: str) -> str:
    """``users.csv`` for ``users.csv.gz``: the name that tells the format."""
    root, ext = os.path.splitext(path)
    return root if ext.lower() in COMPRESSIONS else path


def sniff_dialect(sample: str, default: str = ",") -> tuple[str, str]:
    """The delimiter and quote character of CSV text, told from ``sample`` (its first lines).

    The delimiter is one of :data:`DELIMITERS`, the quote character ``"`` or
    ``'``. When the sample does not tell (one column, a single line the
    sniffer cannot read), the answer is ``(default, '"')``: the CSV standard's.

    >>> sniff_dialect("id;email\\n1;a@example.com\\n")
    (';', '"')
    """
    # Blank lines tell nothing, and with Windows line ends the sniffer takes each
    # lone CR for a line without the delimiter and gives up (a header-only export).
    lines = [line for line in sample.splitlines() if line.strip()]
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS)
    except csv.Error:
        return default, '"'
    delimiter, quote = dialect.delimiter, dialect.quotechar
    header = lines[0] if lines else ""
    if delimiter not in DELIMITERS or delimiter not in header:
        # The sniffer counts characters: in a one-column file a ; or a space
        # that recurs in every value looks like a delimiter, but the header
        # (the first line) of a file with several columns has its delimiter.
        return default, '"'
    return delimiter, quote if quote in ('"', "'") else '"'


def compression_of(head: bytes) -> str | None:
    """``"gzip"``, ``"zstd"`` or ``None``: the compression that data starting ``head`` has."""
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)


def _compression(stream: IO[bytes]) -> str | None:
    """The compression of a buffered stream, from its first bytes (left unread)."""
    peek = getattr(stream, "peek", None)
    return compression_of(peek(4)[:4] if peek is not None else b"")


def _decompressing(stream: IO[bytes], kind: str | None, name: str) -> IO[bytes]:
    """``stream``'s decompressed bytes as a buffered stream (closing it closes ``stream``)."""
    if kind == "gzip":
        # Buffered again: lines from a BufferedReader are split in C, from a
        # GzipFile by a Python method per line (twice as slow here).
        inner = io.BufferedReader(gzip.GzipFile(fileobj=stream, mode="rb"), 1 << 16)
        return _Closing(inner, stream).as_io()
    if kind == "zstd":
        try:
            import zstandard
        except ModuleNotFoundError:
            raise InputError(f"{name} is zstd-compressed: to read it, {ZSTD_HINT}") from None
        frames = _ZstdFrames(stream, zstandard.ZstdDecompressor().decompressobj)
        return _Closing(io.BufferedReader(frames, 1 << 16), stream).as_io()
    return stream


class _ZstdFrames(io.RawIOBase):
    """The decompressed bytes of a zstd stream of one or more frames.

    zstandard's own ``stream_reader`` ends quietly where a cut-short file
    ends, which would pass a truncated export off as a whole one: here the
    end of the input inside a frame raises ``EOFError``, as gzip does.
    """

    def __init__(self, stream: IO[bytes], new: Callable[[], Any]) -> None:
        super().__init__()
        self._stream = stream
        self._new = new
        self._frame = new()
        self._in_frame = False
        self._out = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._out:
            data = self._stream.read(1 << 16)
            if not data:
                if self._in_frame:
                    raise EOFError("the zstd data ended inside a frame: the file is cut short")
                return 0
            out = []
            while data:
                self._in_frame = True
                out.append(self._frame.decompress(data))
                data = b""
                if self._frame.eof:  # a frame ended; what follows is the next one
                    data = self._frame.unused_data
                    self._frame, self._in_frame = self._new(), False
            self._out = memoryview(b"".join(out))
        size = min(len(buffer), len(self._out))
        buffer[:size] = self._out[:size]
        self._out = self._out[size:]
        return size


class _Closing(io.BufferedIOBase):
    """A decompressed stream that also closes the file under it (GzipFile(fileobj=) does not)."""

    def __init__(self, inner: io.BufferedIOBase, under: IO[bytes]) -> None:
        super().__init__()
        self._inner = inner
        self._under = under

    def as_io(self) -> IO[bytes]:
        """This stream, typed as what ``open(path, "rb")`` returns (it reads alike)."""
        return cast("IO[bytes]", self)

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        return self._inner.read(size)

    def read1(self, size: int = -1) -> bytes:
        return self._inner.read1(size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._inner.readline(size)

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._inner)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._under.close()
            super().close()


def _damage_errors() -> tuple[type[BaseException], ...]:
    """What a damaged or cut-short compressed stream raises while it is read."""
    errors: tuple[type[BaseException], ...] = (EOFError, zlib.error, gzip.BadGzipFile)
    try:
        import zstandard
    except ModuleNotFoundError:
        return errors
    return (*errors, zstandard.ZstdError)


def open_decompressed(path: str) -> IO[bytes]:
    """The bytes of the file at ``path``, decompressed as they are read (gzip, zstd, or none).

    The compression is told by the file's first bytes, not its name. Raises
    :class:`InputError` when the file cannot be opened, or is zstd and the
    ``zstd`` extra is not installed. Reading a damaged compressed file raises
    ``EOFError``, ``zlib.error``, ``gzip.BadGzipFile`` or ``zstandard.ZstdError``.
    """
    stream = _open_file(path)
    try:
        return _decompressing(stream, _compression(stream), path)
    except InputError:
        stream.close()
        raise


def _open_file(path: str) -> IO[bytes]:
    try:
        stream = open(path, "rb")  # noqa: SIM115 - the caller owns and closes it
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if os.path.isdir(path):  # pragma: no cover - open() already refuses on POSIX
        stream.close()
        raise InputError(f"{path} is a directory: pass a file")
    return stream


def count_lines(path: str) -> int:
    """The lines of the file's text (decompressed), as the readers number them."""
    lines = 0
    last = b""
    with open_decompressed(path) as stream:
        try:
            while block := stream.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
        except _damage_errors() as exc:
            raise InputError(_damaged(path, lines + 1, exc)) from None
    return lines + (1 if last not in (b"", b"\n") else 0)


def _damaged(name: str, line: int, exc: BaseException) -> str:
    return (
        f"{name} line {line}: the compressed data is damaged or cut short "
        f"({str(exc) or type(exc).__name__}): get the whole file again"
    )


class Source:
    """An open input: iterate it for :class:`SourceRow` s; ``bytes_read`` grows as it goes.

    ``total_bytes`` is the file's size (``None`` for stdin or a pipe), for the
    ETA; for a compressed file both count its compressed bytes. A CSV file's
    delimiter and quote character are :func:`sniff_dialect`'s unless
    ``delimiter`` is given (then the quote character is ``"``);
    ``dialect_detected`` says which.
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
        self.dialect_detected = delimiter is None and fmt == "csv"
        self.delimiter = (
            delimiter
            if delimiter is not None
            else ("\t" if _uncompressed_name(name).lower().endswith(".tsv") else ",")
        )
        self.quotechar = '"'
        self.bytes_read = 0
        self.rows_read = 0
        self.header: list[str] | None = None
        self._csv: tuple[Any, int] | None = None
        self._sample_left: Iterator[str] = iter(())
        self._pq: Any = None
        self._owned = owned
        self.total_bytes: int | None = None
        try:
            st = os.fstat(stream.fileno())
        except (OSError, AttributeError, ValueError):
            pass
        else:
            if stat.S_ISREG(st.st_mode):
                self.total_bytes = st.st_size
        if not hasattr(stream, "peek"):  # a BytesIO, say: the compression check peeks
            stream = cast("IO[bytes]", io.BufferedReader(cast("io.RawIOBase", stream)))
        self.compression = _compression(stream)
        # Where the compressed bytes are read up to: bytes_read of a compressed file.
        self._position = stream.tell if self.total_bytes is not None else None
        try:
            self._stream = _decompressing(stream, self.compression, name)
        except InputError:
            if owned:
                stream.close()
            raise
        self._damage: tuple[type[BaseException], ...] = _damage_errors() if self.compression else ()

    @property
    def reading(self) -> dict[str, Any]:
        """How the input was read, for the summary: format, CSV dialect, compression."""
        described: dict[str, Any] = {"format": self.format, "compression": self.compression}
        if self.format == "csv":
            described.update(
                delimiter=self.delimiter,
                quotechar=self.quotechar,
                detected=self.dialect_detected,
            )
        return described

    def delimiter_hint(self) -> str:
        """When the header may have been split at the wrong delimiter: how it was, what to try.

        Empty when the header looks well split (several columns, none holding
        another delimiter), so that other problems are not muddled with it.
        """
        header = self.header
        if self.format != "csv" or not header:
            return ""
        others = [d for d in DELIMITERS if d != self.delimiter and any(d in h for h in header)]
        if not others and len(header) > 1:
            return ""
        how = "detected" if self.dialect_detected else "given with --delimiter"
        text = f"the header was split at {self.delimiter!r} ({how})"
        if others:
            return f"{text}: if the file uses {others[0]!r}, pass --delimiter {others[0]!r}"
        return f"{text}: if the file uses another delimiter, pass --delimiter"

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
        if self.compression is not None:
            yield from self._decompressed_lines()
            return
        encoding = self.encoding
        for number, raw in enumerate(self._stream, 1):
            self.bytes_read += len(raw)
            yield self._decode(raw, number, encoding)

    def _decompressed_lines(self) -> Iterator[str]:
        # bytes_read counts the compressed bytes (what total_bytes is): the
        # position in the file under the decompressor, taken now and then.
        encoding = self.encoding
        tell = self._position
        number = 0
        lines = iter(self._stream)
        while True:
            try:
                raw = next(lines)
            except StopIteration:
                break
            except self._damage as exc:
                raise InputError(_damaged(self.name, number + 1, exc)) from None
            number += 1
            if tell is not None and number % 512 == 0:
                self.bytes_read = tell()
            yield self._decode(raw, number, encoding)
        if self.total_bytes is not None:
            self.bytes_read = self.total_bytes

    def _decode(self, raw: bytes, number: int, encoding: str) -> str:
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
        return text

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
            lines = self._decoded_lines()
            sample: list[str] = []
            if self.dialect_detected:
                chars = 0
                for text in lines:
                    sample.append(text)
                    chars += len(text)
                    if len(sample) >= _SNIFF_LINES or chars >= _SNIFF_CHARS:
                        break
                text = "".join(sample)
                if len(text) > _SNIFF_CHARS:
                    # The sniffer's patterns are slow on a huge cell: its first
                    # 64 KiB, to the last whole line in them, tell as much.
                    text = text[:_SNIFF_CHARS]
                    text = text[: text.rfind("\n") + 1] or text
                self.delimiter, self.quotechar = sniff_dialect(text, default=self.delimiter)
            rest = iter(sample)
            reader = csv.reader(
                itertools.chain(rest, lines), delimiter=self.delimiter, quotechar=self.quotechar
            )
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
            self._sample_left = rest  # the sample's lines after the header, not read yet

    def _csv_rows(self) -> Iterator[SourceRow]:
        self.prepare()
        assert self._csv is not None
        reader, last = self._csv
        return self._records(reader, last)

    def _records(self, reader: Any, last: int, offset: int = 0) -> Iterator[SourceRow]:
        """The records of a ``csv.reader`` whose line 1 is the file's line ``offset + 1``."""
        assert self.header is not None
        header = self.header
        width = len(header)
        while True:
            # The hot loop is a plain for; a csv.Error (a cell over the size
            # limit) leaves it, is reported, and the loop goes on after it.
            try:
                for cells in reader:
                    start, last = last + 1, offset + reader.line_num
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
                start, last = last + 1, offset + reader.line_num
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
        return self._json_records(enumerate(self._decoded_lines(), 1))

    def _json_records(self, lines: Iterable[tuple[int, str]]) -> Iterator[SourceRow]:
        """The records of numbered lines of text (the row code of either reader)."""
        for number, text in lines:
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
        """The Arrow schema the columnar path reads the input as, or None: not this input.

        A Parquet file's own; a CSV file's columns, every one a string (when
        pyarrow is installed, the text is UTF-8 and there are two columns or
        more: a one-column file of ids is read by the csv module).
        """
        if self.format == "parquet":
            return self._parquet().schema_arrow
        if self.format != "csv" or codecs.lookup(self.encoding).name != "utf-8":
            return None
        try:
            pa = importlib.import_module("pyarrow")
            importlib.import_module("pyarrow.csv")
        except ImportError:
            return None
        self.prepare()
        if self.header is None or len(self.header) < 2:
            return None
        return pa.schema([pa.field(name, pa.string()) for name in self.header])

    @property
    def json_blocks(self) -> bool:
        """Whether JSON Lines can be read in blocks, some by pyarrow (:class:`_JsonBlocks`)."""
        if self.format != "jsonl" or codecs.lookup(self.encoding).name != "utf-8":
            return False
        try:
            importlib.import_module("pyarrow.json")
        except ImportError:
            return False
        return True

    def arrow_parts(self) -> Iterator[Part | list[SourceRow]]:
        """The input as :class:`Part` s: Parquet's record batches, CSV's blocks.

        JSON Lines: a :class:`Part` per block pyarrow reads, else the block's records.
        """
        if self.format == "csv":
            yield from _CsvBlocks(self).parts()
            return
        if self.format == "jsonl":
            yield from _JsonBlocks(self).parts()
            return
        parquet = self._parquet()
        total = max(self.total_rows, 1)
        number = 0
        try:
            for batch in parquet.iter_batches(batch_size=_READ_ROWS):
                yield Part(batch, number + 1, [])
                number += batch.num_rows
                self.rows_read = number
                if self.total_bytes is not None:
                    self.bytes_read = self.total_bytes * number // total
        except Exception as exc:  # a damaged page: what was read is sent, then the run stops
            raise InputError(
                f"{self.name} row {number + 1}: the Parquet file cannot be read on: {exc}"
            ) from None

    def arrow_raw(self, part: Part, row: int) -> Any:
        """Row ``row`` of a part as the rejects file shows it (the row path's ``raw``)."""
        cells = part.batch.slice(row, 1).to_pylist()[0]
        if self.format == "csv":  # the record's cells, an empty one "" (the csv module's)
            return ["" if cell is None else cell for cell in cells.values()]
        if self.format == "jsonl":  # the object: a key its line does not have is null here
            return {key: value for key, value in cells.items() if value is not None}
        return cells

    def arrow_rows(self, part: Part) -> Iterator[SourceRow]:
        """A part's rows as the row path's records (a JSON Lines block read by pyarrow:
        its values are the ones the row code reads, :class:`_JsonBlocks`)."""
        for index, cells in enumerate(part.batch.to_pylist()):
            data = {key: value for key, value in cells.items() if value is not None}
            yield SourceRow(part.line(index), data, data, None)

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


def _whole_lines(source: Source, carry: bytes, line: int) -> tuple[bytes, bytes, int]:
    """The next block of the input cut after a line break, for the block readers.

    ``carry``: what was read after the last block's last line break; ``line``: the
    line the block starts at (for a damaged file's message). Returns the block (its
    last line without a line break only at the end of the input; empty there), what
    follows its last line break, and how many bytes came from the stream for it.
    """
    size = 0
    while True:
        try:
            data = source._stream.read(_BLOCK)
        except source._damage as exc:
            raise InputError(_damaged(source.name, line, exc)) from None
        size += len(data)
        block = carry + data
        if not data:
            return block, b"", size
        cut = block.rfind(b"\n") + 1
        if cut:
            return block[:cut], block[cut:], size
        carry = block  # no line break yet: read on


def _count_read(source: Source, size: int) -> None:
    """Progress: ``size`` more bytes of the file read (of a compressed one, its position)."""
    if source.compression is None:
        source.bytes_read += size
    elif source._position is not None:
        source.bytes_read = source._position()


class _CsvBlocks:
    """A CSV file after its header as :class:`Part` s, one per block of lines.

    A block (about :data:`_BLOCK` bytes, cut after a line break) is parsed by
    ``pyarrow.csv`` when its rows are sure to be its lines, one each: no quote
    character, no blank line, no NUL, no lone carriage return, every record
    with the header's number of fields, no line over the csv module's cell
    limit, valid UTF-8. Then row ``i`` is on line ``first + i``. Any other
    block is read by the csv module, as ``--reader stdlib`` reads it (a quoted
    line break may take it past the block's end: it reads the lines it needs),
    and its records make the part; those it cannot read are the part's
    ``unreadable``. So lines, cells and problems are the csv module's exactly.
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self.pa = importlib.import_module("pyarrow")
        self.csv = importlib.import_module("pyarrow.csv")
        header = source.header
        assert header is not None
        self.header = header
        self.quote = source.quotechar.encode()
        self.read_options = self.csv.ReadOptions(column_names=header, use_threads=False)
        self.convert_options = self.csv.ConvertOptions(
            column_types=dict.fromkeys(header, self.pa.string()),
            null_values=[""],
            strings_can_be_null=True,
        )
        self.carry = b""  # read, after the last whole line

    def parts(self) -> Iterator[Part]:
        source = self.source
        assert source._csv is not None
        line = source._csv[1] + 1  # the line the next block starts at
        # The sniffer's sample after the header was decoded already: as bytes again.
        self.carry = "".join(source._sample_left).encode("utf-8")
        while True:
            # (stdlib() may take lines after the block from carry and the stream: more().)
            block, self.carry, size = _whole_lines(source, self.carry, line)
            if not block:
                break
            lines = block.count(b"\n") + (not block.endswith(b"\n"))
            part = self.arrow(block, line, lines)
            if part is None:
                part, lines = self.stdlib(block, line)
            line += lines
            source.rows_read += part.batch.num_rows + len(part.unreadable)
            _count_read(source, size)
            yield part
        if source.total_bytes is not None:
            source.bytes_read = source.total_bytes

    def arrow(self, block: bytes, first: int, lines: int) -> Part | None:
        """The block parsed by pyarrow, or None when its rows may not be its lines."""
        if (
            self.quote in block
            or b"\n\n" in block
            or b"\n\r\n" in block
            or block.startswith((b"\n", b"\r\n"))
            or b"\x00" in block
            or block.count(b"\r") != block.count(b"\r\n")
            or len(block) > _FIELD_LIMIT
        ):
            return None
        invalid: list[Any] = []

        def skip(row: Any) -> str:
            invalid.append(row)
            return "skip"

        parse = self.csv.ParseOptions(
            delimiter=self.source.delimiter, quote_char=False, invalid_row_handler=skip
        )
        try:
            table = self.csv.read_csv(
                self.pa.py_buffer(block),
                read_options=self.read_options,
                parse_options=parse,
                convert_options=self.convert_options,
            )
        except self.pa.ArrowInvalid:  # not UTF-8: the csv module names the line
            return None
        if invalid or table.num_rows != lines:
            return None
        batches = table.combine_chunks().to_batches()
        return Part(batches[0], first, []) if len(batches) == 1 else None

    def stdlib(self, block: bytes, first: int) -> tuple[Part, int]:
        """The block read by the csv module (and the lines after it a record needs)."""
        source = self.source
        read = 0
        done = False

        def lines() -> Iterator[str]:
            nonlocal read, done
            raws = io.BytesIO(block).readlines()  # split at \n only, as the file's lines are
            for index, raw in enumerate(raws):
                read += 1
                done = index == len(raws) - 1
                yield source._decode(raw, first + read - 1, source.encoding)
            while raw := self.more(first + read):  # a quoted line break runs past the block
                read += 1
                yield source._decode(raw, first + read - 1, source.encoding)

        reader = csv.reader(lines(), delimiter=source.delimiter, quotechar=source.quotechar)
        records: list[SourceRow] = []
        for record in source._records(reader, first - 1, first - 1):
            records.append(record)
            if done:
                break
        source.rows_read -= len(records)  # counted again by the caller, with the part
        good = [r for r in records if r.data is not None]
        columns = list(zip(*(r.raw for r in good), strict=True)) or [()] * len(self.header)
        pa = self.pa
        arrays = [pa.array([cell or None for cell in column], pa.string()) for column in columns]
        batch = pa.RecordBatch.from_arrays(arrays, names=self.header)
        lines_of = [r.line for r in good]
        return Part(batch, lines_of, [r for r in records if r.data is None]), read

    def more(self, line: int) -> bytes:
        """The next line after the block, ``line`` (its start may be in ``carry``)."""
        stream = self.source._stream
        try:
            raw = self.carry + stream.readline()
        except self.source._damage as exc:
            raise InputError(_damaged(self.source.name, line, exc)) from None
        self.carry = b""
        return raw


# What makes a JSON Lines block unsafe for pyarrow even when it parses: an
# explicit null (the row path sends it, which clears the attribute; Arrow cannot
# tell it from a missing key) and a surrogate escape (a lone one is no
# character: the row path rejects that user).
_UNSAFE_JSON = re.compile(rb":\s*null|\\u[dD][89a-fA-F]")


class _JsonBlocks:
    """A JSON Lines file as blocks of lines: a :class:`Part` where pyarrow reads it faithfully.

    A block (about :data:`_BLOCK` bytes, cut after a line break) is read by
    ``pyarrow.json`` only when its rows are sure to be its lines and to hold
    what the row code would send: every line one object, ``{`` first and
    ``}`` last (no blank line, no whitespace around, no two objects on a
    line), valid UTF-8, no explicit ``null`` and no surrogate escape
    (:data:`_UNSAFE_JSON`), and every column a string, an int64 or a
    boolean (a column inferred as a timestamp or a date is read again as
    strings: the text as written). Anything else pyarrow refuses (a repeated
    key, NaN, a number beside a string) or would retype (a double: ``1``
    beside ``1.5``; an integer past int64; a nested object or an array) makes
    the block go to the row code, as ``--reader stdlib`` reads it: its
    records (a list of :class:`SourceRow`) are the part. So lines, values and
    problems are the row code's.
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self.pa = importlib.import_module("pyarrow")
        self.json = importlib.import_module("pyarrow.json")
        # The last block's keys (in order) and those it read as strings, not times.
        self.strings: tuple[list[str], Any] | None = None

    def parts(self) -> Iterator[Part | list[SourceRow]]:
        source = self.source
        line = 1  # the line the next block starts at
        carry = b""
        while True:
            block, carry, size = _whole_lines(source, carry, line)
            if not block:
                break
            lines = block.count(b"\n") + (not block.endswith(b"\n"))
            part: Part | list[SourceRow] | None = self.arrow(block, line, lines)
            if part is None:
                # (A line that is not UTF-8 raises here, as in the row path:
                # the rows read before it in the same batch are not sent.)
                part = list(self.rows(block, line))
            else:
                source.rows_read += lines
            line += lines
            _count_read(source, size)
            yield part
        if source.total_bytes is not None:
            source.bytes_read = source.total_bytes

    def rows(self, block: bytes, first: int) -> Iterator[SourceRow]:
        """The block's records, read by the row code (``--reader stdlib``'s)."""
        source = self.source
        raws = io.BytesIO(block).readlines()  # split at \n only, as the file's lines are
        encoding = source.encoding
        return source._json_records(
            (first + i, source._decode(raw, first + i, encoding)) for i, raw in enumerate(raws)
        )

    def arrow(self, block: bytes, first: int, lines: int) -> Part | None:
        """The block read by pyarrow, or None when it may not mean what the row code reads."""
        breaks = block.count(b"\n")
        ends = block.count(b"}\n") + block.count(b"}\r\n")
        if (
            not block.startswith(b"{")
            or ends != breaks
            or block.count(b"\n{") != lines - 1
            or (not block.endswith(b"\n") and not block.endswith(b"}"))
            or block.count(b"\r") != block.count(b"}\r\n")
            or len(block) > _FIELD_LIMIT * 8
            # (find first: the regular expression costs more than the read itself)
            or ((b"null" in block or b"\\u" in block) and _UNSAFE_JSON.search(block))
        ):
            return None
        try:
            block.decode("utf-8")
        except UnicodeDecodeError:
            return None  # the row code names the line
        pa, types = self.pa, self.pa.types
        table = None
        if self.strings is not None:  # the columns the last block had to read again
            names, strings = self.strings
            table = self.read(block, strings)
            if table is not None and sorted(table.schema.names) == sorted(names):
                table = table.select(names)
            else:
                table = None
        if table is None:
            table = self.read(block)
            if table is None:
                return None
        retyped = [
            f.name for f in table.schema if types.is_timestamp(f.type) or types.is_date(f.type)
        ]
        if retyped:  # strings that look like times: read again, as the text they are
            names = table.schema.names
            strings = pa.schema([pa.field(name, pa.string()) for name in retyped])
            table = self.read(block, strings)
            if table is None or sorted(table.schema.names) != sorted(names):
                return None
            table = table.select(names)  # the keys in the file's order (the API's errors follow it)
            self.strings = (names, strings)  # the next block is read so at once
        for field in table.schema:
            kind = field.type
            if not (types.is_string(kind) or types.is_boolean(kind) or kind == pa.int64()):
                return None
        if table.num_rows != lines:
            return None
        batches = table.combine_chunks().to_batches()
        return Part(batches[0], first, []) if len(batches) == 1 else None

    def read(self, block: bytes, strings: Any = None) -> Any:
        json = self.json
        options = json.ParseOptions(newlines_in_values=False)
        if strings is not None:
            options = json.ParseOptions(
                explicit_schema=strings, unexpected_field_behavior="infer", newlines_in_values=False
            )
        try:
            return json.read_json(
                self.pa.py_buffer(block),
                read_options=json.ReadOptions(use_threads=False, block_size=len(block) + 1),
                parse_options=options,
            )
        except self.pa.ArrowInvalid:  # a repeated key, NaN, a number then a string...
            return None


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
    return Source(_open_file(path), name=path, fmt=kind, encoding=encoding, delimiter=delimiter)
