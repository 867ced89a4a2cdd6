"""Validation of a single PUT: error codes 1 to 8, titles, pointers, size limits."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from activatepro_async.emulator import (
    MAX_STRING_BYTES,
    MAX_USER_BYTES,
    AttributeType,
    Emulator,
)
from activatepro_async.errors import ErrorCode

from ..helpers import REFERENCE_PUT_400
from .wire import HEADERS, errors, user

pytestmark = pytest.mark.anyio

ALL_TYPES = {
    "s": AttributeType.STRING,
    "i": AttributeType.INTEGER,
    "f": AttributeType.FLOAT,
    "b": AttributeType.BOOLEAN,
    "d": AttributeType.DATE,
    "t": AttributeType.DATETIME,
    "p": AttributeType.PHONE,
    "a": AttributeType.ARRAY,
    "o": AttributeType.OBJECT,
}


@pytest.fixture
def typed() -> Emulator:
    return Emulator(attributes=ALL_TYPES)


async def refused(http: httpx.AsyncClient, body: Any) -> list[tuple[int, str]]:
    response = await http.put("/users", json=body)
    assert response.status_code == 400, response.text
    assert "trackingId" not in response.json()
    return errors(response)


async def test_the_reference_error_example(http: httpx.AsyncClient) -> None:
    """Unknown "lastName" and no "email": both reported, in the reference's words."""
    emulator = Emulator(attributes={"firstName": AttributeType.STRING})
    async with httpx.AsyncClient(
        transport=emulator.transport(), base_url="http://e", headers=HEADERS
    ) as strict:
        response = await strict.put("/users", json={"id": "1", "lastName": "Doe"})
    assert response.status_code == 400
    assert response.json() == REFERENCE_PUT_400
    assert emulator.pending_count == 0


@pytest.mark.parametrize("code", list(ErrorCode))
def test_titles_come_from_the_reference(code: ErrorCode) -> None:
    assert code.title


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b'{"id": "1",}',
        b"\xff\xfe{}",
        b'\xef\xbb\xbf{"id": "1", "email": "a@b.c"}',
        b'{"id": "\xc3\x28", "email": "a@b.c"}',
        b'{"id": "\\ud800", "email": "a@b.c"}',
        b'{"id": "1", "email": "a@b.c", "firstName": NaN}',
        b"[]",
        b"null",
        b'"user"',
        b"42",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"id": "1"} {"id": "2"}',
    ],
)
async def test_a_body_that_is_not_one_json_object_is_code_1(
    http: httpx.AsyncClient, emulator: Emulator, body: bytes
) -> None:
    response = await http.put("/users", content=body)
    assert response.status_code == 400
    assert errors(response) == [(1, "")]
    assert emulator.pending_count == 0


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"email": "a@example.com"}, [(2, "/id")]),
        ({"id": "", "email": "a@example.com"}, [(2, "/id")]),
        ({"id": None, "email": "a@example.com"}, [(2, "/id")]),
        ({"id": 42, "email": "a@example.com"}, [(2, "/id")]),
        ({"id": "1"}, [(2, "/email")]),
        ({"id": "1", "email": None}, [(2, "/email")]),
        ({"id": "1", "email": ""}, [(2, "/email")]),
        ({"id": "1", "email": ["a@b.c"]}, [(2, "/email")]),
        ({}, [(2, "/id"), (2, "/email")]),
    ],
)
async def test_id_and_email_are_required(
    http: httpx.AsyncClient, body: dict[str, Any], expected: list[tuple[int, str]]
) -> None:
    assert await refused(http, body) == expected


@pytest.mark.parametrize(
    "email",
    [
        "lovecrossengage.io",
        "a@",
        "@b.c",
        "a@@b.c",
        "a b@c.d",
        "a.@b.c",
        ".a@b.c",
        "a..b@c.d",
        "a@b..c",
        "a@.b",
        "müller@example.com",
        "a@b.c\n",
        "x" * 65 + "@example.com",
        "a@" + "b" * 260 + ".com",
        '"unclosed@example.com',
    ],
)
async def test_an_invalid_email_is_code_4(http: httpx.AsyncClient, email: str) -> None:
    response = await http.put("/users", json=user("1", email))
    assert errors(response) == [(4, "/email")]
    details = response.json()["errors"][0]["details"]
    assert details.endswith(
        "The email address must be in the addr-spec format as defined in RFC 5322"
    )


