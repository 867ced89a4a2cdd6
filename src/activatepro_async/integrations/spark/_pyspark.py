"""PySpark, imported in one place for the package, so that without it the import says what to do."""

from __future__ import annotations

#: What to install to use the Spark integration, as errors without PySpark say it.
INSTALL_HINT = "pip install 'activatepro-async[spark]'"

try:
    from pyspark import TaskContext, cloudpickle
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
except ModuleNotFoundError as _exc:  # pragma: no cover - depends on the environment
    raise ModuleNotFoundError(
        f"activatepro_async.integrations.spark needs pyspark: {INSTALL_HINT}", name=_exc.name
    ) from None

__all__ = ["INSTALL_HINT", "F", "T", "TaskContext", "cloudpickle"]
