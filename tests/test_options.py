"""``default_headers=``, the User-Agent, and ``with_options()`` on both clients,
seen on the exact requests sent."""

from __future__ import annotations

import gc
from collections.abc import Callable

import httpx
import pytest

from activatepro_async import (
    APIConnectionError,
    AsyncClient,
    Client,
    ConfigurationError,
    RetryPolicy,
    ServerError,
    __version__,
)

from .helpers import API_KEY, OK_USER, FakeTime, Recorder
from .loopback import LoopbackServer

MakeClient = Callable[..., AsyncClient]
Recorded = Callable[..., tuple[Recorder, AsyncClient]]
SDK_UA = f"activatepro-async/{__version__}"


# -- default_headers and the User-Agent ---------------------------------------------------


@pytest.mark.anyio
async def test_default_headers_go_with_every_request(recorded: Recorded) -> None:
    headers = {"X-Tenant": "acme", "Authorization": "Bearer gw-token"}
    recorder, client = recorded(default_headers=headers)
    async with client:
        await client.get_user("42")
        await client.upsert_user({"id": "42"})
        await client.delete_user("42")
    for request in recorder.requests:
        assert request.headers["X-Tenant"] == "acme"
        assert request.headers["Authorization"] == "Bearer gw-token"
        assert request.headers["X-XNG-AuthToken"] == API_KEY
        assert request.headers["X-XNG-ApiVersion"] == "2"
        assert request.headers["User-Agent"] == SDK_UA
    assert recorder.requests[1].headers["Content-Type"] == "application/json"


@pytest.mark.anyio
async def test_a_user_agent_in_default_headers_is_kept_with_the_sdks_appended(
    make_client: MakeClient,
) -> None:
    recorder = Recorder(OK_USER)
    async with make_client(recorder, default_headers={"user-agent": "shop-sync/3.1"}) as client:
        await client.get_user("42")
    assert recorder.requests[0].headers.get_list("User-Agent") == [f"shop-sync/3.1 {SDK_UA}"]


@pytest.mark.anyio
async def test_the_user_agent_of_your_own_http_client_is_kept() -> None:
    recorder = Recorder(OK_USER)
    http = httpx.AsyncClient(transport=recorder.transport, headers={"User-Agent": "crm/2"})
    async with http, AsyncClient(API_KEY, base_url="https://x.test", http_client=http) as client:
        await client.get_user("42")
    assert recorder.requests[0].headers["User-Agent"] == f"crm/2 {SDK_UA}"


@pytest.mark.anyio
async def test_httpx_own_user_agent_is_not_taken_for_yours() -> None:
    recorder = Recorder(OK_USER)
    http = httpx.AsyncClient(transport=recorder.transport)
    async with http, AsyncClient(API_KEY, base_url="https://x.test", http_client=http) as client:
        await client.get_user("42")
    assert recorder.requests[0].headers["User-Agent"] == SDK_UA


