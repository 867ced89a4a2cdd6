"""ThreadedReader: a blocking source read in batches on a worker thread, for the CLI and Spark."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import anyio
import pytest

from activatepro_async._threads import ThreadedReader

pytestmark = pytest.mark.anyio


class Source:
    """Rows that record the thread and the batch they were read in; ``gate`` can hold a read."""

    def __init__(self, count: int, *, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.threads: set[int] = set()
        self.read = 0
        self.gate: threading.Event | None = None
        self.waiting = threading.Event()

    def __iter__(self) -> Iterator[int]:
        for n in range(self.count):
            self.threads.add(threading.get_ident())
            if self.gate is not None:
                self.waiting.set()
                self.gate.wait()
            if n == self.fail_at:
                raise OSError("the disk went away")
            self.read += 1
            yield n


async def test_every_row_comes_in_order_read_off_the_event_loop_thread() -> None:
    source = Source(2500)
    got = [row async for row in ThreadedReader(source, batch=1000)]
    assert got == list(range(2500))
    assert threading.get_ident() not in source.threads


async def test_only_one_batch_is_read_ahead() -> None:
    source = Source(10_000)
    rows = ThreadedReader(source, batch=100).__aiter__()
    assert await rows.__anext__() == 0
    assert source.read == 100
    await rows.aclose()


async def test_a_failing_source_raises_and_keeps_its_error() -> None:
    reader = ThreadedReader(Source(10, fail_at=4), batch=3)
    got: list[int] = []

    async def read_all() -> None:
        async for row in reader:
            got.append(row)

    with pytest.raises(OSError, match="the disk went away"):
        await read_all()
    assert got == [0, 1, 2]  # the batch that failed gives nothing
    assert isinstance(reader.error, OSError)


async def test_a_source_that_reads_fine_has_no_error() -> None:
    reader = ThreadedReader(Source(3), batch=2)
    assert [row async for row in reader] == [0, 1, 2]
    assert reader.error is None


@pytest.mark.parametrize("abandon", [True, False])
async def test_a_cancelled_read_is_abandoned_only_when_asked(abandon: bool) -> None:
    source = Source(5)
    source.gate = threading.Event()
    reader = ThreadedReader(source, batch=5, abandon_on_cancel=abandon)

    async def read_all() -> None:
        async for _ in reader:
            pass

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_all)
            await anyio.to_thread.run_sync(source.waiting.wait)  # the read is blocked
            tg.cancel_scope.cancel()
            if not abandon:
                # The cancelled task waits for the read in flight: let it finish.
                source.gate.set()
        # Abandoned: the task group ended while the read was still blocked.
        assert source.read == (0 if abandon else 5)
    finally:
        source.gate.set()


def test_a_batch_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="batch must be at least 1, got 0"):
        ThreadedReader([], batch=0)
