"""How many loader processes ``dataloader.num_workers`` means on this machine.

A number is taken as it is. ``auto`` is one worker per core of this process's share, less two
(the trainer's own thread and the one that pins batches), at least 1 and at most ``AUTO_MAX``:
on an H200 with 16 cores EfficientNet-B4 at 1024 px trained at 51 images/s with 4 workers
(the GPU waiting 31 % of the time) and 65 with 12, against 72 on batches already in memory
(docs/benchmarks.md). A sweep slot's share is what its launcher gives it (``SLOT_CORES_ENV``);
otherwise the cores this process may run on; DDP's ranks on one machine divide it. Augmentation
does not depend on the workers (``EpochShuffle`` draws each sample's seed), so ``auto`` trains
the same on every machine.
"""

from __future__ import annotations

import os
from typing import Literal

from ocrtune.procs import available_cores

__all__ = ["AUTO_MAX", "SLOT_CORES_ENV", "loader_workers", "process_cores"]

AUTO_MAX = 12  # measured as enough on 16 cores; more workers each hold their own prefetched batches
SLOT_CORES_ENV = "OCRTUNE_SLOT_CORES"  # set in a sweep slot's trials: the cores that slot may use


def process_cores() -> int:
    """The cores this process may use: its sweep slot's share, else its CPU affinity."""
    share = os.environ.get(SLOT_CORES_ENV, "")
    return int(share) if share.isdigit() and int(share) > 0 else available_cores()


def loader_workers(setting: int | Literal["auto"], cores: int | None = None, processes: int = 1) -> int:
    """The worker count ``setting`` means for each of ``processes`` training processes on this
    machine (DDP's ranks of one node) sharing ``cores`` (default: ``process_cores()``)."""
    if setting != "auto":
        return int(setting)
    n = (process_cores() if cores is None else cores) // max(1, processes)
    return max(1, min(AUTO_MAX, n - 2))
