"""``ACTIVATEPRO_LOG=info|debug`` puts the SDK's log lines on stderr, once."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

KEY = "sk-log-SECRET-77a1"

#: Two calls: a 503 then 200 (a retry: a WARNING), each try a DEBUG line. The
#: package is imported, then reloaded: a second import must not add a handler.
SCRIPT = f"""
import importlib
import anyio, httpx
import activatepro_async
importlib.reload(activatepro_async)
from activatepro_async import AsyncClient, RetryPolicy

answers = [httpx.Response(503), httpx.Response(200, json={{"id": "1", "email": "a@b.c"}})]

async def no_sleep(seconds):
    pass

async def main():
    transport = httpx.MockTransport(lambda request: answers.pop(0))
    retry = RetryPolicy(sleep=no_sleep)
    async with AsyncClient({KEY!r}, transport=transport, retry=retry) as client:
        await client.get_user("1")

anyio.run(main)
print("done")
"""


def run(log: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ACTIVATEPRO_LOG"}
    if log is not None:
        env["ACTIVATEPRO_LOG"] = log
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_debug_shows_every_try_once() -> None:
    result = run("debug")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert next(line for line in lines if "GET /users/1 -> 503" in line).split()[2] == "DEBUG"
    assert len([line for line in lines if "GET /users/1 -> 200" in line]) == 1, "one handler"
    assert len([line for line in lines if "retrying GET /users/1" in line]) == 1
    assert all("activatepro_async:" in line for line in lines)
    assert KEY not in result.stderr


@pytest.mark.parametrize("value", ["info", "INFO", " info "])
def test_info_shows_retries_not_tries(value: str) -> None:
    result = run(value)
    assert result.returncode == 0, result.stderr
    assert "WARNING activatepro_async: retrying GET /users/1" in result.stderr
    assert "-> 200" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("value", [None, ""])
def test_unset_configures_nothing(value: str | None) -> None:
    result = run(value)
    assert result.returncode == 0, result.stderr
    # Python's last-resort handler shows the WARNING alone, without time or name.
    assert result.stderr.startswith("retrying GET /users/1 in ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "activatepro_async:" not in result.stderr


def test_another_value_is_ignored_with_a_warning_that_says_what_works() -> None:
    result = run("verbose")
    assert result.returncode == 0, result.stderr
    assert "RuntimeWarning: ACTIVATEPRO_LOG='verbose' is ignored: set it to info or debug" in (
        result.stderr
    )
    assert "-> 200" not in result.stderr