@pytest.mark.parametrize(
    "email",
    [
        "john.doe@example.com",
        "a@b",
        "first.last+tag@sub.example.co.uk",
        "o'reilly@example.com",
        "x!#$%&'*+/=?^_`{|}~-@example.com",
        '"john doe"@example.com',
        '"a\\"b"@example.com',
        "user@[192.168.0.1]",
        "UPPER@EXAMPLE.COM",
    ],
)
async def test_a_valid_addr_spec_is_accepted(http: httpx.AsyncClient, email: str) -> None:
    response = await http.put("/users", json=user("1", email))
    assert response.status_code == 202


@pytest.mark.parametrize("bu", ["DE", "a", "x" * 64, "north_east-2", "0"])
async def test_a_valid_business_unit_is_accepted(http: httpx.AsyncClient, bu: str) -> None:
    response = await http.put("/users", json=user(businessUnit=bu))
    assert response.status_code == 202


@pytest.mark.parametrize("bu", ["", "x" * 65, "D E", "DE/AT", "dé", 42, True, ["DE"]])
async def test_an_invalid_business_unit_is_code_8(http: httpx.AsyncClient, bu: Any) -> None:
    assert await refused(http, user(businessUnit=bu)) == [(8, "/businessUnit")]


async def test_an_unknown_attribute_is_code_6(http: httpx.AsyncClient) -> None:
    assert await refused(http, {**user(shoeSize=44), "a/b~c": 1}) == [
        (6, "/shoeSize"),
        (6, "/a~1b~0c"),
    ]


