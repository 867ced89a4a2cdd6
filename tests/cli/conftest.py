"""Fixtures and checks of the command's tests: an in-process emulator, a runner wired to it."""

from __future__ import annotations

import json
import subprocess
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


def new_emulator() -> Emulator:
    """An emulator that takes ``API_KEY`` and logs every request (the tests count them)."""
    return Emulator((API_KEY,), max_logged_requests=None)


@pytest.fixture
def emulator() -> Emulator:
    return new_emulator()


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


def summary(result: Result | subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The --json summary: the last line of stdout (of a run in-process or a subprocess)."""
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def assert_no_exception(result: Result) -> None:
    """The command ended by its own exit, not by an exception (a traceback)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


def assert_usage_error(result: Result, *needles: str) -> None:
    """Exit 2 with one line, on stderr, that says each needle; no exception, no traceback."""
    assert result.exit_code == 2, result.output
    assert_no_exception(result)
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert result.stderr.strip() == lines[0].strip(), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
