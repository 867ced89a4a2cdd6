"""The API's six calls: read a user, look one up by email, read a tracking id,
delete, upsert, and the batch.

Each call takes the emulator, the decoded path parameters (``None``: not UTF-8),
the body and the time, and gives a :class:`~._reply.Reply`. The pipeline
(:mod:`._pipeline`) has already checked the key, the version, the route and the
body's size, and holds the emulator's lock while a call runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._wire import MAX_BATCH_ITEMS, MAX_USER_BYTES
from . import _json
from ._reply import Reply, error_reply
from ._validate import Problem, UserValidator, _show, check_email

if TYPE_CHECKING:
    from ._app import Emulator

__all__ = ["batch", "delete", "get", "get_by_email", "put", "track", "user_problems"]

# A user's size is its compact JSON encoding. A body no larger than the limit
# cannot hold a larger user (numbers in exponent form aside, which this check
# does not expand), so only larger bodies pay for measuring each user.
_MEASURE_USERS_ABOVE = MAX_USER_BYTES


def get(emulator: Emulator, params: list[str | None], body: bytes, now: float) -> Reply:
    user_id = params[0]
    user = emulator._store.users.get(user_id) if user_id is not None else None
    if user is None:
        return Reply(404)
    return Reply(200, _json.dumps(user))


def get_by_email(emulator: Emulator, params: list[str | None], body: bytes, now: float) -> Reply:
    email, business_unit = params
    if email is None:
        return Reply(404)
    user = emulator._store.find_by_email(email, business_unit)
    if user is None:
        return Reply(404)
    return Reply(200, _json.dumps(user))


def track(emulator: Emulator, params: list[str | None], body: bytes, now: float) -> Reply:
    tracking_id = params[0]
    tracking = emulator._store.tracking(tracking_id, now) if tracking_id is not None else None
    if tracking is None:
        return Reply(404)
    return Reply(200, _json.dumps(tracking.wire()))


def _accepted(
    emulator: Emulator,
    upserts: list[dict[str, Any]],
    deletes: list[str],
    total: int,
    invalid: int,
    now: float,
) -> str:
    return emulator._store.enqueue(
        upserts, deletes, total=total, invalid=invalid, now=now, delay=emulator.processing_delay
    )


def delete(emulator: Emulator, params: list[str | None], body: bytes, now: float) -> Reply:
    # A body, if any, is ignored: some clients send one with DELETE. An id
    # that is not UTF-8 names no user, and deleting no user succeeds.
    tracking_id = _accepted(emulator, [], [params[0] or ""], 1, 0, now)
    return Reply(202, _json.dumps({"trackingId": tracking_id}))


def _parse(body: bytes, what: str) -> tuple[Any, Reply | None]:
    try:
        document = _json.loads(body)
    except _json.JSONError as exc:
        return None, error_reply(400, [(1, f"Invalid JSON: {exc}", "")])
    if type(document) is not dict:
        return None, error_reply(
            400, [(1, f"Invalid JSON: the body must be a JSON object ({what})", "")]
        )
    return document, None


def user_problems(
    validator: UserValidator, user: dict[str, Any], prefix: str, measure: bool
) -> list[Problem] | None:
    """What is wrong with one user, its size too if ``measure``; ``None`` or ``[]``: nothing."""
    problems = validator.check(user, prefix)
    if measure:
        size = len(_json.dumps(user))
        if size > MAX_USER_BYTES:
            problem = (
                2,
                f"The user is {size:,} bytes long as JSON; a user is at most "
                f"{MAX_USER_BYTES:,} bytes",
                prefix,
            )
            problems = [*(problems or []), problem]
    return problems


def put(emulator: Emulator, params: list[str | None], body: bytes, now: float) -> Reply:
    user, failed = _parse(body, "a user")
    if failed is not None:
        return failed
    problems = user_problems(emulator._validator, user, "", len(body) > _MEASURE_USERS_ABOVE)
    if problems:
        return error_reply(400, problems)
    tracking_id = _accepted(emulator, [user], [], 1, 0, now)
    return Reply(202, _json.dumps({"trackingId": tracking_id}))


def batch(emulator: Emulator, params: list[str | None], body: bytes, now: float) -> Reply:
    document, failed = _parse(body, '{"updated": [...], "deleted": [...]}')
    if failed is not None:
        return failed
    problems: list[Problem] = [
        (2, f'Unknown field "{key}": a batch has only "updated" and "deleted"', f"/{key}")
        for key in document
        if key != "updated" and key != "deleted"
    ]
    updated = document.get("updated")
    deleted = document.get("deleted")
    if updated is None:
        updated = []
    elif type(updated) is not list:
        problems.append((2, '"updated" must be an array of users', "/updated"))
    if deleted is None:
        deleted = []
    elif type(deleted) is not list:
        problems.append((2, '"deleted" must be an array of {"id": ...} objects', "/deleted"))
    if problems:
        return error_reply(400, problems)
    total = len(updated) + len(deleted)
    if total > MAX_BATCH_ITEMS:
        return error_reply(
            400,
            [
                (
                    9,
                    f"Max batch request size is {MAX_BATCH_ITEMS:,}, but was {total:,}",
                    "/updated",
                )
            ],
        )
    if total == 0:
        return error_reply(
            400,
            [
                (
                    2,
                    'Invalid field value, or missing a required field "updated": '
                    "the batch is empty",
                    "/updated",
                )
            ],
        )
    upserts: list[dict[str, Any]] = []
    deletes: list[str] = []
    errors: list[Problem] = []
    invalid = 0
    measure = len(body) > _MEASURE_USERS_ABOVE
    validator = emulator._validator
    check = validator.check
    for index, user in enumerate(updated):
        if type(user) is not dict:
            errors.append((2, 'An item of "updated" must be a user object', f"/updated/{index}"))
            invalid += 1
            continue
        # Pointers are built only for an invalid user: most are valid.
        if check(user, "") is None and not measure:
            upserts.append(user)
            continue
        found = user_problems(validator, user, f"/updated/{index}", measure)
        if found:
            errors.extend(found)
            invalid += 1
        else:
            upserts.append(user)
    for index, item in enumerate(deleted):
        if type(item) is not dict:
            errors.append(
                (2, 'An item of "deleted" must be an object with an "id"', f"/deleted/{index}")
            )
            invalid += 1
            continue
        user_id = item.get("id")
        email = item.get("email")
        if type(user_id) is not str or not user_id:
            errors.append(
                (
                    2,
                    'Invalid field value, or missing a required field "id"',
                    f"/deleted/{index}/id",
                )
            )
            invalid += 1
        elif email is not None and (type(email) is not str or not check_email(email)):
            errors.append(
                (
                    4,
                    f"Invalid email {_show(email)}. The email address must be in the addr-spec "
                    "format as defined in RFC 5322",
                    f"/deleted/{index}/email",
                )
            )
            invalid += 1
        else:
            deletes.append(user_id)
    tracking_id = _accepted(emulator, upserts, deletes, total, invalid, now)
    if errors:
        return error_reply(400, errors, trackingId=tracking_id)
    return Reply(202, _json.dumps({"trackingId": tracking_id}))
