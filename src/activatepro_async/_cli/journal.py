"""The journal of a resumable run (``--journal FILE``).

A JSON Lines file. The first line names what the journal belongs to: the
command, the input's size and SHA-256, and the options that change what is
sent (format, encoding, delimiter, ``--map``, ``--type``, base URL)::

    {"journal": "activatepro", "version": 1, "command": "import",
     "input": {"name": "users.csv", "size": 1234, "sha256": "..."},
     "options": {...}}

Then one line per finished window of the run: each chunk the API accepted
(its first and last line, its user count, how many of them the API rejected,
its tracking id), and the reject records of the rows of those chunks, and of
rows refused locally::

    {"chunks": [{"lines": [2, 1001], "users": 1000, "rejected": 3,
                 "tracking_id": "..."}], "rejects": [{"line": 17, ...}]}

A line is written, flushed and fsynced as a whole once the window's bulk run
has finished, so a run killed at any moment leaves only whole lines, and at
most a torn last line, which is dropped when the journal is opened again.

On a rerun, a row is skipped when its line lies in an accepted chunk or has a
reject record: everything else (rows of chunks that failed, or were in flight
when the run stopped) is sent again, which is safe, since an upsert or delete
applied twice leaves the same state. A journal written for another input or
other options is refused, never silently resumed.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
from collections.abc import Iterable
from typing import IO, Any

__all__ = ["Journal", "JournalError", "file_identity"]

VERSION = 1


class JournalError(Exception):
    """The journal cannot be used for this run (the message says why and what to do)."""


def file_identity(path: str) -> dict[str, Any]:
    """The name, size and SHA-256 of a file, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return {"name": os.path.basename(path), "size": size, "sha256": digest.hexdigest()}


class Journal:
    """An open journal: what earlier runs did, and the file to append this run to.

    >>> journal = Journal.open("run.journal", command="import", input={...}, options={...})
    >>> journal.is_done(17)
    """

    def __init__(self, path: str, header: dict[str, Any], file: IO[str]) -> None:
        self.path = path
        self.header = header
        self._file = file
        self._starts: list[int] = []
        self._ends: list[int] = []
        #: Reject records of earlier runs, by line.
        self.rejects: dict[int, dict[str, Any]] = {}
        #: Accepted chunks of earlier runs.
        self.chunks: list[dict[str, Any]] = []
        self.resumed = False

    # -- opening ------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str, *, command: str, input: dict[str, Any], options: dict[str, Any]
    ) -> Journal:
        """Open ``path``, creating it, or resuming it when it belongs to this run."""
        header = {
            "journal": "activatepro",
            "version": VERSION,
            "command": command,
            "input": input,
            "options": options,
        }
        try:
            file = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise JournalError(f"cannot open the journal {path}: {exc.strerror or exc}") from None
        try:
            journal = cls(path, header, file)
            journal._load(header)
        except BaseException:
            file.close()
            raise
        return journal

    def _load(self, header: dict[str, Any]) -> None:
        file = self._file
        file.seek(0)
        text = file.read()
        if not text.strip():
            file.seek(0)
            file.truncate()
            self._append(header)
            return
        lines = text.split("\n")
        complete = lines[:-1]  # after the last "\n": empty, or a torn write
        if lines[-1].strip():
            # A torn last line (the run was killed while writing it): drop it.
            file.truncate(len(text.encode("utf-8")) - len(lines[-1].encode("utf-8")))
        records = []
        for number, line in enumerate(complete, 1):
            try:
                records.append(json.loads(line))
            except ValueError:
                raise JournalError(
                    f"the journal {self.path} is damaged at line {number}: "
                    "delete it to start over (rows already sent are sent again, which is safe)"
                ) from None
        first = records[0] if records else {}
        if not isinstance(first, dict) or first.get("journal") != "activatepro":
            raise JournalError(
                f"{self.path} is not an activatepro journal: pass a new file to --journal"
            )
        self._check_same(first, header)
        self.resumed = True
        for record in records[1:]:
            for chunk in record.get("chunks", ()):
                self.chunks.append(chunk)
            for reject in record.get("rejects", ()):
                self.rejects[int(reject["line"])] = reject
        self._index(self.chunks)
        file.seek(0, os.SEEK_END)

    def _check_same(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        if old.get("version") != VERSION:
            raise JournalError(
                f"the journal {self.path} has version {old.get('version')}, this command "
                f"writes {VERSION}: start over with a new --journal file"
            )
        if old.get("command") != new["command"]:
            raise JournalError(
                f"the journal {self.path} belongs to an '{old.get('command')}' run, not "
                f"'{new['command']}': pass another --journal file"
            )
        old_input, new_input = old.get("input") or {}, new["input"]
        if (old_input.get("sha256"), old_input.get("size")) != (
            new_input["sha256"],
            new_input["size"],
        ):
            raise JournalError(
                f"the input is not the file the journal {self.path} was written for "
                f"({old_input.get('name')}, {old_input.get('size')} bytes): it changed, or it "
                "is another file; resume with the original file, or start over with a new "
                "--journal file"
            )
        if old.get("options") != new["options"]:
            changed = sorted(
                key
                for key in set(old.get("options") or {}) | set(new["options"])
                if (old.get("options") or {}).get(key) != new["options"].get(key)
            )
            raise JournalError(
                f"the journal {self.path} was written with other options ({', '.join(changed)} "
                "differ): rerun with the same options, or start over with a new --journal file"
            )

    def _index(self, chunks: Iterable[dict[str, Any]]) -> None:
        spans = sorted((int(c["lines"][0]), int(c["lines"][1])) for c in chunks)
        merged: list[list[int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        self._starts = [m[0] for m in merged]
        self._ends = [m[1] for m in merged]

    # -- using it --------------------------------------------------------------------

    def is_done(self, line: int) -> bool:
        """True when an earlier run settled the row at this line (accepted or rejected)."""
        if line in self.rejects:
            return True
        index = bisect.bisect_right(self._starts, line) - 1
        return index >= 0 and line <= self._ends[index]

    @property
    def accepted(self) -> int:
        """Users the API accepted in earlier runs."""
        return sum(int(c["users"]) - int(c.get("rejected", 0)) for c in self.chunks)

    @property
    def tracking_ids(self) -> list[str]:
        """The tracking ids of earlier runs' chunks."""
        return [c["tracking_id"] for c in self.chunks if c.get("tracking_id")]

    def record(self, chunks: list[dict[str, Any]], rejects: list[dict[str, Any]]) -> None:
        """Append one finished window as one line, and make it durable."""
        if chunks or rejects:
            self._append({"chunks": chunks, "rejects": rejects})

    def _append(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file."""
        self._file.close()
