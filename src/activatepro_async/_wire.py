"""The wire at the bottom: what the API takes, each limit defined once.

Everything above (the client, the bulk engine, the CLI, Spark, the emulator)
imports its limits from here; this module imports nothing of the package.
"""

from __future__ import annotations

import re

__all__ = [
    "BUSINESS_UNIT",
    "DEFAULT_MAX_CHUNK_BYTES",
    "MAX_BATCH_ITEMS",
    "MAX_BODY_BYTES",
    "MAX_STRING_BYTES",
    "MAX_USER_BYTES",
]

#: The API takes at most this many items (``updated`` + ``deleted``) per batch.
MAX_BATCH_ITEMS = 1000
#: The API refuses a user whose compact JSON is larger than this (1 MiB).
MAX_USER_BYTES = 1024 * 1024
#: The longest string attribute the API stores (16 KiB of UTF-8).
MAX_STRING_BYTES = 16 * 1024
#: The largest request body the emulator reads by default (32 MiB, DECISIONS.md).
MAX_BODY_BYTES = 32 * 1024 * 1024
#: The SDK's default cap on one batch body: half of MAX_BODY_BYTES.
DEFAULT_MAX_CHUNK_BYTES = 16 * 1024 * 1024
#: A business unit: 1 to 64 letters, digits, ``_`` or ``-``.
BUSINESS_UNIT = re.compile(r"[A-Za-z0-9_-]{1,64}")
