"""What the emulator answers: a status, headers, a body, and the error body of the wire."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import ErrorCode
from . import _json
from ._validate import Problem

__all__ = ["Reply", "error_reply"]

_JSON_TYPE = (b"content-type", b"application/json;charset=UTF-8")


class Reply:
    """What to send back: a status, headers, a body, and whether to misbehave."""

    __slots__ = ("action", "body", "headers", "status")

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        action: str | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers: list[tuple[bytes, bytes]] = (
            headers if headers is not None else [_JSON_TYPE] if body else []
        )
        self.action = action  # None, "drop" or "truncate"


def _error(code: int, details: str, pointer: str) -> dict[str, Any]:
    return {
        "code": str(code),
        "title": ErrorCode(code).title,
        "details": details,
        "info": f"https://docs.crossengage.io/errors#{code}",
        "source": {"pointer": pointer},
    }


def error_reply(status: int, problems: Iterable[Problem], **extra: Any) -> Reply:
    """A JSON error reply: ``extra`` fields (``trackingId``), then ``errors``."""
    body = dict(extra)
    body["errors"] = [_error(code, details, pointer) for code, details, pointer in problems]
    return Reply(status, _json.dumps(body))
