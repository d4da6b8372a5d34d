"""Warm trials, the worker's side: a zygote (``zygote.py``) per worker pool forks each trial
from a process that has already imported torch and read the dataset, so a trial starts in
milliseconds instead of seconds. No torch here.

``WarmTrials`` is what a ``WorkerPool`` starts trials through (``ColdTrials`` in
``launcher.py`` is the separate-process mode, ``--cold-trials``):

- the zygote starts with the pool, before any trial is claimed, and a slot claims a trial
  only once it is ready (a slow start never holds a claimed trial without a heartbeat);
- a trial it forks is a ``WarmChild``, with ``launcher.Child``'s interface (``pid``,
  ``wait(timeout)``, ``terminate(grace)`` of the whole process group), so the worker watches,
  prunes and stops warm and cold trials alike;
- a zygote that dies (the OOM killer, a crash) is replaced before the next claim; its running
  trials got SIGTERM from the kernel, recorded themselves interrupted (or were killed) and are
  re-queued like any trial that lost its process. One that cannot start, or dies
  ``MAX_RESTARTS`` times, leaves the pool on cold processes, with one warning.

The zygote is started from a thread of its own that lives exactly as long as the zygote:
Linux sends the parent-death signal when the *thread* that started a process ends, so a slot
thread that ends early (``--max-idle``) must not be the one.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ocrtune.procs import pid_alive, process_start
from ocrtune.sweep.run.launcher import TERM_GRACE_S, Child, TrialProcess, trial_command
from ocrtune.sweep.run.zygote import PARENT_ENV
from ocrtune.sweep.types import TrialSpec

MAX_RESTARTS = 3  # zygotes that died after starting; then the pool runs cold processes
START_TIMEOUT_S = 600.0  # imports on a slow shared file system can take minutes
SPAWN_TIMEOUT_S = 120.0  # a fork and one message: seconds even on a machine that is swapping
ORPHAN_RC = -signal.SIGTERM  # a trial whose zygote died: the kernel sent it SIGTERM


class ZygoteGone(Exception):
    """The zygote died before it could fork the trial: the trial is re-queued."""


def zygote_command() -> list[str]:
    return [sys.executable, "-m", "ocrtune.sweep.run.zygote"]


class WarmChild:
    """One trial forked by the zygote. Its exit code comes from the zygote (only a parent
    can wait for a process); if the zygote dies first, the trial's end is seen by its pid."""

    def __init__(self) -> None:
        self.pid = 0
        self._start: float | None = None
        self._started = threading.Event()
        self._done = threading.Event()
        self._rc: int | None = None
        self._orphaned = False
        self.error: str | None = None

    # told by the zygote's reader thread
    def _on_started(self, pid: int) -> None:
        self.pid, self._start = pid, process_start(pid)
        self._started.set()

    def _on_exit(self, rc: int) -> None:
        self._rc = rc
        self._done.set()

    def _on_failed(self, error: str) -> None:
        self.error = error
        self._started.set()

    def _on_orphaned(self) -> None:
        if not self.pid:
            self._on_failed("the zygote died before it forked the trial")
        self._orphaned = True

    def wait(self, timeout: float) -> int | None:
        """Exit code, or None if still running after ``timeout`` seconds."""
        end = time.monotonic() + max(0.0, timeout)
        while True:
            if self._done.wait(0 if self._orphaned else max(0.0, end - time.monotonic())):
                return self._rc
            if self._orphaned and not pid_alive(self.pid, self._start):
                self._on_exit(ORPHAN_RC)
                return self._rc
            if time.monotonic() >= end:
                return None
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    def terminate(self, grace: float = TERM_GRACE_S) -> int:
        """SIGTERM the trial's process group (it records 'interrupted'), SIGKILL after ``grace``."""
        if self.wait(0) is None:
            self._signal(signal.SIGTERM)
            if self.wait(grace) is None:
                self._signal(signal.SIGKILL)
        while (rc := self.wait(1.0)) is None:
            self._signal(signal.SIGKILL)
        self._signal(signal.SIGKILL)  # stragglers such as dataloader workers
        return rc

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class Zygote:
    """One zygote process and the trials it forked."""

    def __init__(self, warm: TrialSpec | None, env: Mapping[str, str], command: Sequence[str] | None = None) -> None:
        self.failure: str | None = None
        self.pid: int | None = None
        self.warm_s: float | None = None
        self.born = time.monotonic()
        self._state = "starting"  # -> ready -> gone, or starting -> gone
        self._cond = threading.Condition()
        self._children: dict[int, WarmChild] = {}
        self._ids = itertools.count(1)
        self._write = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, args=(warm, dict(env), list(command or zygote_command())),
                                        name="ocrtune-zygote", daemon=True)
        self._thread.start()

    @property
    def state(self) -> str:
        return self._state

    def wait_ready(self, timeout: float) -> str:
        """The state once it is no longer ``starting``, or after ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._state != "starting", timeout)
            return self._state

    def _set(self, state: str) -> None:
        with self._cond:
            self._state = state
            self._cond.notify_all()

    def _run(self, warm: TrialSpec | None, env: dict[str, str], command: list[str]) -> None:
        """Start the zygote from this thread and read its messages until it exits."""
        errors = tempfile.TemporaryFile()
        try:
            try:
                proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                                        env={**env, PARENT_ENV: str(os.getpid())}, text=True, encoding="utf-8",
                                        start_new_session=True)
            except OSError as e:
                self.failure = f"cannot start it: {e.strerror or e}"
                return
            self._proc = proc
            if self._closing:  # closed while it was being started
                self.kill()
            try:
                assert proc.stdin is not None and proc.stdout is not None
                with self._write:
                    proc.stdin.write(json.dumps({"warm": warm.to_json() if warm else None}) + "\n")
                    proc.stdin.flush()
                for line in proc.stdout:
                    self._message(json.loads(line))
            except (OSError, ValueError):
                proc.kill()
            proc.wait()
        finally:
            if self._state == "starting" and self.failure is None:
                self.failure = _tail(errors) or f"it exited with code {self._proc.returncode if self._proc else '?'}"
            errors.close()
            with self._cond:
                orphans = list(self._children.values())
                self._children.clear()
            for child in orphans:
                child._on_orphaned()
            self._set("gone")

    def _message(self, msg: dict[str, Any]) -> None:
        if "ready" in msg:
            self.pid, self.warm_s = int(msg["ready"]), msg.get("seconds")
            self._set("ready")
            return
        if "failed" in msg:
            self.failure = str(msg["failed"])
            return
        with self._cond:
            ident = msg.get("started", msg.get("exited", msg.get("error")))
            child = self._children.get(ident) if "started" in msg else self._children.pop(ident, None)
        if child is None:
            return
        if "started" in msg:
            child._on_started(int(msg["pid"]))
        elif "exited" in msg:
            child._on_exit(int(msg["rc"]))
        else:
            child._on_failed(str(msg.get("message")))

    def spawn(self, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: str) -> WarmChild:
        """Fork one trial; raises ``ZygoteGone`` if the zygote is not there to do it."""
        log.parent.mkdir(parents=True, exist_ok=True)
        child = WarmChild()
        with self._cond:
            if self._state != "ready" or self._proc is None or self._proc.stdin is None:
                raise ZygoteGone(f"the warm trial server is {self._state}")
            ident = next(self._ids)
            self._children[ident] = child
        req = {"run": ident, "argv": list(argv), "env": dict(env), "log": str(log), "cwd": cwd}
        try:
            with self._write:
                self._proc.stdin.write(json.dumps(req) + "\n")
                self._proc.stdin.flush()
        except (OSError, ValueError):
            child._on_failed("the warm trial server's input is closed")
        if not child._started.wait(SPAWN_TIMEOUT_S):
            self.kill()  # not answering: replaced before the next claim; the fork, if any, dies with it
            child._on_failed(f"the warm trial server did not fork the trial within {SPAWN_TIMEOUT_S:.0f}s")
        if child.error is not None:
            with self._cond:
                self._children.pop(ident, None)
            raise ZygoteGone(child.error)
        return child

    def kill(self) -> None:
        """End a zygote that is not answering; its trials get SIGTERM from the kernel."""
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if threading.current_thread() is not self._thread:
            self._thread.join(5)

    def close(self) -> None:
        """Closing its input ends the zygote (and any trial still running: SIGTERM); one still
        importing (Ctrl-C right after the start) is simply killed, it has no trial yet."""
        self._closing = True
        if self._state == "starting":
            self.kill()
            return
        proc = self._proc
        if proc is not None and proc.stdin is not None:
            with self._write:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
        self._thread.join(TERM_GRACE_S + 5)
        if self._thread.is_alive() and proc is not None:
            proc.kill()
            self._thread.join(5)


class WarmTrials:
    """Trials forked from a warm zygote; cold processes when it cannot be had."""

    def __init__(self, warm: TrialSpec | None, env: Mapping[str, str], on_warning: Callable[[str], None],
                 command: Sequence[str] | None = None) -> None:
        self.warm, self.env, self.on_warning = warm, dict(env), on_warning
        self.command = list(command or zygote_command())
        self.zygote: Zygote | None = None
        self.cold = False
        self.restarts = 0
        self._lock = threading.Lock()

    def begin(self) -> None:
        """Start the zygote now; slots wait for it in ``prepare``."""
        with self._lock:
            if self.zygote is None and not self.cold:
                self.zygote = Zygote(self.warm, self.env, self.command)

    def prepare(self, stop: threading.Event) -> None:
        """Before a slot claims a trial: a ready zygote (started again if it died), or cold mode."""
        while not stop.is_set():
            with self._lock:
                if self.cold:
                    return
                z = self.zygote
                if z is None or z.state == "gone":
                    if z is not None and z.pid is None:  # it never became ready
                        self._fall_back(f"the warm trial server could not start: {z.failure}")
                        return
                    if z is not None:
                        self.restarts += 1
                        if self.restarts > MAX_RESTARTS:
                            self._fall_back(f"the warm trial server died {self.restarts} times")
                            return
                    z = self.zygote = Zygote(self.warm, self.env, self.command)
            state = z.wait_ready(0.2)
            if state == "ready":
                return
            if state == "starting" and time.monotonic() - z.born > START_TIMEOUT_S:
                with self._lock:
                    self._fall_back(f"the warm trial server did not start within {START_TIMEOUT_S:.0f}s")
                z.kill()
                return

    def _fall_back(self, why: str) -> None:
        """Cold processes from now on, said once (several slots may see the failure at once)."""
        if self.cold:
            return
        self.cold = True
        self.on_warning(f"{why}; running each trial as its own process from now on (as --cold-trials does)")

    def start(self, spec: Path, env: Mapping[str, str], log: Path) -> TrialProcess:
        with self._lock:
            z = None if self.cold else self.zygote
        if z is None or z.state != "ready":
            if z is not None and z.state == "gone":
                raise ZygoteGone("the warm trial server died")  # re-queued; the next claim restarts it
            return Child(trial_command(spec), dict(env), log)
        return z.spawn([str(spec)], env, log, os.getcwd())

    def close(self) -> None:
        with self._lock:
            z, self.zygote = self.zygote, None
        if z is not None:
            z.close()


def _tail(f: Any, n: int = 5) -> str:
    try:
        f.seek(0)
        lines = f.read().decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])
