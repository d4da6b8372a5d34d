"""The warm trial server ("zygote"): ``python -m ocrtune.sweep.run.zygote``, one per worker.

Starting a trial process costs Python's start, importing torch and Lightning, and reading the
dataset's annotations: seconds per trial, as long as a short trial's training. The zygote pays
them once. It imports what a trial needs, reads the sweep's dataset (``train.split_memo``),
then forks one process per trial; the fork does exactly what ``python -m
ocrtune.sweep.run.trial SPEC`` does (``trial.main``), with the slot's environment, its own
session, output to the trial's log and SIGTERM when the zygote dies. A trial never runs in the
zygote itself, so a crash, an OOM or a NaN in one trial cannot reach the next: each starts
from the same clean, freshly imported state.

Never initialised here: CUDA (a GPU slot's ``CUDA_VISIBLE_DEVICES`` must be set before CUDA
starts, and CUDA does not survive a fork) and torch's CPU thread pool (threads do not survive
a fork either). Each fork applies its slot's ``OMP_NUM_THREADS`` with ``torch.set_num_threads``
(the variable itself is read only when torch starts) and resets the random generators to a
fresh process's, so a warm trial computes what a cold one does.

Protocol (JSON lines; the worker side is ``warm.py``). stdin, worker -> zygote: first the
warm-up ``{"warm": TrialSpec or null}``, then ``{"run": id, "argv": [...], "env": {...},
"log": path, "cwd": path}`` per trial. stdout, zygote -> worker: ``{"ready": pid, "seconds":
s}`` (or ``{"failed": text}`` and exit), ``{"started": id, "pid": pid}``, ``{"exited": id,
"rc": code}`` (negative: killed by that signal, as ``subprocess`` reports it) and ``{"error":
id, "message": text}`` when a fork failed. EOF on stdin: stop every trial and exit. Anything
that imports print goes to stderr (a file the worker reads if the zygote fails to start).
"""

from __future__ import annotations

import json
import os
import pickle
import select
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from ocrtune.procs import die_with_parent

TERM_GRACE_S = 10.0
PARENT_ENV = "OCRTUNE_PARENT_PID"  # the trial's parent, for its own parent-death signal (trial.py)
# What a training trial imports lazily (``fit``'s imports inside functions): imported here once.
TRAINING_MODULES = (
    "torch", "lightning", "lightning.pytorch.loggers", "ocrtune.train.fit", "ocrtune.train.module",
    "ocrtune.train.datamodule", "ocrtune.train.recorder", "ocrtune.train.checkpoint_io", "ocrtune.train.rng_state",
    "ocrtune.train.resources", "ocrtune.model.dbnet", "ocrtune.model.init_from", "ocrtune.model.weights",
    "ocrtune.presets.write", "ocrtune.sweep.run.gpu_share", "torch._subclasses.fake_tensor",
)


def warm_up(spec: Any) -> None:
    """Import and read what the sweep's trials need, without starting CUDA or CPU threads.

    ``spec`` is a ``TrialSpec`` with the sweep's base preset and data (no params), or None. A
    preset or dataset that cannot be read here is left for each trial to report, as a cold
    trial process would.
    """
    import importlib

    from ocrtune.sweep.run import trial

    if spec is None:
        return
    if spec.objective:
        try:
            trial.load_objective(spec.objective)
        except Exception:
            pass  # each trial reports it
        return
    for name in TRAINING_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # an optional part; the trial imports what it needs itself
    from ocrtune.train import split_memo

    split_memo.enable()
    try:
        preset = trial.build_preset(spec, Path("warm-up")).preset
        from ocrtune.train.fit import load_data

        load_data(preset, Path(spec.data) if spec.data else None)
    except Exception:
        return
    measure_footprints(preset)
    import torch

    if torch.cuda.is_initialized():  # cannot happen unless a library changed: fail loudly, not in the trials
        raise RuntimeError("CUDA was initialised while warming up; trials must start it themselves")


def measure_footprints(preset: Any) -> None:
    """Turn on ``train.resources``' footprint memo here, so the forks inherit it, with the base
    preset's footprints measured in a throwaway fork: the shape-only pass asks torch whether a
    GPU exists, which may start CUDA, and CUDA must never start in the zygote. Measured for the
    precision a CPU trial and a GPU trial would use; a failure only means each trial measures
    for itself (once: the memo is on)."""
    from ocrtune.train import resources

    resources.remember_footprints()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            from ocrtune.train.fit import precision_for

            found = {p: resources.measure_footprint(preset, p) for p in {precision_for(preset, "cpu"), precision_for(preset, "auto")}}
            with os.fdopen(write, "wb") as out:
                pickle.dump(found, out)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    try:
        found = pickle.loads(data) if data else {}
    except Exception:
        return
    resources.remember_footprints(found, preset)


