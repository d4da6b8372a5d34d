"""``die_with_parent``: a child (a trial, a DataLoader worker) gets a signal when the process that
started it dies, even one that died before the child asked. The loader workers of a SIGKILLed
training are in tests/test_run_status.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ocrtune.procs import die_with_parent, pid_alive

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline, alive = time.monotonic() + seconds, pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if pid_alive(p)]
    return alive


@linux
def test_a_child_whose_parent_died_before_the_call_is_signalled_at_once():
    # a child started by a process that exits at once: by the time the child calls
    # die_with_parent, its parent is no longer the process that started it
    code = (
        "import sys, time\n"
        "from ocrtune.procs import die_with_parent\n"
        "time.sleep(0.5)\n"
        "die_with_parent(15, int(sys.argv[1]))\n"
        "time.sleep(30)\n"
    )
    starter = ("import os, subprocess, sys\n"
               "p = subprocess.Popen([sys.executable, '-c', sys.argv[1], str(os.getpid())], stdout=subprocess.DEVNULL)\n"
               "print(p.pid)\n")
    outer = subprocess.run([sys.executable, "-c", starter, code], capture_output=True, text=True, check=True, timeout=60)
    child = int(outer.stdout.strip())
    try:
        assert _wait_gone([child], 15) == []
    finally:
        if pid_alive(child):
            os.kill(child, signal.SIGKILL)


def test_die_with_parent_is_a_no_op_off_linux(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert die_with_parent(signal.SIGKILL, os.getppid()) is False
