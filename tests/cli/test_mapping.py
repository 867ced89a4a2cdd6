"""The command's side of the row rules: ``--map``/``--type`` as written, and ``--dry-run``'s checks.

The rules themselves (renames, types, what a row needs) are tested once, in tests/test_rows.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from activatepro_async import ErrorCode
from activatepro_async._cli.mapping import ColumnPlan, api_checks, parse_maps, parse_types

from .conftest import Invoke, read_jsonl, summary, write


def codes(problems: list[Any]) -> list[int]:
    return [int(p.code) for p in problems]


@pytest.mark.parametrize("value", ["customer_no", "=id", "  =id"])
def test_map_needs_column_equals_key(value: str) -> None:
    with pytest.raises(ValueError, match=r"--map takes NAME=VALUE, e.g. --map customer_no=id"):
        parse_maps([value])


def test_map_with_an_empty_key_leaves_the_column_out() -> None:
    assert parse_maps([" no = id ", "internal="]) == {"no": "id", "internal": None}


def test_map_naming_a_column_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="--map names column 'no' twice"):
        parse_maps(["no=id", "no=email"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("birthday", "--type takes NAME=VALUE"),
        ("birthday=", "needs a type"),
        ("birthday=dat", "unknown type 'dat': use one of string, integer"),
        ("score=integer:%d", "takes no format"),
    ],
)
def test_type_syntax_errors_say_what_to_write(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_types([value])


def test_the_plan_casts_csv_strings_as_its_types_say() -> None:
    plan = ColumnPlan(parse_maps(["mail=email"]), parse_types(["birthday=date", "n=int"]))
    user, problems = plan.user(
        {"id": "1", "mail": "a@example.com", "birthday": "1990-01-02", "n": "3"}
    )
    assert (user, problems) == (
        {"id": "1", "email": "a@example.com", "birthday": "1990-01-02", "n": 3},
        [],
    )


def test_the_header_check_speaks_in_map_options() -> None:
    with pytest.raises(ValueError, match=r"has no 'id' column.*--map COLUMN=id"):
        ColumnPlan({"mail": "email"}).check_header(["customer", "mail"], "users.csv")


def test_a_delete_needs_only_an_id_and_ignores_the_types_of_other_keys() -> None:
    # The same --type options may serve an import and a delete of one file.
    plan = ColumnPlan(types={"birthday": "date"}, operation="delete")
    plan.check_header(["id", "whatever"], "ids.csv")
    assert plan.user_id({"id": "u1", "whatever": "x", "birthday": "no date"}) == ("u1", [])


def test_the_journal_fingerprint_holds_the_options_as_written() -> None:
    plan = ColumnPlan({"no": "id"}, {"birthday": "date:%d.%m.%Y"}, operation="upsert")
    assert plan.fingerprint() == {
        "map": {"no": "id"},
        "types": {"birthday": "date:%d.%m.%Y"},
        "operation": "upsert",
    }


def test_dry_run_checks_approximate_the_api() -> None:
    problems = api_checks({"id": "1", "email": "not an email", "businessUnit": "Sales Team"})
    assert codes(problems) == [ErrorCode.INVALID_EMAIL, ErrorCode.INVALID_BUSINESS_UNIT]
    assert api_checks({"id": "1", "email": "a@example.com", "businessUnit": "DE"}) == []


def test_dry_run_flags_strings_over_16_kib_and_users_over_1_mib() -> None:
    long = "é" * (8 * 1024 + 1)  # 16 KiB + 2 bytes of UTF-8
    assert [p.pointer for p in api_checks({"id": "1", "email": "a@b.c", "bio": long})] == ["/bio"]
    many = {f"a{n}": "x" * 1000 for n in range(1100)}
    [big] = api_checks({"id": "1", "email": "a@b.c", **many})
    assert "over 1 MiB" in big.details


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "real-run"])
def test_a_user_that_cannot_be_encoded_is_rejected_by_a_dry_run_as_by_a_real_run(
    invoke: Invoke, tmp_path: Path, dry_run: bool
) -> None:
    # JSON's "\\ud800" reads as a lone surrogate, which UTF-8 cannot carry.
    lines = '{"id": "1", "email": "a@example.com", "note": "\\ud800"}\n'
    path = write(tmp_path / "users.jsonl", lines)
    result = invoke("import", path, "--json", *(["--dry-run"] if dry_run else []))
    done = summary(result)
    assert (done["rejected"], done["rejected_by_reason"]) == (1, {"Invalid JSON (1)": 1})


def test_a_date_that_does_not_exist_says_no_such_date_not_the_wrong_form(
    invoke: Invoke, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "u.csv",
        "id,email,birthday\nu1,a@example.com,29.02.2001\nu2,b@example.com,2001-02-28\n",
    )
    rejects = tmp_path / "r.jsonl"
    result = invoke(
        "import", path, "--type", "birthday=date:%d.%m.%Y", "--rejects", str(rejects), "--json"
    )
    assert result.exit_code == 1, result.output
    details = {r["line"]: r["errors"][0]["details"] for r in read_jsonl(rejects)}
    assert details[2] == "'29.02.2001' is no such date (day is out of range for month)"
    assert details[3] == "'2001-02-28' is not a date in the form %d.%m.%Y"