def fresh_state(env: dict[str, str], threads: int | None) -> None:
    """What differs between a fork of this server and a new process, made the same: the
    environment, torch's CPU threads, and the random generators' starting states."""
    import random

    os.environ.clear()
    os.environ.update(env)
    random.seed()  # a new process seeds from the OS
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    torch = sys.modules.get("torch")
    if torch is not None:
        n = env.get("OMP_NUM_THREADS", "")
        torch.set_num_threads(int(n) if n.isdigit() and int(n) > 0 else threads or torch.get_num_threads())
        torch.seed()  # a new process seeds torch from the OS too; a fork would repeat the zygote's draws


class Server:
    """The zygote's loop: read requests, fork trials, report their pids and exit codes."""

    def __init__(self, requests: int, out: TextIO) -> None:
        self.requests, self.out = requests, out
        self.children: dict[int, Any] = {}  # pid -> request id
        self.buffer = b""
        self.threads: int | None = None
        self.wake_r, self.wake_w = os.pipe()

    def send(self, msg: dict[str, Any]) -> None:
        try:
            self.out.write(json.dumps(msg) + "\n")
            self.out.flush()
        except (BrokenPipeError, OSError):
            self.stop()  # the worker is gone

    def serve(self) -> None:
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes select via the fd
        self.drain()
        while True:
            self.reap()
            try:
                ready, _, _ = select.select([self.requests, self.wake_r], [], [], 1.0)
            except InterruptedError:
                continue
            if self.wake_r in ready:
                os.read(self.wake_r, 4096)
            if self.requests in ready:
                chunk = os.read(self.requests, 1 << 16)
                if not chunk:
                    self.stop()
                self.buffer += chunk
                self.drain()

    def drain(self) -> None:
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            if line.strip():
                self.handle(json.loads(line))

    def handle(self, req: dict[str, Any]) -> None:
        ident = req.get("run")
        sys.stdout.flush()
        sys.stderr.flush()  # nothing of ours is left in a buffer the fork would write to its log
        me = os.getpid()
        try:
            pid = os.fork()
        except OSError as e:
            self.send({"error": ident, "message": f"fork failed: {e.strerror or e}"})
            return
        if pid == 0:
            self.become_trial(req, me)  # never returns
        self.children[pid] = ident
        self.send({"started": ident, "pid": pid})

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            ident = self.children.pop(pid, None)
            self.send({"exited": ident, "rc": os.waitstatus_to_exitcode(status)})

    def stop(self) -> None:
        """The worker closed its end (or died): stop the trials as the worker would, and exit."""
        for pid in list(self.children):
            _killpg(pid, signal.SIGTERM)
        end = time.monotonic() + TERM_GRACE_S
        while self.children and time.monotonic() < end:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.children.pop(pid, None)
            else:
                time.sleep(0.05)
        for pid in list(self.children):
            _killpg(pid, signal.SIGKILL)
        os._exit(0)

    def become_trial(self, req: dict[str, Any], zygote: int) -> None:
        """In the fork: set up what ``launcher.Child`` sets up for a cold trial, run
        ``trial.main`` and exit with its code; never return into the server's loop."""
        rc = 1
        try:
            os.setsid()  # own session and process group: Ctrl-C stays away, terminate() hits the group
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for fd in (self.requests, self.wake_r, self.wake_w, self.out.fileno()):
                _close(fd)
            log = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.close(log)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.close(null)
            os.chdir(req["cwd"])
            fresh_state({**req["env"], PARENT_ENV: str(zygote)}, self.threads)
            from ocrtune.sweep.run import trial

            argv = list(req["argv"])
            sys.argv = [trial.__file__, *argv]
            rc = trial.main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            rc = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(rc if isinstance(rc, int) else 1)


def _killpg(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def main() -> int:
    # The protocol gets a private copy of stdout; fd 1 then points where stderr does, so a
    # library printing while imported cannot corrupt it.
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    parent = os.environ.pop(PARENT_ENV, "")
    if parent.isdigit():
        die_with_parent(signal.SIGKILL, int(parent))  # the worker died: go too (trials get SIGTERM)
    requests = sys.stdin.fileno()
    server = Server(requests, out)
    start = time.perf_counter()
    try:
        first = b""
        while not first.endswith(b"\n"):
            chunk = os.read(requests, 1 << 16)
            if not chunk:
                return 0
            first += chunk
        line, _, rest = first.partition(b"\n")
        server.buffer = rest
        warm = json.loads(line).get("warm")
        from ocrtune.sweep.types import TrialSpec

        warm_up(TrialSpec.from_json(warm) if warm else None)
        torch = sys.modules.get("torch")
        server.threads = torch.get_num_threads() if torch is not None else None
    except BaseException as e:
        traceback.print_exc()
        server.send({"failed": f"{type(e).__name__}: {e}".strip()})
        return 1
    server.send({"ready": os.getpid(), "seconds": round(time.perf_counter() - start, 3)})
    server.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
