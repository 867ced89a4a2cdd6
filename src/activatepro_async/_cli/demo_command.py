"""``activatepro demo``: fake users imported into an emulator in this process (no key, no network).

The users come from :mod:`.demo`; the run and its display are an import's
(:mod:`.bulk_run`).
"""

from __future__ import annotations

import click

from .bulk_run import run_with_display
from .options import chunk_size_option, concurrency_option, need, output_options, rejects_option

__all__ = ["COMMANDS"]


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
@chunk_size_option("Users per batch request.")
@concurrency_option("Batch requests in flight at most (lowered on 429/503).")
@rejects_option("Write the rejected users here.")
@output_options
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
    need("rich", "faker")
    from ..client import AsyncClient
    from ..emulator import Emulator, Faults
    from .demo import DemoSource
    from .engine import RunOptions
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
    summary = run_with_display(
        client,
        DemoSource(count, seed=seed, invalid_share=invalid_share),
        ColumnPlan(),
        RunOptions(chunk_size=chunk_size, concurrency=concurrency, wait=True, wait_timeout=60.0),
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


COMMANDS = (demo,)
