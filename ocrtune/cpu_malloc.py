"""Large tensors from the C library's heap instead of fresh mappings, for networks run on the CPU.

PyTorch's CPU allocator keeps no cache: every activation is a ``malloc`` and a ``free``. glibc
serves blocks above its mmap threshold (which only grows to 32 MB) with a new mapping and
unmaps it when freed, so at 1024 px every large activation of every step pays page faults and
the kernel zeroing its pages: a third of a cpu-demo training step's CPU time was system time.
Raising the threshold keeps those blocks in the heap, where freed ones are reused; a training
step at 1024 px took half the time (bench/bench_cpu_step.py). The cost: freed blocks stay
with the process, so its resident peak is higher (same bench). No torch here: it is called
before a network is built. ``OCRTUNE_MALLOC=system`` leaves the C library as it is.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys

ENV = "OCRTUNE_MALLOC"
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
THRESHOLD = 1 << 30  # above every activation of a 1024 px batch of 4
GLIBC_DEFAULT = 128 * 1024  # glibc's starting threshold (bench: the reference)


@functools.cache  # looked up once: every caller asks enabled() and then sets it
def _mallopt():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: their mallopt is not glibc's
            return None
        mallopt = libc.mallopt
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        return mallopt
    except OSError:
        return None


def set_mmap_threshold(nbytes: int) -> bool:
    """glibc's ``mallopt(M_MMAP_THRESHOLD, nbytes)``; False where there is no glibc or it refused."""
    mallopt = _mallopt()
    return bool(mallopt and mallopt(M_MMAP_THRESHOLD, min(int(nbytes), 2**31 - 1)) == 1)


def enabled() -> bool:
    """Whether ``keep_large_blocks`` applies here: glibc, and not ``OCRTUNE_MALLOC=system``."""
    return os.environ.get(ENV, "").strip().lower() != "system" and _mallopt() is not None


def keep_large_blocks() -> bool:
    """Serve tensors up to 1 GiB from the heap (once per process is enough; repeating is
    harmless). Returns whether it is in effect (``enabled``, and glibc accepted it)."""
    return enabled() and set_mmap_threshold(THRESHOLD)
