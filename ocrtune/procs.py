"""Processes: who owns a piece of work (host, pid, start time), whether that process still
exists, and child processes that die with their parent. No torch, no Optuna.

An owner is ``host_id()`` plus pid and process start time, so a reader can tell at once that
the process behind a ``running`` trial or run is gone: pid reuse does not fool it, and two
containers with the same host name do not either. The sweep's trials (``sweep.run.liveness``)
and training runs (``train.rundir``) share this rule.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

PR_SET_PDEATHSIG = 1


def available_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def host_id() -> str:
    """This machine (and container, and boot): host name, boot id and pid namespace."""
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8])
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "/".join(parts)


def process_start(pid: int) -> float | None:
    """Start time of a process in clock ticks since boot (Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return float(fields[19]) if len(fields) > 19 else None


def pid_alive(pid: int, start: float | None = None) -> bool:
    """True if ``pid`` runs, is not a zombie, and (when known) started at ``start``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the signal check is all there is
    if stat[stat.rfind(")") + 2:].split()[:1] == ["Z"]:
        return False
    return start is None or process_start(pid) == start


@dataclass(frozen=True)
class Owner:
    """The process that does a piece of work, as recorded beside it (``to_json``)."""

    host: str
    pid: int
    pid_start: float | None = None

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(host_id(), pid, process_start(pid))

    @classmethod
    def from_json(cls, data: Any) -> Owner | None:
        """None for a record that is missing or not an owner (older files)."""
        if not isinstance(data, Mapping):
            return None
        host, pid, start = data.get("host"), data.get("pid"), data.get("pid_start")
        if not isinstance(host, str) or not isinstance(pid, int) or isinstance(pid, bool):
            return None
        return cls(host, pid, float(start) if isinstance(start, (int, float)) else None)

    def to_json(self) -> dict[str, object]:
        return {"host": self.host, "pid": self.pid, "pid_start": self.pid_start}

    @property
    def here(self) -> bool:
        """Whether the owner runs (or ran) on this machine, container and boot."""
        return self.host == host_id()

    def gone_here(self) -> bool:
        """An owner on this host whose process no longer exists."""
        return self.here and not pid_alive(self.pid, self.pid_start)


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> bool:
    """Linux: have the kernel send ``sig`` to this process when its parent dies, so no child
    (a trial, a DataLoader worker) outlives an OOM-killed or SIGKILLed parent as an orphan.

    ``parent`` is the pid the parent had when it started us: if it already died before the
    call (we were re-parented), ``sig`` is sent at once. False where unsupported.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if parent is not None and os.getppid() != parent:  # the parent died before the call above
        os.kill(os.getpid(), sig)
    return True
