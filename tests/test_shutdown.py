"""Shutdown with work in flight, over a real loopback socket: closing an
AsyncClient while its calls run, cancelling ``upsert_many`` midway, and the
interpreter exiting while a sync ``Client`` call waits for an answer.

The subprocess cases run with ``-X dev -W error``: an unclosed socket, loop or
transport then prints a warning on stderr, which must stay empty. The outer
``fail_after`` and subprocess timeouts only guard against a hang.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import anyio
import httpx
import pytest

from activatepro_async import APIConnectionError, AsyncClient, RetryPolicy

from .helpers import (
    API_KEY,
    FakeTime,
    NeverAnswer,
    Recorder,
    assert_clean,
    run_python,
    tcp_server,
)

#: The checkout's root: the scripts import ``tests.helpers`` from it.
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.anyio
async def test_aclose_ends_calls_in_flight_at_once_with_a_connection_error(
    fake_time: FakeTime,
) -> None:
    retry = RetryPolicy(jitter=None, sleep=fake_time.sleep, clock=fake_time.clock)
    outcomes: list[BaseException] = []
    server = NeverAnswer(3)
    async with tcp_server(server) as url:
        client = AsyncClient(API_KEY, base_url=url, retry=retry)

        async def call(user_id: str) -> None:
            try:
                await client.get_user(user_id)
            except Exception as exc:
                outcomes.append(exc)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for user_id in ("1", "2", "3"):
                    tg.start_soon(call, user_id)
                await server.arrived.wait()  # the three are sent and waiting
                await client.aclose()
    assert [type(exc) for exc in outcomes] == [APIConnectionError] * 3, outcomes
    assert "the client was closed" in str(outcomes[0])
    assert fake_time.sleeps == [], "a closed client retried"


@pytest.mark.anyio
async def test_aclose_during_a_retry_wait_ends_the_call_with_a_connection_error() -> None:
    recorder = Recorder(httpx.Response(503))

    async def sleep(seconds: float) -> None:
        await client.aclose()  # the client is closed while the call waits to retry

    client = AsyncClient(
        API_KEY,
        base_url="https://api.example.test",
        transport=recorder.transport,
        retry=RetryPolicy(jitter=None, sleep=sleep),
    )
    with pytest.raises(APIConnectionError, match="the client was closed while it ran"):
        await client.get_user("1")
    assert len(recorder.requests) == 1


@pytest.mark.anyio
async def test_a_call_started_just_before_aclose_ends_with_a_connection_error() -> None:
    recorder = Recorder(httpx.Response(404))
    client = AsyncClient(API_KEY, base_url="https://api.example.test", transport=recorder.transport)
    outcomes: list[BaseException] = []

    async def call() -> None:
        try:
            await client.get_user("1")
        except Exception as exc:
            outcomes.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await client.aclose()  # the call's task has not run yet
    assert [type(exc) for exc in outcomes] == [APIConnectionError], outcomes
    assert recorder.requests == []


@pytest.mark.anyio
async def test_a_call_on_a_closed_client_is_a_connection_error() -> None:
    recorder = Recorder(httpx.Response(404))
    client = AsyncClient(API_KEY, base_url="https://api.example.test", transport=recorder.transport)
    await client.aclose()
    with pytest.raises(APIConnectionError, match="closed"):
        await client.get_user("1")
    assert recorder.requests == []


def run_script(script: str, backend: str) -> subprocess.CompletedProcess[str]:
    # Only what -X dev and -W error print may reach stderr: not asyncio's slow
    # callback notes, nor the SDK's own warnings (a cancelled run logs its counts).
    prelude = "import logging\nlogging.disable(logging.WARNING)\n"
    script = prelude + textwrap.dedent(script)
    return run_python(script, backend, str(ROOT), flags=("-X", "dev", "-W", "error"))


def test_cancelling_upsert_many_over_loopback_ends_promptly_and_leaves_nothing_open(
    backend: str,
) -> None:
    # Every request waits 0.2 s in the served emulator, so when the first chunk's
    # progress cancels the run, the other workers' requests are in flight.
    script = """
        import gc, sys, anyio
        from activatepro_async import AsyncClient
        from activatepro_async.emulator import Emulator, Faults

        async def main():
            emulator = Emulator(faults=Faults(rate=1.0, kinds=["latency"], latency=0.2))
            users = [{"id": str(i), "email": f"u{i}@example.com"} for i in range(5000)]
            async with emulator.serve() as url, AsyncClient("test-key", base_url=url) as client:
                with anyio.fail_after(10), anyio.CancelScope() as scope:
                    await client.upsert_many(
                        users, chunk_size=100, concurrency=4,
                        on_progress=lambda progress: scope.cancel(),
                    )
                assert scope.cancelled_caught
                assert len(emulator.requests) < 50, len(emulator.requests)
                assert (await client.get_user("0")).id == "0"  # the client still works

        anyio.run(main, backend=sys.argv[1])
        gc.collect()
        print("done")
    """
    assert_clean(run_script(script, backend))


def test_aclose_with_calls_in_flight_leaves_nothing_open(backend: str) -> None:
    script = """
        import gc, sys, anyio
        sys.path.insert(0, sys.argv[2])
        from activatepro_async import APIConnectionError, AsyncClient
        from tests.helpers import NeverAnswer, tcp_server

        async def main():
            server = NeverAnswer(3)
            async with tcp_server(server) as url:
                client = AsyncClient("test-key", base_url=url)
                failures = []

                async def call(user_id):
                    try:
                        await client.get_user(user_id)
                    except APIConnectionError as exc:
                        failures.append(exc)

                with anyio.fail_after(10):
                    async with anyio.create_task_group() as tg:
                        for user_id in "123":
                            tg.start_soon(call, user_id)
                        await server.arrived.wait()  # the three are sent and waiting
                        await client.aclose()
                assert len(failures) == 3, failures

        anyio.run(main, backend=sys.argv[1])
        gc.collect()
        print("done")
    """
    assert_clean(run_script(script, backend))


def test_exit_mid_call_over_loopback_is_prompt_and_leaves_nothing_open(backend: str) -> None:
    # The call waits on a real socket that never answers; the main thread ends.
    script = """
        import atexit, socket, sys, threading
        from activatepro_async import APIConnectionError, Client

        listener = socket.create_server(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d" % listener.getsockname()[1]
        server_side = [listener]
        atexit.register(lambda: [sock.close() for sock in server_side])  # after the Client's
        client = Client("test-key", base_url=url, backend=sys.argv[1])

        def call():
            try:
                client.get_user("ada")
            except (APIConnectionError, RuntimeError) as exc:  # ended by the exit: it says so
                assert "closed while it ran" in str(exc), exc

        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        listener.settimeout(10)
        server_side.append(listener.accept()[0])  # the call is connected and waiting
        print("done")
    """
    result = run_script(script, backend)
    assert_clean(result)
