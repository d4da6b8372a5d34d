"""Who runs a trial, and whether that process still exists (no Optuna, no torch).

A trial's owner is identified by ``host_id()`` plus pid and process start time, so a resumed
coordinator can tell at once that a RUNNING trial's process is gone (pid reuse does not fool
it, and two containers with the same host name do not either). The store reaps by this rule
and ``sweep status`` shows trials lost by it.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any, Mapping


def host_id() -> str:
    """This machine (and container): host name, boot id and pid namespace."""
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


def gone_here(attrs: Mapping[str, Any]) -> bool:
    """A worker recorded (``me()``) on this host whose process no longer exists: the one rule
    by which the store reaps its trials and ``sweep status`` shows them lost."""
    pid = attrs.get("pid")
    return attrs.get("host") == host_id() and isinstance(pid, int) and not pid_alive(pid, attrs.get("pid_start"))


def me() -> dict[str, object]:
    """This process's identity as stored with the trials it runs."""
    return {"host": host_id(), "pid": os.getpid(), "pid_start": process_start(os.getpid())}
