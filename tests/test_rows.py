"""The row rules the command and Spark share: columns to keys, typed values, what a row needs."""

from __future__ import annotations

import datetime as dt
import re
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from activatepro_async import ErrorCode, _rows
from activatepro_async._rows import RowRules, Spelling, caster, positional, required_keys

# The two adapters' words, as they pass them in.
COMMAND = Spelling("--map", "--map {column}={key}", "--map {column}=")
SPARK = Spelling("mapping=", "mapping={{{column!r}: {key!r}}}", "mapping={{{column!r}: None}}")


def rules(
    renames: dict[str, str | None] | None = None,
    types: dict[str, str] | None = None,
    *,
    operation: str = "upsert",
    spelling: Spelling = COMMAND,
) -> RowRules:
    casters = {key: caster(spec) for key, spec in (types or {}).items()}
    return RowRules(renames, casters, required=required_keys(operation), spelling=spelling)


def exactly(message: str) -> str:
    """A ``match=`` pattern for the whole message."""
    return f"^{re.escape(message)}$"


def codes(problems: list[Any]) -> list[int]:
    return [int(p.code) for p in problems]


# -- columns, before any row ----------------------------------------------------------


def test_columns_keep_their_names_unless_renamed_and_none_leaves_one_out() -> None:
    keys = rules({"user_id": "id", "bu": "businessUnit", "internal": None}).keys(
        ["user_id", "email", "bu", "firstName", "internal"], "users.csv"
    )
    assert keys == ["id", "email", "businessUnit", "firstName", None]


@pytest.mark.parametrize(("spelling", "option"), [(COMMAND, "--map"), (SPARK, "mapping=")])
def test_a_rename_of_a_column_the_source_lacks_is_refused_in_the_adapters_words(
    spelling: Spelling, option: str
) -> None:
    message = f"{option} names column 'nope', which users.csv does not have (its columns: 'a', 'b')"
    with pytest.raises(ValueError, match=exactly(message)):
        rules({"nope": "id"}, spelling=spelling).keys(["a", "b"], "users.csv")


def test_every_missing_column_is_named_at_once() -> None:
    with pytest.raises(ValueError, match=r"names columns 'a', 'b', which"):
        rules({"a": "id", "b": "email"}).keys(["id", "email"], "users.csv")


@pytest.mark.parametrize(
    ("spelling", "fix"),
    [
        (COMMAND, "rename one with --map mail=NAME, or leave it out with --map mail="),
        (SPARK, "rename one with mapping={'mail': 'NAME'}, "
                "or leave it out with mapping={'mail': None}"),
    ],
)  # fmt: skip
def test_two_columns_that_become_one_key_are_refused_with_the_fix(
    spelling: Spelling, fix: str
) -> None:
    message = f"columns 'email' and 'mail' of the DataFrame both become 'email': {fix}"
    with pytest.raises(ValueError, match=exactly(message)):
        rules({"mail": "email"}, spelling=spelling).keys(["id", "email", "mail"], "the DataFrame")


def test_two_columns_for_one_key_are_fine_when_one_is_left_out() -> None:
    keys = rules({"mail": "email", "email": None}).keys(["id", "email", "mail"], "users.csv")
    assert keys == ["id", None, "email"]


@pytest.mark.parametrize("key", ["", 7])
def test_a_rename_to_something_else_than_a_name_is_refused(key: Any) -> None:
    with pytest.raises(ValueError, match=r"gives column 'x' the key .*mapping=\{'x': None\}"):
        rules({"x": key}, spelling=SPARK).keys(["id", "email", "x"], "the DataFrame")


@pytest.mark.parametrize(
    ("spelling", "fix"),
    [(COMMAND, "--map COLUMN=id"), (SPARK, "mapping={'COLUMN': 'id'}")],
)
def test_a_source_without_a_required_key_names_the_rename_that_gives_it(
    spelling: Spelling, fix: str
) -> None:
    message = (
        "users.csv has no 'id' column (its columns: 'customer', 'email'): "
        f"name the one that holds it with {fix}"
    )
    with pytest.raises(ValueError, match=exactly(message)):
        rules(spelling=spelling).keys(["customer", "email"], "users.csv")


@pytest.mark.parametrize(
    ("spelling", "drop", "rename", "give"),
    [
        (COMMAND, "--map email=", "--map email=mail", "--map COLUMN=email"),
        (
            SPARK,
            "mapping={'email': None}",
            "mapping={'email': 'mail'}",
            "mapping={'COLUMN': 'email'}",
        ),
    ],
)
def test_a_required_column_mapped_away_is_named_as_mapped_away(
    spelling: Spelling, drop: str, rename: str, give: str
) -> None:
    # Not "has no 'email' column (its columns: 'id', 'email')": it has one.
    with pytest.raises(ValueError, match=exactly(
        f"{drop} leaves out column 'email', but every user needs 'email': keep that "
        f"column, or name the one that holds 'email' with {give}"
    )):  # fmt: skip
        rules({"email": None}, spelling=spelling).keys(["id", "email"], "users.csv")
    with pytest.raises(ValueError, match=exactly(
        f"{rename} makes column 'email' 'mail', but every user needs 'email': keep that "
        f"column, or name the one that holds 'email' with {give}"
    )):  # fmt: skip
        rules({"email": "mail"}, spelling=spelling).keys(["id", "email"], "users.csv")
    with pytest.raises(ValueError, match="leaves out column 'id'"):
        rules({"id": None}, operation="delete", spelling=spelling).keys(["id"], "ids.csv")


