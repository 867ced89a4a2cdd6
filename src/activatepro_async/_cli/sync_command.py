"""``activatepro sync``: an import that sends only what changed, kept in a state file.

The run is ``import``'s (the same readers, ``--map``/``--type``, rejects file,
progress bar and summary), with the SDK's
:class:`~activatepro_async.incremental.Syncer` as its stage: it leaves out the
rows whose hash the API confirmed, confirms what the API processed, and with
``--delete-missing`` deletes what left the export. Whatever is wrong with the
state file (not ours, damaged, in use, another base URL or options) or the
delete guard is one line and exit 2.
"""

from __future__ import annotations

import contextlib
from typing import Any

import click

from .bulk_commands import column_plan, input_options, open_input, same_path
from .bulk_run import run_with_display
from .options import (
    UsageProblem,
    api_options,
    chunk_size_option,
    concurrency_option,
    make_client,
    need,
    output_options,
    rejects_option,
)

__all__ = ["COMMANDS"]


@click.command(short_help="Send only the users that changed since the last sync.")
@click.argument("file")
@click.option(
    "--state",
    required=True,
    type=click.Path(dir_okay=False),
    help="The sync's state (SQLite, created on first use): what the API confirmed.",
)
@input_options
@api_options
@chunk_size_option("Users per batch request.")
@concurrency_option("Batch requests in flight at most (lowered on 429/503).")
@click.option(
    "--wait-timeout",
    default=300.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait for each tracking id to be processed.",
)
@click.option(
    "--delete-missing",
    is_flag=True,
    help="Delete the users confirmed in the state that are not in FILE.",
)
@click.option(
    "--max-delete",
    default="10%",
    show_default=True,
    metavar="COUNT|PERCENT",
    help="With --delete-missing: refuse the run, sending nothing, when more would be "
    "deleted (a count, or a percentage of the state).",
)
@rejects_option("Write every row not stored, its line number and errors, as JSON Lines.")
@output_options
def sync(
    file: str,
    state: str,
    fmt: str | None,
    encoding: str,
    delimiter: str | None,
    maps: tuple[str, ...],
    types: tuple[str, ...],
    api_key: str | None,
    base_url: str | None,
    chunk_size: int,
    concurrency: int,
    wait_timeout: float,
    delete_missing: bool,
    max_delete: str,
    rejects: str | None,
    as_json: bool,
    quiet: bool,
    verbose: bool,
) -> None:
    """Create or update the users of FILE that changed since the last sync.

    FILE is read as by import (CSV, JSON Lines, Parquet, or - for stdin). A
    row is sent only when its user is new or differs from what the API last
    confirmed; an unchanged export sends no request at all. STATE remembers, per user,
    what the API processed, and belongs to one base URL and one set of --map
    and --type options.

    \b
    activatepro sync crm-export.csv --state crm.sync --rejects rejects.jsonl
    activatepro sync crm-export.csv --state crm.sync --delete-missing --max-delete 2%

    Exit status: 0 when every row sent was confirmed (and every missing user
    deleted), 1 when some were rejected, failed or not confirmed (a rerun sends
    them again), 2 for a usage or configuration error, a state file that
    cannot be used, or a delete the guard refused.
    """
    need("rich")
    from .._syncstate import SyncState, SyncStateError
    from ..incremental import Syncer, parse_max_delete
    from .engine import RunOptions

    try:
        parse_max_delete(max_delete)
    except ValueError as exc:
        raise UsageProblem(str(exc).replace("max_delete", "--max-delete")) from None
    if rejects is not None and same_path(state, rejects):
        raise UsageProblem("--state and --rejects name the same file: pass two different files")
    plan = column_plan(maps, types, "upsert")
    client = make_client(api_key, base_url)
    with contextlib.ExitStack() as stack:
        source = open_input(stack, file, fmt, encoding, delimiter, plan)
        try:
            opened = SyncState.open(state, base_url=client.base_url, options=plan.fingerprint())
        except SyncStateError as exc:
            raise UsageProblem(str(exc)) from None
        stack.callback(opened.close)
        try:
            syncer: Syncer[Any] = Syncer(
                opened, delete_missing=delete_missing, max_delete=max_delete
            )
        except SyncStateError as exc:
            raise UsageProblem(str(exc)) from None
        summary = run_with_display(
            client,
            source,
            plan,
            RunOptions(
                operation="upsert",
                chunk_size=chunk_size,
                concurrency=concurrency,
                wait=False,  # the stage polls: what it confirms needs PROCESSED
                wait_timeout=wait_timeout,
            ),
            rejects=rejects,
            journal=None,
            as_json=as_json,
            quiet=quiet,
            verbose=verbose,
            title=f"Synced {source.name}",
            stage=syncer,
        )
    click.get_current_context().exit(summary.exit_code)


COMMANDS = (sync,)
