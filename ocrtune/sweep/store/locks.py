"""The coordinator lock: one coordinator per sweep, decided by the storage itself.

Reading "is a coordinator recorded?" and then writing "it is me" lets two processes started
together both win. So the claim is a lock the storage grants to one holder and drops by
itself when that holder dies:

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a hash of the study
  name, held on a connection of its own for the coordinator's life; the server releases it
  when that session ends, so a killed coordinator frees the sweep at once. MySQL: the same
  with ``GET_LOCK``.
- SQLite and journal files: a non-blocking ``flock`` on ``<file>.ocrtune-coordinator``; the
  kernel releases it when the process exits.
- In-memory studies (tests): a lock in this process.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import IO, Any, Protocol

import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage

from ocrtune.errors import OcrtuneError
from ocrtune.sweep.store.backends import FILE_KINDS, fcntl

_HELD_HERE: set[tuple[str, str]] = set()
_HERE_LOCK = threading.Lock()


class Held(Protocol):
    def check(self) -> None:
        """Raise ``OcrtuneError`` if the lock was lost (its database session ended)."""

    def release(self) -> None:
        """Give the lock up (idempotent)."""


def try_lock(kind: str, target: str, storage: BaseStorage, name: str) -> Held | None:
    """The coordinator lock for study ``name``, or None when another process holds it."""
    if kind in FILE_KINDS:
        return _FileHeld.take(Path(target + ".ocrtune-coordinator"))
    if kind == "rdb" and isinstance(storage, RDBStorage):
        return _DbHeld.take(storage.engine, name)
    return _HereHeld.take((target, name))


class _FileHeld:
    def __init__(self, f: IO[str] | None) -> None:
        self._f = f

    @classmethod
    def take(cls, path: Path) -> _FileHeld | None:
        if fcntl is None:  # no flock (Windows): one machine, one user; nothing to take
            return cls(None)
        f = open(path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return None
        return cls(f)

    def check(self) -> None:
        return None

    def release(self) -> None:
        if self._f is not None:
            self._f.close()  # closing the file drops the flock
            self._f = None


class _DbHeld:
    """A session-level lock on a dedicated AUTOCOMMIT connection (no transaction stays open,
    so ``idle_in_transaction_session_timeout`` cannot end the session under us)."""

    def __init__(self, engine: sqlalchemy.Engine, name: str, conn: sqlalchemy.Connection) -> None:
        self.engine, self.name = engine, name
        self._conn: sqlalchemy.Connection | None = conn

    @classmethod
    def take(cls, engine: sqlalchemy.Engine, name: str) -> _DbHeld | None:
        conn = _acquire(engine, name)
        return None if conn is None else cls(engine, name, conn)

    def check(self) -> None:
        """After a lost connection (database restart) the lock is gone: take it again, or
        stop if another coordinator took it meanwhile."""
        if self._conn is not None:
            try:
                self._conn.execute(sqlalchemy.text("SELECT 1"))
                return
            except sqlalchemy.exc.DBAPIError:
                self._conn.invalidate()
                self._conn.close()
                self._conn = None
        conn = _acquire(self.engine, self.name)  # raises while the database is down: the caller retries
        if conn is None:
            raise OcrtuneError(f"sweep {self.name!r}: the database connection dropped and another coordinator "
                               "took over the sweep meanwhile; this one stops")
        self._conn = conn

    def release(self) -> None:
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            conn.execute(sqlalchemy.text(_SQL[conn.dialect.name][1]), {"k": _key(conn.dialect.name, self.name)})
        except sqlalchemy.exc.DBAPIError:
            conn.invalidate()  # ending the session drops the lock too
        finally:
            conn.close()


class _HereHeld:
    def __init__(self, key: tuple[str, str]) -> None:
        self._key: tuple[str, str] | None = key

    @classmethod
    def take(cls, key: tuple[str, str]) -> _HereHeld | None:
        with _HERE_LOCK:
            if key in _HELD_HERE:
                return None
            _HELD_HERE.add(key)
        return cls(key)

    def check(self) -> None:
        return None

    def release(self) -> None:
        with _HERE_LOCK:
            if self._key is not None:
                _HELD_HERE.discard(self._key)
                self._key = None


_SQL = {
    "postgresql": ("SELECT pg_try_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)"),
    "mysql": ("SELECT GET_LOCK(:k, 0)", "SELECT RELEASE_LOCK(:k)"),
}


def _acquire(engine: sqlalchemy.Engine, name: str) -> sqlalchemy.Connection | None:
    dialect = engine.dialect.name
    if dialect not in _SQL:
        raise OcrtuneError(f"cannot lock a sweep's coordinator on a {dialect} database; use PostgreSQL")
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        got = conn.execute(sqlalchemy.text(_SQL[dialect][0]), {"k": _key(dialect, name)}).scalar()
    except BaseException:
        conn.close()
        raise
    if not got:
        conn.close()
        return None
    return conn


def _key(dialect: str, name: str) -> Any:
    """PostgreSQL: a signed 64-bit number; MySQL: a name of at most 64 characters."""
    digest = hashlib.blake2b(f"ocrtune-coordinator:{name}".encode(), digest_size=8).digest()
    if dialect == "postgresql":
        return int.from_bytes(digest, "big", signed=True)
    return "ocrtune-coord-" + digest.hex()
