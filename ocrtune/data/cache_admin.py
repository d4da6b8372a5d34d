"""What the decoded-image cache (``data/decoded_cache.py``) holds, and removing parts of it.

The cache is never evicted by training and every library upgrade or edit of the loader starts a
fresh stage directory, so old ones pile up (about 10x the JPEGs each). ``scan`` says per stage
directory whether this code still uses it (decided by ``stage_dir_name``, the function that names
them), how much it holds and when it was last used; ``clear`` removes stale or all directories and
``evict`` the least recently used entries above a size. Everything here is safe while training
runs: an entry or folder that vanishes under a reader is decoded and written again, and one that
vanishes under this module (renamed temp files, another ``clear``) is skipped.

Last use is an entry's newest of mtime and atime: with the usual ``relatime`` mount option the
kernel updates atime on a read at most once a day, so "least recently used" is exact to a day
(on a ``noatime`` file system it is the order entries were written).
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path

from ocrtune.data.decoded_cache import ENTRY_SUFFIX, decoded_root, stage_dir_name
from ocrtune.data.layout import cache_root_and_source
from ocrtune.diskspace import disk_usage_near
from ocrtune.errors import InputError, Problem

__all__ = ["CacheReport", "Removal", "StageDir", "Status", "clear", "evict", "parse_size", "scan"]

_STAGE_DIR = re.compile(r"(?P<stage>full|square\d+)-[0-9a-f]{12}")
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


class Status(str, Enum):
    CURRENT = "current"  # named by this code and these Pillow/OpenCV versions: training reads it
    STALE = "stale"  # another version's: nothing here reads it again
    UNKNOWN = "unknown"  # not a stage directory: listed, removed by --clear only


@dataclass(frozen=True)
class StageDir:
    path: Path
    stage: str | None  # "full", "square1024"; None when not a stage directory
    status: Status
    entries: int  # complete entries (*.px)
    bytes: int  # every file inside, leftover temp files included
    last_used: float | None  # newest entry's max(mtime, atime), seconds since the epoch

    def to_dict(self) -> dict:
        return {"name": self.path.name, "stage": self.stage, "status": self.status.value,
                "entries": self.entries, "bytes": self.bytes, "last_used": _iso(self.last_used)}


@dataclass(frozen=True)
class CacheReport:
    root: Path  # the decoded/ folder
    source: str  # why there: "$OCRTUNE_CACHE", "$XDG_CACHE_HOME" or "default"
    stages: tuple[StageDir, ...]  # current first, then most recently used first
    disk_total: int | None  # the file system holding root (None: not measurable)
    disk_free: int | None

    @property
    def entries(self) -> int:
        return sum(s.entries for s in self.stages)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.stages)

    def of(self, status: Status) -> list[StageDir]:
        return [s for s in self.stages if s.status is status]

    def to_dict(self) -> dict:
        return {"root": str(self.root), "source": self.source, "exists": self.root.is_dir(),
                "entries": self.entries, "bytes": self.bytes,
                "stale_bytes": sum(s.bytes for s in self.of(Status.STALE)),
                "disk": {"total": self.disk_total, "free": self.disk_free},
                "stages": [s.to_dict() for s in self.stages]}


@dataclass(frozen=True)
class Removal:
    """What a ``clear`` or ``evict`` removed (per stage directory), what failed, what is left."""

    removed: tuple[StageDir, ...]  # entries/bytes removed from each directory (path: the directory)
    failures: tuple[Problem, ...]
    after: CacheReport

    @property
    def freed(self) -> int:
        return sum(s.bytes for s in self.removed)

    def to_dict(self) -> dict:
        return {"removed": [s.to_dict() for s in self.removed], "freed_bytes": self.freed,
                "failures": [str(p) for p in self.failures], "after": self.after.to_dict()}


def cache_source() -> str:
    """Which setting put the cache where ``layout.cache_root`` says."""
    return cache_root_and_source()[1]


def scan(root: Path | None = None) -> CacheReport:
    """Every directory under ``decoded/`` with its entries, bytes and last use. A folder that
    cannot be read is an ``InputError`` naming it; files vanishing meanwhile are skipped."""
    root = decoded_root() if root is None else root
    stages = [_stage_dir(child) for child in _children(root)]
    stages.sort(key=lambda s: (s.status is not Status.CURRENT, -(s.last_used or 0.0), s.path.name))
    total, free = _disk(root)
    return CacheReport(root, cache_source(), tuple(stages), total, free)


def clear(stale_only: bool, root: Path | None = None) -> Removal:
    """Remove the stale stage directories (``stale_only``) or everything under ``decoded/``."""
    before = scan(root)
    chosen = before.of(Status.STALE) if stale_only else list(before.stages)
    removed, failures = [], []
    for s in chosen:
        entries, size, problem = _remove_tree(s.path)
        removed.append(StageDir(s.path, s.stage, s.status, entries, size, s.last_used))
        if problem is not None:
            failures.append(problem)
    return Removal(tuple(removed), tuple(failures), scan(before.root))


def evict(max_bytes: int, root: Path | None = None) -> Removal:
    """Remove least recently used entries, of any stage directory, until the cache holds at most
    ``max_bytes`` (temp files being written and unknown files are never removed)."""
    before = scan(root)
    over = before.bytes - max_bytes
    candidates: list[tuple[float, str, Path, int, StageDir]] = []
    if over > 0:
        for s in before.stages:
            if s.status is Status.UNKNOWN:
                continue
            for path, st in _files(s.path):
                if path.name.endswith(ENTRY_SUFFIX):
                    candidates.append((max(st.st_mtime, st.st_atime), str(path), path, st.st_size, s))
    candidates.sort(key=lambda c: (c[0], c[1]))
    per_dir: dict[Path, list[int]] = {}
    failures: list[Problem] = []
    for _, _, path, size, s in candidates:
        if over <= 0:
            break
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            failures.append(_problem(path, "cannot remove", e))
            break
        counts = per_dir.setdefault(s.path, [0, 0])
        counts[0] += 1
        counts[1] += size
        over -= size
    removed = tuple(StageDir(s.path, s.stage, s.status, *per_dir[s.path], s.last_used)
                    for s in before.stages if s.path in per_dir)
    return Removal(removed, tuple(failures), scan(before.root))


def parse_size(text: str) -> int:
    """``20G``, ``500MB``, ``1.5TiB``, ``1000000`` -> bytes (k/M/G/T are powers of 1000, Ki/Mi/Gi/Ti
    of 1024, as ``df -H``/``df -h`` print them)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]i?)?b?\s*", text, re.I)
    if m is None:
        raise InputError(f"not a size: {text!r} (examples: 20G, 500MB, 1.5TiB, 1000000)", key="--max-size")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


