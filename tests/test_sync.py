"""Client, the blocking facade: every call through the portal against the emulator,
its errors, threads, running loops and lifetime within this process.

Process-wide lifetime (garbage collection, interpreter exit, fork) is tested in
subprocesses in ``test_sync_lifetime.py``; the equality of the two surfaces in
``test_sync_parity.py``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
import httpx
import pytest
import trio

from activatepro_async import (
    Accepted,
    AsyncClient,
    AuthenticationError,
    BatchAccepted,
    BulkError,
    Client,
    ConfigurationError,
    NotFoundError,
    Stage,
    TrackingStatus,
    TrackingTimeoutError,
    User,
    ValidationError,
)
from activatepro_async.emulator import Emulator, ManualClock

KEY = "test-key"
_T = TypeVar("_T")


class LoopRecorder(httpx.AsyncBaseTransport):
    """Passes requests to a transport and notes the thread and loop each one ran on."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[int, str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            loop_id, library = id(asyncio.get_running_loop()), "asyncio"
        except RuntimeError:
            loop_id, library = id(trio.lowlevel.current_trio_token()), "trio"
        self.seen.append((threading.get_ident(), library, loop_id))
        return await self.inner.handle_async_request(request)


def portal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("activatepro-portal")]


def finishes(func: Callable[[], _T], within: float = 30.0) -> _T:
    """``func()`` run in a thread; fails (instead of hanging the suite) on a deadlock."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(func())
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(within)
    assert not worker.is_alive(), f"deadlocked: no answer within {within} s"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]  # type: ignore[no-any-return]


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(api_keys=(KEY,), processing_delay=0.0)


@pytest.fixture
def recorder(emulator: Emulator) -> LoopRecorder:
    return LoopRecorder(emulator.transport())


@pytest.fixture
def client(recorder: LoopRecorder, backend: str) -> Iterator[Client]:
    with Client(KEY, transport=recorder, backend=backend) as client:
        yield client


ADA = User("ada", "ada@example.com", business_unit="UK", attributes={"firstName": "Ada"})


# -- every method through the facade ------------------------------------------


def test_upsert_user_queues_a_write_that_wait_for_tracking_sees_processed(
    client: Client, emulator: Emulator
) -> None:
    accepted = client.upsert_user(ADA)
    assert isinstance(accepted, Accepted)
    status = client.wait_for_tracking(accepted.tracking_id, timeout=5)
    assert status == TrackingStatus(Stage.PROCESSED, total=1, success=1, error=0)
    assert emulator.users["ada"]["firstName"] == "Ada"


def test_get_user_and_get_user_by_email_return_users(client: Client) -> None:
    client.wait_for_tracking(client.upsert_user(ADA).tracking_id)
    user = client.get_user("ada")
    assert (user.id, user.email, user.attributes) == ("ada", "ada@example.com", ADA.attributes)
    assert client.get_user_by_email("ADA@example.com", business_unit="UK") == user


def test_get_tracking_returns_the_status(client: Client) -> None:
    accepted = client.upsert_user({"id": "bo", "email": "bo@example.com"})
    status = client.get_tracking(accepted.tracking_id)
    assert isinstance(status, TrackingStatus)
    assert status.total == 1


def test_batch_and_delete_user_change_the_store(client: Client, emulator: Emulator) -> None:
    client.wait_for_tracking(client.upsert_user(ADA).tracking_id)
    accepted = client.batch(updated=[User("bo", "bo@example.com")], deleted=["ada"])
    assert isinstance(accepted, BatchAccepted)
    assert accepted.errors == []
    client.wait_for_tracking(accepted.tracking_id)
    assert set(emulator.users) == {"bo"}
    client.wait_for_tracking(client.delete_user("bo").tracking_id)
    assert emulator.users == {}


def test_batch_with_invalid_items_returns_their_errors(client: Client) -> None:
    accepted = client.batch(updated=[ADA, User("bad", "not-an-email")])
    assert [e.pointer for e in accepted.errors] == ["/updated/1/email"]


def test_the_backend_runs_every_request_on_one_loop_in_one_thread(
    client: Client, recorder: LoopRecorder, backend: str
) -> None:
    client.upsert_user(ADA)
    other = threading.Thread(target=client.get_user, args=("ada",))  # another caller thread
    other.start()
    other.join()
    asyncio.run(_get_user_in_async(client, "ada"))  # a caller with its own loop
    assert len(recorder.seen) == 3
    assert len(set(recorder.seen)) == 1
    thread_id, library, _ = recorder.seen[0]
    assert library == backend
    assert thread_id != threading.get_ident()


async def _get_user_in_async(client: Client, user_id: str) -> User:
    return client.get_user(user_id)


# -- exceptions cross the portal unchanged ---------------------------------------


def _error_fields(exc: BaseException) -> dict[str, Any]:
    return {"type": type(exc), "str": str(exc), "args": exc.args, **vars(exc)}


def _async_error(emulator: Emulator, call: Callable[[AsyncClient], Any], **kwargs: Any) -> Any:
    async def main() -> BaseException:
        async with AsyncClient(transport=emulator.transport(), **kwargs) as client:
            try:
                await call(client)
            except Exception as exc:
                return exc
        raise AssertionError("no error")

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("name", "args", "kwargs"),
    [
        ("get_user", ("nobody",), {}),
        ("upsert_user", ({"id": "x", "email": "no-email"},), {}),
        ("batch", (), {}),
        ("get_tracking", ("unknown",), {}),
    ],
)
def test_errors_are_the_async_clients_own_with_the_same_attributes(
    emulator: Emulator, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    expected = _async_error(emulator, lambda c: getattr(c, name)(*args, **kwargs), api_key=KEY)
    client = Client(KEY, transport=emulator.transport())
    with client, pytest.raises(type(expected)) as caught:
        getattr(client, name)(*args, **kwargs)
    assert type(caught.value) is type(expected)
    assert _error_fields(caught.value) == _error_fields(expected)


def test_a_validation_error_keeps_its_parsed_errors(client: Client) -> None:
    with pytest.raises(ValidationError) as caught:
        client.upsert_user({"id": "x", "email": "no-email"})
    assert caught.value.status_code == 400
    assert [e.pointer for e in caught.value.errors] == ["/email"]


def test_a_wrong_key_raises_authentication_error(emulator: Emulator, backend: str) -> None:
    with (
        Client("wrong-key", transport=emulator.transport(), backend=backend) as client,
        pytest.raises(AuthenticationError, match="401"),
    ):
        client.get_user("ada")


def test_tracking_timeout_error_carries_the_last_status(backend: str) -> None:
    emulator = Emulator(api_keys=(KEY,), processing_delay=60.0, clock=ManualClock())
    with Client(KEY, transport=emulator.transport(), backend=backend) as client:
        accepted = client.upsert_user(ADA)
        with pytest.raises(TrackingTimeoutError) as caught:
            client.wait_for_tracking(accepted.tracking_id, timeout=0)
    assert caught.value.tracking_id == accepted.tracking_id
    assert isinstance(caught.value.last_status, TrackingStatus)
    assert caught.value.last_status.stage is not Stage.PROCESSED


def test_argument_errors_are_raised_as_the_async_client_raises_them(client: Client) -> None:
    with pytest.raises(TypeError, match="user_id must be a str"):
        client.get_user(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected keyword"):
        client.get_user(user="ada")  # type: ignore[call-arg]


# -- settings --------------------------------------------------------------------


def test_a_missing_key_fails_when_the_client_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTIVATEPRO_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="no API key"):
        Client()
    assert portal_threads() == []


def test_the_key_comes_from_the_environment_when_made(
    monkeypatch: pytest.MonkeyPatch, emulator: Emulator
) -> None:
    monkeypatch.setenv("ACTIVATEPRO_API_KEY", KEY)
    client = Client(transport=emulator.transport())
    monkeypatch.delenv("ACTIVATEPRO_API_KEY")
    with client, pytest.raises(NotFoundError):
        client.get_user("ada")


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="backend must be one of"):
        Client(KEY, backend="curio")


def test_the_repr_shows_neither_the_key_nor_secrets(emulator: Emulator) -> None:
    with Client("secret-key-123", transport=emulator.transport()) as client:
        assert "secret-key-123" not in repr(client)
        assert repr(client) == "<Client base_url='https://api.crossengage.io' backend='asyncio'>"


# -- threads and running loops ------------------------------------------------------


def test_sixteen_threads_share_one_client_and_one_portal(
    client: Client, emulator: Emulator
) -> None:
    start = threading.Barrier(16)  # all threads race for the lazy start

    def work(n: int) -> list[Accepted]:
        start.wait()
        return [client.upsert_user(User(f"u{n}-{i}", f"u{n}-{i}@example.com")) for i in range(10)]

    with ThreadPoolExecutor(16) as pool:
        results = [a for batch in pool.map(work, range(16)) for a in batch]
        assert len(portal_threads()) == 1
    assert len({a.tracking_id for a in results}) == 160
    emulator.process_pending()
    assert len(emulator.users) == 160


def _asyncio_run(main: Callable[[], Any]) -> Any:
    return asyncio.run(main())


@pytest.mark.parametrize("run", [_asyncio_run, trio.run], ids=["in-asyncio", "in-trio"])
def test_a_call_inside_a_running_loop_neither_raises_nor_deadlocks(
    client: Client, run: Callable[[Any], Any]
) -> None:
    client.upsert_user(ADA)

    async def handler() -> User:
        return client.get_user("ada")  # by mistake: blocks this loop, but works

    user = finishes(lambda: run(handler))
    assert user.id == "ada"


def test_the_first_call_and_close_may_happen_inside_a_running_loop(
    emulator: Emulator, backend: str
) -> None:
    async def notebook_cell() -> str:
        with Client(KEY, transport=emulator.transport(), backend=backend) as client:
            return client.upsert_user(ADA).tracking_id

    assert finishes(lambda: trio.run(notebook_cell))
    assert finishes(lambda: asyncio.run(notebook_cell()))
    assert portal_threads() == []


def test_calling_the_client_from_its_own_callback_says_what_to_do(
    emulator: Emulator, backend: str
) -> None:
    with Client(KEY, transport=emulator.transport(), backend=backend) as client:

        def users() -> Iterator[User]:
            client.get_user("ada")  # runs on the portal's thread
            yield ADA

        with pytest.raises(RuntimeError, match="own event loop thread"):
            client.batch(updated=users())


def test_the_trio_backend_runs_the_portal_on_trio(
    emulator: Emulator, recorder: LoopRecorder
) -> None:
    with Client(KEY, transport=recorder, backend="trio") as client:
        client.upsert_user(ADA)
    assert [library for _, library, _ in recorder.seen] == ["trio"]


# -- lifetime within the process ------------------------------------------------------


def test_no_thread_starts_before_the_first_call(emulator: Emulator) -> None:
    with Client(KEY, transport=emulator.transport()) as client:
        assert portal_threads() == []
        client.upsert_user(ADA)
        assert len(portal_threads()) == 1


def test_close_ends_the_thread_and_later_calls_say_what_to_do(
    emulator: Emulator, backend: str
) -> None:
    client = Client(KEY, transport=emulator.transport(), backend=backend)
    client.upsert_user(ADA)
    client.close()
    assert portal_threads() == []
    client.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed: create a new Client"):
        client.get_user("ada")


def test_the_context_manager_closes_on_error(emulator: Emulator) -> None:
    with pytest.raises(NotFoundError), Client(KEY, transport=emulator.transport()) as client:
        client.get_user("nobody")
    assert portal_threads() == []
    with pytest.raises(RuntimeError, match="closed"):
        client.get_user("nobody")


def test_close_leaves_your_own_http_client_open(emulator: Emulator) -> None:
    http = httpx.AsyncClient(transport=emulator.transport())
    with Client(KEY, http_client=http) as client:
        client.upsert_user(ADA)
    assert not http.is_closed
    asyncio.run(http.aclose())


class Hangs(httpx.AsyncBaseTransport):
    """Never answers; tells when a request has arrived."""

    def __init__(self) -> None:
        self.arrived = threading.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.arrived.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


def test_close_cancels_a_call_still_running_in_another_thread(backend: str) -> None:
    transport = Hangs()
    client = Client(KEY, transport=transport, backend=backend)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.get_user("ada")
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert transport.arrived.wait(30)
    finishes(client.close)
    caller.join(30)
    assert not caller.is_alive()
    assert portal_threads() == []
    assert isinstance(errors[0], RuntimeError)
    assert "closed while it ran" in str(errors[0])


# -- the bulk engine through the facade -------------------------------------------------


def test_upsert_many_reads_a_sync_generator_lazily(
    emulator: Emulator, recorder: LoopRecorder, backend: str
) -> None:
    pulled = 0
    pulled_at_first_request: list[int] = []

    def users() -> Iterator[User]:
        nonlocal pulled
        for i in range(500):
            if recorder.seen and not pulled_at_first_request:
                pulled_at_first_request.append(pulled)
            pulled += 1
            yield User(f"u{i}", f"u{i}@example.com")

    with Client(KEY, transport=recorder, backend=backend) as client:
        result = client.upsert_many(users(), chunk_size=10, concurrency=1)
    assert (result.submitted, result.accepted) == (500, 500)
    assert pulled_at_first_request[0] < 100  # not all 500 read before sending
    emulator.process_pending()
    assert len(emulator.users) == 500


def test_on_progress_may_be_a_plain_function(client: Client) -> None:
    seen: list[tuple[int, int]] = []
    result = client.upsert_many(
        (User(f"u{i}", f"u{i}@example.com") for i in range(30)),
        chunk_size=10,
        on_progress=lambda progress: seen.append((progress.submitted, progress.accepted)),
    )
    assert result.accepted == 30
    assert len(seen) == 3
    assert seen[-1] == (30, 30)


def test_delete_many_deletes_ids_from_a_list(client: Client, emulator: Emulator) -> None:
    client.upsert_many([User(f"u{i}", f"u{i}@example.com") for i in range(5)], wait=True)
    result = client.delete_many(["u0", "u1", "u2"], wait=True)
    assert result.accepted == 3
    assert sorted(emulator.users) == ["u3", "u4"]


def test_bulk_error_crosses_with_its_result(client: Client) -> None:
    users = [User("ok", "ok@example.com"), User("bad", "not-an-email")]
    with pytest.raises(BulkError) as caught:
        client.upsert_many(users)
    result = caught.value.result
    assert (result.submitted, result.accepted) == (2, 1)
    assert [r.user_id for r in result.rejected] == ["bad"]
