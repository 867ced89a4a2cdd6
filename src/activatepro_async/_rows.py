"""Tabular rows to users: the rules the ``activatepro`` command and Spark share.

A source of rows (a CSV or JSON Lines file, a DataFrame) has columns, and each
column becomes a wire key: its own name (``id``, ``email``, ``businessUnit``,
anything else a custom attribute), the key a rename gives it, or ``None``
(left out). :meth:`RowRules.keys` refuses, before any row is read, a rename of
a column the source lacks, two columns that become one key, a type for a key
no column becomes, and a source with no column for a required key (``id`` and
``email`` for an upsert, ``id`` for a delete).

Per row, :meth:`RowRules.user` renames (a row whose keys vary, as in JSON
Lines, is checked row by row), casts the typed values (``--type``), and
refuses what cannot be sent: no ``id`` or ``email``, one that is not a string,
a ``businessUnit`` that is not a string or null. A cell with no value is left
out (an upsert never clears what the row does not mention): the CSV reader
leaves empty cells out (CSV has no null), :func:`positional` leaves out
Spark's nulls; a JSON ``null`` is a value, and clears the attribute.

Messages say what to do in the adapter's own words (:class:`Spelling`):
``--map COLUMN=id`` for the command, ``mapping={'COLUMN': 'id'}`` for Spark.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from ._wire import date_to_wire, datetime_to_wire, decode_json, encode_json
from .errors import ApiError, ErrorCode

__all__ = [
    "TYPES",
    "Caster",
    "RowRules",
    "Spelling",
    "caster",
    "positional",
    "problem",
    "required_keys",
    "short_repr",
]

Caster = Callable[[Any], Any]


@attrs.frozen
class Spelling:
    """How an adapter's users write a rename, for the messages that say what to do.

    ``rename`` and ``drop`` are ``str.format`` templates of ``column`` (and ``key``).
    """

    #: The option that renames: ``--map``, ``mapping=``.
    option: str
    #: A rename: ``--map {column}={key}``.
    rename: str
    #: Leaving a column out: ``--map {column}=``.
    drop: str
    #: The option that types values: ``--type`` (Spark types its columns itself).
    types: str = "--type"


def required_keys(operation: str) -> tuple[str, ...]:
    """The keys a row needs: ``id`` and ``email`` to upsert, ``id`` to delete."""
    return ("id", "email") if operation == "upsert" else ("id",)


def problem(code: ErrorCode | int, details: str, pointer: str | None = None) -> ApiError:
    """An error found locally, shaped like the API's (its code and title)."""
    title = code.title if isinstance(code, ErrorCode) else "Unreadable Record"
    return ApiError(code=code, title=title, details=details, pointer=pointer)


# -- types (--type) -----------------------------------------------------------

_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_INT = re.compile(r"[+-]?[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _to_string(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    try:
        return encode_json(value).decode()
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{short_repr(value)} cannot be sent as text: {exc}") from None


def _to_integer(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not _INT.fullmatch(text):
            raise ValueError(f"{value!r} is not an integer")
        return int(text)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f"{value!r} is not an integer")


def _to_float(value: Any) -> Any:
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
        return number
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise ValueError(f"{value!r} is not a number")


def _to_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"{value!r} is not a boolean (true/false, yes/no, 1/0)")


# How the standard library words a value that is not in the form asked for;
# any other ValueError of strptime/fromisoformat is a value in the form that
# names no real day or time (29.02.2001, 31.04., hour 25).
_NOT_IN_FORM = ("time data", "unconverted data remains", "Invalid isoformat string")


def _not_parsed(value: str, exc: ValueError | None, what: str, wanted: str) -> ValueError:
    """Why ``value`` is no date: not in the form ``wanted``, or in it but no such day."""
    if exc is not None and not str(exc).startswith(_NOT_IN_FORM):
        return ValueError(f"{value!r} is no such {what} ({exc})")
    return ValueError(f"{value!r} is not a {what} in the form {wanted}")


