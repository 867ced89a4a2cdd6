"""The core tests on the other supported Pythons: ``python -m nox`` (``scripts/test`` runs it).

The whole suite runs on the Python of your environment (``scripts/test``). Here,
the core (the client, the bulk engine, the sync facade, the emulator) runs on the
oldest and the newest Python that ``requires-python`` admits, each in its own
virtualenv with only the SDK, its ``server``, ``fast`` and ``arrow`` extras and the test tools:
what a user of that Python installs, on asyncio (see ``_BACKENDS``), drawing a quarter of
each property test's examples (``ACTIVATEPRO_TEST_EXAMPLES``; the main Python draws all). The CLI,
Spark, chaos, packaging and benchmark tests stay on one Python; they exercise the
same core.
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["core"]
nox.options.error_on_missing_interpreters = True

#: The test files of the core; the drivers' tests (cli/, integrations/, ...) are left out.
_LEFT_OUT = {"test_packaging.py", "test_bulk_benchmark.py"}


def _core_tests() -> list[str]:
    tests = Path(__file__).parent / "tests"
    files = sorted(p for p in tests.glob("test_*.py") if p.name not in _LEFT_OUT)
    return [str(p.relative_to(tests.parent)) for p in files] + ["tests/emulator"]


# uv (in the dev extra) builds each virtualenv and installs into it in seconds; pip took
# a minute or more per Python, most of scripts/test's wait for nox. Without uv: virtualenv.
#: The backend each other Python runs the core on. Both backends run on the main Python
#: (scripts/test); here asyncio: it is part of the standard library, so it is what changes
#: from one Python to the next (trio is a library tested on every Python by its own CI).
#: One backend, not two, halves this run's CPU (CI time, issue 16).
_BACKENDS = {"3.10": "asyncio", "3.13": "asyncio"}


@nox.session(python=list(_BACKENDS), venv_backend="uv|virtualenv")
def core(session: nox.Session) -> None:
    """pytest over the core tests, on the backends of ``_BACKENDS``."""
    # Bytecode at install (uv writes none by default, pip does): with PYTHONDONTWRITEBYTECODE
    # (set on CI's image) every process the tests start would compile pyarrow, hypothesis,
    # aiohttp... again: 3.1 CPU-s per start against 1.2 (measured, benchmarks/PROFILE.md).
    session.install("-q", ".[server,fast,arrow,test]", env={"UV_COMPILE_BYTECODE": "1"})
    session.run(
        "python",
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *_core_tests(),
        env={
            "ACTIVATEPRO_TEST_BACKENDS": _BACKENDS[str(session.python)],
            # A quarter of each property test's examples (tests/helpers.py: examples): the
            # main Python draws them all; here they check what changes with the Python.
            "ACTIVATEPRO_TEST_EXAMPLES": "0.25",
        },
    )
