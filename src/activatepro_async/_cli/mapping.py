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

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .._rows import TYPES, RowRules, Spelling, caster, problem, required_keys
from .._rows import short_repr as _short
from .._wire import BUSINESS_UNIT, MAX_STRING_BYTES, MAX_USER_BYTES, encode_json
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

#: The command's words for a rename: ``--map customer_no=id``, ``--map internal=``.
SPELLING = Spelling("--map", "--map {column}={key}", "--map {column}=")

# Deliberately looser than RFC 5322: a dry run flags what is surely wrong.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")


def read_problem(details: str) -> ApiError:
    """A record the reader could not read (code 0: the API has no code for it)."""
    return ApiError(code=0, title="Unreadable Record", details=details)


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
        caster(spec)
        types[key] = spec
    return types


class ColumnPlan(RowRules):
    """The row rules of one run of the command, from its ``--map`` and ``--type`` options.

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
        self.type_specs = dict(types or {})
        self.operation = operation
        # A delete sends ids only: the types of other keys do not apply to it.
        casters = {
            key: caster(spec)
            for key, spec in self.type_specs.items()
            if operation == "upsert" or key == "id"
        }
        super().__init__(renames, casters, required=required_keys(operation), spelling=SPELLING)

    def fingerprint(self) -> dict[str, Any]:
        """What the journal compares between runs."""
        return {"map": self.renames, "types": self.type_specs, "operation": self.operation}

    def check_header(self, header: list[str], name: str) -> None:
        """Refuse, before any row is sent, a CSV header the options do not fit."""
        self.keys(header, name)


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
    if isinstance(bu, str) and not BUSINESS_UNIT.fullmatch(bu):
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
            and len(value) > MAX_STRING_BYTES // 4
            and len(value.encode("utf-8", "surrogatepass")) > MAX_STRING_BYTES
        ):
            problems.append(problem(ErrorCode.INVALID_FIELD, f"{key} is over 16 KB", "/" + key))
    try:
        size = len(encode_json(user))
    except (ValueError, TypeError) as exc:  # a lone surrogate, say: a real run refuses it too
        problems.append(problem(ErrorCode.INVALID_JSON, f"the user cannot be sent as JSON: {exc}"))
        return problems
    if size > MAX_USER_BYTES:
        problems.append(
            problem(ErrorCode.INVALID_FIELD, f"the user is {size} bytes as JSON, over 1 MiB")
        )
    return problems
