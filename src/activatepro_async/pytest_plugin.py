"""pytest fixtures for testing code that uses activatepro-async.

Installed with the package (the ``pytest11`` entry point), so a test can ask
for them by name::

    @pytest.mark.anyio
    async def test_signup_stores_the_user(activatepro_client, activatepro_emulator):
        await signup(activatepro_client, "ada@example.com")
        activatepro_emulator.process_pending()
        assert activatepro_emulator.users["ada"]["email"] == "ada@example.com"

``activatepro_client`` is an async fixture: run the test with anyio's pytest
plugin (``@pytest.mark.anyio``) or another async runner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from activatepro_async import AsyncClient
    from activatepro_async.emulator import Emulator

__all__ = ["activatepro_client", "activatepro_emulator"]


@pytest.fixture
def activatepro_emulator() -> Emulator:
    """A fresh in-memory emulator for one test, accepting the API key ``"test-key"``."""
    # Imported here: this module loads in every pytest run of every project
    # that has the package installed, so it must stay cheap.
    from activatepro_async.emulator import Emulator

    return Emulator(api_keys=("test-key",))


@pytest.fixture
async def activatepro_client(activatepro_emulator: Emulator) -> AsyncIterator[AsyncClient]:
    """An ``AsyncClient`` wired to ``activatepro_emulator`` in-process (no socket)."""
    from activatepro_async import AsyncClient

    async with AsyncClient(
        api_key=activatepro_emulator.api_keys[0], transport=activatepro_emulator.transport()
    ) as client:
        yield client
