"""A GPU shared by several trials (``--trials-per-gpu N``): each trial caps its own CUDA
allocator at its share of the GPU's memory (``$OCRTUNE_SLOT_GPU_FRACTION``, set by the slot),
so a trial that needs more fails with an out-of-memory error of its own (recorded ``oom``)
instead of taking the memory its neighbour is using and failing both.

Called in the trial process before training; it starts CUDA there, which the trial is about to
do anyway (a GPU slot trains on the GPU or fails).
"""

from __future__ import annotations

import os
from typing import Mapping

from ocrtune.errors import InputError
from ocrtune.sweep.run.launcher import SLOT_GPU_ENV, SLOT_GPU_FRACTION_ENV


def gpu_share(env: Mapping[str, str]) -> float | None:
    """This trial's share of its GPU (0 < share <= 1), or None when it has the GPU to itself."""
    raw = env.get(SLOT_GPU_FRACTION_ENV)
    if not raw or not env.get(SLOT_GPU_ENV):
        return None
    try:
        share = float(raw)
    except ValueError:
        share = -1.0
    if not 0 < share <= 1:
        raise InputError(f"must be a fraction in (0, 1] (got {raw!r})", key=f"${SLOT_GPU_FRACTION_ENV}")
    return share


def limit_gpu_memory(env: Mapping[str, str] | None = None) -> float | None:
    """Apply the share (``torch.cuda.set_per_process_memory_fraction``) and return it; None when
    the GPU is not shared or CUDA is not available (training then fails on its own terms)."""
    share = gpu_share(os.environ if env is None else env)
    if share is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.set_per_process_memory_fraction(share, 0)  # device 0: the slot's only visible GPU
    return share
