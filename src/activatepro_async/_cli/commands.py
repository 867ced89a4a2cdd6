"""The ``activatepro`` commands built on the SDK: import, delete, get, find, track, demo.

:func:`register` adds them to the click group of :mod:`activatepro_async.cli`.

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
import json
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import attrs
import click

from ..errors import (
    ActivateProError,
    APIConnectionError,
    AuthenticationError,
    ConfigurationError,
    NotFoundError,
    PermissionDeniedError,
)

if TYPE_CHECKING:
    import httpx

    from .._retry import RetryPolicy
    from ..client import AsyncClient
    from .engine import RowSource, Summary

__all__ = ["CliEnv", "UsageProblem", "register"]

EXTRA_HINT = "pip install 'activatepro-async[cli]'"
_T = TypeVar("_T")


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


def _run(func: Callable[[], Awaitable[_T]]) -> _T:
    return anyio.run(func, backend=_env().backend)


def _need(*modules: str) -> None:
    """Refuse with one line when the ``cli`` extra is not installed."""
    for module in modules:
        try:
            __import__(module)
        except ModuleNotFoundError:
            raise UsageProblem(f"this command needs {module}: {EXTRA_HINT}") from None


def _client(api_key: str | None, base_url: str | None, **kwargs: Any) -> AsyncClient:
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
def _api_errors() -> Iterator[None]:
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


@contextlib.contextmanager
def _sdk_logs(verbose: bool, console: Any = None) -> Iterator[None]:
    """Keep the SDK's retry warnings off the progress bar (shown with --verbose)."""
    logger = logging.getLogger("activatepro_async")
    handler: logging.Handler
    if verbose:
        from rich.logging import RichHandler

        handler = RichHandler(console=console, show_path=False)
        handler.setLevel(logging.INFO)
    else:
        handler = logging.NullHandler()
    old_level = logger.level
    logger.addHandler(handler)
    if verbose:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def _api_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--base-url",
        envvar="ACTIVATEPRO_BASE_URL",
        show_envvar=True,
        help="The API's address (default: https://api.crossengage.io).",
    )(func)
    return click.option(
        "--api-key",
        envvar="ACTIVATEPRO_API_KEY",
        show_envvar=True,
        help="Your API key; better set through the environment variable than typed.",
    )(func)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


# -- get, find, track -------------------------------------------------------------------


@click.command()
@click.argument("user_id")
@_api_options
def get(user_id: str, api_key: str | None, base_url: str | None) -> None:
    """Print the user with this id as JSON (exit 1 if there is none)."""
    from ..models import to_wire

    async def main() -> Any:
        async with _client(api_key, base_url) as client:
            return to_wire(await client.get_user(user_id))

    with _api_errors():
        try:
            _print_json(_run(main))
        except NotFoundError:
            raise click.ClickException(f"no user with id {user_id!r}") from None


@click.command()
@click.argument("email")
@click.option("--bu", "business_unit", help="The business unit; without it, the user with none.")
@_api_options
def find(email: str, business_unit: str | None, api_key: str | None, base_url: str | None) -> None:
    """Print the user with this email (case insensitive) as JSON."""
    from ..models import to_wire

    async def main() -> Any:
        async with _client(api_key, base_url) as client:
            return to_wire(await client.get_user_by_email(email, business_unit))

    with _api_errors():
        try:
            _print_json(_run(main))
        except NotFoundError:
            where = (
                f" in business unit {business_unit!r}"
                if business_unit
                else " without a business unit"
            )
            raise click.ClickException(f"no user with email {email!r}{where}") from None


