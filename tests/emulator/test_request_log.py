"""The request log: bounded in bytes, and nothing kept of what the emulator refuses.

Issue 12: ``activatepro serve`` kept the last 10,000 bodies whatever their size,
those of requests with a wrong key included, so a few large uploads by anyone
who could reach the port grew it by gigabytes, for good.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from click.testing import CliRunner

from activatepro_async.cli import main
from activatepro_async.emulator import DEFAULT_REQUEST_LOG_BYTES, Emulator, Faults

from .wire import HEADERS, user

MiB = 1024 * 1024
WRONG_KEY = {**HEADERS, "X-XNG-AuthToken": "not-the-key"}


def in_process(emulator: Emulator, headers: dict[str, str] = HEADERS) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=emulator.transport(), base_url="http://e", headers=headers)


def kept_body_bytes(emulator: Emulator) -> int:
    return sum(len(request.body) for request in emulator.requests)


@pytest.mark.anyio
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_served_uploads_with_a_wrong_key_leave_no_body_in_the_log(chunked: bool) -> None:
    emulator = Emulator()
    size = 4 * MiB

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"x" * (size // 64)

    async with emulator.serve() as base_url, httpx.AsyncClient(headers=WRONG_KEY) as http:
        for _ in range(5):
            body = chunks() if chunked else b"x" * size
            response = await http.post(f"{base_url}/users/batch", content=body)
            assert response.status_code == 401
    assert kept_body_bytes(emulator) == 0
    assert emulator.logged_bytes < 5 * 1024, "paths and headers only"
    assert len(emulator.requests) == 5
    for request in emulator.requests:
        assert (request.method, request.path, request.status) == ("POST", "/users/batch", 401)
        assert request.body_size == size
        assert not request.body_kept
        assert "not kept" in repr(request)
        with pytest.raises(ValueError, match="not kept"):
            request.json()


@pytest.mark.anyio
async def test_a_body_with_a_wrong_key_is_never_buffered() -> None:
    """Drained as it arrives, not collected up to max_body_bytes and then dropped."""
    emulator = Emulator()
    chunk = 64 * 1024

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(320):  # 20 MiB, under the 32 MiB body limit
            yield b"x" * chunk

    async with in_process(emulator, WRONG_KEY) as http:
        tracemalloc.start()
        try:
            response = await http.post("/users/batch", content=upload())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 401
    assert peak < 4 * MiB, f"{peak:,} bytes traced while a refused body arrived"
    assert emulator.requests[0].body_size == 320 * chunk


@pytest.mark.anyio
async def test_a_wrong_key_body_is_not_kept_whatever_fault_answers_it() -> None:
    emulator = Emulator(faults=Faults(schedule=["503", "truncate"]))
    async with in_process(emulator, WRONG_KEY) as http:
        assert (await http.put("/users", json=user())).status_code == 503
        with pytest.raises(httpx.RemoteProtocolError):
            await http.put("/users", json=user())  # handled (401), then cut
    assert [(r.status, r.fault, r.body) for r in emulator.requests] == [
        (503, "503", b""),
        (401, "truncate", b""),
    ]
    assert not any(r.body_kept for r in emulator.requests)


@pytest.mark.anyio
async def test_an_oversize_body_is_not_kept() -> None:
    emulator = Emulator(max_body_bytes=1000)
    async with in_process(emulator) as http:
        response = await http.put("/users", json=user(firstName="x" * 2000))
    assert response.status_code == 413
    (request,) = emulator.requests
    assert request.status == 413
    assert request.body == b""
    assert request.body_size > 2000
    assert not request.body_kept


@pytest.mark.anyio
async def test_the_log_evicts_the_oldest_requests_past_its_byte_budget() -> None:
    emulator = Emulator(request_log_bytes=10_000)
    async with in_process(emulator) as http:
        for i in range(40):
            response = await http.put("/users", json=user(str(i), firstName="x" * 1000))
            assert response.status_code == 202
    logged = emulator.requests
    assert 0 < emulator.logged_bytes <= 10_000
    assert 5 <= len(logged) < 10
    assert [r.json()["id"] for r in logged] == [str(i) for i in range(40 - len(logged), 40)]
    assert all(r.body_kept for r in logged)
    assert len(emulator.users) == 40, "the log's budget changes nothing else"


@pytest.mark.anyio
async def test_a_request_larger_than_the_budget_is_logged_without_its_body() -> None:
    emulator = Emulator(request_log_bytes=2000)
    async with in_process(emulator) as http:
        await http.put("/users", json=user("small"))
        assert (await http.put("/users", json=user("big", firstName="x" * 5000))).status_code == 202
    small, big = emulator.requests
    assert small.json()["id"] == "small"
    assert (big.status, big.body, big.body_kept) == (202, b"", False)
    assert big.body_size > 5000
    assert emulator.logged_bytes <= 2000


@pytest.mark.anyio
async def test_a_zero_budget_turns_the_log_off() -> None:
    emulator = Emulator(request_log_bytes=0)
    async with in_process(emulator) as http:
        assert (await http.put("/users", json=user("a"))).status_code == 202
        assert (await http.get("/users/a")).status_code == 200
    assert emulator.requests == []
    assert emulator.logged_bytes == 0


@pytest.mark.anyio
async def test_the_default_budget_bounds_the_log() -> None:
    emulator = Emulator()
    body = b" " * (30 * MiB)  # no route: answered 404 without parsing it
    async with in_process(emulator) as http:
        for _ in range(3):
            assert (await http.post("/users/x/y/z", content=body)).status_code == 404
    assert emulator.request_log_bytes == DEFAULT_REQUEST_LOG_BYTES
    assert emulator.logged_bytes <= DEFAULT_REQUEST_LOG_BYTES
    assert len(emulator.requests) == 2, "the oldest went"


@pytest.mark.anyio
async def test_reset_empties_the_log_and_its_byte_count() -> None:
    emulator = Emulator()
    async with in_process(emulator) as http:
        await http.put("/users", json=user("a"))
    assert emulator.logged_bytes > 0
    emulator.reset()
    assert (emulator.requests, emulator.logged_bytes) == ([], 0)


@pytest.mark.parametrize("value", [-1, 1.5, "10", True])
def test_a_bad_budget_is_a_clear_error(value: Any) -> None:
    with pytest.raises(ValueError, match="request_log_bytes must be an int of 0 or more"):
        Emulator(request_log_bytes=value)


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Emulator]:
    """Make ``activatepro serve`` serve for one round of uploads, then return.

    The command's own ``run_forever`` serves until a signal; this one serves the
    emulator the command built on a real socket, sends it five 2 MiB uploads
    (with a wrong key, then with the right one) and stops, so the test can look
    at that emulator's log.
    """
    emulators: list[Emulator] = []

    def run_forever(emulator: Emulator, *, host: str, port: int, **_: object) -> None:
        async def uploads() -> None:
            async with emulator.serve(host=host) as base_url, httpx.AsyncClient() as http:
                for headers, status in ((WRONG_KEY, 401), (HEADERS, 404)):
                    for _ in range(5):
                        response = await http.post(
                            f"{base_url}/users/x/y", content=b" " * (2 * MiB), headers=headers
                        )
                        assert response.status_code == status

        anyio.run(uploads)
        emulators.append(emulator)

    monkeypatch.setattr("activatepro_async.emulator._server.run_forever", run_forever)
    return emulators


@pytest.mark.parametrize(
    ("flags", "budget", "kept"),
    [
        ([], DEFAULT_REQUEST_LOG_BYTES, 5),
        (["--request-log-bytes", str(5 * MiB)], 5 * MiB, 2),
        (["--request-log-bytes", "0"], 0, 0),
    ],
)
def test_activatepro_serve_sets_the_request_log_budget(
    served: list[Emulator], flags: list[str], budget: int, kept: int
) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", "0", *flags])
    assert result.exit_code == 0, result.output
    (emulator,) = served
    assert emulator.request_log_bytes == budget
    assert emulator.logged_bytes <= budget
    assert kept_body_bytes(emulator) == kept * 2 * MiB, "only accepted-key bodies, in budget"
    assert all(r.body_size == 2 * MiB for r in emulator.requests)
    assert not [r for r in emulator.requests if r.status == 401 and r.body]


def test_activatepro_serve_refuses_a_negative_budget_in_one_line() -> None:
    result = CliRunner().invoke(main, ["serve", "--request-log-bytes", "-1"])
    assert result.exit_code == 2
    assert "--request-log-bytes" in result.output
    assert "Traceback" not in result.output
