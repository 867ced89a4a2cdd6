"""The API key never shows: not in reprs, logs, exception messages or tracebacks."""

from __future__ import annotations

import logging
import traceback

import httpx
import pytest

from activatepro_async import AsyncClient, ConfigurationError, RetryPolicy

from .helpers import FakeTime, Recorder

SECRET = "sk-live-5f3c9a7e1b2d4c6e8f0a"


def test_the_client_repr_hides_the_key() -> None:
    client = AsyncClient(SECRET)
    assert SECRET not in repr(client)
    assert SECRET not in repr(vars(client))
    assert SECRET not in str(vars(client))


@pytest.mark.parametrize(
    "bad", ["sk-9f8e\r\nX-Evil: 1", "sk-9f8é", "sk-9f8e\n", " sk-9f8e", "", "  "]
)
def test_keys_that_cannot_travel_in_a_header_are_refused(bad: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncClient(bad)
    assert "sk-9f8" not in str(info.value)


@pytest.mark.anyio
async def test_a_failing_run_never_prints_the_key(
    caplog: pytest.LogCaptureFixture, fake_time: FakeTime
) -> None:
    # A proxy that echoes the request headers into its error page.
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text=f"bad gateway; you sent {dict(request.headers)}")

    recorder = Recorder(echo)
    caplog.set_level(logging.DEBUG)
    retry = RetryPolicy(max_retries=2, sleep=fake_time.sleep, clock=fake_time.clock)
    client = AsyncClient(SECRET, transport=recorder.transport, retry=retry)
    try:
        await client.get_user("1")
    except Exception as exc:
        error = exc
    else:  # pragma: no cover
        pytest.fail("expected an error")
    finally:
        await client.aclose()
    text = "".join(traceback.format_exception(error))
    assert SECRET in recorder.requests[0].headers["X-XNG-AuthToken"], "the key was sent"
    assert "bad gateway" in str(error)
    assert SECRET not in text
    assert SECRET not in repr(error)
    assert SECRET not in getattr(error, "body", "")
    assert SECRET not in caplog.text
    stack = traceback.TracebackException.from_exception(error, capture_locals=True)
    assert SECRET not in "".join(stack.format())
