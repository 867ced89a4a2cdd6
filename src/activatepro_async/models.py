"""The values of the API, and the one converter between them and the wire.

Python spelling lives here (``business_unit``, ``tracking_id``); wire spelling
(``businessUnit``, ``trackingId``) lives only in :data:`converter`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._wire import attributes_to_wire
from .errors import ApiError, ErrorCode

__all__ = [
    "Accepted",
    "BatchAccepted",
    "Stage",
    "TrackingStatus",
    "User",
    "converter",
    "deleted_to_wire",
    "to_wire",
    "user_fields",
    "user_to_wire",
]

#: Keys of a user object that are fields of :class:`User`, not custom attributes.
RESERVED_KEYS = frozenset({"id", "email", "businessUnit", "xngId"})


def _attributes_converter(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return {} if value is None else dict(value)


@attrs.frozen(eq=True, hash=False)
class User:
    """A user profile.

    ``id`` and ``email`` are required. Custom attributes (``firstName``,
    ``birthday``, ...) go in ``attributes`` under their API names and travel as
    top-level JSON keys. ``date`` and ``datetime`` values are sent as the API's
    strings (``"1982-08-30"``, ``"2015-10-02T08:23:53Z"``); what the server sends
    back stays a string.

    >>> User("42", "ada@example.com", business_unit="DE", attributes={"firstName": "Ada"})

    ``business_unit=None`` and ``xng_id=None`` are *left out* of what is sent, so
    an upsert never clears what it does not mention. To clear an attribute, send
    it as ``None`` inside ``attributes``.
    """

    id: str
    email: str
    business_unit: str | None = None
    attributes: dict[str, Any] = attrs.field(factory=dict, converter=_attributes_converter)
    xng_id: str | None = None

    def __attrs_post_init__(self) -> None:
        clash = RESERVED_KEYS.intersection(self.attributes)
        if clash:
            raise ValueError(
                f"attributes may not hold {sorted(clash)}: pass them as User fields "
                "(id=, email=, business_unit=, xng_id=)"
            )


class Stage(str, enum.Enum):
    """The processing stage of a tracked request."""

    PENDING = "PENDING"
    PROCESSED = "PROCESSED"


@attrs.frozen
class TrackingStatus:
    """The state of a write request (``GET /users/track/{trackingId}``).

    ``success + error == total`` once ``stage`` is ``PROCESSED``.
    """

    stage: Stage
    total: int
    success: int
    error: int

    @property
    def done(self) -> bool:
        """True once the request is processed."""
        return self.stage is Stage.PROCESSED


@attrs.frozen
class Accepted:
    """A write that the API accepted (202): look it up later by ``tracking_id``."""

    tracking_id: str


@attrs.frozen
class BatchAccepted:
    """A batch the API accepted, in whole (``errors`` empty) or in part.

    When some items were invalid the API still processes the valid ones under
    ``tracking_id``; ``errors`` names the invalid ones by JSON pointer
    (``/updated/3/email``).
    """

    tracking_id: str
    errors: list[ApiError] = attrs.field(factory=list)


# --------------------------------------------------------------------------
# The converter
# --------------------------------------------------------------------------


def user_fields(user: User) -> dict[str, Any]:
    """A user's wire keys with its attribute values as they are (dates not yet strings).

    :func:`user_to_wire` converts the values; the bulk engine leaves that to
    its encoder (``encode_json_telling(convert=True)``).
    """
    out: dict[str, Any] = {"id": user.id, "email": user.email}
    if user.business_unit is not None:
        out["businessUnit"] = user.business_unit
    if user.xng_id is not None:
        out["xngId"] = user.xng_id
    out.update(user.attributes)
    return out


def user_to_wire(user: User | Mapping[str, Any]) -> dict[str, Any]:
    """A user as the JSON object the API takes.

    A mapping is taken to be in wire form already (``businessUnit``, custom keys
    at the top level); its ``date``/``datetime`` values are still converted.
    """
    out: dict[str, Any] = {}
    if isinstance(user, User):
        attributes_to_wire(user_fields(user), out)
        return out
    if isinstance(user, Mapping):
        attributes_to_wire(user, out)
        return out
    raise TypeError(
        f"expected a User or a mapping in wire form, got {type(user).__name__}: "
        "build one with User(id=..., email=...)"
    )


#: What ``batch(deleted=...)`` and ``delete_many`` take: an id, a User or a wire mapping.
DeletedItem = str | User | Mapping[str, Any]


def deleted_to_wire(item: DeletedItem) -> dict[str, Any]:
    """An item to delete as the JSON object the API takes (``{"id": ...}``)."""
    if isinstance(item, str):
        if not item:
            raise ValueError("a deleted user id must not be empty")
        return {"id": item}
    if isinstance(item, User):
        return {"id": item.id, "email": item.email}
    if isinstance(item, Mapping):
        return dict(item)
    raise TypeError(
        f"deleted items are user ids (str), Users or mappings, got {type(item).__name__}"
    )


# Reading the wire is strict: a value of the wrong JSON type is an error, never
# coerced (str(None) would make the tracking id 'None', int("3") a count).


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _wire_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {json_type(value)}")
    return value


def _wire_optional_str(value: Any, name: str) -> str | None:
    return None if value is None else _wire_str(value, name)


def tracking_id_from_wire(value: Any) -> str:
    """The ``trackingId`` of a response: a non-empty string, or a ``TypeError``/``ValueError``."""
    tracking_id = _wire_str(value, "trackingId")
    if not tracking_id:
        raise ValueError("trackingId must not be empty")
    return tracking_id


def _str_from_wire(value: Any, _: type[str]) -> str:
    return _wire_str(value, "a text field")


def _int_from_wire(value: Any, _: type[int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a count must be an integer, got {json_type(value)}")
    return value


def _user_from_wire(data: Any, _: type[User]) -> User:
    if not isinstance(data, Mapping):
        raise TypeError(f"a user must be a JSON object, got {json_type(data)}")
    if "id" not in data or "email" not in data:
        raise ValueError("a user needs an id and an email")
    rest = {k: v for k, v in data.items() if k not in RESERVED_KEYS}
    return User(
        id=_wire_str(data["id"], "id"),
        email=_wire_str(data["email"], "email"),
        business_unit=_wire_optional_str(data.get("businessUnit"), "businessUnit"),
        attributes=rest,
        xng_id=_wire_optional_str(data.get("xngId"), "xngId"),
    )


def _error_code(value: Any, _: type[Any]) -> ErrorCode | int:
    code = int(value)
    try:
        return ErrorCode(code)
    except ValueError:
        return code


def _api_error_from_wire(data: Any, _: type[ApiError]) -> ApiError:
    if not isinstance(data, Mapping):
        raise TypeError(f"an error must be a JSON object, got {json_type(data)}")
    source = data.get("source")
    pointer = source.get("pointer") if isinstance(source, Mapping) else None
    return ApiError(
        code=_error_code(data.get("code", 0), int),
        title=str(data.get("title") or ""),
        details=str(data.get("details") or ""),
        pointer=None if pointer is None else str(pointer),
        info=None if data.get("info") is None else str(data["info"]),
    )


def _api_error_to_wire(error: ApiError) -> dict[str, Any]:
    out: dict[str, Any] = {"code": str(int(error.code)), "title": error.title}
    out["details"] = error.details
    if error.info is not None:
        out["info"] = error.info
    if error.pointer is not None:
        out["source"] = {"pointer": error.pointer}
    return out


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    conv.register_structure_hook(str, _str_from_wire)
    conv.register_structure_hook(int, _int_from_wire)
    # Stage is a str: without its own hook it would get str's and stay a plain str.
    conv.register_structure_hook(Stage, lambda v, _: Stage(_wire_str(v, "stage")))
    conv.register_structure_hook(User, _user_from_wire)
    conv.register_unstructure_hook(User, user_to_wire)
    conv.register_structure_hook(ApiError, _api_error_from_wire)
    conv.register_unstructure_hook(ApiError, _api_error_to_wire)
    tracking_id = override(rename="trackingId", struct_hook=lambda v, _: tracking_id_from_wire(v))
    for cls in (Accepted, BatchAccepted):
        conv.register_structure_hook(
            cls, make_dict_structure_fn(cls, conv, tracking_id=tracking_id)
        )
    return conv


#: The one converter between wire JSON and the SDK's values.
converter = _make_converter()


def to_wire(value: Any) -> Any:
    """Unstructure any SDK value into JSON-ready data."""
    return converter.unstructure(value)
