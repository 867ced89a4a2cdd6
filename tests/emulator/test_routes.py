"""Routing on the raw path, authentication and the API version header."""

from __future__ import annotations

import httpx
import pytest

from activatepro_async.emulator import Emulator

from .wire import HEADERS, errors, user

pytestmark = pytest.mark.anyio


async def stored(http: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await http.put("/users", json=body)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize(
    ("user_id", "path"),
    [
        ("a/b", "/users/a%2Fb"),
        ("..", "/users/%2E%2E"),
        (".", "/users/%2E"),
        ("x?y#z", "/users/x%3Fy%23z"),
        ("müller 東京", "/users/m%C3%BCller%20%E6%9D%B1%E4%BA%AC"),
        ("a+b", "/users/a+b"),
        ("100%", "/users/100%25"),
    ],
)
async def test_a_percent_encoded_segment_is_one_id(
    http: httpx.AsyncClient, user_id: str, path: str
) -> None:
    await stored(http, user(user_id, "x@example.com"))
    response = await http.get(path)
    assert response.status_code == 200
    assert response.json()["id"] == user_id


async def test_an_encoded_slash_does_not_reach_another_route(http: httpx.AsyncClient) -> None:
    await stored(http, user("email/x@example.com", "x@example.com"))
    by_id = await http.get("/users/email%2Fx%40example.com")
    assert by_id.json()["id"] == "email/x@example.com"


@pytest.mark.parametrize("user_id", ["email", "track", "batch", "bu"])
async def test_a_route_word_alone_is_a_user_id(http: httpx.AsyncClient, user_id: str) -> None:
    await stored(http, user(user_id))
    response = await http.get(f"/users/{user_id}")
    assert response.status_code == 200
    assert response.json()["id"] == user_id
    deleted = await http.delete(f"/users/{user_id}")
    assert deleted.status_code == 202
    assert (await http.get(f"/users/{user_id}")).status_code == 404


async def test_get_user_returns_the_stored_user_with_the_json_content_type(
    http: httpx.AsyncClient,
) -> None:
    await stored(http, user("fb85", "john.doe@example.com", firstName="John"))
    response = await http.get("/users/fb85")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    body = response.json()
    assert body["id"] == "fb85"
    assert body["email"] == "john.doe@example.com"
    assert body["firstName"] == "John"


async def test_an_unknown_user_is_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/users/nobody")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/user/x"),
        ("GET", "/users/email/x/bu"),
        ("GET", "/users/email/x/y/z"),
        ("GET", "/users/track/x/y"),
        ("GET", "/users/a/b"),
        ("GET", "/users/"),
        ("GET", "//users/x"),
        ("PUT", "/users/"),
        ("GET", "/v2/users/x"),
    ],
)
async def test_an_unknown_route_is_a_404_json_error(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await http.request(method, path)
    assert response.status_code == 404
    assert errors(response) == [(2, "")]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/users", "PUT"),
        ("GET", "/users", "PUT"),
        ("PUT", "/users/x", "GET, DELETE"),
        ("POST", "/users/x", "GET, DELETE"),
        ("PATCH", "/users/batch", "GET, DELETE, POST"),
        ("DELETE", "/users/email/a%40b.c", "GET"),
        ("POST", "/users/track/x", "GET"),
        ("HEAD", "/users/x", "GET, DELETE"),
    ],
)
async def test_a_wrong_method_is_405_with_allow(
    http: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    if method != "HEAD":
        assert errors(response) == [(2, "")]


async def test_the_query_string_is_ignored(http: httpx.AsyncClient) -> None:
    await stored(http, user("q"))
    assert (await http.get("/users/q", params={"x": "1"})).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-XNG-AuthToken": ""},
        {"X-XNG-AuthToken": "wrong-key"},
        {"X-XNG-AuthToken": "test-key "},
        {"X-XNG-AuthToken": "TEST-KEY"},
        {"Authorization": "Bearer test-key"},
    ],
)
async def test_a_missing_or_wrong_key_is_401_with_no_body(
    emulator: Emulator, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(
        transport=emulator.transport(),
        base_url="http://emulator",
        headers={"X-XNG-ApiVersion": "2", **headers},
    ) as http:
        for method, path in [("GET", "/users/x"), ("PUT", "/users"), ("POST", "/users/batch")]:
            response = await http.request(method, path, json=user())
            assert response.status_code == 401
            assert response.content == b""
    assert emulator.pending_count == 0


async def test_any_of_several_keys_is_accepted() -> None:
    emulator = Emulator(api_keys=("first", "second"))
    async with httpx.AsyncClient(transport=emulator.transport(), base_url="http://e") as http:
        for key in ("first", "second"):
            response = await http.get(
                "/users/x", headers={"X-XNG-AuthToken": key, "X-XNG-ApiVersion": "2"}
            )
            assert response.status_code == 404


def test_an_emulator_needs_a_key() -> None:
    with pytest.raises(ValueError, match="at least one non-empty key"):
        Emulator(api_keys=())
    with pytest.raises(ValueError, match="at least one non-empty key"):
        Emulator(api_keys=("",))


@pytest.mark.parametrize("version", [None, "1", "3", "", "2.0", "v2"])
async def test_without_api_version_2_it_is_400_code_2_at_the_header(
    emulator: Emulator, version: str | None
) -> None:
    headers = {"X-XNG-AuthToken": "test-key"}
    if version is not None:
        headers["X-XNG-ApiVersion"] = version
    async with httpx.AsyncClient(
        transport=emulator.transport(), base_url="http://e", headers=headers
    ) as http:
        response = await http.put("/users", json=user())
    assert response.status_code == 400
    assert errors(response) == [(2, "/headers/X-XNG-ApiVersion")]
    assert emulator.pending_count == 0


async def test_authentication_comes_before_the_version(emulator: Emulator) -> None:
    async with httpx.AsyncClient(transport=emulator.transport(), base_url="http://e") as http:
        response = await http.get("/users/x", headers={"X-XNG-AuthToken": "wrong"})
    assert response.status_code == 401


async def test_header_names_are_case_insensitive(emulator: Emulator) -> None:
    async with httpx.AsyncClient(transport=emulator.transport(), base_url="http://e") as http:
        response = await http.get(
            "/users/x", headers={"x-xng-authtoken": "test-key", "X-XNG-APIVERSION": "2"}
        )
    assert response.status_code == 404


async def test_the_request_log_keeps_the_wire_but_repr_hides_the_key(
    http: httpx.AsyncClient, emulator: Emulator
) -> None:
    await http.put("/users", json=user("a/b"))
    await http.get("/users/a%2Fb?x=1")
    put, get = emulator.requests
    assert put.method == "PUT"
    assert put.path == "/users"
    assert put.json() == user("a/b")
    assert put.status == 202
    assert put.header("X-XNG-AuthToken") == "test-key"
    assert get.path == "/users/a%2Fb?x=1"
    assert get.status == 200
    assert get.fault is None
    assert "test-key" not in repr(put)
    assert "test-key" not in repr(emulator.requests)
    assert HEADERS["X-XNG-AuthToken"] not in repr(emulator)


async def test_the_request_log_keeps_the_newest(emulator: Emulator) -> None:
    small = Emulator(max_logged_requests=2)
    async with httpx.AsyncClient(
        transport=small.transport(), base_url="http://e", headers=HEADERS
    ) as http:
        for name in ("a", "b", "c"):
            await http.get(f"/users/{name}")
    assert [r.path for r in small.requests] == ["/users/b", "/users/c"]