def test_an_upsert_needs_an_email_column_and_a_delete_does_not() -> None:
    with pytest.raises(ValueError, match="has no 'email' column"):
        rules().keys(["id", "name"], "users.csv")
    assert rules(operation="delete").keys(["id", "name"], "ids.csv") == ["id", "name"]


def test_a_type_for_a_key_no_column_becomes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"--type names 'birthday', which no column of users\.csv"):
        rules(types={"birthday": "date"}).keys(["id", "email"], "users.csv")


def test_a_typed_required_key_that_is_missing_gets_the_required_message() -> None:
    with pytest.raises(ValueError, match="has no 'id' column"):
        rules(types={"id": "string"}).keys(["customer", "email"], "users.csv")


# -- one row ---------------------------------------------------------------------------


def test_a_row_is_renamed_and_its_left_out_keys_dropped() -> None:
    user, problems = rules({"no": "id", "internal": None}).user(
        {"no": "7", "email": "a@example.com", "internal": "x"}
    )
    assert (user, problems) == ({"id": "7", "email": "a@example.com"}, [])


def test_a_row_whose_keys_become_one_key_is_refused_on_that_key() -> None:
    # A JSON Lines row has its own keys: the check that a header gets runs per row.
    _, problems = rules({"user_id": "id"}).user(
        {"id": "1", "user_id": "2", "email": "a@example.com"}
    )
    assert [(int(p.code), p.pointer) for p in problems] == [(2, "/id")]
    assert "two keys of the row become 'id'" in problems[0].details


@pytest.mark.parametrize(
    ("spec", "cell", "sent"),
    [
        ("date", "1815-12-10", "1815-12-10"),
        ("date:%d.%m.%Y", "10.12.1815", "1815-12-10"),
        ("datetime", "2015-10-02T10:23:53+02:00", "2015-10-02T08:23:53Z"),
        ("datetime", "2015-10-02T08:23:53Z", "2015-10-02T08:23:53Z"),
        ("datetime", "2015-10-02T08:23:53.25z", "2015-10-02T08:23:53.250000Z"),
        ("datetime:%d.%m.%Y %H:%M %z", "02.10.2015 10:23 +0200", "2015-10-02T08:23:00Z"),
        ("integer", " 42 ", 42),
        ("int", "-3", -3),
        ("float", "1.5", 1.5),
        ("number", "2", 2.0),
        ("boolean", "Yes", True),
        ("bool", "0", False),
        ("json", '{"a": [1, 2]}', {"a": [1, 2]}),
        ("string", "007", "007"),
    ],
)
def test_typed_values_are_cast(spec: str, cell: str, sent: Any) -> None:
    user, problems = rules(types={"value": spec}).user(
        {"id": "1", "email": "a@example.com", "value": cell}
    )
    assert problems == []
    assert user["value"] == sent


@pytest.mark.parametrize(
    ("value", "sent"),
    [(True, "true"), (3, "3"), (1.5, "1.5"), ({"a": "é"}, '{"a":"é"}'), ([1, 2], "[1,2]")],
)
def test_string_turns_json_values_into_text(value: Any, sent: str) -> None:
    assert caster("string")(value) == sent


