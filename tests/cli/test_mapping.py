"""--map and --type: parsing the options, converting values, refusing what cannot be sent."""

from __future__ import annotations

from typing import Any

import pytest

from activatepro_async import ErrorCode
from activatepro_async._cli.mapping import ColumnPlan, api_checks, parse_maps, parse_types


def codes(problems: list[Any]) -> list[int]:
    return [int(p.code) for p in problems]


@pytest.mark.parametrize("value", ["customer_no", "=id", "  =id"])
def test_map_needs_column_equals_key(value: str) -> None:
    with pytest.raises(ValueError, match=r"--map takes NAME=VALUE, e.g. --map customer_no=id"):
        parse_maps([value])


def test_map_with_empty_key_leaves_the_column_out() -> None:
    plan = ColumnPlan(parse_maps(["no=id", "internal="]))
    user, problems = plan.user({"no": "7", "email": "a@example.com", "internal": "x"})
    assert user == {"id": "7", "email": "a@example.com"}
    assert problems == []


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


@pytest.mark.parametrize(
    ("spec", "cell", "sent"),
    [
        ("date", "1815-12-10", "1815-12-10"),
        ("date:%d.%m.%Y", "10.12.1815", "1815-12-10"),
        ("datetime", "2015-10-02T10:23:53+02:00", "2015-10-02T08:23:53Z"),
        ("datetime", "2015-10-02T08:23:53Z", "2015-10-02T08:23:53Z"),
        ("integer", " 42 ", 42),
        ("float", "1.5", 1.5),
        ("boolean", "Yes", True),
        ("boolean", "0", False),
        ("json", '{"a": [1, 2]}', {"a": [1, 2]}),
        ("string", "007", "007"),
    ],
)
def test_type_converts_cells(spec: str, cell: str, sent: Any) -> None:
    plan = ColumnPlan(types=parse_types([f"value={spec}"]))
    user, problems = plan.user({"id": "1", "email": "a@example.com", "value": cell})
    assert problems == []
    assert user["value"] == sent


@pytest.mark.parametrize(
    ("spec", "cell", "details"),
    [
        ("date", "1990-02-30", "not a date in the form YYYY-MM-DD"),
        ("datetime", "2015-10-02T08:23:53", "has no time zone"),
        ("integer", "4.5", "not an integer"),
        ("float", "nan", "not a finite number"),
        ("boolean", "maybe", "not a boolean"),
        ("json", "{oops", "is not JSON"),
    ],
)
def test_values_type_cannot_convert_are_code_3_on_that_key(
    spec: str, cell: str, details: str
) -> None:
    plan = ColumnPlan(types=parse_types([f"value={spec}"]))
    _, problems = plan.user({"id": "1", "email": "a@example.com", "value": cell})
    assert codes(problems) == [ErrorCode.INVALID_ATTRIBUTE_TYPE]
    assert details in problems[0].details
    assert problems[0].pointer == "/value"


def test_rows_without_id_or_email_are_refused_locally() -> None:
    _, problems = ColumnPlan().user({"firstName": "Ada"})
    assert [(int(p.code), p.pointer) for p in problems] == [(2, "/id"), (2, "/email")]


def test_a_number_as_id_is_refused_unless_typed_as_string() -> None:
    _, problems = ColumnPlan().user({"id": 42, "email": "a@example.com"})
    assert "--type id=string" in problems[0].details
    user, problems = ColumnPlan(types={"id": "string"}).user({"id": 42, "email": "a@example.com"})
    assert (user["id"], problems) == ("42", [])


def test_typed_values_leave_the_row_as_read() -> None:
    row = {"id": "1", "email": "a@example.com", "n": "3"}
    ColumnPlan(types={"n": "integer"}).user(row)
    assert row["n"] == "3"


@pytest.mark.parametrize(
    ("header", "plan", "message"),
    [
        (
            ["customer", "mail"],
            ColumnPlan({"mail": "email"}),
            "has no 'id' column.*--map COLUMN=id",
        ),
        (["id", "email"], ColumnPlan({"nope": "id"}), "--map names column 'nope'"),
        (["id", "email", "mail"], ColumnPlan({"mail": "email"}), "both become 'email'"),
        (["id", "email"], ColumnPlan(types={"birthday": "date"}), "--type names 'birthday'"),
    ],
)
def test_header_that_does_not_fit_the_options_is_refused(
    header: list[str], plan: ColumnPlan, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan.check_header(header, "users.csv")


def test_delete_needs_only_an_id() -> None:
    plan = ColumnPlan(operation="delete")
    plan.check_header(["id", "whatever"], "ids.csv")
    assert plan.user_id({"id": "u1", "whatever": "x"}) == ("u1", [])


def test_dry_run_checks_approximate_the_api() -> None:
    problems = api_checks({"id": "1", "email": "not an email", "businessUnit": "Sales Team"})
    assert codes(problems) == [ErrorCode.INVALID_EMAIL, ErrorCode.INVALID_BUSINESS_UNIT]
    assert api_checks({"id": "1", "email": "a@example.com", "businessUnit": "DE"}) == []
