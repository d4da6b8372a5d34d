"""Large CPU tensors come from the heap once ``keep_large_blocks`` ran: a freed block is reused,
not unmapped and mapped (and faulted in page by page) again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ocrtune.cpu_malloc import _mallopt

pytestmark = pytest.mark.skipif(_mallopt() is None, reason="needs glibc's mallopt")

# Allocate and touch a 64 MB block 20 times, each freed with a small live block above it (so the
# hole stays inside the heap, as an activation's does among a step's others). Print whether the
# setting is in effect, the minor page faults the 20 took, the most memory glibc held in mappings
# while a block was alive (``mallinfo2().hblkhd``, MB) and how much the heap grew over the 20 (MB).
# Fault counts of fresh mappings vary with transparent huge pages; glibc's own accounting does not.
PROBE = """
import ctypes, resource
import numpy as np
from ocrtune.cpu_malloc import keep_large_blocks
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
print(keep_large_blocks())
def once():
    block = np.ones(8 << 20)  # 64 MB, written
    mapped = libc.mallinfo2().hblkhd
    pin = np.ones(4096)
    return pin, mapped  # the block is freed
pins = [once()]
arena = libc.mallinfo2().arena
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
pins += [once() for _ in range(20)]
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, max(m for _, m in pins) >> 20,
      (libc.mallinfo2().arena - arena) >> 20)
"""


def _probe(env: dict[str, str]) -> tuple[str, int, int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1]), int(out[2]), int(out[3])


def test_freed_large_blocks_are_reused_not_mapped_again():
    kept, faults, mapped, grown = _probe({"OCRTUNE_MALLOC": ""})
    assert kept == "True"
    assert mapped == 0  # served from the heap
    assert grown <= 64  # reused: at most one block's growth over 20 blocks (not 20 x 64 MB)
    assert faults < 2000  # measured ~160-700; 20 fresh 64 MB blocks are ~11000 (4 KiB pages)
    system_kept, _, system_mapped, _ = _probe({"OCRTUNE_MALLOC": "system"})
    assert system_kept == "False"
    assert system_mapped >= 64  # glibc's default: the block is a mapping of its own
