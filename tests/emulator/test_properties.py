"""Properties: no input makes the emulator answer 5xx or raise; nothing accepted is lost."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_from_bytes

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activatepro_async.emulator import AttributeType, Emulator, _json

from ..helpers import examples
from .wire import HEADERS

SETTINGS = settings(
    max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)
attribute_names = st.sampled_from(
    ["id", "email", "businessUnit", "xngId", "firstName", "birthday", "createdAt", "phone", "x"]
) | st.text(max_size=8)
user_like = st.dictionaries(attribute_names, json_values, max_size=8)


def check_answer(response: httpx.Response) -> None:
    assert response.status_code in (200, 202, 400, 401, 404, 405, 413), response.status_code
    if response.status_code == 400:
        body = response.json()
        for entry in body["errors"]:
            assert entry["code"] in {str(n) for n in range(1, 10)}
            assert entry["source"]["pointer"] == "" or entry["source"]["pointer"].startswith("/")


async def send_all(
    emulator: Emulator, requests: list[tuple[str, str, bytes]]
) -> list[httpx.Response]:
    answers = []
    async with httpx.AsyncClient(
        transport=emulator.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        for method, path, body in requests:
            answers.append(await http.request(method, "http://e" + path, content=body))
        # Whatever was queued applies without error, and reads back.
        emulator.process_pending()
        for user_id in emulator.users:
            segment = quote(user_id, safe="").replace(".", "%2E")
            assert (await http.get(f"http://e/users/{segment}")).status_code == 200
    return answers


def run(emulator: Emulator, *requests: tuple[str, str, bytes]) -> list[httpx.Response]:
    answers = anyio.run(send_all, emulator, list(requests))
    for answer in answers:
        check_answer(answer)
    return answers


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_never_break_it(body: bytes) -> None:
    run(
        Emulator(),
        ("PUT", "/users", body),
        ("POST", "/users/batch", body),
        ("DELETE", "/users/x", body),
    )


@SETTINGS
@given(json_values)
def test_any_json_document_never_breaks_it(document: Any) -> None:
    body = json.dumps(document).encode()
    run(Emulator(), ("PUT", "/users", body), ("POST", "/users/batch", body))


@SETTINGS
@given(user_like, st.booleans())
def test_any_user_like_object_never_breaks_it(candidate: dict[str, Any], lenient: bool) -> None:
    emulator = Emulator(accept_unknown_attributes=lenient)
    body = json.dumps(candidate).encode()
    batch = json.dumps({"updated": [candidate, candidate], "deleted": [candidate]}).encode()
    run(emulator, ("PUT", "/users", body), ("POST", "/users/batch", batch))


@SETTINGS
@given(st.integers(min_value=1, max_value=5000), st.sampled_from(["[", '{"a":']))
def test_deep_nesting_never_breaks_it(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    deep = opener * depth + "1" + closer * depth
    user = f'{{"id":"1","email":"a@b.c","x":{deep}}}'.encode()
    emulator = Emulator(
        attributes={"x": AttributeType.ARRAY if opener == "[" else AttributeType.OBJECT}
    )
    (put,) = run(emulator, ("PUT", "/users", user))
    assert put.status_code == (202 if depth <= 2 else 400)


@SETTINGS
@given(
    st.lists(st.binary(max_size=12), min_size=1, max_size=6),
    st.sampled_from(["GET", "DELETE", "PUT", "POST"]),
)
def test_any_path_never_breaks_it(segments: list[bytes], method: str) -> None:
    path = "/" + "/".join(quote_from_bytes(s, safe="") for s in segments)
    run(Emulator(), (method, path, b"{}"), (method, "/users" + path, b"{}"))


@SETTINGS
@given(st.integers(min_value=0, max_value=3), st.sampled_from(["x", "é", "😀"]))
def test_huge_strings_never_break_it(scale: int, char: str) -> None:
    value = char * (4096 * 4**scale)
    body = json.dumps(
        {"id": "1", "email": "a@b.c", "firstName": value}, ensure_ascii=False
    ).encode()
    (put,) = run(Emulator(), ("PUT", "/users", body))
    assert put.status_code == (202 if len(value.encode()) <= 16 * 1024 else 400)


valid_users = st.builds(
    lambda i, first, bu: {
        "id": f"u{i}",
        "email": f"u{i}@example.com",
        "firstName": first,
        "businessUnit": bu,
    },
    st.integers(0, 50),
    st.text(max_size=10),
    st.none() | st.sampled_from(["DE", "AT"]),
)
invalid_users = st.builds(
    lambda i: {"id": f"u{i}", "email": "not-an-email"},
    st.integers(0, 50),
)


@SETTINGS
@given(st.lists(valid_users | invalid_users, min_size=1, max_size=40))
def test_a_batch_loses_nothing_and_counts_every_item(items: list[dict[str, Any]]) -> None:
    emulator = Emulator()
    (answer,) = run(emulator, ("POST", "/users/batch", json.dumps({"updated": items}).encode()))
    tracking = emulator.tracking(answer.json()["trackingId"])
    assert tracking is not None
    assert tracking["stage"] == "PROCESSED"
    assert tracking["total"] == len(items)
    assert tracking["success"] + tracking["error"] == len(items)
    invalid = sum(1 for item in items if item["email"] == "not-an-email")
    assert (answer.status_code == 400) == (invalid > 0)
    # The last valid write of each id is what is stored.
    expected: dict[str, dict[str, Any]] = {}
    for item in items:
        if item["email"] != "not-an-email":
            expected[item["id"]] = item
    users = emulator.users
    assert set(users) == set(expected)
    for user_id, item in expected.items():
        assert users[user_id]["firstName"] == item["firstName"]
        assert users[user_id].get("businessUnit") == item["businessUnit"]


# -- the standard library's JSON path (orjson is optional) ---------------------------


@SETTINGS
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_the_stdlib_json_path_never_breaks_it(body: bytes) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_json, "loads", _json._std_loads)
        patch.setattr(_json, "dumps", _json._std_dumps)
        run(Emulator(accept_unknown_attributes=True), ("PUT", "/users", body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "\\ud800", "email": "a@b.c"}',
        b'{"id": "1", "email": "a@b.c", "x": Infinity}',
        b'{"id": "1", "email": "a@b.c", "x": 1' + b"0" * 5000 + b"}",
        b"[" * 100_000,
        b"\xef\xbb\xbf{}",
        b'"\xff"',
    ],
)
def test_the_stdlib_json_path_refuses_what_orjson_refuses(body: bytes) -> None:
    with pytest.raises(_json.JSONError):
        _json._std_loads(body)


def test_the_stdlib_json_path_keeps_valid_surrogate_pairs() -> None:
    assert _json._std_loads(b'"\\ud83d\\ude00"') == "\U0001f600"
    assert _json._std_dumps({"a": "é"}) == '{"a":"é"}'.encode()
