"""``ACTIVATEPRO_LOG=info|debug``: the SDK's log lines on stderr, without code (as ``OPENAI_LOG``).

Read once, when ``activatepro_async`` is imported: one handler on the
``activatepro_async`` logger, never a second one (a re-import or reload finds
it). Any other value is ignored with a ``RuntimeWarning`` that says what is
accepted. Without the variable nothing is configured: the SDK only logs, and
your ``logging`` setup decides what is shown.
"""

from __future__ import annotations

import logging
import os
import warnings

__all__ = ["LOGGER_NAME", "LOG_ENV", "configure_from_environment"]

LOG_ENV = "ACTIVATEPRO_LOG"
#: The one logger of the SDK: the client, the bulk engine and the Spark integration.
LOGGER_NAME = "activatepro_async"
_LEVELS = {"info": logging.INFO, "debug": logging.DEBUG}


class _EnvHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``ACTIVATEPRO_LOG`` adds: its class is how a second one is avoided."""


def configure_from_environment() -> None:
    value = os.environ.get(LOG_ENV, "").strip()
    if not value:
        return
    level = _LEVELS.get(value.lower())
    if level is None:
        shown = repr(value) if len(value) <= 20 else f"{value[:20]!r}..."
        warnings.warn(
            f"{LOG_ENV}={shown} is ignored: set it to info or debug",
            RuntimeWarning,
            stacklevel=2,
        )
        return
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if any(isinstance(handler, _EnvHandler) for handler in logger.handlers):
        return
    handler = _EnvHandler()  # stderr
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
