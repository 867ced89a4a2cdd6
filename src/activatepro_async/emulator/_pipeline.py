"""One request through the emulator, for both front ends (uvicorn and the transport).

One request goes: check the key and read the body (keeping at most
``max_body_bytes``, and nothing if the key is wrong), draw a fault, apply the
writes that are due, refuse a wrong key, check the API version, route on the
raw path, refuse an oversize body, call the handler (:mod:`._handlers`),
answer, log. A front end (:mod:`._server`, :mod:`._transport`) gets the body's
reader from :func:`body_reader`, feeds it the body, and gives it to
:func:`respond`.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

import anyio

from . import _handlers
from ._body import BoundedBody
from ._faults import Faults
from ._reply import Reply, error_reply
from ._requestlog import RecordedRequest

if TYPE_CHECKING:
    from ._app import Emulator

    _Handler = Callable[[Emulator, list[str | None], bytes, float], Reply]

__all__ = ["AUTH_HEADER", "VERSION_HEADER", "VERSION_POINTER", "body_reader", "respond"]

#: The header the API reads the key from, and the one naming the version.
AUTH_HEADER = b"x-xng-authtoken"
VERSION_HEADER = b"x-xng-apiversion"
#: The JSON pointer of a header-level error (the reference names none).
VERSION_POINTER = "/headers/X-XNG-ApiVersion"

_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


async def respond(
    emulator: Emulator,
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    received: BoundedBody,
) -> Reply:
    """Answer one request: faults, then the API. Shared by both front ends.

    ``received`` is the body read by the reader :func:`body_reader` gave.
    """
    body, oversize = received.result()
    faults = emulator.faults
    with emulator._lock:
        fault = faults.next_fault() if faults is not None else None
    if fault == "latency":
        assert faults is not None
        await anyio.sleep(faults.latency)
    with emulator._lock:
        now = emulator.clock()
        emulator._store.apply_due(now)
        if fault is None or fault == "latency" or fault == "truncate":
            reply = _dispatch(
                emulator, method, raw_path, headers, body, oversize, received.authorized, now
            )
            if fault == "truncate":
                reply.action = "truncate"
        else:
            assert faults is not None
            reply = _fault_reply(fault, faults)
        emulator._requests.add(
            RecordedRequest(
                method=method,
                path=(raw_path + b"?" + query if query else raw_path).decode("latin-1"),
                headers=tuple(
                    (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in headers
                ),
                body=body,
                status=None if reply.action == "drop" else reply.status,
                fault=fault,
                time=now,
                body_size=received.size,
            )
        )
    return reply


def body_reader(emulator: Emulator, headers: list[tuple[bytes, bytes]]) -> BoundedBody:
    """What reads this request's body (headers lowercase), for both front ends.

    The key is checked here, once: a request with a wrong key gets 401
    whatever its body holds, so none of it is kept, and a stranger's
    uploads cost no memory, in the request log or while they arrive. It is
    still read to its end, so that the 401 arrives.
    """
    declared = None
    for name, value in headers:
        if name == b"content-length":
            declared = value.decode("latin-1")
            break
    return BoundedBody(
        emulator.max_body_bytes, declared, authorized=_authorized(emulator._keys, headers)
    )


def _fault_reply(fault: str, faults: Faults) -> Reply:
    if fault == "drop":
        return Reply(0, action="drop")
    if fault == "html":
        return Reply(502, _HTML_502, [(b"content-type", b"text/html")])
    if fault == "429":
        return Reply(
            429,
            b"Too Many Requests",
            [
                (b"content-type", b"text/plain"),
                (b"retry-after", faults.retry_after_header().encode()),
            ],
        )
    status = int(fault)
    return error_reply(
        status,
        [(10, f"Injected fault: {status} {_REASONS[status]}", "")],
    )


def _authorized(keys: tuple[bytes, ...], headers: list[tuple[bytes, bytes]]) -> bool:
    sent = None
    for name, value in headers:
        if name.lower() == AUTH_HEADER:
            sent = value
            break
    if not sent:
        return False
    # Constant time, and every key is compared, so the time says nothing
    # about which key (or how much of one) matched.
    ok = False
    for key in keys:
        ok |= hmac.compare_digest(sent, key)
    return ok


def _dispatch(
    emulator: Emulator,
    method: str,
    raw_path: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    oversize: bool,
    authorized: bool,
    now: float,
) -> Reply:
    if not authorized:
        return Reply(401)
    version = None
    for name, value in headers:
        if name.lower() == VERSION_HEADER:
            version = value.strip()
            break
    if version != b"2":
        return error_reply(
            400,
            [
                (
                    2,
                    'Invalid field value, or missing a required field "X-XNG-ApiVersion": '
                    "send the header X-XNG-ApiVersion: 2",
                    VERSION_POINTER,
                )
            ],
        )
    raw_segments = raw_path.split(b"/")
    if raw_segments[0] != b"" or b"" in raw_segments[1:] or raw_segments[1] != b"users":
        return _no_route(method, raw_path)
    route = _route([_segment(raw) for raw in raw_segments[2:]])
    if route is None:
        return _no_route(method, raw_path)
    methods, params = route
    handler = methods.get(method)
    if handler is None:
        allowed = ", ".join(methods)
        reply = error_reply(405, [(2, f"Method {method} is not allowed here; use {allowed}", "")])
        reply.headers.append((b"allow", allowed.encode()))
        return reply
    if oversize:
        return error_reply(
            413,
            [
                (
                    9,
                    f"The request body is larger than {emulator.max_body_bytes:,} bytes; "
                    "split the batch into smaller requests",
                    "",
                )
            ],
        )
    return handler(emulator, params, body, now)


def _no_route(method: str, raw_path: bytes) -> Reply:
    shown = raw_path.decode("latin-1")
    if len(shown) > 200:
        shown = shown[:197] + "..."
    return error_reply(
        404,
        [
            (
                2,
                f"No such endpoint: {method} {shown}. The API has GET/DELETE /users/{{id}}, "
                "GET /users/email/{email}[/bu/{bu}], PUT /users, POST /users/batch and "
                "GET /users/track/{trackingId}",
                "",
            )
        ],
    )


def _segment(raw: bytes) -> str | None:
    """One path segment, percent-decoded as UTF-8; ``None`` if it is not UTF-8."""
    try:
        return unquote_to_bytes(raw).decode("utf-8") if b"%" in raw else raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


_USERS: dict[str, _Handler] = {"PUT": _handlers.put}
_USER: dict[str, _Handler] = {"GET": _handlers.get, "DELETE": _handlers.delete}
# "batch" alone is also a user id: GET and DELETE read and delete that user.
_BATCH: dict[str, _Handler] = {**_USER, "POST": _handlers.batch}
_BY_EMAIL: dict[str, _Handler] = {"GET": _handlers.get_by_email}
_TRACK: dict[str, _Handler] = {"GET": _handlers.track}


def _route(
    segments: list[str | None],
) -> tuple[dict[str, _Handler], list[str | None]] | None:
    """The calls of a path under ``/users`` (by method) and their parameters.

    Ids are one segment each, so the count of segments decides:
    ``/users/email`` is the user with id "email", ``/users/email/{e}`` a lookup.
    """
    n = len(segments)
    if n == 0:
        return _USERS, []
    if n == 1:
        return (_BATCH if segments[0] == "batch" else _USER), segments
    if n == 2 and segments[0] == "email":
        return _BY_EMAIL, [segments[1], None]
    if n == 4 and segments[0] == "email" and segments[2] == "bu":
        return _BY_EMAIL, [segments[1], segments[3]]
    if n == 2 and segments[0] == "track":
        return _TRACK, [segments[1]]
    return None