async def test_unknown_attributes_can_be_accepted(emulator: Emulator) -> None:
    lenient = Emulator(accept_unknown_attributes=True)
    async with httpx.AsyncClient(
        transport=lenient.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        body = user("1", shoeSize=44, tags=["a", {"b": 1}], profile={"x": [1, 2]})
        response = await http.put("/users", json=body)
        assert response.status_code == 202
        stored = (await http.get("/users/1")).json()
    assert stored["shoeSize"] == 44
    assert stored["tags"] == ["a", {"b": 1}]
    assert lenient.accept_unknown_attributes


async def test_accepted_unknown_attributes_still_obey_the_limits() -> None:
    lenient = Emulator(accept_unknown_attributes=True)
    async with httpx.AsyncClient(
        transport=lenient.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        response = await http.put("/users", json=user(deep=[[[1]]], big="x" * 20_000))
    assert errors(response) == [(3, "/deep"), (2, "/big")]


def test_the_schema_may_not_redefine_built_in_fields() -> None:
    with pytest.raises(ValueError, match="built-in fields"):
        Emulator(attributes={"email": AttributeType.STRING})


VALID: list[tuple[str, Any]] = [
    ("s", ""),
    ("s", "text"),
    ("i", 0),
    ("i", -(2**63)),
    ("i", 2**63 - 1),
    ("f", 1.5),
    ("f", 3),
    ("f", -0.0),
    ("b", True),
    ("b", False),
    ("d", "1982-08-30"),
    ("d", "2000-02-29"),
    ("d", "0001-01-01"),
    ("t", "2015-10-02T08:23:53Z"),
    ("t", "2015-10-02T23:59:59.123456Z"),
    ("p", "+4930123456"),
    ("p", "+12"),
    ("p", "+123456789012345"),
    ("a", []),
    ("a", [1, "x", None, {"k": "v"}, [1, 2]]),
    ("o", {}),
    ("o", {"k": {"nested": 1}, "l": [1, 2]}),
]


@pytest.mark.parametrize(("name", "value"), VALID)
async def test_a_value_of_the_right_type_is_accepted(
    typed: Emulator, name: str, value: Any
) -> None:
    async with httpx.AsyncClient(
        transport=typed.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        response = await http.put("/users", json=user("1", **{name: value}))
        assert response.status_code == 202, response.text
        assert (await http.get("/users/1")).json()[name] == value


WRONG_TYPE: list[tuple[str, Any]] = [
    ("s", 1),
    ("s", True),
    ("s", ["x"]),
    ("i", 1.0),
    ("i", 1.5),
    ("i", True),
    ("i", "1"),
    ("i", 2**63),
    ("f", "1.5"),
    ("f", False),
    ("b", 1),
    ("b", "true"),
    ("d", "1982-8-30"),
    ("d", "1982-02-30"),
    ("d", "1900-02-29"),
    ("d", "1982-13-01"),
    ("d", "0000-01-01"),
    ("d", "19820830"),
    ("d", "1982-08-30T00:00:00Z"),
    ("d", "\uff11\uff19\uff18\uff12-08-30"),  # full-width digits
    ("d", 19820830),
    ("t", "2015-10-02T08:23:53"),
    ("t", "2015-10-02T08:23:53+00:00"),
    ("t", "2015-10-02 08:23:53Z"),
    ("t", "2015-10-02T24:00:00Z"),
    ("t", "2015-10-02T08:60:00Z"),
    ("t", "2015-10-02t08:23:53z"),
    ("t", "2015-10-02"),
    ("p", 4930123456),
    ("a", {"k": 1}),
    ("a", "[]"),
    ("o", []),
    ("o", "{}"),
]


@pytest.mark.parametrize(("name", "value"), WRONG_TYPE)
async def test_a_value_of_the_wrong_type_is_code_3(typed: Emulator, name: str, value: Any) -> None:
    async with httpx.AsyncClient(
        transport=typed.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        assert await refused(http, user("1", **{name: value})) == [(3, f"/{name}")]


@pytest.mark.parametrize(
    "phone", ["4930123456", "+1", "+1234567890123456", "+49 30 123", "+49-30", "+"]
)
async def test_a_malformed_phone_is_code_5(http: httpx.AsyncClient, phone: str) -> None:
    assert await refused(http, user(phone=phone)) == [(5, "/phone")]


@pytest.mark.parametrize("name", list(ALL_TYPES))
async def test_null_is_valid_for_every_type(typed: Emulator, name: str) -> None:
    async with httpx.AsyncClient(
        transport=typed.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        response = await http.put("/users", json=user("1", **{name: None}))
        assert response.status_code == 202


async def test_several_errors_are_all_reported_in_key_order(http: httpx.AsyncClient) -> None:
    body = {
        "id": "1",
        "email": "bad",
        "birthday": "never",
        "phone": "0",
        "x": 1,
        "businessUnit": "?",
    }
    assert await refused(http, body) == [
        (4, "/email"),
        (3, "/birthday"),
        (5, "/phone"),
        (6, "/x"),
        (8, "/businessUnit"),
    ]


async def test_a_string_of_16_kib_is_accepted(http: httpx.AsyncClient) -> None:
    response = await http.put("/users", json=user(firstName="x" * MAX_STRING_BYTES))
    assert response.status_code == 202


@pytest.mark.parametrize(
    "value",
    [
        "x" * (MAX_STRING_BYTES + 1),
        "é" * (MAX_STRING_BYTES // 2 + 1),
        "😀" * (MAX_STRING_BYTES // 4 + 1),
    ],
)
async def test_a_string_over_16_kib_of_utf8_is_code_2(http: httpx.AsyncClient, value: str) -> None:
    assert await refused(http, user(firstName=value)) == [(2, "/firstName")]


async def test_the_string_limit_applies_to_the_id_and_inside_containers(typed: Emulator) -> None:
    async with httpx.AsyncClient(
        transport=typed.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        big = "x" * (MAX_STRING_BYTES + 1)
        assert await refused(http, user(big, "a@example.com")) == [(2, "/id")]
        assert await refused(http, user(a=[big])) == [(2, "/a")]
        assert await refused(http, user(o={"k": [big]})) == [(2, "/o")]


async def test_nesting_deeper_than_two_levels_is_code_3(typed: Emulator) -> None:
    async with httpx.AsyncClient(
        transport=typed.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        assert (await http.put("/users", json=user(a=[[1]], o={"k": {"l": 1}}))).status_code == 202
        assert await refused(http, user(a=[[[1]]])) == [(3, "/a")]
        assert await refused(http, user(o={"k": {"l": {}}})) == [(3, "/o")]
        assert await refused(http, user(a=[{"k": []}])) == [(3, "/a")]


async def test_more_than_1000_objects_in_a_user_is_code_3(typed: Emulator) -> None:
    async with httpx.AsyncClient(
        transport=typed.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        fits = user(a=[{}] * 500, o={str(i): {} for i in range(499)})  # 500 + 1 + 499
        assert (await http.put("/users", json=fits)).status_code == 202
        over = user(a=[{}] * 500, o={str(i): {} for i in range(500)})
        assert await refused(http, over) == [(3, "")]


async def test_a_user_over_1_mib_is_code_2(typed: Emulator) -> None:
    async with httpx.AsyncClient(
        transport=typed.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        chunk = "x" * 16_000
        big = user(a=[chunk] * (MAX_USER_BYTES // 16_000 + 1))
        assert await refused(http, big) == [(2, "")]
        fits = user(a=[chunk] * (MAX_USER_BYTES // 16_000 - 1))
        assert (await http.put("/users", json=fits)).status_code == 202


async def test_a_non_finite_number_is_refused(typed: Emulator) -> None:
    async with httpx.AsyncClient(
        transport=typed.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        for body in (
            b'{"id":"1","email":"a@b.c","f":1e400}',
            b'{"id":"1","email":"a@b.c","a":[1e999]}',
        ):
            response = await http.put("/users", content=body)
            assert response.status_code == 400
            assert errors(response)[0][0] in (1, 3)
