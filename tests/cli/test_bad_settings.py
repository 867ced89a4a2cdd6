"""Bad settings and bad arguments on the command line: exit 2 and one line that
says what to do, never a traceback (the lookups and the bulk commands alike)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Invoke, write
from .test_exit_codes import assert_usage_error

BAD_BASE_URLS = [
    "http://[::1",
    "http://127.0.0.1:abc",
    "http://127.0.0.1:99999",
    "http://",
    "http://exa mple.test",
    "https://user:secret@api.example.test",
]


def commands(tmp_path: Path) -> list[list[str]]:
    users = write(tmp_path / "u.csv", "id,email\nu1,a@example.com\n")
    ids = write(tmp_path / "ids.txt", "u1\n")
    return [
        ["get", "u1"],
        ["find", "a@example.com"],
        ["track", "t1"],
        ["import", users],
        ["delete", ids],
    ]


@pytest.mark.parametrize("base_url", BAD_BASE_URLS)
def test_a_bad_base_url_is_one_line_and_exit_2(
    invoke: Invoke, tmp_path: Path, base_url: str
) -> None:
    for args in commands(tmp_path):
        result = invoke(*args, "--base-url", base_url)
        assert_usage_error(result, "base_url", "--base-url")
        assert "secret" not in result.output


def test_a_bad_base_url_from_the_environment_is_one_line(invoke: Invoke) -> None:
    result = invoke("get", "u1", env={"ACTIVATEPRO_BASE_URL": "http://[::1"})
    assert_usage_error(result, "Invalid IPv6 URL", "ACTIVATEPRO_BASE_URL")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["get", "x" * 70_000], "over the limit of 65,536"),
        (["find", "x" * 70_000], "over the limit of 65,536"),
        (["find", "a@example.com", "--bu", "x" * 70_000], "over the limit of 65,536"),
        (["track", "x" * 70_000], "over the limit of 65,536"),
        (["get", ""], "user_id must not be empty"),
        (["find", ""], "email must not be empty"),
        (["track", ""], "tracking_id must not be empty"),
    ],
)
def test_an_argument_the_sdk_refuses_is_one_line_and_exit_2(
    invoke: Invoke, args: list[str], needle: str
) -> None:
    assert_usage_error(invoke(*args), needle)
