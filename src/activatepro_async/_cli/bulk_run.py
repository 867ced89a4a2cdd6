"""One bulk run on the terminal (import, delete, demo): the progress bar, then the summary.

Whatever stops the run (Ctrl-C, a broken input, a refused key, a full disk)
ends as one line with the right exit code, never as a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from .options import UsageProblem, run

if TYPE_CHECKING:
    from ..client import AsyncClient
    from .engine import RowSource, RunOptions, Stage, Summary
    from .journal import Journal
    from .mapping import ColumnPlan

__all__ = ["run_with_display"]


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


def run_with_display(
    client: AsyncClient | None,
    source: RowSource,
    plan: ColumnPlan,
    options: RunOptions,
    *,
    rejects: str | None,
    journal: Journal | None,
    as_json: bool,
    quiet: bool,
    verbose: bool,
    title: str | None = None,
    footer: str | None = None,
    unit: str = "rows",
    stage: Stage | None = None,
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
    verb = "deleting" if options.operation == "delete" else "importing"
    if stage is not None:
        verb = "syncing"
    live = LiveProgress("checking" if options.dry_run else verb, enabled=not quiet)

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
                stage=stage,
            )

    try:
        with live, _sdk_logs(verbose, live.console):
            summary = run(main)
    except KeyboardInterrupt:
        if journal is not None:
            hint = f": rerun the same command to resume from the journal {journal.path}"
        elif stage is not None:
            hint = ": rerun the same command (the state keeps what the API confirmed)"
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
