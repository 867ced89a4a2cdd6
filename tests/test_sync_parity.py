"""Client and AsyncClient offer the same API: the sync twin of every public
coroutine method exists, with the same signature, and is typed for mypy."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest

from activatepro_async import AsyncClient, Client

# Lifetime methods are twins under another name; everything else keeps its name.
RENAMED = {"aclose": "close"}


def public_coroutine_methods() -> list[str]:
    return sorted(
        name
        for name, member in inspect.getmembers(AsyncClient, inspect.iscoroutinefunction)
        if not name.startswith("_")
    )


def test_every_public_coroutine_method_has_a_sync_twin_with_the_same_signature() -> None:
    names = public_coroutine_methods()
    assert "get_user" in names  # the discovery itself works
    missing = [n for n in names if not hasattr(Client, RENAMED.get(n, n))]
    assert not missing, f"add `{missing[0]} = _twin(AsyncClient.{missing[0]})` to Client"
    for name in names:
        sync = getattr(Client, RENAMED.get(name, name))
        assert inspect.signature(sync) == inspect.signature(getattr(AsyncClient, name)), name


def test_the_twins_are_plain_functions_with_the_async_docstrings() -> None:
    for name in public_coroutine_methods():
        sync = getattr(Client, RENAMED.get(name, name))
        assert not inspect.iscoroutinefunction(sync), name
        assert sync.__doc__, name
        assert "await " not in sync.__doc__, name


@pytest.mark.parametrize("name", ["upsert_many", "delete_many"])
def test_the_bulk_methods_have_twins_once_async_client_has_them(name: str) -> None:
    if not hasattr(AsyncClient, name):
        pytest.skip(f"AsyncClient.{name} does not exist yet (the bulk engine)")
    assert inspect.iscoroutinefunction(getattr(AsyncClient, name))
    assert inspect.signature(getattr(Client, name)) == inspect.signature(getattr(AsyncClient, name))


def test_client_takes_the_arguments_of_async_client_plus_backend() -> None:
    async_params = dict(inspect.signature(AsyncClient.__init__).parameters)
    sync_params = dict(inspect.signature(Client.__init__).parameters)
    backend = sync_params.pop("backend")
    assert sync_params == async_params
    assert backend.kind is inspect.Parameter.KEYWORD_ONLY
    assert backend.default == "asyncio"


def test_client_has_no_public_name_async_client_lacks() -> None:
    # Only the lifetime and settings may differ; every API call is a twin.
    def public(cls: type) -> set[str]:
        return {n for n in vars(cls) if not n.startswith("_")}

    extra = public(Client) - public(AsyncClient) - set(RENAMED.values())
    assert extra == set()


@pytest.mark.slow
def test_mypy_sees_the_real_parameters_and_results_of_the_twins(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    source = tmp_path / "uses_client.py"
    source.write_text(
        textwrap.dedent(
            """
            from activatepro_async import Client, User

            with Client("key") as client:
                user: User = client.get_user("42")
                reveal_type(client.wait_for_tracking)
                client.get_user(42)
                client.get_user_by_email("a@example.com", bu="UK")
                name: int = client.get_user("42")
            """
        )
    )
    out, _, _ = api.run(
        [str(source), "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache")]
    )
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if "uses_client.py:" in line]
    revealed, *errors = lines
    assert "(tracking_id: " in revealed
    assert "max_poll_interval: " in revealed
    assert revealed.endswith('-> activatepro_async.models.TrackingStatus"')
    assert [e.rsplit("[", 1)[1] for e in errors] == ["arg-type]", "call-arg]", "assignment]"]
