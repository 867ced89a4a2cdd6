"""A server that never answers, or trickles its answer, cannot hang a call.

These tests use a real socket on 127.0.0.1, so they wait for the client's
(short) timeouts to run out; the outer ``fail_after`` only guards against a hang.
"""

from __future__ import annotations

import anyio
import pytest
from anyio.abc import SocketStream

from activatepro_async import APITimeoutError, AsyncClient, RetryPolicy

from .helpers import API_KEY, FakeTime, Handler, tcp_server

pytestmark = pytest.mark.anyio


async def never_answer(stream: SocketStream) -> None:
    await stream.receive()
    await anyio.sleep_forever()


async def trickle(stream: SocketStream) -> None:
    await stream.receive()
    await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while True:  # one byte every 20 ms: each read is quick, the whole never ends
        await stream.send(b"x")
        await anyio.sleep(0.02)


@pytest.mark.parametrize("handler", [never_answer, trickle], ids=["silent", "trickle"])
async def test_a_try_never_outlives_its_timeout(handler: Handler, fake_time: FakeTime) -> None:
    retry = RetryPolicy(max_retries=2, jitter=None, sleep=fake_time.sleep, clock=fake_time.clock)
    async with tcp_server(handler) as url:
        client = AsyncClient(API_KEY, base_url=url, timeout=0.25, retry=retry)
        with anyio.fail_after(10):
            async with client:
                with pytest.raises(APITimeoutError, match="timed out"):
                    await client.get_user("1")
    assert fake_time.sleeps == [0.5, 1.0], "each try timed out, then was retried"


async def test_a_body_cut_short_by_the_timeout_leaves_nothing_for_the_collector(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that reads nothing: the write of a large body blocks until the try's
    # timeout. httpx's own body iterator (an async generator) was left half done
    # then, and trio warned when the collector found it (a flaky chaos run).
    import gc
    import sys

    from .loopback import LoopbackServer, use_transport

    use_transport("httpx", anyio_backend, monkeypatch)
    unraisable: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(repr(u.exc_value)))
    with LoopbackServer("stall") as server:
        async with AsyncClient(API_KEY, base_url=server.url, max_retries=0, timeout=0.3) as c:
            with pytest.raises(APITimeoutError):
                await c.batch(updated=[{"id": "1", "email": "a@b.c", "pad": "x" * 8_000_000}])
            gc.collect()
    gc.collect()
    assert unraisable == []
