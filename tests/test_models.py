from __future__ import annotations

import datetime as dt

import pytest

from activatepro_async import ApiError, ErrorCode, Stage, TrackingStatus, User
from activatepro_async.models import converter, to_wire, user_to_wire

from .helpers import REFERENCE_USER


def test_user_from_the_reference_body_puts_custom_keys_in_attributes() -> None:
    user = converter.structure(REFERENCE_USER, User)
    assert user.id == "fb85fe50-a528-11e7-abc4-cec278b6b50a"
    assert user.email == "john.doe@example.com"
    assert user.xng_id == "123e4567-e89b-12d3-a456-426655440000"
    assert user.business_unit is None
    assert user.attributes == {
        "firstName": "John",
        "lastName": "Doe",
        "birthday": "1982-08-30",
        "createdAt": "2015-10-02T08:23:53Z",
        "gender": "male",
    }


def test_user_round_trips_through_the_wire_form() -> None:
    body = {**REFERENCE_USER, "businessUnit": "DE"}
    assert user_to_wire(converter.structure(body, User)) == body


def test_none_fields_are_left_out_but_none_attributes_are_sent_as_null() -> None:
    user = User("7", "a@example.com", attributes={"lastName": None})
    assert to_wire(user) == {"id": "7", "email": "a@example.com", "lastName": None}


def test_business_unit_and_xng_id_use_wire_names() -> None:
    wire = user_to_wire(User("7", "a@example.com", business_unit="DE", xng_id="x-1"))
    assert wire == {"id": "7", "email": "a@example.com", "businessUnit": "DE", "xngId": "x-1"}


def test_dates_and_datetimes_become_the_api_strings() -> None:
    berlin = dt.timezone(dt.timedelta(hours=2))
    user = User(
        "7",
        "a@example.com",
        attributes={
            "birthday": dt.date(1982, 8, 30),
            "createdAt": dt.datetime(2015, 10, 2, 10, 23, 53, tzinfo=berlin),
            "nested": {"when": [dt.date(2020, 1, 2)]},
        },
    )
    wire = user_to_wire(user)
    assert wire["birthday"] == "1982-08-30"
    assert wire["createdAt"] == "2015-10-02T08:23:53Z"
    assert wire["nested"] == {"when": ["2020-01-02"]}


def test_a_naive_datetime_is_refused_with_what_to_do() -> None:
    user = User("7", "a@example.com", attributes={"createdAt": dt.datetime(2015, 10, 2)})
    with pytest.raises(ValueError, match="time zone"):
        user_to_wire(user)


def test_wire_mappings_are_sent_as_they_are_with_dates_converted() -> None:
    wire = user_to_wire({"id": "1", "email": "e@x.io", "birthday": dt.date(2000, 1, 1)})
    assert wire == {"id": "1", "email": "e@x.io", "birthday": "2000-01-01"}


def test_attributes_may_not_shadow_user_fields() -> None:
    with pytest.raises(ValueError, match="business_unit="):
        User("7", "a@example.com", attributes={"businessUnit": "DE"})


def test_something_else_than_a_user_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="User"):
        user_to_wire(42)  # type: ignore[arg-type]


def test_api_error_parses_string_codes_and_pointer() -> None:
    error = converter.structure(
        {
            "code": "6",
            "title": "Unknown Attribute",
            "details": 'Attribute "lastName" does not exist',
            "info": "https://docs.crossengage.io/errors#6",
            "source": {"pointer": "/lastName"},
        },
        ApiError,
    )
    assert error == ApiError(
        code=ErrorCode.UNKNOWN_ATTRIBUTE,
        title="Unknown Attribute",
        details='Attribute "lastName" does not exist',
        pointer="/lastName",
        info="https://docs.crossengage.io/errors#6",
    )
    assert converter.unstructure(error)["code"] == "6"


def test_an_unknown_error_code_still_parses_as_an_int() -> None:
    error = converter.structure({"code": "42", "title": "New"}, ApiError)
    assert error.code == 42
    assert not isinstance(error.code, ErrorCode)
    assert error.pointer is None


def test_tracking_status_parses_the_reference_body() -> None:
    status = converter.structure(
        {"stage": "PROCESSED", "total": 2, "success": 1, "error": 1}, TrackingStatus
    )
    assert status == TrackingStatus(Stage.PROCESSED, total=2, success=1, error=1)
    assert status.done


def test_error_code_titles_follow_the_reference() -> None:
    assert ErrorCode.INVALID_EMAIL.title == "Invalid Email Format"
    assert ErrorCode(9).title == "Max batch request size violation"
