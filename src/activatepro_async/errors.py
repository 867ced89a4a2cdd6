"""The exceptions this SDK raises, and the API's error codes.

Everything the SDK raises on purpose derives from :class:`ActivateProError`::

    ActivateProError
    ├── ConfigurationError        bad settings (no API key, a bad base URL); also a ValueError
    ├── APIConnectionError        the request did not get a complete answer
    │   └── APITimeoutError       ... because a timeout ran out
    ├── UnexpectedResponseError   a success status with a body we cannot read (or a
    │                             partial 400 without a usable tracking id)
    ├── TrackingTimeoutError      wait_for_tracking() gave up; also a TimeoutError
    ├── BulkError                 a bulk run left users unstored; .result says which
    └── APIStatusError            the server answered with an error status
        ├── ValidationError       400
        ├── AuthenticationError   401
        ├── PermissionDeniedError 403
        ├── NotFoundError         404
        ├── RateLimitError        429
        └── ServerError           5xx

Every :class:`APIStatusError` carries the HTTP ``status_code``, the raw response
text as ``body`` (whatever it was: JSON, HTML from a proxy, empty) and the parsed
``errors`` (a list of :class:`ApiError`, empty when the body held none).

Besides these, a call raises only ``ValueError`` or ``TypeError``, for an
argument refused before anything is sent (an empty id, a batch over 1000 items,
an id so long that its URL would pass ``client.MAX_URL_LENGTH`` characters).

The API key never appears in any of these messages.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .bulk import BulkResult

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "ActivateProError",
    "ApiError",
    "AuthenticationError",
    "BulkError",
    "ConfigurationError",
    "ErrorCode",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "TrackingTimeoutError",
    "UnexpectedResponseError",
    "ValidationError",
]


class ErrorCode(enum.IntEnum):
    """The error codes of the ActivatePro API (``"code"`` in an error body).

    The wire sends them as strings (``"4"``); the SDK gives them as this enum.
    A code the SDK does not know stays a plain ``int`` in :attr:`ApiError.code`.
    """

    INVALID_JSON = 1
    INVALID_FIELD = 2
    INVALID_ATTRIBUTE_TYPE = 3
    INVALID_EMAIL = 4
    INVALID_PHONE = 5
    UNKNOWN_ATTRIBUTE = 6
    IDENTIFIER_MISMATCH = 7
    INVALID_BUSINESS_UNIT = 8
    MAX_BATCH_SIZE = 9
    PROCESSING_FAILED = 10

    @property
    def title(self) -> str:
        """The reference's title for this code, e.g. ``"Invalid Email Format"``."""
        return _TITLES[self]


_TITLES = {
    ErrorCode.INVALID_JSON: "Invalid JSON",
    ErrorCode.INVALID_FIELD: "Invalid Field",
    ErrorCode.INVALID_ATTRIBUTE_TYPE: "Invalid Attribute Type",
    ErrorCode.INVALID_EMAIL: "Invalid Email Format",
    ErrorCode.INVALID_PHONE: "Invalid Phone Format",
    ErrorCode.UNKNOWN_ATTRIBUTE: "Unknown Attribute",
    ErrorCode.IDENTIFIER_MISMATCH: "Identifier Mismatch",
    ErrorCode.INVALID_BUSINESS_UNIT: "Invalid Business Unit Format",
    ErrorCode.MAX_BATCH_SIZE: "Max batch request size violation",
    ErrorCode.PROCESSING_FAILED: "Request processing failed, please contact support",
}


@attrs.frozen
class ApiError:
    """One entry of an error body's ``errors`` list.

    ``pointer`` is the JSON pointer of ``source.pointer`` (``"/updated/3/email"``),
    or ``None`` when the server sent none. ``code`` is an :class:`ErrorCode`, or
    a plain ``int`` for a code this SDK does not know yet.
    """

    code: ErrorCode | int
    title: str = ""
    details: str = ""
    pointer: str | None = None
    info: str | None = None

    def __str__(self) -> str:
        where = f" (at {self.pointer})" if self.pointer else ""
        text = self.details or self.title
        return f"[{int(self.code)}] {text}{where}"


