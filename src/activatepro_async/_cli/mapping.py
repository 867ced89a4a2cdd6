"""From a source row to a user in wire form: ``--map``, ``--type`` and the local checks.

CSV columns become wire keys as they are named (``id``, ``email``,
``businessUnit``, anything else is a custom attribute); ``--map col=key``
renames a column (``--map col=`` leaves it out). CSV cells are strings:
``--type key=TYPE`` turns them into what the attribute holds (the key is the
name after ``--map``). JSON Lines values keep their JSON types; ``--type``
converts only the strings among them (and ``string`` turns numbers into text).

Checks done for every row, since nothing sensible can be sent otherwise: an
``id`` that is a non-empty string, an ``email`` that is a string, a
``businessUnit`` that is a string or null, values that ``--type`` can convert.
``--dry-run`` adds :func:`api_checks`, a local approximation of the API's
rules; the API stays the authority on a real run.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..errors import ApiError, ErrorCode

__all__ = [
    "TYPES",
    "ColumnPlan",
    "api_checks",
    "parse_maps",
    "parse_types",
    "problem",
    "read_problem",
]

Caster = Callable[[Any], Any]

#: The wire keys that are fields of a user, not custom attributes.
RESERVED = ("id", "email", "businessUnit")

_TRUE = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "off"})
_INT = re.compile(r"[+-]?[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_BUSINESS_UNIT = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Deliberately looser than RFC 5322: a dry run flags what is surely wrong.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
_MAX_STRING_BYTES = 16 * 1024
_MAX_USER_BYTES = 1024 * 1024


def problem(code: ErrorCode | int, details: str, pointer: str | None = None) -> ApiError:
    """An error found locally, shaped like the API's (its code and title)."""
    title = code.title if isinstance(code, ErrorCode) else "Unreadable Record"
    return ApiError(code=code, title=title, details=details, pointer=pointer)


def read_problem(details: str) -> ApiError:
    """A record the reader could not read (code 0: the API has no code for it)."""
    return ApiError(code=0, title="Unreadable Record", details=details)


# -- --type -------------------------------------------------------------------


