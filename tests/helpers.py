"""Test doubles shared by the suite: a fake clock and a recording mock transport."""

from __future__ import annotations

from typing import Any

import httpx

API_KEY = "test-key-d41d8cd98f00"

#: The user body of the reference's GET examples.
REFERENCE_USER = {
    "email": "john.doe@example.com",
    "id": "fb85fe50-a528-11e7-abc4-cec278b6b50a",
    "xngId": "123e4567-e89b-12d3-a456-426655440000",
    "firstName": "John",
    "lastName": "Doe",
    "birthday": "1982-08-30",
    "createdAt": "2015-10-02T08:23:53Z",
    "gender": "male",
}


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Recorder:
    """An httpx.MockTransport that records every request and answers from a script.

    ``responses`` is a list consumed in order; each item is an ``httpx.Response``,
    an exception instance to raise, or a callable ``(request) -> Response``.
    When the list runs out, the last item repeats.
    """

    def __init__(self, *responses: Any) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, BaseException):
            raise item
        if callable(item) and not isinstance(item, httpx.Response):
            result: httpx.Response = item(request)
            return result
        return httpx.Response(item.status_code, headers=item.headers, content=item.content)
