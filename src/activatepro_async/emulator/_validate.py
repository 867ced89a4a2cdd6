"""Validation of one user object, as the API does before it accepts a write.

This is the hot path of a batch: one dict lookup per attribute, a type check
per attribute type through a dispatch table, precompiled regexes, and no
exception raised for a valid (or even an invalid) value.

A problem is a ``(code, details, pointer)`` tuple; the app turns it into the
error object of the wire.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Callable, Mapping
from typing import Any

# The API's limits are defined once, in _wire; re-exported from here for the package.
from .._wire import BUSINESS_UNIT, MAX_STRING_BYTES, MAX_USER_BYTES

__all__ = [
    "DEFAULT_ATTRIBUTES",
    "MAX_OBJECTS_PER_USER",
    "MAX_STRING_BYTES",
    "MAX_USER_BYTES",
    "AttributeType",
    "Problem",
    "UserValidator",
    "check_email",
]

#: A user may hold at most this many JSON objects across its attributes (code 3).
MAX_OBJECTS_PER_USER = 1000
#: Attribute values may nest containers at most this deep (code 3).
MAX_NESTING = 2

Problem = tuple[int, str, str]
"""``(error code, details, JSON pointer)``."""


class AttributeType(str, enum.Enum):
    """The type of a custom attribute of the account, as the emulator checks it.

    ``STRING`` any string; ``INTEGER`` a JSON integer (not a boolean, in the
    signed 64-bit range); ``FLOAT`` any finite JSON number; ``BOOLEAN``
    ``true``/``false``; ``DATE`` ``YYYY-MM-DD``, a real calendar date;
    ``DATETIME`` ``YYYY-MM-DDTHH:MM:SS[.fraction]Z`` (UTC, with ``Z``);
    ``PHONE`` E.164, ``+`` and 2 to 15 digits; ``ARRAY`` a JSON array;
    ``OBJECT`` a JSON object. ``null`` is valid for every type and clears the
    attribute.
    """

    STRING = "STRING"
    INTEGER = "INTEGER"
    FLOAT = "FLOAT"
    BOOLEAN = "BOOLEAN"
    DATE = "DATE"
    DATETIME = "DATETIME"
    PHONE = "PHONE"
    ARRAY = "ARRAY"
    OBJECT = "OBJECT"


#: The account's custom attributes when ``Emulator(attributes=None)``.
DEFAULT_ATTRIBUTES: Mapping[str, AttributeType] = {
    "firstName": AttributeType.STRING,
    "lastName": AttributeType.STRING,
    "gender": AttributeType.STRING,
    "birthday": AttributeType.DATE,
    "createdAt": AttributeType.DATETIME,
    "phone": AttributeType.PHONE,
}

# RFC 5322 addr-spec without comments and folding white space: a dot-atom or a
# quoted string, "@", a dot-atom or a domain literal. ASCII only (RFC 5322 is).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_QUOTED = r'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_DOMAIN_LITERAL = r"\[[\x21-\x5a\x5e-\x7e]*\]"
_EMAIL = re.compile(rf"(?:{_DOT_ATOM}|{_QUOTED})@(?:{_DOT_ATOM}|{_DOMAIN_LITERAL})")
_MAX_EMAIL = 254  # RFC 5321's limit on a path; longer addresses cannot be delivered
_MAX_LOCAL_PART = 64
_PHONE = re.compile(r"\+[0-9]{2,15}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z")
_date_fromisoformat = datetime.date.fromisoformat
_datetime_fromisoformat = datetime.datetime.fromisoformat
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "boolean"
    if kind is int or kind is float:
        return "number"
    if kind is str:
        return "string"
    if kind is list:
        return "array"
    return "object"


def _show(value: Any) -> str:
    """A short rendering of a value for an error message."""
    text = f'"{value}"' if type(value) is str else _json_type(value)
    return text if len(text) <= 80 else text[:77] + '..."'


def _utf8_len(text: str) -> int:
    # "surrogatepass": a lone surrogate cannot reach here through the JSON
    # layer, but a size check must never be the thing that raises.
    return len(text.encode("utf-8", "surrogatepass"))


def _too_long(text: str) -> bool:
    """True if a string holds more than MAX_STRING_BYTES UTF-8 bytes (cheap when short)."""
    n = len(text)
    if n <= MAX_STRING_BYTES // 4:  # 4 bytes per character at most
        return False
    return n > MAX_STRING_BYTES or _utf8_len(text) > MAX_STRING_BYTES


def check_email(value: str) -> bool:
    """True if ``value`` is an addr-spec the emulator accepts (see docs/decisions.md)."""
    if len(value) > _MAX_EMAIL or _EMAIL.fullmatch(value) is None:
        return False
    return value.rindex("@") <= _MAX_LOCAL_PART


def _is_date(value: Any) -> bool:
    if type(value) is not str or _DATE.fullmatch(value) is None:
        return False
    # The regex fixed the format; fromisoformat (C, fast) checks the calendar.
    try:
        _date_fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: Any) -> bool:
    if type(value) is not str or _DATETIME.fullmatch(value) is None:
        return False
    try:
        _datetime_fromisoformat(value[:19])
    except ValueError:
        return False
    return True


def _is_integer(value: Any) -> bool:
    return type(value) is int and _INT64_MIN <= value <= _INT64_MAX


def _is_float(value: Any) -> bool:
    kind = type(value)
    # value - value is 0 for a finite number and NaN for an infinity.
    return kind is int or (kind is float and value - value == 0)


# Per type: (accepts the value, the wording of the expected type). PHONE's
# format error is code 5, handled apart; every other mismatch is code 3.
_TYPE_CHECKS: dict[AttributeType, tuple[Callable[[Any], bool], str]] = {
    AttributeType.STRING: (lambda v: type(v) is str, "a string"),
    AttributeType.INTEGER: (_is_integer, "an integer (64-bit, not a boolean)"),
    AttributeType.FLOAT: (_is_float, "a finite number"),
    AttributeType.BOOLEAN: (lambda v: type(v) is bool, "a boolean"),
    AttributeType.DATE: (_is_date, "a DATE (YYYY-MM-DD)"),
    AttributeType.DATETIME: (_is_datetime, "a DATETIME in UTC (YYYY-MM-DDTHH:MM:SSZ)"),
    AttributeType.PHONE: (lambda v: type(v) is str, "a phone number string"),
    AttributeType.ARRAY: (lambda v: type(v) is list, "an array"),
    AttributeType.OBJECT: (lambda v: type(v) is dict, "an object"),
}


def _walk(value: list[Any] | dict[str, Any], name: str, pointer: str) -> tuple[int, Problem | None]:
    """Check a container attribute: nesting, string sizes, finite numbers.

    Returns the number of JSON objects it holds (itself included) and the first
    problem found. Nesting is bounded, so this never recurses deeper than two.
    """
    objects = 1 if type(value) is dict else 0
    child: Any
    grandchild: Any
    for child in value.values() if type(value) is dict else value:
        kind = type(child)
        if kind is str:
            if _too_long(child):
                return objects, _string_too_long(name, pointer, child)
        elif kind is float:
            if child - child != 0:
                return objects, (
                    3,
                    f'Attribute "{name}" holds a number that is not finite',
                    pointer,
                )
        elif kind is dict or kind is list:
            if kind is dict:
                objects += 1
            for grandchild in child.values() if kind is dict else child:
                gkind = type(grandchild)
                if gkind is dict or gkind is list:
                    return objects, (
                        3,
                        f'Attribute "{name}" is nested more than {MAX_NESTING} levels deep; '
                        f"at most {MAX_NESTING} levels (an object or array inside an object "
                        "or array) are allowed",
                        pointer,
                    )
                if gkind is str:
                    if _too_long(grandchild):
                        return objects, _string_too_long(name, pointer, grandchild)
                elif gkind is float and grandchild - grandchild != 0:
                    return objects, (
                        3,
                        f'Attribute "{name}" holds a number that is not finite',
                        pointer,
                    )
    return objects, None


def _string_too_long(name: str, pointer: str, text: str) -> Problem:
    return (
        2,
        f'Attribute "{name}" holds a string of {_utf8_len(text):,} bytes; a string value '
        f"is at most {MAX_STRING_BYTES:,} bytes (UTF-8)",
        pointer,
    )


def _missing(name: str, pointer: str) -> Problem:
    return (2, f'Invalid field value, or missing a required field "{name}"', pointer)


class UserValidator:
    """Validates user objects against the account's attribute schema.

    ``stored_xng_id(id)`` gives the ``xngId`` of the stored user with that id,
    or ``None``: a sent ``xngId`` must be that one (code 7).
    """

    __slots__ = ("_fast", "accept_unknown", "schema", "stored_xng_id")

    def __init__(
        self,
        schema: Mapping[str, AttributeType],
        *,
        accept_unknown: bool,
        stored_xng_id: Callable[[str], str | None],
    ) -> None:
        reserved = sorted(set(schema) & set(_RESERVED))
        if reserved:
            raise ValueError(
                f"attributes= names built-in fields {reserved}: id, email, businessUnit "
                "and xngId are always known; leave them out of the schema"
            )
        self.schema = {name: AttributeType(kind) for name, kind in schema.items()}
        self.accept_unknown = accept_unknown
        self.stored_xng_id = stored_xng_id
        # One "surely valid?" predicate per known key, for the hot path.
        self._fast: dict[str, Callable[[Any], bool]] = {
            **_FAST_RESERVED,
            **{name: _FAST_TYPES[kind] for name, kind in self.schema.items()},
        }

    def check(self, user: dict[str, Any], prefix: str) -> list[Problem] | None:
        """Every problem of one user object, or ``None`` if it is valid.

        ``prefix`` is the JSON pointer of the user in the body (``""`` for a
        single PUT, ``"/updated/3"`` in a batch).
        """
        # Hot path: one "surely valid" test per attribute, inlined for the
        # commonest (strings, id, email); anything not surely valid (a
        # container, a sent xngId, a long string, an error) goes to the exact,
        # slower check, which also builds the JSON pointers.
        fast = self._fast
        for name, value in user.items():
            rule = fast.get(name)
            if rule is _string_ok:
                if value is None or (type(value) is str and len(value) <= _SHORT_STRING):
                    continue
            elif rule is _email_ok:
                if (
                    type(value) is str
                    and len(value) <= _MAX_EMAIL
                    and _email_match(value) is not None
                    and value.rindex("@") <= _MAX_LOCAL_PART
                ):
                    continue
            elif rule is _id_ok:
                if type(value) is str and 0 < len(value) <= _SHORT_STRING:
                    continue
            elif rule is not None:
                if rule(value):
                    continue
            elif self.accept_unknown:
                kind = type(value)
                if not (
                    kind is dict
                    or kind is list
                    or (kind is str and len(value) > _SHORT_STRING)
                    or (kind is float and value - value != 0)
                ):
                    continue
            return self._explain(user, prefix)
        if "id" not in user or "email" not in user:
            return self._explain(user, prefix)
        return None

    def _explain(self, user: dict[str, Any], prefix: str) -> list[Problem] | None:
        """The exact check: every problem of the user, or ``None``."""
        problems: list[Problem] | None = None
        schema = self.schema
        checks = _TYPE_CHECKS
        objects = 0
        for name, value in user.items():
            kind = schema.get(name)
            problem: Problem | None = None
            if kind is None:
                if name in _RESERVED:
                    problem = _RESERVED[name](value, prefix)
                elif not self.accept_unknown:
                    problem = (6, f'Attribute "{name}" does not exist', f"{prefix}/{_escape(name)}")
                elif value is not None:
                    vkind = type(value)
                    if vkind is str:
                        if _too_long(value):
                            problem = _string_too_long(name, f"{prefix}/{_escape(name)}", value)
                    elif vkind is dict or vkind is list:
                        count, problem = _walk(value, name, f"{prefix}/{_escape(name)}")
                        objects += count
                    elif vkind is float and value - value != 0:
                        problem = (
                            3,
                            f'Attribute "{name}" holds a number that is not finite',
                            f"{prefix}/{_escape(name)}",
                        )
            elif value is not None:
                accepts, wanted = checks[kind]
                if not accepts(value):
                    problem = (
                        3,
                        f'Invalid type of attribute "{name}": expected {wanted}, '
                        f"got {_show(value)}",
                        f"{prefix}/{_escape(name)}",
                    )
                elif type(value) is str:
                    if _too_long(value):
                        problem = _string_too_long(name, f"{prefix}/{_escape(name)}", value)
                    elif kind is AttributeType.PHONE and _PHONE.fullmatch(value) is None:
                        problem = (
                            5,
                            f"Invalid phone {_show(value)}. The phone number must be in the "
                            'E.164 format: "+" and 2 to 15 digits',
                            f"{prefix}/{_escape(name)}",
                        )
                elif kind is AttributeType.ARRAY or kind is AttributeType.OBJECT:
                    count, problem = _walk(value, name, f"{prefix}/{_escape(name)}")
                    objects += count
            if problem is not None:
                if problems is None:
                    problems = []
                problems.append(problem)
        if "id" not in user:
            problems = (problems or []) + [_missing("id", f"{prefix}/id")]
        if "email" not in user:
            problems = (problems or []) + [_missing("email", f"{prefix}/email")]
        if objects > MAX_OBJECTS_PER_USER:
            problems = (problems or []) + [
                (
                    3,
                    f"The user holds {objects:,} JSON objects; at most "
                    f"{MAX_OBJECTS_PER_USER:,} are allowed per user",
                    prefix,
                )
            ]
        xng_id = user.get("xngId")
        if xng_id is not None:
            user_id = user.get("id")
            stored = self.stored_xng_id(user_id) if type(user_id) is str else None
            if xng_id != stored:
                problems = (problems or []) + [
                    (
                        7,
                        f"Identifier mismatch: xngId {_show(xng_id)} is not the xngId of the "
                        f"user with this id (the server sets xngId; send it only unchanged)",
                        f"{prefix}/xngId",
                    )
                ]
        return problems


def _escape(name: str) -> str:
    """Escape a key as one JSON pointer token (RFC 6901)."""
    if "~" in name or "/" in name:
        return name.replace("~", "~0").replace("/", "~1")
    return name


def _check_id(value: Any, prefix: str) -> Problem | None:
    if type(value) is not str or not value:
        return _missing("id", f"{prefix}/id")
    if _too_long(value):
        return _string_too_long("id", f"{prefix}/id", value)
    return None


def _check_email(value: Any, prefix: str) -> Problem | None:
    if type(value) is not str or not value:
        return _missing("email", f"{prefix}/email")
    if not check_email(value):
        return (
            4,
            f"Invalid email {_show(value)}. The email address must be in the addr-spec "
            "format as defined in RFC 5322",
            f"{prefix}/email",
        )
    return None


def _check_business_unit(value: Any, prefix: str) -> Problem | None:
    if value is None or (type(value) is str and BUSINESS_UNIT.fullmatch(value) is not None):
        return None
    return (
        8,
        f"Invalid business unit {_show(value)}. A business unit is null or 1 to 64 "
        'letters, digits, "_" or "-"',
        f"{prefix}/businessUnit",
    )


def _check_xng_id(value: Any, prefix: str) -> Problem | None:
    # Compared with the stored user's once the whole object is read.
    return None


_RESERVED: dict[str, Callable[[Any, str], Problem | None]] = {
    "id": _check_id,
    "email": _check_email,
    "businessUnit": _check_business_unit,
    "xngId": _check_xng_id,
}


# A string this short cannot exceed MAX_STRING_BYTES (4 UTF-8 bytes per character at most).
_SHORT_STRING = MAX_STRING_BYTES // 4
_bu_match = BUSINESS_UNIT.fullmatch
_email_match = _EMAIL.fullmatch
_phone_match = _PHONE.fullmatch


# "Surely valid" predicates: True only for values the exact check accepts.
# check() inlines the first three, recognising them by identity.
def _string_ok(v: Any) -> bool:
    return v is None or (type(v) is str and len(v) <= _SHORT_STRING)


def _email_ok(v: Any) -> bool:
    return type(v) is str and check_email(v)


def _id_ok(v: Any) -> bool:
    return type(v) is str and 0 < len(v) <= _SHORT_STRING


_FAST_RESERVED: dict[str, Callable[[Any], bool]] = {
    "id": _id_ok,
    "email": _email_ok,
    "businessUnit": lambda v: v is None or (type(v) is str and _bu_match(v) is not None),
    "xngId": lambda v: v is None,  # a sent one is compared with the stored user's
}
_FAST_TYPES: dict[AttributeType, Callable[[Any], bool]] = {
    AttributeType.STRING: _string_ok,
    AttributeType.INTEGER: lambda v: v is None or _is_integer(v),
    AttributeType.FLOAT: lambda v: v is None or _is_float(v),
    AttributeType.BOOLEAN: lambda v: v is None or type(v) is bool,
    AttributeType.DATE: lambda v: v is None or _is_date(v),
    AttributeType.DATETIME: lambda v: v is None or _is_datetime(v),
    AttributeType.PHONE: lambda v: v is None or (type(v) is str and _phone_match(v) is not None),
    AttributeType.ARRAY: lambda v: v is None,  # containers are walked by the exact check
    AttributeType.OBJECT: lambda v: v is None,
}
