"""The ``activatepro`` command: the entry point and its families of commands.

Each family lives in its own module of :mod:`activatepro_async._cli`:
``import`` and ``delete`` (the file-driven runs), ``get``, ``find`` and
``track`` (the lookups), ``sync`` (only what changed, with a state file),
``demo``, and ``serve`` (the emulator on a real port).

Every command works with the ``cli`` extra: ``pip install 'activatepro-async[cli]'``.
"""

from __future__ import annotations

import importlib
import sys

from ._cli import INSTALL_HINT

try:
    import click
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    # The console script imports this module to find main(): one line, no traceback.
    sys.stderr.write(f"activatepro: the command needs {exc.name}: {INSTALL_HINT}\n")
    raise SystemExit(1) from None

__all__ = ["main"]

#: Each command and the module of ``_cli`` that holds its family. A module is
#: imported when one of its commands runs or ``--help`` lists them, so a command
#: loads only what it needs (``import`` never the emulator, ``serve`` never rich).
FAMILIES = {
    "import": "bulk_commands",
    "delete": "bulk_commands",
    "get": "lookup_commands",
    "find": "lookup_commands",
    "track": "lookup_commands",
    "demo": "demo_command",
    "serve": "serve_command",
    "sync": "sync_command",
}


class _Families(click.Group):
    """A group whose commands come from their family's module, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(FAMILIES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        family = FAMILIES.get(cmd_name)
        if family is None:
            return None
        module = importlib.import_module(f"._cli.{family}", __package__)
        commands: tuple[click.Command, ...] = module.COMMANDS
        return next(command for command in commands if command.name == cmd_name)


@click.group(cls=_Families, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="activatepro-async", prog_name="activatepro")
def main() -> None:
    """Tools for the ActivatePro User Profile API v2 (activatepro-async)."""
