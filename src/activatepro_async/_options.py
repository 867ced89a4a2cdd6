"""The settings a client can be copied with: ``NOT_GIVEN``, timeouts, default headers.

One place checks them, for ``AsyncClient(...)``, ``Client(...)`` and both
``with_options(...)``, so a copy cannot hold what a new client would refuse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Final

import httpx

from ._version import __version__
from .errors import ConfigurationError

__all__ = ["NOT_GIVEN", "SDK_USER_AGENT", "NotGiven", "RedactedHeaders", "redacted_request"]

#: What the SDK adds to every User-Agent, the user's own or none.
SDK_USER_AGENT: Final = f"activatepro-async/{__version__}"
#: httpx's own User-Agent: on a user's http_client it means "none set".
_HTTPX_USER_AGENT: Final = f"python-httpx/{httpx.__version__}"

#: Headers whose values are credentials: reprs show ``***`` instead.
SENSITIVE_HEADERS: Final = frozenset(
    {"x-xng-authtoken", "authorization", "proxy-authorization", "cookie"}
)

#: Headers the SDK sets on every request, and why ``default_headers`` may not.
_RESERVED: Final = {
    "x-xng-authtoken": "the API key goes in api_key= (or ACTIVATEPRO_API_KEY), once",
    "x-xng-apiversion": "the SDK speaks version 2 of the API and sends it itself",
    "accept": "the SDK reads JSON and asks for it itself",
    "content-type": "the SDK sets it for the bodies it sends",
    "content-length": "httpx computes it from the body",
    "transfer-encoding": "httpx frames the body itself",
    "host": "it comes from base_url",
}

#: RFC 9110's token: the characters a header name may have.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class NotGiven:
    """The default of ``with_options``' arguments: "keep the original's setting".

    A sentinel, not ``None``: ``timeout=None`` means "no timeout".
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> bool:
        return False


#: "Keep what the client has": the default of every argument of ``with_options``.
NOT_GIVEN: Final = NotGiven()


class RedactedHeaders(dict[str, str]):
    """Request headers whose repr hides credentials (tracebacks with locals show it)."""

    def __repr__(self) -> str:
        return repr({k: ("***" if k.lower() in SENSITIVE_HEADERS else v) for k, v in self.items()})


def redacted_request(request: httpx.Request) -> httpx.Request:
    """A copy of ``request`` with its credentials' values replaced by ``***``.

    What the SDK hands out of a request that failed (``RetryEvent.exception.request``,
    ``APIConnectionError.__cause__.request``): a hook or crash reporter that logs
    its headers would otherwise log the key. Method, URL and body are kept.
    """
    headers = [
        (name, b"***" if name.decode("latin-1").lower() in SENSITIVE_HEADERS else value)
        for name, value in request.headers.raw
    ]
    try:
        content = request.content
    except httpx.RequestNotRead:  # a streamed body (a transport of the user's own)
        content = b""
    return httpx.Request(request.method, request.url, headers=headers, content=content)


def check_timeout(timeout: object) -> httpx.Timeout:
    """``timeout`` as an ``httpx.Timeout``; ``None`` is no timeout at all."""
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is None:
        return httpx.Timeout(None)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ConfigurationError(
            "timeout must be a number of seconds, an httpx.Timeout or None (no timeout), "
            f"got {type(timeout).__name__}"
        )
    if math.isnan(timeout) or timeout <= 0:
        raise ConfigurationError(
            f"timeout must be more than 0 seconds, got {timeout!r} (None means no timeout)"
        )
    return httpx.Timeout(float(timeout))


def check_headers(headers: object) -> RedactedHeaders:
    """``default_headers`` once sure each can be sent as it is; messages never show a value."""
    if headers is None:
        return RedactedHeaders()
    if not isinstance(headers, Mapping):
        raise ConfigurationError(
            f"default_headers must be a mapping of str to str, got {type(headers).__name__}"
        )
    checked = RedactedHeaders()
    for name, value in headers.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            shown = repr(name)[:60] if isinstance(name, str) else type(name).__name__
            raise ConfigurationError(f"default_headers: {shown} is not a valid header name")
        why = _RESERVED.get(name.lower())
        if why is not None:
            raise ConfigurationError(f"default_headers may not set {name}: {why}")
        if not isinstance(value, str):
            raise ConfigurationError(
                f"default_headers: the value of {name} must be a str, got {type(value).__name__}"
            )
        # CR/LF would split the header (and aiohttp would send it split); other
        # control characters and non-ASCII cannot travel in it either.
        if any(not (" " <= char <= "~" or char == "\t") for char in value):
            raise ConfigurationError(
                f"default_headers: the value of {name} holds line breaks, control "
                "characters or non-ASCII, which cannot go in an HTTP header"
            )
        if any(k.lower() == name.lower() for k in checked):
            raise ConfigurationError(f"default_headers names {name} twice (in another case)")
        checked[name] = value
    return checked


def merge_headers(base: Mapping[str, str], extra: Mapping[str, str]) -> RedactedHeaders:
    """``base`` with ``extra`` on top; a name in ``extra`` replaces ``base``'s in any case."""
    replaced = {name.lower() for name in extra}
    merged = RedactedHeaders({k: v for k, v in base.items() if k.lower() not in replaced})
    merged.update(extra)
    return merged


def user_agent(headers: Mapping[str, str], http_client: httpx.AsyncClient | None) -> str:
    """The User-Agent to send: the user's own (``headers``, else their ``http_client``'s)
    with the SDK's appended, or the SDK's alone."""
    given = next((v for k, v in headers.items() if k.lower() == "user-agent"), None)
    if given is None and http_client is not None:
        given = http_client.headers.get("User-Agent")
        if given == _HTTPX_USER_AGENT:
            given = None
    given = given.strip() if given else None
    return f"{given} {SDK_USER_AGENT}" if given else SDK_USER_AGENT
