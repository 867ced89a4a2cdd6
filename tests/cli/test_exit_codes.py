"""Exit codes: 2 and one line for every user mistake, never a traceback; the key never shown."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from activatepro_async.emulator import Emulator

from .conftest import Invoke, assert_usage_error, write

GOOD = "id,email\nu1,a@example.com\n"


def test_no_api_key(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("import", write(tmp_path / "u.csv", GOOD), key=None)
    assert_usage_error(result, "no API key", "--api-key", "ACTIVATEPRO_API_KEY")


def test_unreadable_file(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("import", str(tmp_path / "missing.csv"))
    assert_usage_error(result, "cannot read", "missing.csv")


def test_file_not_in_the_encoding(invoke: Invoke, tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_bytes(b"id,email\nu1,\xe9@example.com\n")
    assert_usage_error(invoke("import", str(path)), "line 2 is not valid utf-8", "--encoding")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--map", "customer_no"], "--map takes NAME=VALUE"),
        (["--type", "birthday=dat"], "unknown type 'dat'"),
        (["--map", "nope=id"], "--map names column 'nope'"),
        (["--format", "jsonl", "--journal", "j", "-"], "--journal needs a file"),
    ],
)
def test_bad_options(invoke: Invoke, tmp_path: Path, args: list[str], needle: str) -> None:
    path = write(tmp_path / "u.csv", GOOD)
    files = [] if "-" in args else [path]
    assert_usage_error(invoke("import", *files, *args), needle)


def test_a_header_without_id_names_the_fix(invoke: Invoke, tmp_path: Path) -> None:
    path = write(tmp_path / "u.csv", "customer,email\n1,a@example.com\n")
    assert_usage_error(invoke("import", path), "has no 'id' column", "--map COLUMN=id")


def test_bad_base_url(invoke: Invoke, tmp_path: Path) -> None:
    path = write(tmp_path / "u.csv", GOOD)
    result = invoke("import", path, "--base-url", "ftp://x")
    assert_usage_error(result, "http:// or https://", "--base-url")


def test_a_wrong_key_is_a_configuration_error_and_is_never_printed(
    invoke: Invoke, emulator: Emulator, tmp_path: Path
) -> None:
    secret = "wrong-key-5f2b9c"
    path = write(tmp_path / "u.csv", GOOD)
    for args in (["import", path], ["get", "u1"], ["track", "t1"]):
        result = invoke(*args, key=secret)
        assert_usage_error(result, "the API refused the key (401)")
        assert secret not in result.output
    assert emulator.users == {}


def test_all_rejected_rows_exit_1(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("import", write(tmp_path / "u.csv", "id,email\nu1,nope\n"))
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def test_a_missing_extra_names_the_pip_command(
    invoke: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    result = invoke("import", write(tmp_path / "u.csv", GOOD))
    assert_usage_error(result, "pip install 'activatepro-async[cli]'")
