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
# hole stays inside the heap, as an activation's does among a step's others); print the minor
# page faults that took.
PROBE = """
import resource
import numpy as np
from ocrtune.cpu_malloc import keep_large_blocks
print(keep_large_blocks())
def once():
    block = np.ones(8 << 20)  # 64 MB, written
    pin = np.ones(4096)
    return pin  # the block is freed
pins = [once()]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
pins += [once() for _ in range(20)]
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(env: dict[str, str]) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


def test_freed_large_blocks_are_reused_not_mapped_again():
    kept, heap = _probe({"OCRTUNE_MALLOC": ""})
    system_kept, system = _probe({"OCRTUNE_MALLOC": "system"})
    assert (kept, system_kept) == ("True", "False")
    assert heap < 2000 and system > 5 * heap  # measured: ~700 against ~11000
