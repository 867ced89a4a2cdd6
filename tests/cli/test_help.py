"""Every command's ``--help``: each option documented, and only options that apply to it."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from activatepro_async.cli import main

_CTX = click.Context(main)
COMMANDS = {name: main.get_command(_CTX, name) for name in main.list_commands(_CTX)}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_and_argument_of_every_command_is_documented(name: str) -> None:
    command = COMMANDS[name]
    assert command is not None
    assert command.help, f"{name} has no description"
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"{name} {param.opts[0]} has no help"
            assert param.help.strip(), f"{name} {param.opts[0]} has blank help"
        else:
            # click shows no help for arguments: the description names them.
            metavar = param.human_readable_name.upper()
            assert metavar in command.help, f"{name}'s description does not name {metavar}"
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output


def test_delete_help_offers_only_what_a_delete_uses() -> None:
    text = CliRunner().invoke(main, ["delete", "--help"]).output
    # A delete sends ids: no dates, attributes or emails to convert or rename.
    for word in ("datetime", "boolean", "businessUnit", "Users per batch"):
        assert word not in text, word
    assert "id=string" in text
    assert "Ids per batch request" in text
    assert "not deleted" in text


def test_import_help_lists_the_conversions_and_the_delimiter_detection() -> None:
    text = " ".join(CliRunner().invoke(main, ["import", "--help"]).output.split())
    assert "date[:FORMAT], datetime[:FORMAT], json" in text
    assert "detected from the first lines: , ; tab or |" in text
    assert ".gz or .zst" in text
