"""JSON in and out of the emulator: orjson when installed, else the standard library.

orjson is not a dependency; it only makes a busy emulator faster. Both paths
accept and refuse the same documents: strict UTF-8 (no byte order mark), no
``NaN``/``Infinity``, no lone surrogates (``"\\ud800"``), and a body nested
deeper than the parser allows is refused as invalid JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .._wire import decode_json

__all__ = ["JSONError", "dumps", "loads"]


class JSONError(ValueError):
    """The bytes are not one valid JSON document; the message says why."""


_std_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
# A "\uD800"-style escape may be a lone surrogate, which is not a Unicode
# character; only bodies holding one pay for the full check.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


def _std_loads(data: bytes) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONError(f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = decode_json(text)
    except RecursionError:
        raise JSONError("the body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, NaN, and ints over the digit limit
        raise JSONError(str(exc)) from None
    if _SURROGATE_ESCAPE.search(text) is not None:
        try:
            _std_encoder.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            raise JSONError("the body holds a lone surrogate escape") from None
    return value


def _std_dumps(value: Any) -> bytes:
    return _std_encoder.encode(value).encode("utf-8")


try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    loads = _std_loads
    dumps = _std_dumps
else:

    def loads(data: bytes) -> Any:
        """Parse one JSON document from UTF-8 bytes; raise :class:`JSONError`."""
        try:
            return orjson.loads(data)
        except RecursionError:
            raise JSONError("the body is nested too deeply") from None
        except orjson.JSONDecodeError as exc:
            raise JSONError(str(exc)) from None

    def dumps(value: Any) -> bytes:
        """Encode a value as compact UTF-8 JSON."""
        return orjson.dumps(value)