@pytest.mark.parametrize(
    "name", ["X-XNG-AuthToken", "x-xng-authtoken", "X-XNG-ApiVersion", "Content-Type", "Host"]
)
def test_headers_the_sdk_sets_itself_are_refused(name: str) -> None:
    with pytest.raises(ConfigurationError, match=f"may not set {name}") as caught:
        AsyncClient(API_KEY, default_headers={name: "sk-live-SECRET"})
    assert "sk-live-SECRET" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="may not set"):
        Client(API_KEY, default_headers={name: "x"})
    with pytest.raises(ConfigurationError, match="may not set"):
        AsyncClient(API_KEY).with_options(default_headers={name: "x"})


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-A": "a\r\nX-Evil: 1"}, "line breaks"),
        ({"X-A": "caf\u00e9"}, "non-ASCII"),
        ({"X-A": 3}, "must be a str"),
        ({"X A": "1"}, "not a valid header name"),
        ({"": "1"}, "not a valid header name"),
        ({"X-A": "1", "x-a": "2"}, "twice"),
        ([("X-A", "1")], "must be a mapping"),
    ],
)
def test_headers_that_cannot_be_sent_are_refused_when_given(headers: object, message: str) -> None:
    for make in (
        lambda: AsyncClient(API_KEY, default_headers=headers),  # type: ignore[arg-type]
        lambda: Client(API_KEY, default_headers=headers),  # type: ignore[arg-type]
        lambda: AsyncClient(API_KEY).with_options(default_headers=headers),  # type: ignore[arg-type]
        lambda: Client(API_KEY).with_options(default_headers=headers),  # type: ignore[arg-type]
    ):
        with pytest.raises(ConfigurationError, match=message) as caught:
            make()
        assert "Evil" not in str(caught.value), "the value is not repeated"


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), "30", True])
def test_a_timeout_that_means_nothing_is_refused(timeout: object) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        AsyncClient(API_KEY, timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout"):
        Client(API_KEY, timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="timeout"):
        AsyncClient(API_KEY).with_options(timeout=timeout)  # type: ignore[arg-type]


def test_credentials_in_default_headers_stay_out_of_reprs() -> None:
    client = AsyncClient(API_KEY, default_headers={"Authorization": "Bearer gw-SECRET"})
    copy = client.with_options(default_headers={"Cookie": "session=c-SECRET"})
    for shown in (repr(client), repr(vars(client)), repr(copy), repr(vars(copy))):
        assert "gw-SECRET" not in shown
        assert "c-SECRET" not in shown
        assert API_KEY not in shown


# -- with_options on AsyncClient ----------------------------------------------------------


def timeouts(request: httpx.Request) -> dict[str, float | None]:
    timeout: dict[str, float | None] = request.extensions["timeout"]
    return timeout


@pytest.mark.anyio
async def test_a_copy_sends_with_its_own_settings_and_the_original_keeps_its_own(
    make_client: MakeClient, fake_time: FakeTime
) -> None:
    recorder = Recorder(httpx.Response(503))
    client = make_client(recorder, timeout=5, max_retries=3, default_headers={"X-Team": "a"})
    copy = client.with_options(timeout=60, max_retries=1, default_headers={"X-Run": "nightly"})

    with pytest.raises(ServerError):
        await copy.get_user("42")
    assert len(recorder.requests) == 2, "one retry"
    sent = recorder.requests[0]
    assert timeouts(sent) == {"connect": 60, "read": 60, "write": 60, "pool": 60}
    assert (sent.headers["X-Team"], sent.headers["X-Run"]) == ("a", "nightly")
    assert sent.headers["X-XNG-AuthToken"] == API_KEY

    recorder.requests.clear()
    with pytest.raises(ServerError):
        await client.get_user("42")
    assert len(recorder.requests) == 4, "the original still retries 3 times"
    assert timeouts(recorder.requests[0])["read"] == 5
    assert "X-Run" not in recorder.requests[0].headers
    await client.aclose()


@pytest.mark.anyio
async def test_timeout_none_means_no_timeout(make_client: MakeClient) -> None:
    recorder = Recorder(OK_USER)
    async with make_client(recorder, timeout=5) as client:
        await client.with_options(timeout=None).get_user("42")
        await client.get_user("42")
    assert timeouts(recorder.requests[0]) == dict.fromkeys(("connect", "read", "write", "pool"))
    assert timeouts(recorder.requests[1])["read"] == 5


@pytest.mark.anyio
async def test_max_retries_applies_to_a_retry_policy_given_with_it(fake_time: FakeTime) -> None:
    recorder = Recorder(httpx.Response(503))
    retries: list[int] = []
    policy = RetryPolicy(
        max_retries=5,
        jitter=None,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        on_retry=lambda event: retries.append(event.attempt),
    )
    async with AsyncClient(API_KEY, base_url="https://x.test", transport=recorder.transport) as c:
        with pytest.raises(ServerError):
            await c.with_options(retry=policy, max_retries=2).get_user("42")
        assert retries == [1, 2], "the policy's hook, with two retries"
        assert len(recorder.requests) == 3
        retries.clear()
        recorder.requests.clear()
        with pytest.raises(ServerError):
            await c.with_options(retry=policy).get_user("42")
        assert len(recorder.requests) == 6
    assert fake_time.sleeps[:2] == [0.5, 1.0], "the policy's waits, slept with its sleep"


@pytest.mark.anyio
async def test_copies_of_copies_add_up(make_client: MakeClient, fake_time: FakeTime) -> None:
    recorder = Recorder(httpx.Response(503))
    client = make_client(recorder, default_headers={"X-A": "1", "User-Agent": "app/1"})
    first = client.with_options(max_retries=0, default_headers={"X-B": "2"})
    second = first.with_options(timeout=9, default_headers={"x-a": "replaced"})
    with pytest.raises(ServerError):
        await second.get_user("42")
    (sent,) = recorder.requests
    assert sent.headers["X-A"] == "replaced"
    assert sent.headers.get_list("X-A") == ["replaced"]
    assert sent.headers["X-B"] == "2"
    assert sent.headers["User-Agent"] == f"app/1 {SDK_UA}"
    assert timeouts(sent)["read"] == 9
    await client.aclose()


@pytest.mark.anyio
async def test_a_copy_shares_the_connections_of_the_original() -> None:
    with LoopbackServer() as server:
        client = AsyncClient(API_KEY, base_url=server.url)
        copy = client.with_options(timeout=10)
        await client.get_user("42")
        await copy.get_user("42")
        await copy.with_options(max_retries=0).get_user("42")
        await client.aclose()
    assert server.requests == 3
    assert server.accepted == 1, "one keep-alive connection for all three"


@pytest.mark.anyio
async def test_closing_a_copy_never_closes_the_pool_closing_the_original_does(
    make_client: MakeClient,
) -> None:
    recorder = Recorder(OK_USER)
    client = make_client(recorder)
    copy = client.with_options(timeout=10)
    async with copy:
        await copy.get_user("42")
    await copy.aclose()
    await client.get_user("42")  # still open
    await copy.get_user("42")  # a closed copy still works: it owns nothing
    await client.aclose()
    for closed in (client, copy, copy.with_options(max_retries=0)):
        with pytest.raises(APIConnectionError, match="was not sent: the client was closed"):
            await closed.get_user("42")
    assert len(recorder.requests) == 3


def test_with_options_refuses_what_is_not_a_policy() -> None:
    with pytest.raises(ConfigurationError, match="RetryPolicy"):
        AsyncClient(API_KEY).with_options(retry=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_retries"):
        AsyncClient(API_KEY).with_options(max_retries=-1)
    with pytest.raises(ValueError, match="max_retries"):
        Client(API_KEY).with_options(max_retries=-1)


# -- with_options on the sync Client, through its portal ----------------------------------


def test_a_sync_copy_sends_with_its_settings_on_the_same_thread(backend: str) -> None:
    recorder = Recorder(httpx.Response(503))
    policy = RetryPolicy(max_retries=3, jitter=None, sleep=_no_sleep)
    client = Client(
        API_KEY,
        base_url="https://x.test",
        transport=recorder.transport,
        retry=policy,
        default_headers={"X-Team": "a"},
        backend=backend,
    )
    with client:
        copy = client.with_options(max_retries=0, timeout=None, default_headers={"X-B": "b"})
        again = copy.with_options(default_headers={"x-team": "z"})
        with pytest.raises(ServerError):
            again.get_user("42")
        (sent,) = recorder.requests
        assert (sent.headers["X-Team"], sent.headers["X-B"]) == ("z", "b")
        assert timeouts(sent)["read"] is None
        recorder.requests.clear()
        with pytest.raises(ServerError):
            client.get_user("42")
        assert len(recorder.requests) == 4, "the original keeps its 3 retries"
        assert recorder.requests[0].headers["X-Team"] == "a"
        assert "X-B" not in recorder.requests[0].headers


async def _no_sleep(seconds: float) -> None:
    return None


def test_closing_a_sync_copy_never_closes_the_original(backend: str) -> None:
    recorder = Recorder(OK_USER)
    client = Client(
        API_KEY, base_url="https://x.test", transport=recorder.transport, backend=backend
    )
    with client.with_options(timeout=3) as copy:
        copy.get_user("42")
    copy.close()
    client.get_user("42")
    copy.get_user("42")
    client.close()
    with pytest.raises(RuntimeError, match="this Client is closed"):
        copy.get_user("42")
    assert len(recorder.requests) == 3


def test_a_sync_copy_keeps_its_original_alive(backend: str) -> None:
    recorder = Recorder(OK_USER)
    copy = Client(
        API_KEY, base_url="https://x.test", transport=recorder.transport, backend=backend
    ).with_options(timeout=3)
    gc.collect()  # the original has no name left: only the copy holds it
    assert copy.get_user("42").id == "42"
    copy._original.close()  # type: ignore[union-attr]
