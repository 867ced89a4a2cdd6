"""The chaos suite's settings (size, seed) and its one-line reports.

``ACTIVATEPRO_CHAOS_USERS`` sets how many users a run sends (the CI size by
default; the ``delete_many`` and ``wait=True`` runs send a quarter of it),
``ACTIVATEPRO_CHAOS_SEED`` replays a run (random by default). Each
run's figures are printed in pytest's terminal summary, with or without ``-s``.
"""

from __future__ import annotations

import os
import random

import pytest

from .scenario import ChaosSettings

#: The issue's size, also the CI size: the six runs take about a minute on two cores.
DEFAULT_USERS = 200_000


def _env_int(name: str, default: int | None) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise pytest.UsageError(f"{name} must be an integer, got {value!r}") from None


@pytest.fixture(scope="session")
def chaos_seed() -> int:
    """One seed for the session's chaos runs, so one variable replays them all."""
    seed = _env_int("ACTIVATEPRO_CHAOS_SEED", None)
    return random.SystemRandom().randrange(2**32) if seed is None else seed


@pytest.fixture
def chaos(chaos_seed: int, record_property: pytest.RecordProperty) -> ChaosSettings:
    """This run's settings; the seed is recorded (junit XML) and in every failure message."""
    users = _env_int("ACTIVATEPRO_CHAOS_USERS", DEFAULT_USERS)
    if users is None or users < 8:
        raise pytest.UsageError("ACTIVATEPRO_CHAOS_USERS must be 8 or more")
    seed = chaos_seed
    record_property("chaos_seed", seed)
    record_property("chaos_users", users)
    # Each run's line travels in its test's report, so the summary has it under
    # pytest-xdist too (the run happens in a worker; only reports reach the summary).
    return ChaosSettings(
        users=users, seed=seed, report=lambda line: record_property("chaos_report", line)
    )
