"""The wire at the bottom: the API's limits, the wire form of a value, the JSON encoding.

Each is defined once here, and everything above (the models' converter, the
client, the bulk engine, the CLI, Spark, the emulator) calls it: nothing else
formats a date or refuses a NaN. This module imports nothing of the package.

- Values: a ``date`` is ``"1982-08-30"``, an aware ``datetime`` is UTC with
  ``Z`` (``"2015-10-02T08:23:53Z"``, a fraction only when there is one), a
  naive ``datetime`` is refused (the API stores UTC: say which zone), a naive
  ``time`` is ``"08:30:00"``, a ``UUID`` its text, an ``Enum`` its value, a
  dataclass an object of its public fields; dicts and lists are converted inside, by
  either JSON encoder, with or without ``convert=``; NaN and the infinities are
  refused when encoding.
- JSON: compact UTF-8; orjson when installed (about ten times faster on bulk
  bodies), else the standard library, with the same meaning: orjson alone would
  write NaN as ``null`` (which clears an attribute), so a body with ``null`` in
  it is checked, and what orjson refuses (integers over 64 bits, non-string
  keys) goes to the standard library, which decides. Decoding
  (:func:`decode_json`) refuses ``NaN``/``Infinity`` the same way everywhere
  we read JSON (a JSON Lines file, a ``--type json`` cell, the emulator's bodies).
- Converting while encoding (``convert=True``, the bulk hot path): the encoder
  calls :func:`value_to_wire` for each date, datetime, mapping or list that is
  not its own wire form, as it meets it, so the caller needs no pass of its own
  over the values; the bytes are those of converting first, or it raises.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import functools
import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

try:  # optional: the [fast] extra
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "BUSINESS_UNIT",
    "DEFAULT_MAX_CHUNK_BYTES",
    "MAX_BATCH_ITEMS",
    "MAX_BODY_BYTES",
    "MAX_STRING_BYTES",
    "MAX_USER_BYTES",
    "PLAIN_TYPES",
    "attributes_to_wire",
    "date_to_wire",
    "datetime_to_wire",
    "decode_json",
    "encode_json",
    "encode_json_telling",
    "has_non_finite",
    "id_problem",
    "item_encoder",
    "micros_to_wire",
    "value_to_wire",
]

# -- the API's limits ---------------------------------------------------------

#: The API takes at most this many items (``updated`` + ``deleted``) per batch.
MAX_BATCH_ITEMS = 1000
#: The API refuses a user whose compact JSON is larger than this (1 MiB).
MAX_USER_BYTES = 1024 * 1024
#: The longest string attribute the API stores (16 KiB of UTF-8).
MAX_STRING_BYTES = 16 * 1024
#: The largest request body the emulator reads by default (32 MiB, DECISIONS.md).
MAX_BODY_BYTES = 32 * 1024 * 1024
#: The SDK's default cap on one batch body: half of MAX_BODY_BYTES.
DEFAULT_MAX_CHUNK_BYTES = 16 * 1024 * 1024
#: A business unit: 1 to 64 letters, digits, ``_`` or ``-``.
BUSINESS_UNIT = re.compile(r"[A-Za-z0-9_-]{1,64}")


def id_problem(uid: object) -> str:
    """Why a user with this ``id`` (``None``: none at all) is refused before sending:
    one wording for the dict path and the Arrow path, so their rejects agree."""
    if uid is None:
        return "the user has no id"
    return f"the user has an id that is not a non-empty string: {uid!r}"


def too_large_problem(size: int) -> str:
    """Why a user of ``size`` bytes as JSON is refused before sending (both paths)."""
    return (
        f"the user is {size} bytes as JSON; the API takes at most {MAX_USER_BYTES} (1 MiB) per user"
    )


def unfit_problem(size: int, max_chunk_bytes: int) -> str:
    """Why a user of ``size`` bytes fits in no chunk of ``max_chunk_bytes`` (both paths)."""
    return (
        f"the user is {size} bytes as JSON, more than fits in "
        f"max_chunk_bytes={max_chunk_bytes}: raise max_chunk_bytes"
    )


# -- values -------------------------------------------------------------------

#: The value types that are their own wire form (the bulk hot path tests this).
PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})

_EPOCH = dt.datetime(1970, 1, 1)  # naive UTC


def _utc_naive_to_wire(value: dt.datetime) -> str:
    # isoformat writes the fraction only when it is not zero: the API's form.
    return value.isoformat() + "Z"


def datetime_to_wire(value: dt.datetime) -> str:
    """An aware datetime as the API's UTC string; a naive one is a ``ValueError``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(
            f"naive datetime {value.isoformat()!r}: the API stores UTC, so give it a "
            "time zone (e.g. datetime.now(timezone.utc) or value.replace(tzinfo=timezone.utc))"
        )
    return _utc_naive_to_wire(value.astimezone(dt.timezone.utc).replace(tzinfo=None))


