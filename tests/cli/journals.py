"""Helpers of the journal tests: inputs, transports that stop a run, what a run stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from activatepro_async.emulator import Emulator

from .conftest import write


def make_csv(path: Path, rows: int = 200, bad_every: int = 17) -> tuple[str, set[str], set[int]]:
    """A CSV with every ``bad_every``-th email invalid; its path, valid ids and bad lines."""
    lines = ["id,email,firstName"]
    valid, bad = set(), set()
    for i in range(rows):
        if i % bad_every == bad_every - 1:
            lines.append(f"u{i},broken-{i},N{i}")
            bad.add(i + 2)
        else:
            lines.append(f"u{i},u{i}@example.com,N{i}")
            valid.add(f"u{i}")
    return write(path, "\n".join(lines) + "\n"), valid, bad


class FailAfter(httpx.AsyncBaseTransport):
    """Passes ``batches`` batch requests to the emulator, then answers 401 (the run stops)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, batches: int) -> None:
        self.inner = inner
        self.batches = batches

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/users/batch":
            if self.batches == 0:
                return httpx.Response(401)
            self.batches -= 1
        return await self.inner.handle_async_request(request)


class FailBatches(httpx.AsyncBaseTransport):
    """Answers 503 to the batch requests whose numbers (from 1) are in ``failing``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, failing: set[int]) -> None:
        self.inner = inner
        self.failing = failing
        self.batches = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/users/batch":
            self.batches += 1
            if self.batches in self.failing:
                return httpx.Response(503, json={"errors": [{"code": "10", "title": "x"}]})
        return await self.inner.handle_async_request(request)


def batch_requests(emulator: Emulator) -> int:
    """How many batch requests the emulator received."""
    return sum(1 for r in emulator.requests if r.path == "/users/batch")


def stored(emulator: Emulator) -> dict[str, dict[str, Any]]:
    """The emulator's users without the ids it made up (they differ between emulators)."""
    users = emulator.users
    for user in users.values():
        user.pop("xngId", None)
    return users
