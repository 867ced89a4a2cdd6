"""What the commands share: their common options, the client they build, their errors.

Exit codes: 0 when every row was accepted (or the call succeeded); 1 when
some rows were rejected or failed, or the API said no (an unknown user); 2
for a usage or configuration error (a missing key, an unreadable file, a bad
``--map``), always with a one-line message and never a traceback.

Tests drive the commands with click's ``CliRunner`` and pass a :class:`CliEnv`
as ``obj``: its ``transport`` (e.g. ``Emulator().transport()``) replaces the
network, its ``backend`` picks asyncio or trio.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import attrs
import click

from .._wire import MAX_BATCH_ITEMS
from ..errors import (
    ActivateProError,
    APIConnectionError,
    AuthenticationError,
    ConfigurationError,
    PermissionDeniedError,
)
from . import INSTALL_HINT

if TYPE_CHECKING:
    import httpx

    from .._retry import RetryPolicy
    from ..client import AsyncClient

__all__ = [
    "CliEnv",
    "UsageProblem",
    "api_errors",
    "api_options",
    "chunk_size_option",
    "concurrency_option",
    "make_client",
    "need",
    "output_options",
    "rejects_option",
    "run",
    "stacked",
]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


class UsageProblem(click.ClickException):
    """A usage or configuration error: one line, exit code 2."""

    exit_code = 2


@attrs.define
class CliEnv:
    """What a test may replace: the HTTP transport, the retry policy, the async backend."""

    transport: httpx.AsyncBaseTransport | None = None
    backend: str = "asyncio"
    retry: RetryPolicy | None = None


def _env() -> CliEnv:
    ctx = click.get_current_context()
    env = ctx.find_object(CliEnv)
    return env if env is not None else CliEnv()


def run(func: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``func`` on the backend of the :class:`CliEnv` (asyncio unless a test says)."""
    return anyio.run(func, backend=_env().backend)


def need(*modules: str) -> None:
    """Refuse with one line when the ``cli`` extra is not installed."""
    for module in modules:
        try:
            __import__(module)
        except ModuleNotFoundError:
            raise UsageProblem(f"this command needs {module}: {INSTALL_HINT}") from None


def make_client(api_key: str | None, base_url: str | None, **kwargs: Any) -> AsyncClient:
    """The client of ``--api-key`` and ``--base-url``; a bad one is a :class:`UsageProblem`."""
    from ..client import AsyncClient

    env = _env()
    if env.retry is not None:
        kwargs.setdefault("retry", env.retry)
    try:
        return AsyncClient(api_key, base_url=base_url, transport=env.transport, **kwargs)
    except ConfigurationError as exc:
        raise UsageProblem(
            str(exc)
            .replace("pass api_key= or set", "pass --api-key or set")
            .replace("(pass base_url= or set", "(pass --base-url or set")
        ) from None


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """The SDK's exceptions as one-line messages with the right exit code."""
    try:
        yield
    except (AuthenticationError, PermissionDeniedError) as exc:
        raise UsageProblem(
            f"the API refused the key ({exc.status_code}): check --api-key / "
            "ACTIVATEPRO_API_KEY and --base-url"
        ) from None
    except APIConnectionError as exc:
        raise click.ClickException(f"{exc} (is --base-url right, and the API reachable?)") from None
    except ValueError as exc:  # an argument the SDK refuses (an empty id, one too long)
        raise UsageProblem(str(exc)) from None
    except ActivateProError as exc:
        raise click.ClickException(str(exc)) from None


# -- options ---------------------------------------------------------------------------------


def stacked(*options: Callable[[_F], _F]) -> Callable[[_F], _F]:
    """One decorator of several click options, shown by ``--help`` in the order given."""

    def decorate(func: _F) -> _F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


#: ``--api-key`` and ``--base-url``, also read from the environment.
api_options = stacked(
    click.option(
        "--api-key",
        envvar="ACTIVATEPRO_API_KEY",
        show_envvar=True,
        help="Your API key; better set through the environment variable than typed.",
    ),
    click.option(
        "--base-url",
        envvar="ACTIVATEPRO_BASE_URL",
        show_envvar=True,
        help="The API's address (default: https://api.crossengage.io).",
    ),
)

#: ``--json``, ``--quiet`` and ``--verbose``: what a run shows.
output_options = stacked(
    click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout."),
    click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
    click.option("-v", "--verbose", is_flag=True, help="Show the SDK's log (retries)."),
)


def chunk_size_option(help: str | None = None) -> Callable[[_F], _F]:
    return click.option(
        "--chunk-size",
        default=MAX_BATCH_ITEMS,
        show_default=True,
        type=click.IntRange(1, MAX_BATCH_ITEMS),
        help=help,
    )


def concurrency_option(help: str | None = None) -> Callable[[_F], _F]:
    return click.option(
        "--concurrency", default=8, show_default=True, type=click.IntRange(1, 64), help=help
    )


def rejects_option(help: str) -> Callable[[_F], _F]:
    return click.option("--rejects", type=click.Path(dir_okay=False, writable=True), help=help)
