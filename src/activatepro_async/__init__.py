"""activatepro-async: the async-first SDK for the ActivatePro User Profile API v2.

>>> from activatepro_async import AsyncClient, User
>>> async with AsyncClient(api_key="...") as client:
...     accepted = await client.upsert_user(User("42", "ada@example.com"))
"""

# NOT_GIVEN comes from .client, not ._options: that one's httpx import would come
# before anyio's, and a Spark worker missing both should say anyio.
from ._log import configure_from_environment as _configure_logging
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
from .client import NOT_GIVEN, AsyncClient, NotGiven
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

_configure_logging()

__all__ = [
    "NOT_GIVEN",
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
    "NotGiven",
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
