"""What several test files share: a fake clock, a recording mock transport, a
mock of the batch API (``MockAPI``), the reference's example bodies, a Python
subprocess runner, a TCP server on 127.0.0.1 and ``activatepro serve`` in a
subprocess.

Fixtures live in ``conftest.py``; these are plain functions and classes.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel
import httpx
from anyio.abc import SocketAttribute, SocketStream

if TYPE_CHECKING:
    from activatepro_async import AsyncClient

API_KEY = "test-key-d41d8cd98f00"


def _examples_scale() -> float:
    raw = os.environ.get("ACTIVATEPRO_TEST_EXAMPLES", "1").strip() or "1"
    try:
        scale = float(raw)
    except ValueError:
        scale = -1.0
    if not 0 < scale <= 1:
        raise ValueError(
            f"ACTIVATEPRO_TEST_EXAMPLES={raw!r}: use a fraction in (0, 1], such as 0.25"
        )
    return scale


#: The share of each property test's examples this run draws: all of them on the main
#: Python (scripts/test); a quarter on the other Pythons (noxfile.py), where the same
#: properties run again to catch what changes from one Python to the next, not to search
#: the input space a second and third time (CI time, issue 16).
EXAMPLES_SCALE = _examples_scale()


def examples(count: int) -> int:
    """``count`` hypothesis examples, scaled by ``ACTIVATEPRO_TEST_EXAMPLES`` (at least 10)."""
    return max(10, round(count * EXAMPLES_SCALE)) if EXAMPLES_SCALE < 1 else count


#: The user body of the reference's GET examples.
REFERENCE_USER = {
    "email": "john.doe@example.com",
    "id": "fb85fe50-a528-11e7-abc4-cec278b6b50a",
    "xngId": "123e4567-e89b-12d3-a456-426655440000",
    "firstName": "John",
    "lastName": "Doe",
    "birthday": "1982-08-30",
    "createdAt": "2015-10-02T08:23:53Z",
    "gender": "male",
}

#: The body of the reference's 400 example for ``PUT /users``.
REFERENCE_PUT_400 = {
    "errors": [
        {
            "code": "6",
            "title": "Unknown Attribute",
            "details": 'Attribute "lastName" does not exist',
            "info": "https://docs.crossengage.io/errors#6",
            "source": {"pointer": "/lastName"},
        },
        {
            "code": "2",
            "title": "Invalid Field",
            "details": 'Invalid field value, or missing a required field "email"',
            "info": "https://docs.crossengage.io/errors#2",
            "source": {"pointer": "/email"},
        },
    ]
}


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder:
    """An httpx.MockTransport that records every request and answers from a script.

    ``responses`` is a list consumed in order; each item is an ``httpx.Response``,
    an exception instance to raise, or a callable ``(request) -> Response``.
    When the list runs out, the last item repeats.
    """

    def __init__(self, *responses: Any) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, BaseException):
            raise item
        if callable(item) and not isinstance(item, httpx.Response):
            result: httpx.Response = item(request)
            return result
        return _copy(item)


OK_USER = httpx.Response(200, json={"id": "42", "email": "ada@example.com"})
OK_ACCEPTED = httpx.Response(202, json={"trackingId": "t-1"})


def api_recorder() -> Recorder:
    """A Recorder that answers as the API would: a GET with user 42, a write with a 202,
    in any order (a test of what is *sent* need not script the answers)."""
    return Recorder(lambda request: _copy(OK_USER if request.method == "GET" else OK_ACCEPTED))


def _copy(response: httpx.Response) -> httpx.Response:
    return httpx.Response(response.status_code, headers=response.headers, content=response.content)


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child pytest that must run as a user's would.

    Under pytest-xdist every test process carries ``PYTEST_XDIST_WORKER`` and its kin, and a
    child pytest inherits them and believes it is a worker: pytest-benchmark, where an
    interpreter has it (CI's bare one does), then warns at start-up, and a child run with
    ``-W error`` or ``filterwarnings = error`` ends in an INTERNALERROR before any test.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST_")}
    env.update(extra)
    return env


def run_python(
    script: str, *args: str, flags: tuple[str, ...] = (), timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python FLAGS -c SCRIPT ARGS`` in a fresh interpreter, capturing its output."""
    return subprocess.run(
        [sys.executable, *flags, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    """The script ran to its end (its last line says ``done``) and printed nothing on stderr."""
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("done"), result.stdout + result.stderr
    assert result.stderr == ""


Handler = Callable[[SocketStream], Awaitable[None]]


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[str]:
    """A server on 127.0.0.1 that runs ``handler`` on each connection; gives its URL."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)

    async def serve_one(stream: SocketStream) -> None:
        async with stream:
            # The client hangs up (on a timeout, on close), as it should.
            with suppress(anyio.BrokenResourceError, anyio.EndOfStream, anyio.ClosedResourceError):
                await handler(stream)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve_one)
        yield f"http://127.0.0.1:{port}"
        tg.cancel_scope.cancel()


class NeverAnswer:
    """A :func:`tcp_server` handler that reads each request and never answers it.

    ``arrived`` is set once ``expected`` requests came: that many calls are then
    sent and waiting for their answers (a test waits on it instead of sleeping).
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.arrived = anyio.Event()

    async def __call__(self, stream: SocketStream) -> None:
        await stream.receive()
        self.count += 1
        if self.count == self.expected:
            self.arrived.set()
        await anyio.sleep_forever()


class ServedEmulator:
    """``activatepro serve`` in a subprocess: free port, readiness poll, terminated at the end."""

    def __init__(self, *args: str, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        command = [sys.executable, "-m", "activatepro_async", "serve", "--port", "0"]
        command += ["--api-key", api_key, "--log-level", "error", *args]
        # Port 0: the server binds a free port itself and prints its URL, so no
        # other process can take the port between choosing and binding it.
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self._reader: threading.Thread | None = None
        try:
            self.base_url = self._read_url(timeout=30)
            self._wait_ready(timeout=30)
        except BaseException:
            self.stop()
            raise

    def _read_url(self, timeout: float) -> str:
        found: list[str] = []
        assert self.process.stdout is not None
        stdout = self.process.stdout

        def read() -> None:
            for line in stdout:
                self.output.append(line)
                match = re.search(r"listening on (http://\S+)", line)
                if match and not found:
                    found.append(match.group(1))

        # Reads to the end, so the server never blocks on a full pipe.
        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not found:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"activatepro serve did not start: {''.join(self.output)}")
            time.sleep(0.02)
        return found[0]

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Any HTTP answer means the server accepts and serves requests.
                httpx.get(f"{self.base_url}/users/track/ready", timeout=2)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (SIGTERM, so a ``--dump-on-exit`` file gets written)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                # A guard against a hang only: dumping 200,000 users on exit
                # took ~10 s on a loaded machine and over 60 s on one running
                # eight test suites (a kill then leaves no dump at all).
                self.process.wait(timeout=300)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # The reader ends at the pipe's end; closing the pipe under it would
        # make it fail in its thread.
        if self._reader is not None:
            self._reader.join(timeout=15)
        if self.process.stdout is not None:
            self.process.stdout.close()


# -- incremental sync: what was posted, what the state holds ---------------------


def posted_batches(emulator: Any, since: int = 0) -> list[list[str]]:
    """The user ids of each batch POSTed to ``emulator`` since request number ``since``."""
    found = []
    for request in emulator.requests[since:]:
        if request.method == "POST":
            body = json.loads(request.body)
            found.append([u["id"] for u in body["updated"]] + [d["id"] for d in body["deleted"]])
    return found


def sync_state_rows(path: str | os.PathLike[str]) -> dict[str, bytes]:
    """A sync state file's users table: id to hash."""
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT id, hash FROM users"))
    finally:
        db.close()


# -- the bulk tests' mock of the batch API ------------------------------------------

#: The ``make_client`` fixture's type.
MakeClient = Callable[..., "AsyncClient"]


class MockAPI:
    """``POST /users/batch`` and ``GET /users/track/{id}``, validating like the API.

    ``script`` holds what the next batch requests get instead of a normal
    answer: a status (``429``, ``500``, ``401``...) or ``"drop"``; afterwards
    requests are answered normally. ``hold`` is awaited inside every batch
    request, so a test can keep requests in flight.
    """

    def __init__(self, *script: int | str) -> None:
        self.script = list(script)
        self.users: dict[str, dict[str, Any]] = {}
        #: Item ids of every batch request, in arrival order (also faulted ones).
        self.arrivals: list[list[str]] = []
        #: Parsed bodies of the batches that were accepted, in arrival order.
        self.accepted: list[dict[str, Any]] = []
        self.bodies: list[bytes] = []
        self.in_flight = 0
        self.max_in_flight = 0
        #: In-flight count seen by each batch request as it arrived.
        self.in_flight_at_arrival: list[int] = []
        self.hold: Callable[[MockAPI], Awaitable[None]] | None = None
        self.tracking: dict[str, dict[str, int]] = {}
        self.pending_polls = 0
        self.polls: dict[str, int] = {}
        self.transport = httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        if request.url.path.startswith("/users/track/"):
            return self.track(request.url.path.rsplit("/", 1)[1])
        assert request.method == "POST"
        assert request.url.path == "/users/batch"
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.in_flight_at_arrival.append(self.in_flight)
        try:
            await anyio.lowlevel.checkpoint()  # let the other workers send meanwhile
            if self.hold is not None:
                await self.hold(self)
            return self.batch(request)
        finally:
            self.in_flight -= 1

    def batch(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(request.content)
        items = [*body["updated"], *body["deleted"]]
        self.arrivals.append([item.get("id") for item in items])
        if self.script:
            what = self.script.pop(0)
            if what == "drop":
                raise httpx.RemoteProtocolError("Server disconnected", request=request)
            assert isinstance(what, int)
            headers = {"Retry-After": "0"} if what in (429, 503) else {}
            return httpx.Response(what, json={"errors": []}, headers=headers)
        if request.headers.get("X-XNG-AuthToken") != API_KEY:
            return httpx.Response(401)
        assert request.headers["X-XNG-ApiVersion"] == "2"
        if len(items) > 1000:
            return error_reply(400, [(9, "/updated")])
        if not items:
            return error_reply(400, [(2, "/updated")])
        errors: list[tuple[int, str]] = []
        for index, user in enumerate(body["updated"]):
            user_errors = self.user_errors(user, f"/updated/{index}")
            errors += user_errors
            if not user_errors:
                self.users.setdefault(user["id"], {}).update(user)
        for index, item in enumerate(body["deleted"]):
            if not isinstance(item.get("id"), str) or not item["id"]:
                errors.append((2, f"/deleted/{index}/id"))
            else:
                self.users.pop(item["id"], None)
        tracking_id = f"t{len(self.tracking)}"
        invalid = len({pointer.split("/")[2] for _, pointer in errors})
        self.tracking[tracking_id] = {"total": len(items), "error": invalid}
        self.accepted.append(body)
        if errors:
            return error_reply(400, errors, trackingId=tracking_id)
        return httpx.Response(202, json={"trackingId": tracking_id})

    @staticmethod
    def user_errors(user: Any, prefix: str) -> list[tuple[int, str]]:
        if not isinstance(user, dict):
            return [(2, prefix)]
        errors = []
        if not isinstance(user.get("id"), str) or not user["id"]:
            errors.append((2, f"{prefix}/id"))
        email = user.get("email")
        if not isinstance(email, str) or "@" not in email or " " in email:
            errors.append((4, f"{prefix}/email"))
        return errors

    def track(self, tracking_id: str) -> httpx.Response:
        if tracking_id not in self.tracking:
            return httpx.Response(404)
        counts = self.tracking[tracking_id]
        polls = self.polls[tracking_id] = self.polls.get(tracking_id, 0) + 1
        stage = "PENDING" if polls <= self.pending_polls else "PROCESSED"
        total, error = counts["total"], counts["error"]
        success = total - error if stage == "PROCESSED" else 0
        body = {"stage": stage, "total": total, "success": success, "error": error}
        return httpx.Response(200, json=body)


def error_reply(status: int, errors: list[tuple[int, str]], **extra: Any) -> httpx.Response:
    body = {
        "errors": [
            {"code": str(code), "title": "t", "details": "d", "source": {"pointer": pointer}}
            for code, pointer in errors
        ],
        **extra,
    }
    return httpx.Response(status, json=body)
