"""Fixtures shared by the whole suite.

Every async test runs twice, on asyncio and on trio (anyio's pytest plugin);
a test that starts its own loop takes ``backend`` to run on both too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

from activatepro_async import AsyncClient, RetryPolicy

from .helpers import API_KEY, FakeTime, MockAPI, Recorder, api_recorder

#: The async backends every test that runs an event loop runs on. ``ACTIVATEPRO_TEST_BACKENDS``
#: (comma-separated) narrows them: noxfile.py runs the core on the other Pythons on one
#: backend, since both already run on the main Python (``scripts/test``).
BACKENDS = [
    name.strip()
    for name in os.environ.get("ACTIVATEPRO_TEST_BACKENDS", "asyncio,trio").split(",")
    if name.strip()
]
if not BACKENDS or not set(BACKENDS) <= {"asyncio", "trio"}:
    raise pytest.UsageError(
        f"ACTIVATEPRO_TEST_BACKENDS={os.environ['ACTIVATEPRO_TEST_BACKENDS']!r}: "
        "use asyncio, trio or asyncio,trio"
    )


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend name, for a test that starts its own loop (``Client``, a subprocess)."""
    return str(request.param)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def make_client(fake_time: FakeTime) -> Callable[..., AsyncClient]:
    """Build an AsyncClient on a Recorder with a fake clock and no jitter."""

    def make(recorder: Recorder, **kwargs: Any) -> AsyncClient:
        retry = kwargs.pop(
            "retry",
            RetryPolicy(jitter=None, sleep=fake_time.sleep, clock=fake_time.clock),
        )
        return AsyncClient(
            kwargs.pop("api_key", API_KEY),
            base_url=kwargs.pop("base_url", "https://api.example.test"),
            transport=recorder.transport,
            retry=retry,
            **kwargs,
        )

    return make


@pytest.fixture
def recorded(
    make_client: Callable[..., AsyncClient],
) -> Callable[..., tuple[Recorder, AsyncClient]]:
    """A client built by ``make_client`` with these options on an ``api_recorder()``, and
    that recorder: for a test of what is sent, whatever the calls and their order."""

    def make(**options: Any) -> tuple[Recorder, AsyncClient]:
        recorder = api_recorder()
        return recorder, make_client(recorder, **options)

    return make


@pytest.fixture
def api() -> MockAPI:
    """The bulk tests' mock of the batch API (a module may define its own ``api``)."""
    return MockAPI()


@pytest.fixture
def client(api: MockAPI, make_client: Callable[..., AsyncClient]) -> AsyncClient:
    """An AsyncClient on ``api`` (a module may define its own ``client``)."""
    return make_client(api)


# The summaries of the documentation examples and of the chaos runs live here, in the
# conftest every run loads: under pytest-xdist the controlling process collects nothing,
# so it never loads tests/docs/ or tests/chaos/'s conftests; they read the test reports.
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    _docs_summary(terminalreporter)
    _chaos_summary(terminalreporter)


def _docs_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many examples ran, failed and were skipped (with why), from the test reports.

    Read from the reports, not from this process's state: under pytest-xdist the
    examples run in a worker and only their reports reach this process.
    """
    ran, failed, skipped = 0, 0, []
    for outcome in ("passed", "failed", "skipped"):
        for report in terminalreporter.stats.get(outcome, ()):
            nodeid = getattr(report, "nodeid", "")
            if "test_examples.py::test_example_runs[" not in nodeid or report.when != "call":
                continue
            where = nodeid.split("[", 1)[1].rstrip("]")
            if outcome == "skipped":
                why = report.longrepr[2] if isinstance(report.longrepr, tuple) else ""
                skipped.append((where, str(why).removeprefix("Skipped: ")))
            else:
                ran += 1
                failed += outcome == "failed"
    if not ran and not skipped:
        return
    terminalreporter.section("documentation examples")
    terminalreporter.write_line(f"{ran} examples ran ({failed} failed), {len(skipped)} skipped")
    for where, why in skipped:
        terminalreporter.write_line(f"  skipped {where}: {why}")


def _chaos_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Each chaos run's line (seed, requests, faults), from its test's report."""
    lines = [
        value
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, ())
        if getattr(report, "when", None) == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == "chaos_report"
    ]
    if lines:
        terminalreporter.section("chaos runs (replay with ACTIVATEPRO_CHAOS_SEED=<seed>)")
        for line in lines:
            terminalreporter.write_line(str(line))