def micros_to_wire(micros: int) -> str:
    """Microseconds since the Unix epoch (UTC), e.g. a Spark timestamp, as the API's string."""
    return _utc_naive_to_wire(_EPOCH + dt.timedelta(microseconds=micros))


def date_to_wire(value: dt.date) -> str:
    """A date as ``"1982-08-30"``."""
    return value.isoformat()


def value_to_wire(value: Any) -> Any:
    """A value as JSON can carry it: dates become strings, inside dicts and lists too."""
    # datetime is a subclass of date: test it first.
    if isinstance(value, dt.datetime):
        return datetime_to_wire(value)
    if isinstance(value, dt.date):
        return date_to_wire(value)
    if isinstance(value, dt.time) and value.tzinfo is None:
        # A time of day, "08:30:00": what orjson wrote for it before dates got
        # their wire form on both encoders (an aware one has no such form).
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: value_to_wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [value_to_wire(v) for v in value]
    # What orjson writes for these, both encoders now (docs/decisions.md, "One wire
    # form ... whichever encoder"): the text of a UUID, an enum's value, a
    # dataclass's public fields.
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value_to_wire(value.value)
    if _is_dataclass(value):
        return {k: value_to_wire(v) for k, v in _public_fields(value).items()}
    return value


def _is_dataclass(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _public_fields(value: Any) -> dict[str, Any]:
    """A dataclass instance's fields, less those named ``_...`` (orjson leaves them out)."""
    return {
        f.name: getattr(value, f.name)
        for f in dataclasses.fields(value)
        if not f.name.startswith("_")
    }


def attributes_to_wire(attributes: Mapping[str, Any], out: dict[str, Any]) -> None:
    """Add ``attributes`` to the wire object ``out``, each value in its wire form."""
    plain = PLAIN_TYPES
    for key, value in attributes.items():
        # Most values are plain: skip the recursive call for them (bulk hot path).
        out[key] = value if type(value) in plain else value_to_wire(value)


# -- JSON -----------------------------------------------------------------------

# `b"null" in body`, faster: re's literal search took 139 µs per 1000-user chunk
# with orjson's encoding, the `in` operator 175 (its skip table suits JSON badly).
_find_null = re.compile(rb"null").search
# Where orjson's text of a float may not be the standard library's: a negative
# exponent (orjson "1e-7", "0.00001"; the standard library "1e-07", "1e-05").
# Strings and every other value are written alike (tests/test_wire.py).
_find_encoder_dependent = re.compile(rb"[0-9]e-|0\.0000").search


def has_non_finite(value: Any) -> bool:
    """NaN or an infinity anywhere inside (JSON has no such numbers)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_non_finite(v) for v in value)
    if isinstance(value, enum.Enum):  # orjson writes a NaN inside these as null too
        return has_non_finite(value.value)
    if _is_dataclass(value):
        return has_non_finite(_public_fields(value))
    return False


def _non_finite_error() -> ValueError:
    return ValueError(
        "NaN and infinity are not JSON numbers: send None to clear the attribute, "
        "or leave the key out"
    )


def _convert(value: Any) -> Any:
    """The encoders' ``default``: what :func:`value_to_wire` makes of a value they met.

    A value it leaves as it is (an aware ``time``, a ``str`` subclass, a set) is one
    the encoder cannot write as converting first would: a ``TypeError``, and the
    caller converts first. A naive datetime raises its ``ValueError``.
    """
    wired = value_to_wire(value)
    if wired is value:
        raise TypeError(f"{type(value).__name__} is not converted while encoding")
    return wired


# Dataclasses go to _convert (value_to_wire's form) on every orjson call: orjson's
# own reads ``__dict__``, attributes that are not fields included.
_PLAIN_OPTIONS = (
    _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS
    if _orjson is not None
    else 0
)
_CONVERT_OPTIONS = _PLAIN_OPTIONS | _orjson.OPT_PASSTHROUGH_SUBCLASS if _orjson is not None else 0

if _orjson is not None:
    # Dates and subclasses (of dict, list, str, int) go to _convert, never to
    # orjson's own forms: orjson writes a naive datetime without a zone and
    # reads a dict subclass's storage, not its items().
    _convert_dumps: Callable[[Any], bytes] = functools.partial(
        _orjson.dumps,
        default=_convert,
        option=_CONVERT_OPTIONS,
    )
    # Without convert=, dates still get the wire form and a naive datetime is
    # still refused, as the standard library's encoder does (its default is
    # _convert too): orjson's own forms would differ ("+00:00", no zone).
    _plain_dumps: Callable[[Any], bytes] = functools.partial(
        _orjson.dumps, default=_convert, option=_PLAIN_OPTIONS
    )


def _stdlib_encode(value: Any, sort_keys: bool = False) -> bytes:
    try:
        text = json.dumps(
            value,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_convert,
            sort_keys=sort_keys,
        )
    except ValueError:
        if has_non_finite(value):
            raise _non_finite_error() from None
        raise
    return text.encode()


def encode_json_telling(
    value: Any, *, convert: bool = False, sort_keys: bool = False
) -> tuple[bytes, bool]:
    """:func:`encode_json`, and whether orjson made the bytes (so it may take each part too).

    ``convert``: ``value`` may hold values not yet in their wire form (dates,
    mappings); they are converted as met. Whatever orjson refuses then raises
    (``TypeError``), and the caller converts first: the standard library is
    not tried on a whole that may hold a naive datetime in every part.
    ``sort_keys`` as for :func:`encode_json`.
    """
    if _orjson is not None:
        try:
            if sort_keys:
                body: bytes = _orjson.dumps(
                    value,
                    default=_convert,
                    option=_orjson.OPT_SORT_KEYS
                    | (_CONVERT_OPTIONS if convert else _PLAIN_OPTIONS),
                )
            else:
                body = _convert_dumps(value) if convert else _plain_dumps(value)
        except TypeError:  # orjson.JSONEncodeError: let the standard library decide
            if convert:
                raise
        else:
            # "null" is in every body that had a non-finite float; the walk is
            # paid only then.
            if _find_null(body) is not None and has_non_finite(value):
                raise _non_finite_error()
            if not sort_keys or _find_encoder_dependent(body) is None:
                return body, True
            # Sorted keys promise one text per value, whichever encoder is
            # installed (the sync state hashes it): the standard library's floats.
    return _stdlib_encode(value, sort_keys), False


def encode_json(value: Any, *, sort_keys: bool = False) -> bytes:
    """Compact UTF-8 JSON of ``value``; ``ValueError``/``TypeError`` for what JSON cannot carry.

    Dates and datetimes in it are written in their wire form
    (:func:`value_to_wire`; a naive datetime is a ``ValueError``), by either encoder.

    ``sort_keys`` sorts the keys of every object inside: one value, one text,
    whatever the order its dicts were built in and whether orjson is installed
    (the sync state hashes it; a float is written as ``repr`` writes it).
    """
    return encode_json_telling(value, sort_keys=sort_keys)[0]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# The standard library would read NaN, Infinity and -Infinity, which are not JSON.
_strict_decoder = json.JSONDecoder(parse_constant=_refuse_constant)


def decode_json(text: str) -> Any:
    """One JSON document; ``ValueError`` (a ``JSONDecodeError`` for syntax) when it is not.

    ``NaN`` and the infinities are refused ("NaN is not a JSON number"), as
    :func:`encode_json` refuses to write them.
    """
    return _strict_decoder.decode(text)


def item_encoder(trusted: bool, *, convert: bool = False) -> Callable[[Any], bytes]:
    """The encoder for the parts of a whole that :func:`encode_json_telling` took with orjson.

    ``trusted`` (orjson made the whole, and it held no NaN) means orjson takes
    each part as it is, without the checks; ``convert`` as the whole was made.
    """
    if trusted and _orjson is not None:
        return _convert_dumps if convert else _plain_dumps
    if convert:  # the whole was the standard library's (no orjson here)
        return _stdlib_encode
    return encode_json
