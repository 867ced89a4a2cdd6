"""Bad settings and bad arguments: a typed error that says what to do, before
anything is sent; never a raw httpx error, on either client or transport."""

from __future__ import annotations

import gzip
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from activatepro_async import (
    APIConnectionError,
    AsyncClient,
    Client,
    ConfigurationError,
)
from activatepro_async.client import MAX_URL_LENGTH

from .helpers import API_KEY, REFERENCE_USER, Recorder
from .loopback import TRANSPORTS, LoopbackServer, assert_picked, http_response, use_transport

BAD_BASE_URLS = [
    "http://127.0.0.1:abc",  # a port that is not a number
    "http://[::1",  # an IPv6 host never closed
    "http://[::1]:abc",
    "http://127.0.0.1:99999",  # a port out of range
    "http://127.0.0.1:-1",
    "http://[zz]",
    "http://1.2.3.999",
    "http://",  # no host
    "http://:8080",
    "http:///users",
    "https://user:secret@api.example.test",  # credentials in the URL
    "http://exa mple.test",  # spaces and line breaks
    " http://api.example.test",
    "http://api.example.test ",
    "http://api.example.test\n",
    "http://api.exa\tmple.test",
    "ftp://api.example.test",
    "api.example.test",
    "",
    "http://api.example.test/?x=1",
    "http://api.example.test/#top",
    "http://api.example.test/" + "p" * MAX_URL_LENGTH,
]
GOOD_BASE_URLS = {
    "http://127.0.0.1:8080": "http://127.0.0.1:8080/users/1",
    "https://api.example.test/": "https://api.example.test/users/1",
    "http://[::1]:8080": "http://[::1]:8080/users/1",
    "http://localhost/prefix/": "http://localhost/prefix/users/1",
    "http://bücher.example": "http://xn--bcher-kva.example/users/1",
}


@pytest.mark.parametrize("base_url", BAD_BASE_URLS)
def test_a_bad_base_url_is_refused_when_the_client_is_made(base_url: str) -> None:
    for make in (AsyncClient, Client):
        with pytest.raises(ConfigurationError) as caught:
            make(API_KEY, base_url=base_url)  # type: ignore[operator]
        assert "base_url" in str(caught.value)
        assert "ACTIVATEPRO_BASE_URL" in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__ or caught.value.__context__ is None


@pytest.mark.parametrize("base_url", BAD_BASE_URLS[:3])
def test_a_bad_base_url_from_the_environment_is_refused(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACTIVATEPRO_BASE_URL", base_url)
    for make in (AsyncClient, Client):
        with pytest.raises(ConfigurationError, match="ACTIVATEPRO_BASE_URL"):
            make(API_KEY)


def test_credentials_in_the_base_url_are_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as caught:
        AsyncClient(API_KEY, base_url="https://user:hunter2@api.example.test")
    assert "hunter2" not in str(caught.value)


def test_a_base_url_that_is_not_a_str_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="must be a str"):
        AsyncClient(API_KEY, base_url=b"http://api.example.test")  # type: ignore[arg-type]


@pytest.mark.anyio
@pytest.mark.parametrize(("base_url", "sent"), list(GOOD_BASE_URLS.items()))
async def test_good_base_urls_are_kept(base_url: str, sent: str) -> None:
    recorder = Recorder(httpx.Response(200, json=REFERENCE_USER))
    async with AsyncClient(API_KEY, base_url=base_url, transport=recorder.transport) as client:
        await client.get_user("1")
    assert str(recorder.requests[0].url) == sent


# -- ids too long for a URL ------------------------------------------------------------

Call = Callable[[AsyncClient, str], Awaitable[Any]]
PATH_CALLS: dict[str, Call] = {
    "get_user": lambda client, value: client.get_user(value),
    "delete_user": lambda client, value: client.delete_user(value),
    "get_user_by_email": lambda client, value: client.get_user_by_email(value),
    "business_unit": lambda client, value: client.get_user_by_email("a@example.com", value),
    "get_tracking": lambda client, value: client.get_tracking(value),
    "wait_for_tracking": lambda client, value: client.wait_for_tracking(value),
}
BASE_URL = "https://api.example.test"


@pytest.mark.anyio
@pytest.mark.parametrize("call", list(PATH_CALLS))
async def test_an_id_too_long_for_a_url_is_refused_before_sending(call: str) -> None:
    recorder = Recorder(httpx.Response(200, json=REFERENCE_USER))
    async with AsyncClient(API_KEY, base_url=BASE_URL, transport=recorder.transport) as client:
        with pytest.raises(ValueError, match="over the limit of 65,536") as caught:
            await PATH_CALLS[call](client, "x" * 1_000_000)
    assert not isinstance(caught.value, ConfigurationError), "an argument, not a setting"
    assert len(str(caught.value)) < 400, "the message does not repeat the id"
    assert recorder.requests == []


@pytest.mark.anyio
async def test_the_url_limit_counts_the_percent_encoded_url() -> None:
    recorder = Recorder(httpx.Response(200, json=REFERENCE_USER))
    room = MAX_URL_LENGTH - len(BASE_URL + "/users/")
    async with AsyncClient(API_KEY, base_url=BASE_URL, transport=recorder.transport) as client:
        await client.get_user("x" * room)  # the longest URL httpx takes
        with pytest.raises(ValueError, match="65,537 characters"):
            await client.get_user("x" * (room + 1))
        with pytest.raises(ValueError, match="over the limit"):
            await client.get_user("é" * (room // 6 + 1))  # each is %C3%A9
    assert len(recorder.requests) == 1
    assert len(str(recorder.requests[0].url)) == MAX_URL_LENGTH


def test_the_sync_client_refuses_a_long_id_alike() -> None:
    recorder = Recorder(httpx.Response(200, json=REFERENCE_USER))
    with (
        Client(API_KEY, base_url=BASE_URL, transport=recorder.transport) as client,
        pytest.raises(ValueError, match="over the limit of 65,536"),
    ):
        client.get_user("x" * 1_000_000)
    assert recorder.requests == []


# -- httpx's local errors are the SDK's ------------------------------------------------

NOT_GZIP = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
    b"Content-Length: 9\r\n\r\nnot gzip!"
)


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
# httpx itself, on trio, leaves its body iterators to the garbage collector when a
# body fails to decode (the connection is closed all the same); trio warns then.
@pytest.mark.filterwarnings("ignore:Async generator 'httpx.* was garbage collected:ResourceWarning")
async def test_a_body_that_cannot_be_decoded_is_a_connection_error(
    transport: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_transport(transport, anyio_backend, monkeypatch)
    with LoopbackServer(answer=NOT_GZIP) as server:
        async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
            with pytest.raises(APIConnectionError, match="DecodingError") as caught:
                await client.get_user("1")
            assert_picked(client, transport)
    assert isinstance(caught.value.__cause__, httpx.DecodingError)


@pytest.mark.anyio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_gzip_body_is_read(
    transport: str, anyio_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The other side of the test above: a body that decodes is read as usual.
    use_transport(transport, anyio_backend, monkeypatch)
    body = gzip.compress(b'{"id":"1","email":"a@example.com"}')
    answer = http_response(200, body).replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n", 1)
    with LoopbackServer(answer=answer) as server:
        async with AsyncClient(API_KEY, base_url=server.url, max_retries=0) as client:
            user = await client.get_user("1")
    assert user.email == "a@example.com"
