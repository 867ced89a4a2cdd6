"""Fixtures of the command's tests: an in-process emulator and a runner wired to it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from activatepro_async import RetryPolicy
from activatepro_async._cli.options import CliEnv
from activatepro_async.cli import main
from activatepro_async.emulator import Emulator

API_KEY = "test-key"


@pytest.fixture
def emulator() -> Emulator:
    return Emulator((API_KEY,), max_logged_requests=None)


Invoke = Callable[..., Result]


@pytest.fixture
def invoke(emulator: Emulator) -> Invoke:
    """Run ``activatepro ARGS`` in-process against ``emulator`` (no socket)."""

    def run(
        *args: str,
        key: str | None = API_KEY,
        backend: str = "asyncio",
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> Result:
        env = {"ACTIVATEPRO_API_KEY": key, "ACTIVATEPRO_BASE_URL": None}
        env.update(kwargs.pop("env", {}))
        return CliRunner().invoke(
            main,
            list(args),
            obj=CliEnv(transport=transport or emulator.transport(), backend=backend, retry=retry),
            env=env,
            **kwargs,
        )

    return run


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def summary(result: Result) -> dict[str, Any]:
    """The --json summary: the last line of stdout."""
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