def _to_string(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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


def _date_caster(fmt: str | None) -> Caster:
    def cast(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a date")
        text = value.strip()
        try:
            if fmt is not None:
                return dt.datetime.strptime(text, fmt).date().isoformat()
            if _DATE.fullmatch(text):
                return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            pass
        wanted = fmt or "YYYY-MM-DD"
        raise ValueError(f"{value!r} is not a date in the form {wanted}")

    return cast


def _datetime_caster(fmt: str | None) -> Caster:
    def cast(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a date and time")
        text = value.strip()
        try:
            if fmt is not None:
                parsed = dt.datetime.strptime(text, fmt)
            else:
                # Python 3.10 reads no "Z" in fromisoformat.
                parsed = dt.datetime.fromisoformat(
                    text[:-1] + "+00:00" if text[-1:] in "zZ" and text else text
                )
        except ValueError:
            wanted = fmt or "ISO 8601 (2015-10-02T08:23:53Z)"
            raise ValueError(f"{value!r} is not a date and time in the form {wanted}") from None
        if parsed.tzinfo is None or parsed.utcoffset() is None:
            raise ValueError(
                f"{value!r} has no time zone: the API stores UTC, so add one "
                "(Z or +01:00; %z in a format)"
            )
        utc = parsed.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return utc.isoformat(timespec="seconds" if not utc.microsecond else "microseconds") + "Z"

    return cast


def _to_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value, parse_constant=_no_constant)
    except ValueError as exc:
        raise ValueError(f"{_short(value)} is not JSON: {exc}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_SIMPLE: dict[str, Caster] = {
    "string": _to_string,
    "integer": _to_integer,
    "float": _to_float,
    "boolean": _to_boolean,
    "json": _to_json,
}
_ALIASES = {"str": "string", "int": "integer", "number": "float", "bool": "boolean"}
#: The type names ``--type`` takes (``date`` and ``datetime`` also take ``:FORMAT``).
TYPES = ("string", "integer", "float", "boolean", "date", "datetime", "json")


def _caster(spec: str) -> Caster:
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


def _pairs(values: Iterable[str], option: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        left, sep, right = value.partition("=")
        if not sep or not left.strip():
            raise ValueError(f"{option} takes NAME=VALUE, e.g. {option} {example}; got {value!r}")
        pairs.append((left.strip(), right.strip()))
    return pairs


def parse_maps(values: Iterable[str]) -> dict[str, str | None]:
    """``--map col=key`` options as ``{column: key}``; an empty key leaves the column out."""
    renames: dict[str, str | None] = {}
    for column, key in _pairs(values, "--map", "customer_no=id"):
        if column in renames:
            raise ValueError(f"--map names column {column!r} twice")
        renames[column] = key or None
    return renames


def parse_types(values: Iterable[str]) -> dict[str, str]:
    """``--type key=TYPE`` options as ``{key: type spec}`` (checked; ValueError says why)."""
    types: dict[str, str] = {}
    for key, spec in _pairs(values, "--type", "birthday=date"):
        if not spec:
            raise ValueError(f"--type {key}= needs a type: one of {', '.join(TYPES)}")
        _caster(spec)
        types[key] = spec
    return types


# -- the plan -------------------------------------------------------------------


class ColumnPlan:
    """How source rows become users (or ids, for a delete).

    >>> plan = ColumnPlan({"mail": "email"}, {"birthday": "date"})
    >>> plan.user({"id": "1", "mail": "a@example.com", "birthday": "1990-01-02"})
    ({'id': '1', 'email': 'a@example.com', 'birthday': '1990-01-02'}, [])
    """

    def __init__(
        self,
        renames: Mapping[str, str | None] | None = None,
        types: Mapping[str, str] | None = None,
        *,
        operation: str = "upsert",
    ) -> None:
        self.renames = dict(renames or {})
        self.type_specs = dict(types or {})
        self.casters = {key: _caster(spec) for key, spec in self.type_specs.items()}
        self.operation = operation
        self.required = ("id", "email") if operation == "upsert" else ("id",)

    def fingerprint(self) -> dict[str, Any]:
        """What the journal compares between runs."""
        return {"map": self.renames, "types": self.type_specs, "operation": self.operation}

    def check_header(self, header: list[str], name: str) -> None:
        """Refuse, before any row is sent, a CSV header the options do not fit."""
        columns = ", ".join(header)
        for column in self.renames:
            if column not in header:
                raise ValueError(
                    f"--map names column {column!r}, which {name} does not have "
                    f"(its columns: {columns})"
                )
        keys: dict[str, str] = {}
        for column in header:
            key = self.renames.get(column, column)
            if key is None:
                continue
            if key in keys:
                raise ValueError(
                    f"columns {keys[key]!r} and {column!r} of {name} both become {key!r}: "
                    "rename one with --map COLUMN=NAME, or leave it out with --map COLUMN="
                )
            keys[key] = column
        if self.operation == "upsert":
            for key in self.type_specs:
                if key not in keys:
                    raise ValueError(
                        f"--type names {key!r}, which no column of {name} becomes "
                        f"(its columns: {columns})"
                    )
        for key in self.required:
            if key not in keys:
                raise ValueError(
                    f"{name} has no {key!r} column (its columns: {columns}): "
                    f"name the one that holds it with --map COLUMN={key}"
                )

    def _renamed(self, row: dict[str, Any]) -> tuple[dict[str, Any], list[ApiError]]:
        if not self.renames:
            # A copy when --type will change values: the row stays as read, for rejects.
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

    def user(self, row: dict[str, Any]) -> tuple[dict[str, Any], list[ApiError]]:
        """The wire form of a row, and the problems that keep it from being sent."""
        out, problems = self._renamed(row)
        for key, cast in self.casters.items():
            value = out.get(key)
            if value is None:
                continue
            try:
                out[key] = cast(value)
            except ValueError as exc:
                problems.append(problem(ErrorCode.INVALID_ATTRIBUTE_TYPE, str(exc), "/" + key))
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
        if "id" in self.casters and out.get("id") is not None:
            try:
                out["id"] = self.casters["id"](out["id"])
            except ValueError as exc:
                problems.append(problem(ErrorCode.INVALID_ATTRIBUTE_TYPE, str(exc), "/id"))
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
                        f"{key} must be a string, got {_short(value)} "
                        f"(--type {key}=string sends it as text)",
                        "/" + key,
                    )
                )


def api_checks(user: dict[str, Any]) -> list[ApiError]:
    """What ``--dry-run`` checks beyond :meth:`ColumnPlan.user`: the API's rules, roughly.

    Email shape, business unit format, string and user sizes. The account's
    attribute schema and email uniqueness live on the server: a dry run cannot
    check them.
    """
    problems: list[ApiError] = []
    email = user.get("email")
    if isinstance(email, str) and (not email.isascii() or not _EMAIL.fullmatch(email)):
        problems.append(
            problem(ErrorCode.INVALID_EMAIL, f"{_short(email)} is not an email address", "/email")
        )
    bu = user.get("businessUnit")
    if isinstance(bu, str) and not _BUSINESS_UNIT.fullmatch(bu):
        problems.append(
            problem(
                ErrorCode.INVALID_BUSINESS_UNIT,
                f"{_short(bu)} is not 1 to 64 letters, digits, _ or -",
                "/businessUnit",
            )
        )
    for key, value in user.items():
        if (
            isinstance(value, str)
            and len(value) > _MAX_STRING_BYTES // 4
            and len(value.encode("utf-8", "surrogatepass")) > _MAX_STRING_BYTES
        ):
            problems.append(problem(ErrorCode.INVALID_FIELD, f"{key} is over 16 KB", "/" + key))
    size = len(
        json.dumps(user, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    )
    if size > _MAX_USER_BYTES:
        problems.append(
            problem(ErrorCode.INVALID_FIELD, f"the user is {size} bytes as JSON, over 1 MiB")
        )
    return problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