@pytest.mark.parametrize(
    ("spec", "cell", "details"),
    [
        ("date", "1990-02-30", "'1990-02-30' is no such date (day is out of range"),
        ("date:%d.%m.%Y", "29.02.2001", "'29.02.2001' is no such date (day is out of range"),
        ("date:%d.%m.%Y", "31.04.2001", "is no such date"),
        ("date:%d.%m.%Y", "2001-02-28", "not a date in the form %d.%m.%Y"),
        ("datetime", "2001-02-29T10:00:00Z", "no such date and time (day is out of range"),
        ("datetime", "2001-02-28T25:00:00Z", "no such date and time (hour must be in 0..23"),
        ("date", "1990-2-3", "not a date in the form YYYY-MM-DD"),
        ("datetime", "2015-10-02T08:23:53", "has no time zone"),
        ("datetime", "yesterday", "not a date and time in the form ISO 8601"),
        ("integer", "4.5", "not an integer"),
        ("float", "nan", "not a finite number"),
        ("float", "many", "not a number"),
        ("boolean", "maybe", "not a boolean"),
        ("json", "{oops", "is not JSON"),
        ("json", "NaN", "NaN is not a JSON number"),
    ],
)
def test_values_that_cannot_be_cast_are_code_3_on_their_key(
    spec: str, cell: str, details: str
) -> None:
    _, problems = rules(types={"value": spec}).user(
        {"id": "1", "email": "a@example.com", "value": cell}
    )
    assert codes(problems) == [ErrorCode.INVALID_ATTRIBUTE_TYPE]
    assert details in problems[0].details
    assert problems[0].pointer == "/value"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dat", "unknown type 'dat': use one of string, integer, float"),
        ("integer:%d", "type integer takes no format"),
    ],
)
def test_a_type_that_does_not_exist_is_refused(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        caster(spec)


def test_rows_without_id_or_email_are_refused_with_their_pointers() -> None:
    _, problems = rules().user({"firstName": "Ada", "id": ""})
    assert [(int(p.code), p.pointer) for p in problems] == [(2, "/id"), (2, "/email")]


def test_a_number_as_id_is_refused_unless_typed_as_string() -> None:
    _, problems = rules().user({"id": 42, "email": "a@example.com"})
    assert "id must be a string, got 42 (--type id=string sends it as text)" in problems[0].details
    user, problems = rules(types={"id": "string"}).user({"id": 42, "email": "a@example.com"})
    assert (user["id"], problems) == ("42", [])


def test_a_business_unit_is_a_string_or_null() -> None:
    _, problems = rules().user({"id": "1", "email": "a@example.com", "businessUnit": 7})
    assert [(int(p.code), p.pointer) for p in problems] == [(8, "/businessUnit")]
    user, problems = rules().user({"id": "1", "email": "a@example.com", "businessUnit": None})
    assert (user["businessUnit"], problems) == (None, [])


def test_a_json_null_is_sent_so_that_it_clears_the_attribute() -> None:
    user, problems = rules(types={"n": "integer"}).user(
        {"id": "1", "email": "a@example.com", "n": None}
    )
    assert (user, problems) == ({"id": "1", "email": "a@example.com", "n": None}, [])


def test_casting_leaves_the_row_as_read_for_the_rejects_file() -> None:
    row = {"id": "1", "email": "a@example.com", "n": "3"}
    user, _ = rules(types={"n": "integer"}).user(row)
    assert (row["n"], user["n"]) == ("3", 3)


def test_a_delete_takes_the_id_and_casts_only_it() -> None:
    delete = rules({"no": "id"}, {"id": "string"}, operation="delete")
    assert delete.user_id({"no": 7, "whatever": "x"}) == ("7", [])
    user_id, problems = rules(operation="delete").user_id({"name": "x"})
    assert (user_id, codes(problems)) == ("", [ErrorCode.INVALID_FIELD])


# -- rows of values in column order (Spark) ----------------------------------------------


def test_positional_rows_leave_nulls_out_and_cast_the_typed_keys() -> None:
    convert = positional(["id", "email", "n", "when"], {"n": int, "when": str.upper})
    assert convert(("1", "a@example.com", "3", "z")) == {
        "id": "1",
        "email": "a@example.com",
        "n": 3,
        "when": "Z",
    }
    # Null is "no value" in a DataFrame: an upsert never clears what the row lacks.
    assert convert(("1", None, None, None)) == {"id": "1"}


# -- the same ISO 8601 forms on every Python ---------------------------------------


@pytest.mark.parametrize(
    ("cell", "sent"),
    [
        ("2015-10-02T08:23:53.25Z", "2015-10-02T08:23:53.250000Z"),
        ("2015-10-02T08:23:53.1234567+00:00", "2015-10-02T08:23:53.123456Z"),
        ("2015-10-02 10:23:53+0200", "2015-10-02T08:23:53Z"),
        ("2015-10-02T10:23+02", "2015-10-02T08:23:00Z"),
        ("2015-10-02T08:23:53.5-01:30", "2015-10-02T09:53:53.500000Z"),
    ],
)
def test_iso_datetimes_that_python_3_10_cannot_read_alone_are_read(cell: str, sent: str) -> None:
    # On 3.10 fromisoformat reads none of these; noxfile.py runs this file there too.
    assert caster("datetime")(cell) == sent


_ISO_FORMS = st.builds(
    "{}-{:02}-{:02}{}{:02}:{:02}{}{}{}".format,
    st.integers(1900, 2100),
    st.integers(1, 12),
    st.integers(1, 28),
    st.sampled_from(["T", " "]),
    st.integers(0, 23),
    st.integers(0, 59),
    st.sampled_from(["", ":00", ":59"]),
    st.sampled_from(["", ".5", ".25", ".123", ".1234", ".123456", ".1234567"]),
    st.sampled_from(["", "Z", "z", "+00:00", "+02:00", "-0130", "+05", "-11:00"]),
)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="compares with 3.11's fromisoformat")
@given(_ISO_FORMS)
def test_the_python_3_10_rewrite_means_what_3_11_reads(text: str) -> None:
    # On 3.11+, _fromisoformat is 3.11's own reading (a lowercase z aside).
    assert dt.datetime.fromisoformat(_rows._as_python_310_reads_it(text)) == (
        _rows._fromisoformat(text)
    )
