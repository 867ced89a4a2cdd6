"""The entry point: every family's command is found by its name, and loaded only when used."""

from __future__ import annotations

import importlib
import subprocess
import sys

import click
import pytest

from activatepro_async.cli import FAMILIES, main


def test_every_command_of_every_family_is_registered_under_its_name() -> None:
    ctx = click.Context(main)
    for family in set(FAMILIES.values()):
        module = importlib.import_module(f"activatepro_async._cli.{family}")
        for command in module.COMMANDS:
            assert FAMILIES[command.name] == family
            assert main.get_command(ctx, command.name) is command
    assert main.list_commands(ctx) == sorted(FAMILIES)
    assert main.get_command(ctx, "nope") is None


def loaded_after(*statements: str) -> set[str]:
    """The modules of the package a fresh interpreter holds after ``statements``."""
    script = "\n".join(
        [
            "import sys",
            *statements,
            "print(*sorted(m for m in sys.modules if m.startswith('activatepro_async')))",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(result.stdout.split())


def run_quietly(*args: str) -> str:
    """Statements that run ``activatepro ARGS`` in-process and swallow its exit."""
    return (
        "from activatepro_async.cli import main\n"
        f"try: main([{', '.join(map(repr, args))}])\n"
        "except SystemExit: pass"
    )


def test_importing_the_entry_point_loads_no_command() -> None:
    loaded = loaded_after("import activatepro_async.cli")
    assert not {m for m in loaded if m.startswith("activatepro_async._cli.")}


@pytest.mark.parametrize("command", ["import", "delete", "get", "find", "track", "demo"])
def test_a_command_other_than_serve_never_loads_the_emulator(command: str) -> None:
    loaded = loaded_after(run_quietly(command, "--help"))
    assert f"activatepro_async._cli.{FAMILIES[command]}" in loaded
    assert "activatepro_async.emulator" not in loaded
    assert "activatepro_async._cli.serve_command" not in loaded
