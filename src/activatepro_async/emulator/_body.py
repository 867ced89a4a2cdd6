"""Reading a request body under the emulator's size limit, for both ways of serving it."""

from __future__ import annotations


class BoundedBody:
    """Collects a body's chunks up to ``limit`` bytes; past it, keeps nothing.

    The body is still read to its end by the caller (and thrown away): see the
    readers in ``_server`` and ``_transport`` for why. ``size`` counts every
    byte received, kept or not. A request whose key was refused (``authorized``
    false) keeps nothing of its body, whatever the limit: it gets 401 whatever
    the body holds (see ``_pipeline.body_reader``).
    """

    __slots__ = ("_chunks", "_limit", "authorized", "oversize", "size")

    def __init__(self, limit: int, declared_length: str | None, *, authorized: bool = True) -> None:
        self.authorized = authorized
        self._limit = limit if authorized else 0
        self._chunks: list[bytes] = []
        self.size = 0
        # A declared Content-Length over the limit decides before any byte is read.
        self.oversize = (
            declared_length is not None
            and declared_length.isdigit()
            and int(declared_length) > limit
        )

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._limit:
            self.oversize = True
        if not self.oversize:
            self._chunks.append(chunk)
        elif self._chunks:
            self._chunks.clear()

    def result(self) -> tuple[bytes, bool]:
        """``(body, False)``, or ``(b"", True)`` when it was over the limit."""
        return (b"", True) if self.oversize else (b"".join(self._chunks), False)
