"""activatepro-async: the async-first SDK for the ActivatePro User Profile API v2.

>>> from activatepro_async import AsyncClient, User
>>> async with AsyncClient(api_key="...") as client:
...     accepted = await client.upsert_user(User("42", "ada@example.com"))
"""

from ._retry import RetryEvent, RetryPolicy
from ._version import __version__
from .bulk import (
    BulkProgress,
    BulkResult,
    ChunkOutcome,
    FailedChunk,
    RejectedUser,
    TrackingFailure,
    TrackingTotals,
)
from .client import AsyncClient
from .errors import (
    ActivateProError,
    APIConnectionError,
    ApiError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BulkError,
    ConfigurationError,
    ErrorCode,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TrackingTimeoutError,
    UnexpectedResponseError,
    ValidationError,
)
from .incremental import DeleteGuardError, SyncResult, SyncStateError
from .models import Accepted, BatchAccepted, Stage, TrackingStatus, User
from .sync import Client

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Accepted",
    "ActivateProError",
    "ApiError",
    "AsyncClient",
    "AuthenticationError",
    "BatchAccepted",
    "BulkError",
    "BulkProgress",
    "BulkResult",
    "ChunkOutcome",
    "Client",
    "ConfigurationError",
    "DeleteGuardError",
    "ErrorCode",
    "FailedChunk",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RejectedUser",
    "RetryEvent",
    "RetryPolicy",
    "ServerError",
    "Stage",
    "SyncResult",
    "SyncStateError",
    "TrackingFailure",
    "TrackingStatus",
    "TrackingTimeoutError",
    "TrackingTotals",
    "UnexpectedResponseError",
    "User",
    "ValidationError",
    "__version__",
]
