"""The journal of a resumable run (``--journal FILE``).

A JSON Lines file, ASCII, one compact JSON object a line. The first line names
what the journal belongs to: the command, the input's size, line count and
SHA-256, and the options that change what is sent (format, encoding,
delimiter, ``--map``, ``--type``, base URL)::

    {"journal":"activatepro","version":2,"command":"upsert",
     "input":{"name":"users.csv","size":1234,"sha256":"...","lines":41},
     "options":{...},"check":"5f0c..."}

Then one line per group of settled chunks (about ``concurrency * 4``
chunks' rows, as the bulk run's ``on_chunk`` reports them): each chunk the
API accepted (its first and last line, its user count, how many of them the
API rejected, its tracking id), and the reject records of the rows of those chunks, and of
rows refused locally::

    {"chunks":[{"lines":[2,1001],"users":1000,"rejected":3,"tracking_id":"..."}],
     "rejects":[{"line":17,...}],"check":"9a41..."}

``check`` chains every line to the one before: the first 16 hex digits of the
SHA-256 of the previous line's ``check`` and the line's canonical JSON (sorted
keys, without ``check``). A changed byte, a lost, repeated or moved line, or a
line from another journal breaks the chain.

One run at a time: the journal is locked (``flock`` on POSIX, ``msvcrt.locking``
on Windows) from before it is read until the run ends. The OS drops the lock
with the process, so a killed run leaves none behind; a second run on the same
journal is refused with a :class:`JournalError` instead of interleaving lines.

A line is written, flushed and fsynced as a whole once its chunks are
settled (after their rejects went to the rejects file), so a run killed at
any moment leaves only whole lines, and at most a torn last line (bytes
after the last newline), which is dropped when the journal is opened again.

The journal is read back as untrusted input: a file whose first line is not
our header is never written to (not even repaired); every line is checked for
its chain, its exact shape (keys, types, ranges) and what it claims (a chunk
lies inside the input, holds no more users than lines, settles no row an
earlier line settled). Anything that does not add up is refused with a
:class:`JournalError` naming the line; nothing is skipped on its word.

On a rerun, a row is skipped when its line lies in an accepted chunk or has a
reject record: everything else (rows of chunks that failed, or were in flight
when the run stopped) is sent again, which is safe, since an upsert or delete
applied twice leaves the same state. A journal written for another input or
other options is refused, never silently resumed.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import os
import stat
import sys
from typing import IO, Any

import attrs

from .readers import compression_of, count_lines

__all__ = ["Chunk", "Journal", "JournalError", "file_identity"]

VERSION = 2
#: How every header this version writes begins (the torn-header test).
_MAGIC = b'{"journal":"activatepro",'
_START_OVER = "delete it to start over (rows already sent are sent again, which is safe)"
_STAGES = ("read", "local", "api")


class JournalError(Exception):
    """The journal cannot be used for this run (the message says why and what to do)."""


def _lock(file: IO[bytes]) -> bool:
    """Lock ``file`` for this process, without waiting; False when another holds it.

    An OS lock, not a lock file: it goes when the process does, killed or not.
    """
    if sys.platform == "win32":
        import msvcrt

        file.seek(0)  # msvcrt locks the bytes from the position; past the end is allowed
        try:
            msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:  # "cannot lock": another process holds it
            return False
        return True
    import fcntl

    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@attrs.frozen
class Chunk:
    """A chunk an earlier run had accepted: its first and last input line, users, tracking id."""

    first: int
    last: int
    users: int
    rejected: int
    tracking_id: str


def file_identity(path: str) -> dict[str, Any]:
    """The name, size, SHA-256 and line count of a file, read in blocks.

    The digest and size are of the file's bytes; the lines are of its text,
    decompressed for a ``.gz`` or ``.zst`` file, since the rows' line numbers
    (which the journal's chunks name) count those. Raises the readers'
    ``InputError`` for a damaged compressed file.
    """
    digest = hashlib.sha256()
    size = lines = 0
    last = head = b""
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            head = head or block[:4]
            digest.update(block)
            size += len(block)
            lines += block.count(b"\n")
            last = block[-1:]
    if size and last != b"\n":
        lines += 1  # a last line without a line break
    if compression_of(head) is not None:
        lines = count_lines(path)
    return {
        "name": os.path.basename(path),
        "size": size,
        "sha256": digest.hexdigest(),
        "lines": lines,
    }


def _check(previous: str, value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{previous}\n{canonical}".encode("ascii")).hexdigest()[:16]


class _Damaged(Exception):
    """A line of the journal is not what it claims (internal; becomes a JournalError)."""


class _Spans:
    """A set of input lines as sorted, disjoint, non-adjacent spans."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def __contains__(self, line: int) -> bool:
        index = bisect.bisect_right(self.starts, line) - 1
        return index >= 0 and line <= self.ends[index]

    def add(self, first: int, last: int) -> None:
        low = bisect.bisect_left(self.ends, first - 1)
        high = bisect.bisect_right(self.starts, last + 1)
        if low < high:  # merge with the spans it touches
            first = min(first, self.starts[low])
            last = max(last, self.ends[high - 1])
        self.starts[low:high] = [first]
        self.ends[low:high] = [last]


# -- the shape of a line: exact keys and types, checked before anything is used ------


def _object(value: Any, keys: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Damaged(f"{what} is not a JSON object")
    if set(value) != set(keys):
        raise _Damaged(f"{what} does not have exactly the keys {', '.join(keys)}")
    return value


def _int(value: Any, what: str, low: int | None = None, high: int | None = None) -> int:
    if type(value) is not int:  # a bool is not a count
        raise _Damaged(f"{what} is not an integer")
    if (low is not None and value < low) or (high is not None and value > high):
        raise _Damaged(f"{what} is {value}, outside {low} to {high}")
    return value


def _str(value: Any, what: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise _Damaged(f"{what} is not a string")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _Damaged(f"{what} is not a list")
    return value


def _chunk(value: Any, lines: int) -> Chunk:
    chunk = _object(value, ("lines", "users", "rejected", "tracking_id"), "a chunk")
    span = _list(chunk["lines"], "a chunk's lines")
    if len(span) != 2:
        raise _Damaged("a chunk's lines are not [first, last]")
    first = _int(span[0], "a chunk's first line", 1, lines)
    last = _int(span[1], "a chunk's last line", first, lines)
    users = _int(chunk["users"], f"the users of the chunk of lines {first}-{last}", 1)
    if users > last - first + 1:
        raise _Damaged(f"the chunk of lines {first}-{last} claims {users} users")
    rejected = _int(chunk["rejected"], f"the rejected of the chunk of lines {first}-{last}", 0)
    if rejected > users:
        raise _Damaged(f"the chunk of lines {first}-{last} claims {rejected} of {users} rejected")
    tracking_id = _str(chunk["tracking_id"], "a chunk's tracking id")
    if not tracking_id:
        raise _Damaged(f"the chunk of lines {first}-{last} has no tracking id")
    return Chunk(first, last, users, rejected, tracking_id)


def _reject(value: Any, lines: int) -> dict[str, Any]:
    record = _object(value, ("line", "id", "stage", "row", "errors"), "a reject")
    line = _int(record["line"], "a reject's line", 1, lines)
    _str(record["id"], f"the id of the reject of line {line}", optional=True)
    if record["stage"] not in _STAGES:
        raise _Damaged(f"the reject of line {line} has an unknown stage")
    for error in _list(record["errors"], f"the errors of the reject of line {line}"):
        error = _object(error, ("code", "title", "details", "pointer"), "an error of a reject")
        _int(error["code"], f"an error code of the reject of line {line}")
        _str(error["title"], f"an error title of the reject of line {line}")
        _str(error["details"], f"an error's details of the reject of line {line}")
        _str(error["pointer"], f"an error pointer of the reject of line {line}", optional=True)
    return record


def _header_shape(value: dict[str, Any]) -> None:
    _object(value, ("journal", "version", "command", "input", "options"), "the header")
    _str(value["command"], "the header's command")
    identity = _object(value["input"], ("name", "size", "sha256", "lines"), "the header's input")
    _str(identity["name"], "the input's name")
    _int(identity["size"], "the input's size", 0)
    _str(identity["sha256"], "the input's SHA-256")
    _int(identity["lines"], "the input's line count", 0)
    if not isinstance(value["options"], dict):
        raise _Damaged("the header's options are not a JSON object")


class Journal:
    """An open journal: what earlier runs did, and the file to append this run to.

    >>> journal = Journal.open("run.journal", command="upsert", input=file_identity(path),
    ...                        options={...})
    >>> journal.is_done(17)
    """

    def __init__(self, path: str, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self._file: IO[bytes] | None = None
        self._locked = False
        # The check of the last line, which the next line's check continues.
        self._check = ""
        self._spans = _Spans()
        #: Reject records of earlier runs, by line.
        self.rejects: dict[int, dict[str, Any]] = {}
        #: Accepted chunks of earlier runs.
        self.chunks: list[Chunk] = []
        self.resumed = False

    # -- opening ------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str, *, command: str, input: dict[str, Any], options: dict[str, Any]
    ) -> Journal:
        """Open ``path``, creating it, or resuming it when it belongs to this run.

        ``input`` is the input's :func:`file_identity`. Raises :class:`JournalError`,
        and then has not written to the file, when it is not a journal, or not one
        this run can resume.
        """
        header = {
            "journal": "activatepro",
            "version": VERSION,
            "command": command,
            "input": input,
            "options": options,
        }
        journal = cls(path, header)
        journal._check_regular()
        try:
            # Opened (created if need be) and locked before it is read, so no other
            # run can append between our read and our writes. Appends only.
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_BINARY", 0)
            journal._file = os.fdopen(os.open(path, flags, 0o666), "r+b", buffering=0)
        except OSError as exc:
            readable = journal._read()
            if readable is not None:  # a file not ours, or not this run's, says so first
                journal._load(readable)
            raise JournalError(f"cannot write the journal {path}: {exc.strerror or exc}") from None
        try:
            journal._locked = _lock(journal._file)
            if not journal._locked:
                raise JournalError(
                    f"another activatepro run is using the journal {path}: wait for it to "
                    "end, or pass another --journal file"
                )
            data = journal._file.read() or None
            # Where the journal's whole lines end; None: a new journal, or one with no whole line.
            keep = None if data is None else journal._load(data)
        except BaseException:
            journal.close()
            raise
        try:
            if keep is None:
                journal._file.truncate(0)
                journal._append(header)
            elif data is not None and keep < len(data):
                # A torn last line (the run was killed while writing it): drop it.
                journal._file.truncate(keep)
        except OSError as exc:
            journal.close()
            raise JournalError(f"cannot write the journal {path}: {exc.strerror or exc}") from None
        return journal

    def _check_regular(self) -> None:
        """Refuse a FIFO, a directory or a device (before opening: a FIFO would block)."""
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                raise JournalError(
                    f"{self.path} is not a regular file: pass a file path to --journal"
                )
        except FileNotFoundError:
            return
        except OSError as exc:
            raise JournalError(
                f"cannot read the journal {self.path}: {exc.strerror or exc}"
            ) from None

    def _read(self) -> bytes | None:
        """The journal's bytes, or None when there is no file yet (or it cannot be read)."""
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def _load(self, data: bytes) -> int | None:
        """Check the whole journal, then take its records; where its whole lines end."""
        keep = data.rfind(b"\n") + 1
        if keep == 0:
            if data.startswith(_MAGIC) or _MAGIC.startswith(data):
                # Empty (made by touch or mktemp), or killed while writing its
                # header: the journal holds nothing yet; start it over.
                return None
            raise self._not_ours()
        lines = data[:keep].split(b"\n")[:-1]
        self._load_header(lines[0])
        for number, raw in enumerate(lines[1:], 2):
            try:
                self._take(self._parse(raw))
            except _Damaged as exc:
                raise self._damaged(number, str(exc)) from None
        self.resumed = True
        return keep

    def _not_ours(self) -> JournalError:
        return JournalError(
            f"{self.path} is not an activatepro journal: it was left as it is; "
            "choose another path for --journal"
        )

    def _damaged(self, number: int, why: str) -> JournalError:
        return JournalError(
            f"the journal {self.path} is damaged at line {number} ({why}): {_START_OVER}"
        )

    def _parse(self, raw: bytes) -> dict[str, Any]:
        """One line as a JSON object whose check continues the chain."""
        try:
            value = json.loads(raw.removesuffix(b"\r").decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise _Damaged("not a line of JSON") from None
        if not isinstance(value, dict):
            raise _Damaged("not a JSON object")
        check = value.pop("check", None)
        try:
            expected = _check(self._check, value)
        except (ValueError, RecursionError):
            raise _Damaged("not a line of JSON") from None
        if check != expected:
            raise _Damaged(
                "its check does not match: it was changed, or lines were lost, repeated or moved"
            )
        self._check = expected
        return value

    def _load_header(self, raw: bytes) -> None:
        try:
            value: Any = json.loads(raw.removesuffix(b"\r").decode("utf-8"))
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict) or value.get("journal") != "activatepro":
            if raw.startswith(_MAGIC):
                raise self._damaged(1, "not a line of JSON")
            raise self._not_ours()
        version = value.get("version")
        if version != VERSION:
            shown = version if type(version) is int else "unknown"
            raise JournalError(
                f"the journal {self.path} has version {shown}, and this activatepro reads "
                f"version {VERSION}: {_START_OVER}, or use another --journal file"
            )
        try:
            header = self._parse(raw)
            _header_shape(header)
        except _Damaged as exc:
            raise self._damaged(1, str(exc)) from None
        self._check_same(header, self.header)

    def _check_same(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if old["command"] != new["command"]:
            raise JournalError(
                f"the journal {self.path} belongs to an {old['command'][:40]!r} run, "
                f"not {new['command']!r}: pass another --journal file"
            )
        old_input, new_input = old["input"], new["input"]
        if (old_input["sha256"], old_input["size"]) != (new_input["sha256"], new_input["size"]):
            raise JournalError(
                f"the input is not the file the journal {self.path} was written for "
                f"({old_input['name'][:80]!r}, {old_input['size']} bytes): it "
                "changed, or it is another file; resume with the original file, or start over "
                "with a new --journal file"
            )
        old_options, new_options = old["options"], new["options"]
        if old_options != new_options:
            changed = sorted(
                str(key)[:40]
                for key in set(old_options) | set(new_options)
                if old_options.get(key) != new_options.get(key)
            )
            raise JournalError(
                f"the journal {self.path} was written with other options ({', '.join(changed)} "
                "differ): rerun with the same options, or start over with a new --journal file"
            )

    def _take(self, value: dict[str, Any]) -> None:
        """Check one line against the lines before it, then take it."""
        value = _object(value, ("chunks", "rejects"), "the line")
        lines = int(self.header["input"]["lines"])
        chunks = sorted(
            (_chunk(c, lines) for c in _list(value["chunks"], "the chunks")),
            key=lambda c: c.first,
        )
        rejects = [_reject(r, lines) for r in _list(value["rejects"], "the rejects")]
        # Rows are sent once: a chunk's first and last rows were not settled by
        # an earlier line (else they had been skipped), and the chunks of one
        # line do not overlap. Earlier chunks may lie inside a later one,
        # whose rows went around them.
        for chunk in chunks:
            if self.is_done(chunk.first) or self.is_done(chunk.last):
                raise _Damaged(
                    f"the chunk of lines {chunk.first}-{chunk.last} overlaps rows an earlier "
                    "line settled"
                )
        for before, after in itertools.pairwise(chunks):
            if after.first <= before.last:
                raise _Damaged(
                    f"the chunks of lines {before.first}-{before.last} and "
                    f"{after.first}-{after.last} overlap"
                )
        seen: set[int] = set()
        for reject in rejects:
            line = reject["line"]
            if line in seen or self.is_done(line):
                raise _Damaged(f"the reject of line {line} is of a row already settled")
            seen.add(line)
        for chunk in chunks:
            self._spans.add(chunk.first, chunk.last)
        self.chunks.extend(chunks)
        self.rejects.update((reject["line"], reject) for reject in rejects)

    # -- using it --------------------------------------------------------------------

    def is_done(self, line: int) -> bool:
        """True when an earlier run settled the row at this line (accepted or rejected)."""
        return line in self.rejects or line in self._spans

    @property
    def accepted(self) -> int:
        """Users the API accepted in earlier runs."""
        return sum(c.users - c.rejected for c in self.chunks)

    @property
    def tracking_ids(self) -> list[str]:
        """The tracking ids of earlier runs' chunks."""
        return [c.tracking_id for c in self.chunks]

    def record(self, chunks: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> None:
        """Append settled chunks and rejects as one line, and make it durable.

        ``chunks`` are ``{"lines": [first, last], "users", "rejected", "tracking_id"}``,
        ``rejects`` reject records (:func:`~.rejects.reject_record`).
        """
        if chunks or rejects:
            self._append({"chunks": chunks, "rejects": rejects})

    def _append(self, record: dict[str, Any]) -> None:
        assert self._file is not None
        # The check is over the value as a reader will parse it back.
        value = json.loads(json.dumps(record, default=str))
        check = value["check"] = _check(self._check, value)
        line = json.dumps(value, separators=(",", ":"), ensure_ascii=True) + "\n"
        # Unbuffered, so a failed write (disk full) leaves nothing behind to be
        # flushed later: only a torn last line, which the next open drops.
        rest = memoryview(line.encode("ascii"))
        while rest:
            written = self._file.write(rest)
            rest = rest[written:]
        os.fsync(self._file.fileno())
        self._check = check

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            if sys.platform == "win32" and self._locked:
                import msvcrt

                # Windows wants a region unlocked before its file is closed.
                self._file.seek(0)
                msvcrt.locking(self._file.fileno(), msvcrt.LK_UNLCK, 1)
            self._file.close()
            self._file = None
