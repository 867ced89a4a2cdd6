"""``activatepro serve``: the emulator on a real port, until Ctrl-C.

::

    activatepro serve --port 8080 --api-key test-key --processing-delay 0.5
    activatepro serve --fault-rate 0.1 --fault-kinds 500,503,429,drop --fault-seed 7

It needs the ``server`` extra (click and uvicorn). The entry point loads this
module only for ``serve`` (and ``--help``), so the other commands never import
the emulator.
"""

from __future__ import annotations

import json
import os
import sys

import click

from .._wire import MAX_BODY_BYTES
from ..emulator import (
    DEFAULT_ATTRIBUTES,
    DEFAULT_REQUEST_LOG_BYTES,
    FAULT_KINDS,
    AttributeType,
    Emulator,
    Faults,
)
from . import INSTALL_HINT

__all__ = ["COMMANDS"]


def _fault_kinds(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        Faults(kinds=value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    return value


def _attributes(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    schema: dict[str, str] = {}
    kinds = ", ".join(kind.value for kind in AttributeType)
    for value in values:
        name, sep, kind = value.partition("=")
        if not sep or not name or kind.upper() not in AttributeType.__members__:
            raise click.BadParameter(f"{value!r}: use NAME=TYPE with a TYPE of {kinds}")
        schema[name] = kind.upper()
    return schema


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0 picks a free port.",
)
@click.option(
    "--api-key",
    "api_keys",
    multiple=True,
    default=("test-key",),
    show_default=True,
    help="An accepted X-XNG-AuthToken; repeat for several.",
)
@click.option(
    "--processing-delay",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Seconds before an accepted write is applied.",
)
@click.option(
    "--attribute",
    "attributes",
    multiple=True,
    metavar="NAME=TYPE",
    callback=_attributes,
    help="Add a custom attribute to the default schema, e.g. shoeSize=INTEGER; repeat for several.",
)
@click.option(
    "--accept-unknown-attributes",
    is_flag=True,
    help="Store attributes outside the default schema instead of refusing them (code 6).",
)
@click.option(
    "--max-body-bytes",
    default=MAX_BODY_BYTES,
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger request bodies get 413.",
)
@click.option(
    "--request-log-bytes",
    default=DEFAULT_REQUEST_LOG_BYTES,
    show_default=True,
    type=click.IntRange(min=0),
    help="Bytes of recent requests (bodies, paths, headers) kept for inspection; 0 keeps none.",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Share of requests answered with a fault.",
)
@click.option(
    "--fault-kinds",
    default=None,
    callback=_fault_kinds,
    help="Comma-separated: 500,502,503,504,429,latency,drop,truncate,html (default: all).",
)
@click.option(
    "--fault-seed", default=0, show_default=True, type=int, help="Seed of the fault draws."
)
@click.option(
    "--fault-retry-after",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Retry-After seconds of a 429.",
)
@click.option(
    "--fault-latency",
    default=0.05,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="Seconds a latency fault waits.",
)
@click.option(
    "--dump-on-exit",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="On stop, apply what is queued and write every stored user to this file "
    "(JSON Lines, sorted by id), so a test can compare the whole state.",
)
@click.option(
    "--log-level",
    default="warning",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="uvicorn's log level.",
)
def serve(
    host: str,
    port: int,
    api_keys: tuple[str, ...],
    processing_delay: float,
    attributes: dict[str, str],
    accept_unknown_attributes: bool,
    max_body_bytes: int,
    request_log_bytes: int,
    fault_rate: float,
    fault_kinds: str | None,
    fault_seed: int,
    fault_retry_after: float,
    fault_latency: float,
    dump_on_exit: str | None,
    log_level: str,
) -> None:
    """Run the ActivatePro emulator on HTTP until Ctrl-C.

    State lives in memory and is lost when the server stops.
    """
    try:
        import uvicorn  # noqa: F401  (checked here for a one-line message)
    except ModuleNotFoundError as error:
        raise click.ClickException(
            f"the emulator's server needs {error.name}: {INSTALL_HINT}"
        ) from None
    # Looked up when serving, not at import: a test replaces it to serve for a moment.
    from ..emulator._server import run_forever

    faults = None
    if fault_rate > 0.0:
        faults = Faults(
            rate=fault_rate,
            kinds=fault_kinds if fault_kinds is not None else FAULT_KINDS,
            seed=fault_seed,
            retry_after=fault_retry_after,
            latency=fault_latency,
        )
    try:
        emulator = Emulator(
            api_keys,
            processing_delay=processing_delay,
            attributes={**DEFAULT_ATTRIBUTES, **attributes},
            accept_unknown_attributes=accept_unknown_attributes,
            faults=faults,
            max_body_bytes=max_body_bytes,
            request_log_bytes=request_log_bytes,
        )
    except ValueError as error:  # e.g. --attribute email=STRING, --api-key ""
        raise click.UsageError(str(error)) from None

    def ready(base_url: str) -> None:
        # The keys are never printed: they are secrets in a shared terminal or log.
        click.echo(f"ActivatePro emulator listening on {base_url}", nl=True)
        if faults is not None:
            click.echo(
                f"Injecting faults into {fault_rate:.0%} of requests: {', '.join(faults.kinds)}"
            )
        click.echo("Press Ctrl-C to stop.")
        sys.stdout.flush()

    try:
        run_forever(emulator, host=host, port=port, log_level=log_level, on_ready=ready)
    except OSError as error:  # e.g. the port is taken
        raise click.ClickException(
            f"cannot serve on {host}:{port}: {error.strerror or error}"
        ) from None
    if dump_on_exit is not None:
        _dump_users(emulator, dump_on_exit)
    click.echo("Stopped.")


def _dump_users(emulator: Emulator, path: str) -> None:
    """Write the emulator's state as it stands once everything queued is applied."""
    emulator.process_pending()
    users = emulator.users
    # Written aside and renamed: a server killed while dumping leaves no file cut
    # short that a reader could take for the whole state.
    partial = f"{path}.partial"
    try:
        with open(partial, "w", encoding="utf-8") as out:
            for user_id in sorted(users):
                out.write(json.dumps(users[user_id], sort_keys=True, ensure_ascii=False) + "\n")
        os.replace(partial, path)
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror or error}") from None
    click.echo(f"Wrote {len(users):,} users to {path}")


COMMANDS = (serve,)
