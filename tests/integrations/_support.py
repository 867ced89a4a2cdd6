"""What the Spark tests share: the skip when Spark cannot run, and a served emulator."""

from __future__ import annotations

import os
import shutil

import pytest

# The served emulator (and its key) is the suite's: the CLI's tests use it too.
from ..helpers import API_KEY, ServedEmulator

__all__ = ["API_KEY", "ServedEmulator", "require_spark"]


def require_spark() -> None:
    """Skip the calling test module when pyspark or java is missing (CI has both)."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs java (17+)", allow_module_level=True)