class ActivateProError(Exception):
    """Base class of every exception the SDK raises on purpose."""


class ConfigurationError(ActivateProError, ValueError):
    """The client was set up wrongly, e.g. with no API key. The message says what to do."""


class APIConnectionError(ActivateProError):
    """No complete response came back: connection refused or dropped, a body cut short.

    Raised after the retries ran out; ``__cause__`` holds the httpx exception
    (alone: what it was raised from, and the locals of the frames it came through,
    are dropped, since they hold the request headers and so the API key).
    """

    def __init__(self, message: str, *, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class APITimeoutError(APIConnectionError):
    """A connect, read, write or pool timeout ran out (after the retries)."""


class UnexpectedResponseError(ActivateProError):
    """The server answered with a success status but a body the SDK cannot read.

    Cannot read: not JSON, or a value of the wrong type (a ``trackingId`` that
    is not a non-empty string, a count that is not an integer). A 400 that
    claims a partial success without a usable ``trackingId`` is one too. This
    usually means something between you and the API (a proxy, a captive portal)
    answered instead of ActivatePro. ``body`` holds the text (the key redacted).
    """

    def __init__(self, message: str, *, status_code: int, body: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class TrackingTimeoutError(ActivateProError, TimeoutError):
    """``wait_for_tracking()`` gave up before the request reached ``PROCESSED``.

    ``last_status`` is the last :class:`~activatepro_async.TrackingStatus` seen, if any.
    """

    def __init__(self, message: str, *, tracking_id: str, last_status: object = None) -> None:
        super().__init__(message)
        self.tracking_id = tracking_id
        self.last_status = last_status


class APIStatusError(ActivateProError):
    """The API answered with an error status (4xx or 5xx).

    Attributes:
        status_code: the HTTP status.
        errors: the parsed ``errors`` of the body (may be empty).
        body: the raw response text, whatever it was.
        tracking_id: the ``trackingId`` of the body, if it had one.
        retry_after: the ``Retry-After`` header in seconds, if the server sent one.
        method, path: the request that failed (path as sent, percent-encoded).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        errors: Sequence[ApiError] = (),
        body: str = "",
        tracking_id: str | None = None,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.errors: list[ApiError] = list(errors)
        self.body = body
        self.tracking_id = tracking_id
        self.method = method
        self.path = path


class ValidationError(APIStatusError):
    """400: the request was refused as invalid; ``errors`` says which fields and why."""


class AuthenticationError(APIStatusError):
    """401: the API key is missing or wrong. Check ``api_key`` / ``ACTIVATEPRO_API_KEY``."""


class PermissionDeniedError(APIStatusError):
    """403: the key is valid but may not do this."""


class NotFoundError(APIStatusError):
    """404: no such user, or the tracking id is unknown or older than 24 hours."""


class RateLimitError(APIStatusError):
    """429: too many requests. ``retry_after`` is the server's wait in seconds, if it sent one."""


class ServerError(APIStatusError):
    """5xx: trouble on the server's side (raised once the retries ran out)."""


class BulkError(ActivateProError):
    """A bulk run (``upsert_many``/``delete_many``) did not store every user.

    ``result`` is the :class:`~activatepro_async.BulkResult` of the run: who was
    rejected and why, which chunks failed and with what, every tracking id. It
    is raised at the end of a run with failures (unless ``raise_on_failure=False``),
    by :meth:`BulkResult.raise_for_failures`, and at once when something stops
    the run early (a 401 or 403, an exception from your input or ``on_progress``);
    then ``result.aborted_by`` and ``__cause__`` hold that exception.

    >>> try:
    ...     await client.upsert_many(users)
    ... except BulkError as exc:
    ...     retry_later(exc.result.failed_user_ids)
    """

    def __init__(self, message: str, *, result: BulkResult) -> None:
        super().__init__(message)
        self.result = result