def _date_caster(fmt: str | None) -> Caster:
    wanted = fmt or "YYYY-MM-DD"

    def cast(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a date")
        text = value.strip()
        error: ValueError | None = None
        try:
            if fmt is not None:
                return date_to_wire(dt.datetime.strptime(text, fmt).date())
            if _DATE.fullmatch(text):
                return date_to_wire(dt.date.fromisoformat(text))
        except ValueError as exc:
            error = exc
        raise _not_parsed(value, error, "date", wanted)

    return cast


# Python 3.10's fromisoformat reads only its own output: no "Z", a fraction of
# exactly 3 or 6 digits, "+01:00" but not "+0100". These forms are rewritten
# into that one, so every Python reads the same values as 3.11's does.
_ISO_DATETIME = re.compile(
    r"(?P<head>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?)(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>[zZ]|[+-]\d{2}(?::?\d{2})?)?"
)


def _fromisoformat(text: str) -> dt.datetime:
    if text[-1:] == "z":
        text = text[:-1] + "Z"  # no Python reads a lowercase "z"
    if sys.version_info < (3, 11):
        text = _as_python_310_reads_it(text)
    return dt.datetime.fromisoformat(text)


def _as_python_310_reads_it(text: str) -> str:
    match = _ISO_DATETIME.fullmatch(text)
    if match is None:
        return text  # a date alone, or what fromisoformat refuses anyway
    head, fraction, zone = match.group("head", "fraction", "zone")
    if fraction:
        head += "." + fraction[:6].ljust(6, "0")
    if zone in ("z", "Z"):
        zone = "+00:00"
    elif zone:
        digits = zone[1:].replace(":", "")
        zone = f"{zone[0]}{digits[:2]}:{digits[2:] or '00'}"
    return head + (zone or "")


def _datetime_caster(fmt: str | None) -> Caster:
    wanted = fmt or "ISO 8601 (2015-10-02T08:23:53Z)"

    def cast(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a date and time")
        text = value.strip()
        try:
            parsed = dt.datetime.strptime(text, fmt) if fmt is not None else _fromisoformat(text)
        except ValueError as exc:
            raise _not_parsed(value, exc, "date and time", wanted) from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ValueError(
                f"{value!r} has no time zone: the API stores UTC, so add one "
                "(Z or +01:00; %z in a format)"
            )
        return datetime_to_wire(parsed)

    return cast


def _to_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return decode_json(value)
    except ValueError as exc:
        raise ValueError(f"{short_repr(value)} is not JSON: {exc}") from None


_SIMPLE: dict[str, Caster] = {
    "string": _to_string,
    "integer": _to_integer,
    "float": _to_float,
    "boolean": _to_boolean,
    "json": _to_json,
}
_ALIASES = {"str": "string", "int": "integer", "number": "float", "bool": "boolean"}
#: The type names a value can be cast to (``date`` and ``datetime`` also take ``:FORMAT``).
TYPES = ("string", "integer", "float", "boolean", "date", "datetime", "json")


def caster(spec: str) -> Caster:
    """The function that casts a value to the type ``spec`` names (``integer``, ``date:%d.%m.%Y``).

    It raises ``ValueError`` saying why for a value it cannot cast; so does
    this function for a ``spec`` that names no type.
    """
    name, _, fmt = spec.partition(":")
    name = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if name in _SIMPLE and not fmt:
        return _SIMPLE[name]
    if name == "date":
        return _date_caster(fmt or None)
    if name == "datetime":
        return _datetime_caster(fmt or None)
    if name in _SIMPLE:
        raise ValueError(f"type {name} takes no format (only date:FORMAT and datetime:FORMAT do)")
    raise ValueError(f"unknown type {spec!r}: use one of {', '.join(TYPES)}")


# -- the rules ------------------------------------------------------------------


class RowRules:
    """How the rows of one source become users (or ids, for a delete).

    ``renames`` maps a column to its key, or to ``None`` to leave it out;
    ``casters`` maps a key (after renames) to the function that casts its
    values; ``required`` are the keys every row needs.

    >>> spelling = Spelling("--map", "--map {column}={key}", "--map {column}=")
    >>> rules = RowRules({"mail": "email"}, {"n": caster("integer")}, spelling=spelling)
    >>> rules.user({"id": "1", "mail": "a@example.com", "n": "3"})
    ({'id': '1', 'email': 'a@example.com', 'n': 3}, [])
    """

    def __init__(
        self,
        renames: Mapping[str, str | None] | None = None,
        casters: Mapping[str, Caster] | None = None,
        *,
        required: Sequence[str] = ("id", "email"),
        spelling: Spelling,
    ) -> None:
        self.renames = dict(renames or {})
        self.casters = dict(casters or {})
        self.required = tuple(required)
        self.spelling = spelling

    # -- the columns, before any row ---------------------------------------------

    def keys(self, columns: Sequence[str], source: str) -> list[str | None]:
        """The key of each of ``columns`` (``None``: left out); ``ValueError`` when they do not fit.

        ``source`` names the source in the messages (``users.csv``, ``the DataFrame``).
        """
        spelling = self.spelling
        # Quoted, so that a header split at the wrong delimiter shows as one column.
        listed = ", ".join(map(repr, columns))
        unknown = [column for column in self.renames if column not in columns]
        if unknown:
            names = ", ".join(map(repr, unknown))
            which = "column" if len(unknown) == 1 else "columns"
            raise ValueError(
                f"{spelling.option} names {which} {names}, which {source} does not have "
                f"(its columns: {listed})"
            )
        keys: list[str | None] = []
        seen: dict[str, str] = {}
        for column in columns:
            key = self.renames.get(column, column)
            if key is not None and (not isinstance(key, str) or not key):
                raise ValueError(
                    f"{spelling.option} gives column {column!r} the key {key!r}: name a key, "
                    f"or leave the column out with {spelling.drop.format(column=column)}"
                )
            if key is not None and key in seen:
                raise ValueError(
                    f"columns {seen[key]!r} and {column!r} of {source} both become {key!r}: "
                    f"rename one with {spelling.rename.format(column=column, key='NAME')}, "
                    f"or leave it out with {spelling.drop.format(column=column)}"
                )
            if key is not None:
                seen[key] = column
            keys.append(key)
        for key in self.casters:
            if key not in seen and key not in self.required:  # those get the message below
                raise ValueError(
                    f"{spelling.types} names {key!r}, which no column of {source} becomes "
                    f"(its columns: {listed})"
                )
        for key in self.required:
            if key in seen:
                continue
            give = spelling.rename.format(column="COLUMN", key=key)
            if key in columns:  # there is one, but the mapping took it away
                new = self.renames[key]
                what = (
                    f"{spelling.drop.format(column=key)} leaves out column {key!r}"
                    if new is None
                    else f"{spelling.rename.format(column=key, key=new)} makes column "
                    f"{key!r} {new!r}"
                )
                raise ValueError(
                    f"{what}, but every user needs {key!r}: keep that column, or name "
                    f"the one that holds {key!r} with {give}"
                )
            raise ValueError(
                f"{source} has no {key!r} column (its columns: {listed}): name the one "
                f"that holds it with {give}"
            )
        return keys

    # -- one row --------------------------------------------------------------------

    def _renamed(self, row: dict[str, Any]) -> tuple[dict[str, Any], list[ApiError]]:
        if not self.renames:
            # A copy when values will be cast: the row stays as read, for rejects.
            return (dict(row) if self.casters else row), []
        out: dict[str, Any] = {}
        problems: list[ApiError] = []
        for column, value in row.items():
            key = self.renames.get(column, column)
            if key is None:
                continue
            if key in out:
                problems.append(
                    problem(
                        ErrorCode.INVALID_FIELD, f"two keys of the row become {key!r}", "/" + key
                    )
                )
            out[key] = value
        return out, problems

    def _cast(self, out: dict[str, Any], keys: Iterable[str], problems: list[ApiError]) -> None:
        for key in keys:
            value = out.get(key)
            if value is None:
                continue
            try:
                out[key] = self.casters[key](value)
            except ValueError as exc:
                problems.append(problem(ErrorCode.INVALID_ATTRIBUTE_TYPE, str(exc), "/" + key))

    def user(self, row: dict[str, Any]) -> tuple[dict[str, Any], list[ApiError]]:
        """The wire form of a row, and the problems that keep it from being sent."""
        out, problems = self._renamed(row)
        self._cast(out, self.casters, problems)
        self._check_required(out, problems)
        if "businessUnit" in out and not isinstance(out["businessUnit"], (str, type(None))):
            problems.append(
                problem(
                    ErrorCode.INVALID_BUSINESS_UNIT,
                    "businessUnit must be a string",
                    "/businessUnit",
                )
            )
        return out, problems

    def user_id(self, row: dict[str, Any]) -> tuple[str, list[ApiError]]:
        """The id of a row to delete, and the problems that keep it from being sent."""
        out, problems = self._renamed(row)
        self._cast(out, ("id",) if "id" in self.casters else (), problems)
        self._check_required(out, problems)
        value = out.get("id")
        return (value if isinstance(value, str) else ""), problems

    def _check_required(self, out: dict[str, Any], problems: list[ApiError]) -> None:
        for key in self.required:
            value = out.get(key)
            if value is None or value == "":
                problems.append(
                    problem(ErrorCode.INVALID_FIELD, f"the row has no {key}", "/" + key)
                )
            elif not isinstance(value, str):
                problems.append(
                    problem(
                        ErrorCode.INVALID_FIELD,
                        f"{key} must be a string, got {short_repr(value)} "
                        f"({self.spelling.types} {key}=string sends it as text)",
                        "/" + key,
                    )
                )


def positional(
    keys: Sequence[str], casters: Mapping[str, Caster]
) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """Rows of values in the order of ``keys`` (a Spark ``Row``) to users, fast.

    A null value is left out (an upsert never clears what a row does not
    hold); the values of the keys in ``casters`` are cast.
    """
    plain = [(i, key) for i, key in enumerate(keys) if key not in casters]
    typed = [(i, key, casters[key]) for i, key in enumerate(keys) if key in casters]

    def convert(row: Sequence[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, key in plain:
            value = row[i]
            if value is not None:
                out[key] = value
        for i, key, cast in typed:
            value = row[i]
            if value is not None:
                out[key] = cast(value)
        return out

    return convert


def short_repr(value: Any) -> str:
    """``repr(value)``, cut to 60 characters for a message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
