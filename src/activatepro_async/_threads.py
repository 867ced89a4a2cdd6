"""A blocking source of rows read from async code: a batch at a time, in a worker thread.

The command's input (a file, a pipe that may sit idle) and a Spark partition
(computed by the JVM as it is read) both block when read; on the event loop
thread they would hold up every request in flight.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator, Iterable
from typing import Generic, TypeVar

import anyio.to_thread

__all__ = ["ThreadedReader"]

_T = TypeVar("_T")


class ThreadedReader(Generic[_T]):
    """``source`` as an async iterable, read ``batch`` items at a time in a worker thread.

    >>> async for row in ThreadedReader(open_rows(), batch=1000):
    ...     ...

    What reading raised is raised by the iteration and also kept in
    :attr:`error`, so that a caller whose iteration was consumed by someone
    else (the bulk engine) can tell a broken source from other failures.
    ``abandon_on_cancel`` lets a cancelled iteration return without waiting for
    a read in flight (one blocked on an idle pipe would otherwise hang Ctrl-C);
    the thread then ends on its own, and nothing may read the source after it.
    """

    def __init__(
        self, source: Iterable[_T], *, batch: int, abandon_on_cancel: bool = False
    ) -> None:
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        self._source = source
        self._batch = batch
        self._abandon = abandon_on_cancel
        #: What reading the source raised, else ``None``.
        self.error: BaseException | None = None

    async def __aiter__(self) -> AsyncGenerator[_T, None]:
        iterator = iter(self._source)
        batch = self._batch

        def take() -> list[_T]:
            try:
                return list(itertools.islice(iterator, batch))
            except BaseException as exc:
                self.error = exc
                raise

        while True:
            items = await anyio.to_thread.run_sync(take, abandon_on_cancel=self._abandon)
            if not items:
                return
            for item in items:
                yield item
