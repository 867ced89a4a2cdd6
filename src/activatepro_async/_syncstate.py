"""The state of an incremental sync: an SQLite file of the users the API confirmed.

One row per user the API has *processed*: its id and the content hash of the
wire form that was confirmed (:func:`content_hash`). Nothing else is stored,
so a row never claims more than the API confirmed; a user not (or no longer)
in the table is simply sent again, which is safe (upserts are idempotent).

The file (the standard library's ``sqlite3``):

- ``PRAGMA application_id`` is :data:`APPLICATION_ID` and ``user_version``
  :data:`VERSION`: a file that is not ours is refused and never written to;
- WAL mode, ``locking_mode=EXCLUSIVE``: the running sync holds the file's lock
  from open to close, so a second sync on it is refused at once; the operating
  system drops the lock when the process dies, even by SIGKILL;
- ``meta(key, value)`` holds the fingerprint (the base URL and the options that
  shape the users), compared on every open;
- ``users(id, hash)``: ``hash`` is 16 bytes.

Every change is one transaction (:meth:`SyncState.confirm`,
:meth:`SyncState.forget`): a kill at any moment leaves the rows of the last
commit, and a rerun converges. The file is read back as untrusted input: its
ids, application id, version, schema, fingerprint and every row's types are
checked; whatever does not fit is a :class:`SyncStateError` that says what to
do, never a traceback from sqlite3.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from ._wire import encode_json
from .errors import ActivateProError

__all__ = ["APPLICATION_ID", "VERSION", "SyncState", "SyncStateError", "content_hash"]

#: ``PRAGMA application_id`` of a state file: "APsy".
APPLICATION_ID = 0x41507379
#: ``PRAGMA user_version`` of the layout below.
VERSION = 1
#: Bytes of a content hash: blake2b, 128 bits (a change goes unseen with p = 2**-128).
HASH_BYTES = 16

_SCHEMA = {
    "meta": "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "users": "CREATE TABLE users (id TEXT PRIMARY KEY, hash BLOB NOT NULL) WITHOUT ROWID",
}
_START_OVER = "delete it to start over (every user is then sent once more, which is safe)"


class SyncStateError(ActivateProError):
    """The sync state file cannot be used for this run (the message says why and what to do)."""


def content_hash(wire: Mapping[str, Any]) -> bytes:
    """The hash of a user's wire form: its compact JSON with sorted keys, blake2b 16 bytes.

    Key order does not matter; ``ValueError``/``TypeError`` for what JSON cannot carry.
    """
    return hashlib.blake2b(encode_json(wire, sort_keys=True), digest_size=HASH_BYTES).digest()


def fingerprint_text(base_url: str, options: Mapping[str, Any]) -> str:
    """What a state is tied to, as one canonical text (sorted keys)."""
    try:
        return json.dumps(
            {"base_url": base_url, "options": options}, sort_keys=True, ensure_ascii=True
        )
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"the sync options must be JSON values (str, int, lists...): {exc}"
        ) from None


def _describe(text: str) -> str:
    try:
        data = json.loads(text)
        return f"base URL {data['base_url']} with options {json.dumps(data['options'])}"
    except (ValueError, TypeError, KeyError):
        return "options this SDK cannot read"


class SyncState:
    """An open state file, locked for this process until :meth:`close`."""

    def __init__(self, path: str, connection: sqlite3.Connection, *, created: bool) -> None:
        self.path = path
        self.created = created
        self._db = connection

    # -- opening ---------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, base_url: str, options: Mapping[str, Any]
    ) -> SyncState:
        """Open (or create) the state at ``path`` for this base URL and options, and lock it."""
        path = os.fspath(path)
        wanted = fingerprint_text(base_url, options)
        if os.path.isdir(path):
            raise SyncStateError(f"the sync state {path} is a directory: pass a file path")
        try:
            db = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise SyncStateError(f"cannot open the sync state {path}: {exc}") from None
        try:
            created = cls._check_or_create(db, path, wanted)
        except BaseException:
            db.close()
            raise
        return cls(path, db, created=created)

    @staticmethod
    def _check_or_create(db: sqlite3.Connection, path: str, wanted: str) -> bool:
        try:
            # Held from the first read to close(): a second sync on this file
            # fails at once ("locked"); the OS drops the lock if we die.
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("BEGIN IMMEDIATE")
            app_id = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = dict(db.execute("SELECT name, sql FROM sqlite_master"))
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise SyncStateError(
                    f"the sync state {path} is in use by another running sync: wait for it "
                    "to end (or give this run its own state file)"
                ) from None
            raise SyncStateError(f"the sync state {path} cannot be read: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise SyncStateError(
                f"{path} is not a sync state ({exc}): pass another state path, or delete "
                "the file if it is a broken state"
            ) from None
        try:
            if app_id == 0 and version == 0 and not tables:
                # A new file (or an empty one): ours from now on.
                for sql in _SCHEMA.values():
                    db.execute(sql)
                db.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (wanted,))
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
                db.execute(f"PRAGMA user_version={VERSION}")
                db.execute("COMMIT")
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                return True
            if app_id != APPLICATION_ID:
                raise SyncStateError(
                    f"{path} is not a sync state of activatepro (another program's SQLite "
                    "file): pass another state path; it was left untouched"
                )
            if version != VERSION:
                raise SyncStateError(
                    f"the sync state {path} has layout version {version}; this SDK reads "
                    f"version {VERSION}: upgrade the SDK, or {_START_OVER}"
                )
            if tables != _SCHEMA:
                raise SyncStateError(
                    f"the sync state {path} is damaged (its tables differ): {_START_OVER}"
                )
            rows = db.execute("SELECT key, value FROM meta").fetchall()
            found = dict(rows) if all(isinstance(v, str) for _, v in rows) else {}
            if found.keys() != {"fingerprint"}:
                raise SyncStateError(
                    f"the sync state {path} is damaged (its meta table): {_START_OVER}"
                )
            if found["fingerprint"] != wanted:
                raise SyncStateError(
                    f"the sync state {path} belongs to {_describe(found['fingerprint'])}; this "
                    f"run is for {_describe(wanted)}: use another state file for it, or "
                    f"{_START_OVER}"
                )
            db.execute("COMMIT")
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        except SyncStateError:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        except sqlite3.DatabaseError as exc:
            raise SyncStateError(
                f"the sync state {path} is damaged ({exc}): {_START_OVER}"
            ) from None
        return False

    # -- reading -----------------------------------------------------------------------

    def load(self) -> dict[str, bytes]:
        """Every confirmed user: id -> hash. A row of the wrong shape refuses the whole file."""
        try:
            bad = self._db.execute(
                "SELECT id FROM users WHERE typeof(id) != 'text' OR id = '' "
                "OR typeof(hash) != 'blob' OR length(hash) != ? LIMIT 1",
                (HASH_BYTES,),
            ).fetchone()
            if bad is not None:
                raise SyncStateError(
                    f"the sync state {self.path} is damaged (a row for id {bad[0]!r} is not an "
                    f"id and a {HASH_BYTES}-byte hash): {_START_OVER}"
                )
            return dict(self._db.execute("SELECT id, hash FROM users"))
        except sqlite3.DatabaseError as exc:
            raise SyncStateError(
                f"the sync state {self.path} is damaged ({exc}): {_START_OVER}"
            ) from None

    def count(self) -> int:
        """How many users the state holds."""
        try:
            found: int = self._db.execute("SELECT count(*) FROM users").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise SyncStateError(
                f"the sync state {self.path} is damaged ({exc}): {_START_OVER}"
            ) from None
        return found

    # -- changing: one transaction each ------------------------------------------------

    def confirm(self, users: Iterable[tuple[str, bytes]]) -> None:
        """Record these (id, hash) pairs as confirmed, all or none."""
        self._write("INSERT OR REPLACE INTO users (id, hash) VALUES (?, ?)", users)

    def forget(self, user_ids: Iterable[str]) -> None:
        """Remove these ids (deleted, and the delete processed), all or none."""
        self._write("DELETE FROM users WHERE id = ?", ((uid,) for uid in user_ids))

    def _write(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(sql, rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise SyncStateError(f"cannot write the sync state {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the file and release its lock."""
        self._db.close()