# --- file system -----------------------------------------------------------------------------

def _children(root: Path) -> list[Path]:
    try:
        with os.scandir(root) as it:
            return [Path(e.path) for e in it]
    except FileNotFoundError:
        return []  # nothing cached yet
    except OSError as e:
        raise InputError(f"cannot read the decoded-image cache ({e.strerror or e})", file=root) from None


def _stage_dir(path: Path) -> StageDir:
    m = _STAGE_DIR.fullmatch(path.name)
    is_dir = path.is_dir() and not path.is_symlink()
    stage = m.group("stage") if m and is_dir else None
    if stage is None:
        status = Status.UNKNOWN
    else:
        status = Status.CURRENT if path.name == stage_dir_name(stage) else Status.STALE
    entries = size = 0
    last: float | None = None
    for f, st in _files(path):
        size += st.st_size
        if f.name.endswith(ENTRY_SUFFIX):
            entries += 1
            used = max(st.st_mtime, st.st_atime)
            last = used if last is None or used > last else last
    return StageDir(path, stage, status, entries, size, last)


def _files(path: Path) -> list[tuple[Path, os.stat_result]]:
    """Every file under ``path`` (itself when a file) with its lstat; vanished ones skipped,
    an unreadable folder an ``InputError`` naming it."""
    out: list[tuple[Path, os.stat_result]] = []
    stack = [path]
    while stack:
        here = stack.pop()
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise InputError(f"cannot read ({e.strerror or e})", file=here) from None
        if not os.path.isdir(here) or os.path.islink(here):
            out.append((here, st))
            continue
        try:
            with os.scandir(here) as it:
                stack.extend(Path(e.path) for e in it)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise InputError(f"cannot read the decoded-image cache folder ({e.strerror or e})", file=here) from None
    return out


def _remove_tree(path: Path) -> tuple[int, int, Problem | None]:
    """Delete ``path`` and all inside: (entries, bytes) removed and the first failure. A training
    writing into it meanwhile can leave a folder not empty; it is emptied again a few times."""
    entries = size = 0
    for _ in range(5):
        try:
            found = _files(path)
        except InputError as e:
            return entries, size, e.problems[0]
        for f, st in found:
            try:
                os.unlink(f)
            except FileNotFoundError:
                continue
            except OSError as e:
                return entries, size, _problem(f, "cannot remove", e)
            size += st.st_size
            entries += f.name.endswith(ENTRY_SUFFIX)
        try:
            _remove_dirs(path)
            return entries, size, None
        except OSError as e:
            if e.errno != errno.ENOTEMPTY:
                return entries, size, _problem(Path(e.filename or path), "cannot remove", e)
    return entries, size, Problem("cannot remove: a running training keeps writing into it; run again", str(path))


def _remove_dirs(path: Path) -> None:
    """Remove the (now file-free) folders under ``path``, deepest first."""
    if not os.path.isdir(path) or os.path.islink(path):
        return
    for dirpath, _, _ in sorted(os.walk(path), key=lambda w: -len(w[0])):
        try:
            os.rmdir(dirpath)
        except FileNotFoundError:
            continue


def _problem(path: Path, what: str, e: OSError) -> Problem:
    return Problem(f"{what} ({e.strerror or e})", str(path))


def _disk(root: Path) -> tuple[int | None, int | None]:
    usage = disk_usage_near(root)
    return (None, None) if usage is None else (usage.total, usage.free)


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")
