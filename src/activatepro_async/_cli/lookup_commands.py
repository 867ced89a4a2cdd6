"""``activatepro get``, ``find`` and ``track``: one call each, its answer printed as JSON."""

from __future__ import annotations

import json
from typing import Any

import click

from ..errors import NotFoundError
from .options import api_errors, api_options, make_client, run

__all__ = ["COMMANDS"]


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@click.command()
@click.argument("user_id")
@api_options
def get(user_id: str, api_key: str | None, base_url: str | None) -> None:
    """Print the user whose id is USER_ID as JSON (exit 1 if there is none)."""
    from ..models import to_wire

    async def main() -> Any:
        async with make_client(api_key, base_url) as client:
            return to_wire(await client.get_user(user_id))

    with api_errors():
        try:
            _print_json(run(main))
        except NotFoundError:
            raise click.ClickException(f"no user with id {user_id!r}") from None


@click.command()
@click.argument("email")
@click.option("--bu", "business_unit", help="The business unit; without it, the user with none.")
@api_options
def find(email: str, business_unit: str | None, api_key: str | None, base_url: str | None) -> None:
    """Print the user whose email is EMAIL (case insensitive) as JSON."""
    from ..models import to_wire

    async def main() -> Any:
        async with make_client(api_key, base_url) as client:
            return to_wire(await client.get_user_by_email(email, business_unit))

    with api_errors():
        try:
            _print_json(run(main))
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
@api_options
def track(
    tracking_id: str, wait: bool, timeout: float, api_key: str | None, base_url: str | None
) -> None:
    """Print the processing state of the write TRACKING_ID (stage, total, success, error) as JSON.

    Exits 1 when the write had errors.
    """

    async def main() -> Any:
        async with make_client(api_key, base_url) as client:
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

    with api_errors():
        try:
            data = run(main)
        except NotFoundError:
            raise click.ClickException(
                f"no tracking id {tracking_id!r} (unknown, or older than 24 hours)"
            ) from None
    _print_json(data)
    if data["error"]:
        click.get_current_context().exit(1)


COMMANDS = (get, find, track)
