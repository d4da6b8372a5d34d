"""Guards on a running trial: store calls that may fail for a while (``Patient``), the time
limits that stop a trial nobody else would stop (``Limits``), and sweep files that cannot be
written (``SweepFilesError``: a full disk stops the sweep at once, never one trial after
another). No Optuna, no torch."""

from __future__ import annotations

import ast
import contextlib
import errno
import os
import re
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ocrtune.diskspace import disk_usage_near
from ocrtune.errors import OcrtuneError
from ocrtune.sweep.types import finite

if TYPE_CHECKING:
    from ocrtune.sweep.store import StoredTrial

STALL_FACTOR = 5.0  # no new epoch for this many median epoch times ...
STALL_FLOOR_S = 1800.0  # ... and at least this long: the trial hangs
FAILED: Any = object()  # what ``Patient.call`` returns when the store call failed


class StoreUnreachable(OcrtuneError):
    """The sweep store kept failing for ``grace_s``: the trial was stopped."""


class SweepFilesError(OcrtuneError):
    """A sweep file could not be written (a full disk, a read-only folder): the sweep stops
    cleanly, its running trials are re-queued, and the same command resumes it later."""


_DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
_DISK_TEXT = ("No space left on device", "database or disk is full", "Disk quota exceeded", "Read-only file system",
              "[Errno 28]", "[Errno 122]", "[Errno 30]")


def disk_trouble(e: BaseException | str | None) -> bool:
    """Whether an error (or an error text from a trial process) says a disk is full or
    read only: the machine's problem, never the trial's values'. Follows ``__cause__``, since
    SQLAlchemy wraps SQLite's "database or disk is full"."""
    if e is None:
        return False
    if isinstance(e, str):
        return any(t in e for t in _DISK_TEXT)
    seen = 0
    cur: BaseException | None = e
    while cur is not None and seen < 5:
        if isinstance(cur, OSError) and cur.errno in _DISK_ERRNOS:
            return True
        if any(t in str(cur) for t in _DISK_TEXT):
            return True
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    return False


# How str(OSError) ends when it knows its file: "[Errno 28] No space left on device: '/x/best.ckpt'"
_NAMED = re.compile(r"\[Errno \d+\] [^:\n]+: ('(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\")")


def failed_file(e: BaseException | str | None) -> str | None:
    """The file an OSError names: its ``filename`` (following causes), or, for the text a
    trial process left in its log, the name Python's OSError text ends with. None if unnamed
    (a write() on an open file): then the caller's folder is named instead."""
    if isinstance(e, str):
        for m in reversed(list(_NAMED.finditer(e))):
            with contextlib.suppress(ValueError, SyntaxError):
                name = ast.literal_eval(m.group(1))
                if isinstance(name, str) and name:
                    return name
        return None
    seen, cur = 0, e
    while cur is not None and seen < 5:
        if isinstance(cur, OSError) and cur.filename:
            return os.fsdecode(cur.filename) if isinstance(cur.filename, (str, bytes)) else str(cur.filename)
        cur, seen = cur.__cause__ or cur.__context__, seen + 1
    return None


def files_error(path: Path | str, e: BaseException | str) -> SweepFilesError:
    """One located line: the file (the one the error names, else ``path``), what went wrong,
    the free space there, and what to do."""
    path = Path(failed_file(e) or path)
    if isinstance(e, OSError) and e.strerror:
        what = e.strerror
    else:
        text = str(e).strip().splitlines()
        what = next((t for t in _DISK_TEXT[:5] if any(t in line for line in text)), text[-1] if text else "error")
    usage = disk_usage_near(path)
    free = f" ({usage.free / 1e6:.1f} MB free there)" if usage is not None else ""
    return SweepFilesError(f"{path}: {what}{free}; the sweep stopped and its running trials were re-queued: "
                           "free some space (or make the folder writable) and re-run the same command to resume")


class Patient:
    """Store calls made while a trial runs. A failing call (a database restarting, SQLite
    locked past its timeout) returns ``FAILED`` and the caller tries again on its next poll;
    only a store that has failed for ``grace_s`` in a row raises ``StoreUnreachable``, since by
    then other processes have declared the trial lost anyway."""

    def __init__(self, grace_s: float, poll_s: float, store_file: str | None = None) -> None:
        self.grace_s, self.poll_s, self.store_file = grace_s, poll_s, store_file
        self._since: float | None = None

    def call(self, fn: Callable[[], Any]) -> Any:
        try:
            out = fn()
        except OcrtuneError:
            raise  # not the store hiccuping: something the user must act on
        except Exception as e:
            if disk_trouble(e):  # waiting does not free a disk: stop now, in one line
                raise files_error(self.store_file or "the sweep store", e) from e
            now = time.monotonic()
            self._since = now if self._since is None else self._since
            if now - self._since >= self.grace_s:
                raise StoreUnreachable(f"the sweep store failed for {self.grace_s:g}s: {type(e).__name__}: "
                                       f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e
            return FAILED
        self._since = None
        return out

    def until_ok(self, fn: Callable[[], Any]) -> Any:
        """``fn()`` once it succeeds, retrying every poll (raises after ``grace_s``)."""
        while (out := self.call(fn)) is FAILED:
            time.sleep(max(self.poll_s, 0.05))
        return out


class Limits:
    """When a running trial is stopped as failed: past ``--trial-timeout``, or stalled (no
    new epoch for ``factor`` x the median epoch time of finished trials, at least
    ``floor_s``; no stall rule before a trial has finished). The heartbeat cannot tell: it
    comes from the worker, which is fine while the trial hangs."""

    def __init__(self, timeout_s: float | None, factor: float = STALL_FACTOR, floor_s: float = STALL_FLOOR_S) -> None:
        self.timeout_s, self.factor, self.floor_s = timeout_s, factor, floor_s
        self.stall_s: float | None = None

    def learn(self, finished: Sequence[StoredTrial]) -> None:
        times = [v for v in (_epoch_time(t) for t in finished) if v is not None]
        self.stall_s = max(self.factor * statistics.median(times), self.floor_s) if times else None

    def check(self, elapsed_s: float, quiet_s: float) -> tuple[str, str] | None:
        if self.timeout_s is not None and elapsed_s > self.timeout_s:
            return "timeout", f"timed out: still running after {elapsed_s:.0f}s (--trial-timeout {self.timeout_s:g})"
        if self.stall_s is not None and quiet_s > self.stall_s:
            return "stalled", (f"stalled: no progress for {quiet_s:.0f}s (limit {self.stall_s:.0f}s: {self.factor:g} x the "
                               f"median epoch time of finished trials, at least {self.floor_s:.0f}s)")
        return None


def _epoch_time(t: StoredTrial) -> float | None:
    if not t.status.is_scored:
        return None
    v = finite(t.attrs.get("time_per_epoch_s"))
    epochs = t.attrs.get("epochs")
    if v is None and t.duration_s and isinstance(epochs, int) and epochs > 0:
        v = t.duration_s / epochs
    return v if v and v > 0 else None
