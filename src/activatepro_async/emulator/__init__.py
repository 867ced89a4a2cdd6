"""A local ActivatePro User Profile API v2, for tests, demos and benchmarks.

The emulator keeps users in memory, accepts writes asynchronously (applied
after ``processing_delay``, in arrival order), validates like the API (codes 1
to 9, with the reference's titles and JSON pointers), tracks requests for 24
hours, and can misbehave on purpose (:class:`Faults`).

In-process, with no socket::

    emulator = Emulator(api_keys=["test-key"])
    async with AsyncClient(api_key="test-key", transport=emulator.transport()) as client:
        ...

On a real port (needs ``pip install 'activatepro-async[server]'``)::

    async with emulator.serve(port=0) as base_url:
        ...

or from a shell: ``activatepro serve --port 8080 --api-key test-key``.

Drive it from a test instead of sleeping::

    clock = ManualClock()
    emulator = Emulator(processing_delay=2.0, clock=clock)
    emulator.seed({"id": "42", "email": "ada@example.com"})   # stored at once
    ...                                                       # the code under test
    clock.advance(2.0)            # or: emulator.process_pending()
    assert emulator.users["42"]["firstName"] == "Ada"
    assert emulator.requests[-1].method == "PUT"   # the newest, within request_log_bytes

Make it misbehave::

    emulator.faults = Faults(schedule=["503", "drop", "truncate"])  # the next 3 requests
    emulator.faults = Faults(rate=0.1, seed=7)                      # 10 %, reproducibly
"""

from __future__ import annotations

from .._wire import MAX_BATCH_ITEMS
from ._app import Emulator, ManualClock
from ._faults import FAULT_KINDS, Faults
from ._requestlog import DEFAULT_REQUEST_LOG_BYTES, RecordedRequest
from ._store import TRACKING_TTL
from ._validate import (
    DEFAULT_ATTRIBUTES,
    MAX_OBJECTS_PER_USER,
    MAX_STRING_BYTES,
    MAX_USER_BYTES,
    AttributeType,
)

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "DEFAULT_REQUEST_LOG_BYTES",
    "FAULT_KINDS",
    "MAX_BATCH_ITEMS",
    "MAX_OBJECTS_PER_USER",
    "MAX_STRING_BYTES",
    "MAX_USER_BYTES",
    "TRACKING_TTL",
    "AttributeType",
    "Emulator",
    "Faults",
    "ManualClock",
    "RecordedRequest",
]
