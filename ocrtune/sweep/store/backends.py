"""Where a sweep's study lives: sweep names, storage URLs, opening and closing backends.

Every way of opening a storage that can fail on the user's input or file system ends in one
line: a bad URL, an empty path or a directory is an ``InputError`` (exit 2); a file that
cannot be created, locked or read as a study (not a database, not a journal) is an
``OcrtuneError`` (exit 1). SQLite and journal files are guarded by an ``flock`` next to the
file, so two processes on one machine never create the same schema at once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy
from optuna.exceptions import ExperimentalWarning, StorageInternalError
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend

from ocrtune.errors import InputError, OcrtuneError

try:
    import fcntl
except ImportError:  # Windows: thread locks only
    fcntl = None  # type: ignore[assignment]

FILE_KINDS = ("sqlite", "journal")
MAX_NAME = 100
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
_MEMORY: dict[str, InMemoryStorage] = {}
# What a file that is no study (or cannot be one) raises while it is opened.
_FILE_ERRORS = (OSError, json.JSONDecodeError, UnicodeDecodeError, sqlalchemy.exc.SQLAlchemyError,
                StorageInternalError)


def check_name(name: str, key: str = "--name") -> str:
    """A sweep name is a folder name and a study name everywhere (CLI, workers, status), so it
    is taken as given or refused, never rewritten."""
    if not _NAME.match(name) or len(name) > MAX_NAME:
        raise InputError(f"a sweep name uses only letters, digits, '.', '_' and '-', starts with a letter or digit "
                         f"and has at most {MAX_NAME} characters (got {name!r})", key=key)
    return name


def resolve_storage(name: str, storage: str | None, runs_dir: Path = Path("runs")) -> tuple[str, str]:
    """(kind, target): sqlite/journal file path, RDB URL or memory key. Default: SQLite in
    ``runs/sweeps/<name>/study.db``."""
    check_name(name)
    if storage is None or not storage.strip():
        return "sqlite", str(runs_dir / "sweeps" / name / "study.db")
    s = storage.strip()
    if s.startswith("memory:"):
        return "memory", s
    if s.startswith("postgres://"):
        s = "postgresql://" + s[len("postgres://"):]  # SQLAlchemy only knows the long name
    if s.startswith(("postgresql", "mysql")):
        return "rdb", s
    if s.startswith("sqlite:///"):
        return "sqlite", _file_target(s[len("sqlite:///"):], storage)
    if s.startswith("journal:"):
        return "journal", _file_target(s[len("journal:"):], storage)
    if "://" not in s:
        suffix = Path(s).suffix
        if suffix in (".db", ".sqlite", ".sqlite3"):
            return "sqlite", _file_target(s, storage)
        if suffix in (".log", ".journal", ".jsonl"):
            return "journal", _file_target(s, storage)
    raise InputError(f"unsupported storage {storage!r}; use postgresql://user:pass@host/db, sqlite:///path.db, "
                     "journal:path.log or a .db/.log file path", key="--storage")


def show_storage(kind: str, target: str) -> str:
    """The storage for people: file paths as given, passwords hidden."""
    if kind == "sqlite":
        return f"sqlite:///{target}"
    if kind == "journal":
        return f"journal:{target}"
    if kind == "rdb" and "@" in target and ":" in target.split("@")[0].split("//", 1)[-1]:
        head, tail = target.split("@", 1)
        scheme, cred = head.split("//", 1)
        return f"{scheme}//{cred.split(':')[0]}:***@{tail}"
    return target


def open_backend(kind: str, target: str, read_only: bool = False) -> BaseStorage:
    """The Optuna storage behind (kind, target); failures are one-line errors. ``read_only``
    opens a SQLite file without writing to it or beside it (``mode=ro``, or ``immutable``
    when its folder cannot hold SQLite's shared-memory file)."""
    if kind == "memory":
        return _MEMORY.setdefault(target, InMemoryStorage())
    if kind in FILE_KINDS:
        with file_errors(kind, target):
            path = Path(target)
            if read_only and kind == "sqlite":
                return _open_sqlite_read_only(path)
            if read_only:  # an existing journal is only read; its lock is taken for writes alone
                return JournalStorage(JournalFileBackend(str(path)))
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "journal":
                return JournalStorage(JournalFileBackend(str(path)))
            rdb = _rdb(f"sqlite:///{path}", {"connect_args": {"timeout": 60}})
            sqlalchemy.event.listen(rdb.engine, "connect", _sqlite_pragmas)
            rdb.engine.dispose()  # reconnect with the pragmas
            return rdb
    try:
        return _open_rdb(_with_driver(target))
    except ImportError:
        raise InputError(f"no database driver for {show_storage(kind, target)}: pip install psycopg2-binary "
                         "(PostgreSQL) or pymysql (MySQL)", key="--storage") from None
    except Exception as e:  # connection refused, bad credentials, unknown database
        raise OcrtuneError(f"cannot open storage {show_storage(kind, target)}: {first_line(e)}") from None


HEARTBEAT_S = 10  # workers record a trial's heartbeat this often (Optuna's RDB heartbeat)


def _rdb(url: str, engine_kwargs: dict[str, Any]) -> RDBStorage:
    """An RDB storage with Optuna's heartbeat on: workers record each running trial's
    heartbeat in the database (by its clock), and ``Store.reap_stale`` fails the silent ones
    with Optuna's stale-trial check."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S)


def _open_sqlite_read_only(path: Path) -> RDBStorage:
    """A SQLite study opened without writing anything where it lies.

    In a folder this process can write, ``mode=ro``. In one it cannot (a read-only copy): with
    no pending write-ahead log, ``immutable`` (exact: everything is in the main file); with a
    ``-wal`` beside it, ``mode=ro`` works when its ``-shm`` is there too; otherwise the file
    and its log are copied to a temporary folder and read there, since an immutable open
    would ignore the log's recent writes."""
    import atexit
    import os
    import shutil
    import sqlite3
    import tempfile
    from urllib.parse import quote

    def opened(file: Path, extra: str = "") -> RDBStorage:
        uri = f"file:{quote(str(file.resolve()))}?mode=ro{extra}"
        rdb = RDBStorage(f"sqlite:///{uri}&uri=true", engine_kwargs={"connect_args": {"timeout": 60}},
                         skip_table_creation=True, skip_compatibility_check=True)
        with rdb.engine.connect() as conn:  # fail here, not at the first query
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")
        return rdb

    wal = path.with_name(path.name + "-wal")
    if os.access(path.parent, os.W_OK):
        return opened(path)
    if not wal.is_file() or wal.stat().st_size == 0:
        return opened(path, "&immutable=1")
    try:
        return opened(path)
    except (sqlalchemy.exc.SQLAlchemyError, sqlite3.Error, StorageInternalError):
        pass  # no -shm to share: read a copy
    tmp = Path(tempfile.mkdtemp(prefix="ocrtune-status-"))
    atexit.register(shutil.rmtree, tmp, True)
    for f in (path, wal):
        shutil.copy2(f, tmp / f.name)
    return opened(tmp / path.name)


def _open_rdb(url: str, attempts: int = 6) -> RDBStorage:
    """Optuna creates its tables and version row non-atomically: processes that open a fresh
    database together (a coordinator and its workers) collide on it, and all but one fail. The
    loser's retry finds the tables made; a real error (a missing grant) fails every try."""
    for attempt in range(attempts):
        try:
            return _rdb(url, {"pool_pre_ping": True})
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def close_backend(storage: BaseStorage) -> None:
    """Give a backend's database connections back now rather than at garbage collection."""
    if isinstance(storage, RDBStorage):
        storage.engine.dispose()


@contextlib.contextmanager
def file_errors(kind: str, target: str) -> Iterator[None]:
    """A SQLite or journal file that cannot be created, locked or read: one ``OcrtuneError``."""
    try:
        yield
    except _FILE_ERRORS as e:
        cause = e.__cause__ if isinstance(e, StorageInternalError) and e.__cause__ is not None else e
        raise OcrtuneError(f"cannot open storage {show_storage(kind, target)}: {first_line(cause)} "
                           "(is it a sweep study file, in a folder you can write?)") from None


def lock_path(target: str) -> Path:
    return Path(target + ".ocrtune-lock")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` across processes on this machine (no-op where unsupported)."""
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    if not text:
        return type(e).__name__
    return text.splitlines()[0].removeprefix("(sqlite3.OperationalError) ").removeprefix("(sqlite3.DatabaseError) ")


def _file_target(path: str, given: str) -> str:
    if not path.strip():
        raise InputError(f"{given!r} names no file; give a path such as sqlite:///runs/sweeps/x.db or journal:x.log",
                         key="--storage")
    if Path(path).is_dir():
        raise InputError(f"{path} is a folder; give the study's file path inside it (for example {path.rstrip('/')}/study.db)",
                         key="--storage")
    return path


def _sqlite_pragmas(conn: Any, record: Any) -> None:
    """WAL lets the coordinator read while workers write; synchronous=NORMAL skips an fsync per
    write (20x faster here). A killed process loses nothing; a power cut may lose the last
    writes, which resuming redoes."""
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _with_driver(url: str) -> str:
    """``postgresql://`` with whichever PostgreSQL driver is installed (SQLAlchemy 2.1 assumes
    psycopg 3; psycopg2-binary is the common one)."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    if url.startswith("mysql://") and importlib.util.find_spec("MySQLdb") is None \
            and importlib.util.find_spec("pymysql") is not None:
        return "mysql+pymysql://" + url[len("mysql://"):]
    return url
