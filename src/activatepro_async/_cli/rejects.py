"""The rejects file: one JSON line per row that was not stored, and why.

Each line holds the row as it was read (``row``: the CSV cells by column, the
JSON object, or the text of an unreadable line), its ``line`` number in the
input, the user ``id`` when it had one, where it was stopped (``stage``:
``read`` for a line that could not be read, ``local`` for a row the command
refused before sending, ``api`` for one the API refused, ``dry-run`` for one a
dry run would refuse) and the ``errors`` with the API's codes and details::

    {"line": 7, "id": "u7", "stage": "api", "row": {"id": "u7", "email": "x"},
     "errors": [{"code": 4, "title": "Invalid Email Format", "details": "...",
                 "pointer": "/email"}]}

Code 0 means no API code fits (an unreadable line).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import IO, Any

from ..errors import ApiError

__all__ = ["RejectsWriter", "error_to_json", "reject_record"]


def error_to_json(error: ApiError) -> dict[str, Any]:
    """An :class:`ApiError` as it goes into the rejects file and the journal."""
    return {
        "code": int(error.code),
        "title": error.title,
        "details": error.details,
        "pointer": error.pointer,
    }


def reject_record(
    line: int, user_id: str | None, stage: str, row: Any, errors: Iterable[ApiError]
) -> dict[str, Any]:
    """One line of the rejects file."""
    return {
        "line": line,
        "id": user_id,
        "stage": stage,
        "row": row,
        "errors": [error_to_json(e) for e in errors],
    }


class RejectsWriter:
    """Writes reject records as JSON Lines; a writer for no file counts only."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.count = 0
        self._file: IO[str] | None = None
        if path is not None:
            try:
                # A JSON Lines string may hold a lone surrogate ("\\ud800": valid
                # JSON, no character), which UTF-8 cannot hold: it is written as
                # that escape, which reads back as the same string.
                self._file = open(  # noqa: SIM115 - closed by close()
                    path, "w", encoding="utf-8", errors="backslashreplace"
                )
            except OSError as exc:
                raise OSError(
                    f"cannot write the rejects file {path}: {exc.strerror or exc}"
                ) from None

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        """Append records and flush them, so a crash loses none already reported."""
        lines = [json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records]
        self.count += len(lines)
        if self._file is not None and lines:
            self._file.writelines(lines)
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
