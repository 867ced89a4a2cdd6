"""``activatepro import`` and ``delete``: the runs driven by a file of users or ids.

Everything a run is told is checked before a row is sent: the ``--map`` and
``--type`` options, the file and its header, the journal. A mistake there is
one line and exit 2 (:class:`~.options.UsageProblem`).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

import click

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
    stacked,
)

if TYPE_CHECKING:
    from .mapping import ColumnPlan
    from .readers import Source

__all__ = ["COMMANDS", "column_plan", "input_options", "open_input", "same_path"]

#: Reading FILE: the same for every file-driven command (import, delete, sync).
_reading_options = stacked(
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["csv", "jsonl", "lines", "parquet"]),
        help="What FILE holds (default: from its extension: .csv .tsv .jsonl .ndjson .txt "
        ".parquet; the text formats also as .gz or .zst).",
    ),
    click.option("--encoding", default="utf-8", show_default=True, help="FILE's text encoding."),
    click.option(
        "--delimiter",
        help="The CSV delimiter (default: detected from the first lines: , ; tab or |; "
        "if they do not tell, a comma, or tab for .tsv).",
    ),
)

#: What FILE is and how its rows become users (import and sync: every key can be
#: renamed and typed).
input_options = stacked(
    _reading_options,
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
)

# import and delete only: a sync picks rows one by one, so it reads rows.
_reader_option = click.option(
    "--reader",
    type=click.Choice(["auto", "stdlib"]),
    default="auto",
    show_default=True,
    help="auto: with the arrow extra, Parquet record batches and CSV blocks (every "
    "column a string) go to the bulk engine as Arrow data; stdlib: a dict per row "
    "from the standard library's readers (the same result, slower).",
)


def _sending_options(unit: str, stored: str) -> Any:
    """How the rows are sent and what a run shows; ``unit`` names what a batch holds."""
    return stacked(
        api_options,
        chunk_size_option(f"{unit} per batch request."),
        concurrency_option("Batch requests in flight at most (lowered on 429/503)."),
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
        rejects_option(f"Write every row not {stored}, its line number and errors, as JSON Lines."),
        click.option(
            "--journal",
            type=click.Path(dir_okay=False),
            help="Record accepted chunks here; a rerun with the same file skips them.",
        ),
        output_options,
    )


#: The options of ``import``.
_file_options = stacked(input_options, _reader_option, _sending_options("Users", "stored"))

#: The options of ``delete``: it sends ids only, so only the id is mapped and typed.
_delete_options = stacked(
    _reading_options,
    _reader_option,
    click.option(
        "--map",
        "maps",
        multiple=True,
        metavar="COLUMN=id",
        help="Take the ids from COLUMN (CSV or JSON Lines without an id column or key).",
    ),
    click.option(
        "--type",
        "types",
        multiple=True,
        metavar="id=string",
        help="id=string sends numeric ids (JSON Lines) as text. Types of other keys are "
        "ignored, so one set of options serves import and delete.",
    ),
    _sending_options("Ids", "deleted"),
)


def _bulk_command(
    operation: str,
    file: str,
    fmt: str | None,
    encoding: str,
    delimiter: str | None,
    reader: str,
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
    need("rich")
    from .engine import RunOptions
    from .journal import Journal, JournalError, file_identity
    from .readers import InputError

    plan = column_plan(maps, types, operation)
    if journal is not None and dry_run:
        raise UsageProblem("--dry-run sends nothing and keeps no journal: leave out --journal")
    if journal is not None and file == "-":
        raise UsageProblem(
            "--journal needs a file, not stdin: a rerun must read the same rows again"
        )
    if journal is not None and rejects is not None and same_path(journal, rejects):
        # The rejects file is rewritten by every run: it would wipe the journal.
        raise UsageProblem("--journal and --rejects name the same file: pass two different files")
    client = None if dry_run else make_client(api_key, base_url)
    with contextlib.ExitStack() as stack:
        source = open_input(stack, file, fmt, encoding, delimiter, plan)
        opened = None
        if journal is not None:
            try:
                identity = file_identity(file)
                if source.format == "parquet":
                    # A Parquet row's "line" is its number: the journal checks lines against this.
                    identity["lines"] = source.total_rows
                opened = Journal.open(
                    journal,
                    command=operation,
                    input=identity,
                    options={
                        "format": source.format,
                        "encoding": encoding,
                        "delimiter": source.delimiter,
                        **plan.fingerprint(),
                        "base_url": client.base_url if client is not None else None,
                    },
                )
            except (JournalError, InputError, OSError) as exc:
                raise UsageProblem(str(exc)) from None
            stack.callback(opened.close)
        summary = run_with_display(
            client,
            source,
            plan,
            RunOptions(
                operation=operation,
                chunk_size=chunk_size,
                concurrency=concurrency,
                wait=wait,
                wait_timeout=wait_timeout,
                dry_run=dry_run,
                columnar=reader == "auto",
            ),
            rejects=rejects,
            journal=opened,
            as_json=as_json,
            quiet=quiet,
            verbose=verbose,
        )
    click.get_current_context().exit(summary.exit_code)


def column_plan(maps: tuple[str, ...], types: tuple[str, ...], operation: str) -> ColumnPlan:
    """The plan of ``--map`` and ``--type``; a bad option is a :class:`UsageProblem`."""
    from .mapping import ColumnPlan, parse_maps, parse_types

    try:
        return ColumnPlan(parse_maps(maps), parse_types(types), operation=operation)
    except ValueError as exc:
        raise UsageProblem(str(exc)) from None


def open_input(
    stack: contextlib.ExitStack,
    file: str,
    fmt: str | None,
    encoding: str,
    delimiter: str | None,
    plan: ColumnPlan,
) -> Source:
    """FILE opened (closed by ``stack``), its header read and checked against ``plan``."""
    from .readers import InputError, open_source

    try:
        source = open_source(file, fmt, encoding=encoding, delimiter=delimiter)
    except InputError as exc:
        raise UsageProblem(str(exc)) from None
    stack.callback(source.close)
    try:
        source.prepare()
        if source.header is not None:
            plan.check_header(source.header, source.name)
    except InputError as exc:
        raise UsageProblem(str(exc)) from None
    except ValueError as exc:
        # A header split at the wrong delimiter names columns the file does
        # not have: say how it was split, so --map and the fix agree.
        hint = source.delimiter_hint()
        raise UsageProblem(f"{exc}; {hint}" if hint else str(exc)) from None
    return source


def same_path(a: str, b: str) -> bool:
    """Whether two paths name one file (also when neither exists yet)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return os.path.realpath(a) == os.path.realpath(b)


@click.command(
    name="import", short_help="Create or update users from a CSV, JSON Lines or Parquet file."
)
@click.argument("file")
@_file_options
def import_(file: str, **options: Any) -> None:
    """Create or update the users of FILE (CSV, JSON Lines, Parquet, or - for stdin).

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
@_delete_options
def delete(file: str, **options: Any) -> None:
    """Delete the users whose ids FILE holds (CSV, JSON Lines, Parquet; or one id a line).

    \b
    activatepro delete leavers.txt
    activatepro delete export.csv --map customer_no=id --journal delete.journal
    """
    _bulk_command("delete", file, **options)


COMMANDS = (import_, delete)