@click.command(short_help="Print the processing state of a write.")
@click.argument("tracking_id")
@click.option("--wait", is_flag=True, help="Poll until the request is PROCESSED.")
@click.option(
    "--timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds --wait waits at most.",
)
@_api_options
def track(
    tracking_id: str, wait: bool, timeout: float, api_key: str | None, base_url: str | None
) -> None:
    """Print the processing state of a write (stage, total, success, error) as JSON.

    Exits 1 when the write had errors.
    """

    async def main() -> Any:
        async with _client(api_key, base_url) as client:
            if wait:
                status = await client.wait_for_tracking(tracking_id, timeout=timeout)
            else:
                status = await client.get_tracking(tracking_id)
            return {
                "trackingId": tracking_id,
                "stage": status.stage.value,
                "total": status.total,
                "success": status.success,
                "error": status.error,
            }

    with _api_errors():
        try:
            data = _run(main)
        except NotFoundError:
            raise click.ClickException(
                f"no tracking id {tracking_id!r} (unknown, or older than 24 hours)"
            ) from None
    _print_json(data)
    if data["error"]:
        click.get_current_context().exit(1)


# -- import and delete -------------------------------------------------------------------


def _file_options(func: Callable[..., Any]) -> Callable[..., Any]:
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["csv", "jsonl", "lines"]),
            help="What FILE holds (default: from its extension: .csv .tsv .jsonl .ndjson .txt).",
        ),
        click.option(
            "--encoding", default="utf-8", show_default=True, help="FILE's text encoding."
        ),
        click.option("--delimiter", help="The CSV delimiter (default: , and tab for .tsv)."),
        click.option(
            "--map",
            "maps",
            multiple=True,
            metavar="COLUMN=KEY",
            help="Send COLUMN as KEY (id, email, businessUnit or an attribute); "
            "COLUMN= leaves it out. Repeatable.",
        ),
        click.option(
            "--type",
            "types",
            multiple=True,
            metavar="KEY=TYPE",
            help="Convert KEY's values: string, integer, float, boolean, date[:FORMAT], "
            "datetime[:FORMAT], json. Repeatable.",
        ),
        _api_options,
        click.option(
            "--chunk-size",
            default=1000,
            show_default=True,
            type=click.IntRange(1, 1000),
            help="Users per batch request.",
        ),
        click.option(
            "--concurrency",
            default=8,
            show_default=True,
            type=click.IntRange(1, 64),
            help="Batch requests in flight at most (lowered on 429/503).",
        ),
        click.option("--wait", is_flag=True, help="Poll every tracking id until PROCESSED."),
        click.option(
            "--wait-timeout",
            default=300.0,
            show_default=True,
            type=click.FloatRange(min=0),
            help="Seconds to wait for each tracking id.",
        ),
        click.option(
            "--dry-run", is_flag=True, help="Read and check every row locally; send nothing."
        ),
        click.option(
            "--rejects",
            type=click.Path(dir_okay=False, writable=True),
            help="Write every row not stored, its line number and errors, as JSON Lines.",
        ),
        click.option(
            "--journal",
            type=click.Path(dir_okay=False),
            help="Record accepted chunks here; a rerun with the same file skips them.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar."),
        click.option("-v", "--verbose", is_flag=True, help="Show the SDK's log (retries)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _bulk_command(
    operation: str,
    file: str,
    fmt: str | None,
    encoding: str,
    delimiter: str | None,
    maps: tuple[str, ...],
    types: tuple[str, ...],
    api_key: str | None,
    base_url: str | None,
    chunk_size: int,
    concurrency: int,
    wait: bool,
    wait_timeout: float,
    dry_run: bool,
    rejects: str | None,
    journal: str | None,
    as_json: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    _need("rich")
    from .journal import Journal, JournalError, file_identity
    from .mapping import ColumnPlan, parse_maps, parse_types
    from .readers import InputError, open_source

    try:
        plan = ColumnPlan(parse_maps(maps), parse_types(types), operation=operation)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None
    if journal is not None and dry_run:
        raise UsageProblem("--dry-run sends nothing and keeps no journal: leave out --journal")
    if journal is not None and file == "-":
        raise UsageProblem(
            "--journal needs a file, not stdin: a rerun must read the same rows again"
        )
    if journal is not None and rejects is not None and _same_path(journal, rejects):
        # The rejects file is rewritten by every run: it would wipe the journal.
        raise UsageProblem("--journal and --rejects name the same file: pass two different files")
    client = None if dry_run else _client(api_key, base_url)
    try:
        source = open_source(file, fmt, encoding=encoding, delimiter=delimiter)
    except InputError as exc:
        raise UsageProblem(str(exc)) from None
    with contextlib.ExitStack() as stack:
        stack.callback(source.close)
        try:
            source.prepare()
            if source.header is not None:
                plan.check_header(source.header, source.name)
        except (InputError, ValueError) as exc:
            raise UsageProblem(str(exc)) from None
        opened = None
        if journal is not None:
            try:
                opened = Journal.open(
                    journal,
                    command=operation,
                    input=file_identity(file),
                    options={
                        "format": source.format,
                        "encoding": encoding,
                        "delimiter": source.delimiter,
                        **plan.fingerprint(),
                        "base_url": client.base_url if client is not None else None,
                    },
                )
            except (JournalError, OSError) as exc:
                raise UsageProblem(str(exc)) from None
            stack.callback(opened.close)
        summary = _run_with_display(
            client,
            source,
            plan,
            operation=operation,
            chunk_size=chunk_size,
            concurrency=concurrency,
            wait=wait,
            wait_timeout=wait_timeout,
            dry_run=dry_run,
            rejects=rejects,
            journal=opened,
            as_json=as_json,
            quiet=quiet,
            verbose=verbose,
        )
    click.get_current_context().exit(summary.exit_code)


def _same_path(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return os.path.realpath(a) == os.path.realpath(b)


def _run_with_display(
    client: AsyncClient | None,
    source: RowSource,
    plan: Any,
    *,
    operation: str,
    chunk_size: int,
    concurrency: int,
    wait: bool,
    wait_timeout: float,
    dry_run: bool,
    rejects: str | None,
    journal: Any,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    title: str | None = None,
    footer: str | None = None,
    unit: str = "rows",
) -> Summary:
    """Run with the progress bar, then print the summary; returns it."""
    from rich.console import Console

    from . import engine
    from .progress import LiveProgress, print_summary
    from .readers import InputError, Source
    from .rejects import RejectsWriter

    try:
        writer = RejectsWriter(rejects)
    except OSError as exc:
        raise UsageProblem(str(exc)) from None
    options = engine.RunOptions(
        operation=operation,
        chunk_size=chunk_size,
        concurrency=concurrency,
        wait=wait,
        wait_timeout=wait_timeout,
        dry_run=dry_run,
    )
    live = LiveProgress(
        "checking" if dry_run else ("deleting" if operation == "delete" else "importing"),
        enabled=not quiet,
    )

    def named(summary: Summary) -> None:
        summary.unit = unit

    async def main() -> Summary:
        # A dry run has no client; a real run closes its client when done.
        async with contextlib.AsyncExitStack() as stack:
            if client is not None:
                await stack.enter_async_context(client)
            return await engine.run(
                client,
                source,
                plan,
                options,
                journal=journal,
                rejects=writer,
                progress=live,
                on_summary=named,
            )

    try:
        with live, _sdk_logs(verbose, live.console):
            summary = _run(main)
    except KeyboardInterrupt:
        if journal is not None:
            hint = f": rerun the same command to resume from the journal {journal.path}"
        elif not isinstance(source, Source) or source.name == "-":
            hint = ""  # the demo, or stdin: nothing a journal could resume
        else:
            hint = " (with --journal FILE, a rerun resumes where a run stopped)"
        raise click.ClickException("stopped by Ctrl-C" + hint) from None
    except InputError as exc:
        raise UsageProblem(str(exc)) from None
    except engine.StopRun as exc:
        raise UsageProblem(str(exc)) from None
    except OSError as exc:  # the journal or rejects file could not be written (disk full)
        raise click.ClickException(f"{exc}: free some space or pick another path") from None
    finally:
        writer.close()
    if as_json:
        click.echo(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        print_summary(summary, Console(), title=title, footer=footer)
    return summary


@click.command(name="import", short_help="Create or update users from a CSV or JSON Lines file.")
@click.argument("file")
@_file_options
def import_(file: str, **options: Any) -> None:
    """Create or update the users of FILE (CSV, JSON Lines, or - for stdin).

    CSV columns become the user's keys: id, email, businessUnit, and any other
    column a custom attribute. Empty cells are left out, so an import never
    clears what the file does not mention.

    \b
    activatepro import users.csv --rejects rejects.jsonl --journal users.journal
    activatepro import export.csv --map customer_no=id --map mail=email --type birthday=date
    cat users.jsonl | activatepro import - --format jsonl --json

    Exit status: 0 when every row was accepted, 1 when some were rejected or
    failed (the summary says which), 2 for a usage or configuration error.
    """
    _bulk_command("upsert", file, **options)


@click.command(short_help="Delete the users whose ids a file holds.")
@click.argument("file")
@_file_options
def delete(file: str, **options: Any) -> None:
    """Delete the users whose ids FILE holds (CSV or JSON Lines with an id, or one id a line).

    \b
    activatepro delete leavers.txt
    activatepro delete export.csv --map customer_no=id --journal delete.journal
    """
    _bulk_command("delete", file, **options)


# -- demo ------------------------------------------------------------------------------------


@click.command(short_help="Import 100,000 fake users into an embedded emulator.")
@click.option(
    "--users",
    "count",
    default=100_000,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many users to generate.",
)
@click.option(
    "--faults", is_flag=True, help="Let the emulator fail 10% of requests (5xx, 429, drops)."
)
@click.option(
    "--seed", default=7, show_default=True, type=int, help="Seed of the fake data and faults."
)
@click.option(
    "--invalid",
    "invalid_share",
    default=0.015,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of users that are invalid on purpose.",
)
@click.option("--chunk-size", default=1000, show_default=True, type=click.IntRange(1, 1000))
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the rejected users here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", is_flag=True, help="Show the SDK's log (retries).")
def demo(
    count: int,
    faults: bool,
    seed: int,
    invalid_share: float,
    chunk_size: int,
    concurrency: int,
    rejects: str | None,
    as_json: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Import fake users into the emulator, in this process: no key, no network.

    Generates realistic users (some invalid on purpose), imports them with a
    live progress bar, waits until they are processed, and prints what
    happened: users per second, accepted, rejected by reason, retries.
    """
    _need("rich", "faker")
    from ..client import AsyncClient
    from ..emulator import Emulator, Faults
    from .demo import DemoSource
    from .mapping import ColumnPlan

    emulator = Emulator(
        ("demo-key",),
        faults=(
            Faults(
                rate=0.1,
                kinds=("500", "502", "503", "504", "429", "drop", "truncate", "latency"),
                seed=seed,
                retry_after=0.2,
            )
            if faults
            else None
        ),
        max_logged_requests=100,
    )
    client = AsyncClient(
        "demo-key", base_url="http://emulator.local", transport=emulator.transport()
    )
    summary = _run_with_display(
        client,
        DemoSource(count, seed=seed, invalid_share=invalid_share),
        ColumnPlan(),
        operation="upsert",
        chunk_size=chunk_size,
        concurrency=concurrency,
        wait=True,
        wait_timeout=60.0,
        dry_run=False,
        rejects=rejects,
        journal=None,
        as_json=as_json,
        quiet=quiet,
        verbose=verbose,
        title="Demo" + (" with faults" if faults else ""),
        unit="users",
        footer="The rejected users are invalid on purpose"
        + (f": see {rejects}" if rejects else " (--rejects FILE lists them)"),
    )
    if not as_json:
        stored = len(emulator.users)
        click.echo(f"The emulator now holds {stored:,} users. Try: activatepro import --help")
    # The invalid users are there on purpose: the demo worked if every user is
    # accounted for and no chunk was lost.
    failed = summary.failed or summary.tracking_failures or summary.stopped_by
    click.get_current_context().exit(1 if failed else 0)


def register(group: click.Group) -> None:
    """Add the commands to the ``activatepro`` group."""
    for command in (import_, delete, get, find, track, demo):
        group.add_command(command)
