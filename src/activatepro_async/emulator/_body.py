"""Reading a request body under the emulator's size limit, for both ways of serving it."""

from __future__ import annotations


class BoundedBody:
    """Collects a body's chunks up to ``limit`` bytes; past it, keeps nothing.

    The body is still read to its end by the caller (and thrown away): see the
    readers in ``_server`` and ``_transport`` for why.
    """

    __slots__ = ("_chunks", "_limit", "_size", "oversize")

    def __init__(self, limit: int, declared_length: str | None) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        # A declared Content-Length over the limit decides before any byte is read.
        self.oversize = (
            declared_length is not None
            and declared_length.isdigit()
            and int(declared_length) > limit
        )

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._limit:
            self.oversize = True
        if not self.oversize:
            self._chunks.append(chunk)
        elif self._chunks:
            self._chunks.clear()

    def result(self) -> tuple[bytes, bool]:
        """``(body, False)``, or ``(b"", True)`` when it was over the limit."""
        return (b"", True) if self.oversize else (b"".join(self._chunks), False)
