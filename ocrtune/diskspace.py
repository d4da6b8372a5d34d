"""Free space where a file will go, asked of the nearest folder that exists (the file, and often
its folder, do not yet). One rule for run files, the sweep's files and the decoded-image cache."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple


class DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


def disk_usage_near(path: Path | str) -> DiskUsage | None:
    """``shutil.disk_usage`` of ``path`` or its nearest existing parent; None when unreadable."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return DiskUsage(*shutil.disk_usage(probe))
    except OSError:
        return None
