"""Trial subprocesses: slots pinned to GPUs, process identity, clean termination (no torch).

Each trial runs ``python -m ocrtune.sweep.run.trial SPEC`` in its own process and session:

- a slot pins it to one GPU with ``CUDA_VISIBLE_DEVICES`` (``--gpus 0,1``, indices among the
  GPUs this process sees, checked against the GPUs present) and tells the trial it is a GPU
  slot (``$OCRTUNE_SLOT_GPU``, so training fails rather than quietly using the CPU), and gives
  it a share of the CPU cores (``OMP_NUM_THREADS``, so several trials do not fight over them, and
  ``$OCRTUNE_SLOT_CORES``, which ``dataloader.num_workers: auto`` divides among loader workers);
- its own session keeps a terminal Ctrl-C away from it: the worker decides (terminate, mark the
  trial interrupted, re-queue) instead of every child dying at once mid-write;
- the child asks Linux to SIGTERM it when its parent dies (see ``trial.py``), so a killed
  coordinator does not leave orphans training on a GPU nobody tracks;
- several trials may share a GPU (``--trials-per-gpu``): each is then told its share of the
  GPU's memory (``$OCRTUNE_SLOT_GPU_FRACTION``, applied with
  ``torch.cuda.set_per_process_memory_fraction``), so one trial running out of memory fails
  alone instead of starving its neighbour.

How a trial process is started is a ``Trials`` launcher: ``ColdTrials`` here (a new Python
process per trial, ``--cold-trials``) or ``warm.WarmTrials`` (forked from a process that has
already imported torch and read the data; the default). Who owns a running trial (host, pid,
start time) is ``liveness.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Protocol, Sequence

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.train.loader_workers import SLOT_CORES_ENV, process_cores

TERM_GRACE_S = 10.0
SLOT_GPU_ENV = "OCRTUNE_SLOT_GPU"  # set in a GPU slot's trials: train on the GPU or fail
SLOT_GPU_FRACTION_ENV = "OCRTUNE_SLOT_GPU_FRACTION"  # set when trials share a GPU: this trial's share
GPU_SHARED = 0.95  # of a shared GPU's memory, split between its trials; the rest is for their CUDA contexts


@dataclass(frozen=True)
class Slot:
    """Where one trial at a time runs: a GPU (``gpu``) or a share of the CPU (``threads``);
    ``memory_fraction`` is the trial's share of a GPU that several slots use."""

    name: str
    gpu: str | None = None
    threads: int | None = None
    memory_fraction: float | None = None

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env.pop(SLOT_GPU_ENV, None)
        env.pop(SLOT_GPU_FRACTION_ENV, None)
        if self.gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.gpu
            env[SLOT_GPU_ENV] = self.gpu
            if self.memory_fraction is not None:
                env[SLOT_GPU_FRACTION_ENV] = f"{self.memory_fraction:.4f}"
        env.pop(SLOT_CORES_ENV, None)
        if self.threads is not None:
            env[SLOT_CORES_ENV] = str(self.threads)  # what dataloader.num_workers: auto divides
            if "OMP_NUM_THREADS" not in env:
                env["OMP_NUM_THREADS"] = str(self.threads)
        return env


def visible_gpus() -> list[str] | None:
    """The GPUs this process may use as ``CUDA_VISIBLE_DEVICES`` lists them (indices, UUIDs or
    MIG ids), or None when it is not set (every GPU)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None
    out = []
    for g in visible.split(","):
        g = g.strip()
        if not g or g.startswith("-"):  # CUDA stops at the first invalid entry ("-1" hides all)
            break
        out.append(g)
    return out


def gpu_ids(spec: str) -> list[str]:
    """``--gpus`` as values for the children's ``CUDA_VISIBLE_DEVICES``: ``all`` (every GPU
    this process sees) or a comma list of indices *among those*. Under a scheduler that set
    ``CUDA_VISIBLE_DEVICES=2,3``, ``--gpus 0,1`` means GPUs 2 and 3, as it would for any CUDA
    program, never GPUs outside the allocation. Without ``CUDA_VISIBLE_DEVICES`` the indices
    must be GPUs this machine has: a trial pinned to a missing GPU would see none."""
    spec = spec.strip()
    visible = visible_gpus()
    if visible is not None and not visible:
        raise OcrtuneError(f"--gpus {spec}: CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r} leaves no "
                           "GPU visible; unset it or drop --gpus to run on CPU")
    if spec.lower() == "all":
        return visible if visible is not None else _nvidia_smi_ids(spec)
    ids = [g.strip() for g in spec.split(",") if g.strip()]
    if not ids or not all(g.isdigit() for g in ids):
        raise InputError(f"expected all or GPU indices like 0,1,2 (got {spec!r})", key="--gpus")
    if len(set(ids)) != len(ids):
        raise InputError(f"a GPU is listed twice (got {spec!r})", key="--gpus")
    if visible is None:
        present = _nvidia_smi_ids(spec)
        missing = [g for g in ids if str(int(g)) not in present]
        if missing:
            raise InputError(f"GPU {missing[0]} is not present: this machine has {_listing(present)} (got {spec!r})",
                             key="--gpus")
        return [str(int(g)) for g in ids]
    over = [g for g in ids if int(g) >= len(visible)]
    if over:
        raise InputError(f"GPU {over[0]} is not visible: CUDA_VISIBLE_DEVICES={','.join(visible)} gives indices "
                         f"0-{len(visible) - 1} (got {spec!r})", key="--gpus")
    return [visible[int(g)] for g in ids]


def _nvidia_smi_ids(spec: str = "all") -> list[str]:
    """Indices of the GPUs on this machine. No GPU is bad input for ``--gpus`` (exit 2); an
    ``nvidia-smi`` that fails is the machine's problem (exit 1). Containers without
    ``nvidia-smi`` (and ROCm machines) are asked through torch instead."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        import torch

        count = torch.cuda.device_count()
        if not count:
            raise InputError(f"no GPU found for {spec!r} (nvidia-smi is not on PATH and torch sees no CUDA device); "
                             "drop --gpus to run on CPU", key="--gpus")
        return [str(i) for i in range(count)]
    try:
        out = subprocess.run([exe, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise OcrtuneError(f"--gpus {spec}: nvidia-smi failed ({e})") from None
    ids = [line.strip() for line in out.splitlines() if line.strip()]
    if not ids:
        raise InputError(f"nvidia-smi lists no GPU (got {spec!r}); drop --gpus to run on CPU", key="--gpus")
    return ids


def _listing(ids: Sequence[str]) -> str:
    return f"GPU {ids[0]}" if len(ids) == 1 else f"GPUs {', '.join(ids)}"


def make_slots(gpus: str | None, parallel: int | None, cpus: int | None = None) -> list[Slot]:
    """One slot per GPU (``parallel`` per GPU when given), else ``parallel`` CPU slots (default 1).
    With several slots each gets ``OMP_NUM_THREADS`` = cores / slots, GPU slots too: their
    data loading and CPU ops would otherwise each start one thread per core. Slots sharing a
    GPU (``gpu0.0``, ``gpu0.1``) each get an equal share of its memory.

    ``parallel=0`` means no local slots: the process only coordinates (remote workers run).
    """
    if parallel is not None and parallel < 0:
        raise InputError(f"must be >= 0 (got {parallel})", key="--parallel")
    cores = cpus or process_cores()  # the cores this process may run on (affinity), as auto counts them
    if gpus:
        ids = gpu_ids(gpus)
        per = 1 if parallel is None else parallel
        n = len(ids) * per
        threads = max(1, cores // n) if n > 1 else None
        share = round(GPU_SHARED / per, 4) if per > 1 else None
        return [Slot(f"gpu{g}" + (f".{i}" if per > 1 else ""), gpu=g, threads=threads, memory_fraction=share)
                for g in ids for i in range(per)]
    n = 1 if parallel is None else parallel
    threads = max(1, cores // n) if n > 1 else None
    return [Slot(f"cpu{i}", threads=threads) for i in range(n)]


def trials_at_a_time(gpus: str | None, parallel: int | None, trials_per_gpu: int | None) -> int | None:
    """``--trials-per-gpu N`` as the ``parallel`` of ``make_slots`` (N per GPU); it needs
    ``--gpus``, and a ``--parallel`` beside it (which means the same with ``--gpus``) must agree."""
    if trials_per_gpu is None:
        return parallel
    if trials_per_gpu < 1:
        raise InputError(f"must be >= 1 (got {trials_per_gpu})", key="--trials-per-gpu")
    if not gpus:
        raise InputError("needs --gpus (without GPUs, --parallel N runs N trials on the CPU cores)",
                         key="--trials-per-gpu")
    if parallel is not None and parallel != trials_per_gpu:
        raise InputError(f"--parallel {parallel} says otherwise; with --gpus both mean trials per GPU: give one",
                         key="--trials-per-gpu")
    return trials_per_gpu


# --- children --------------------------------------------------------------------------------


def trial_command(spec: Path) -> list[str]:
    return [sys.executable, "-m", "ocrtune.sweep.run.trial", str(spec)]


class TrialProcess(Protocol):
    """A running trial as the worker sees it, cold (``Child``) or warm (``warm.WarmChild``)."""

    pid: int

    def wait(self, timeout: float) -> int | None: ...

    def terminate(self, grace: float = TERM_GRACE_S) -> int: ...


class Trials(Protocol):
    """How a worker pool starts its trials: ``prepare`` before a slot claims one (a warm
    launcher waits there for its server), ``start`` one, ``close`` when the pool ends."""

    def begin(self) -> None: ...

    def prepare(self, stop: threading.Event) -> None: ...

    def start(self, spec: Path, env: Mapping[str, str], log: Path) -> TrialProcess: ...

    def close(self) -> None: ...


class ColdTrials:
    """Each trial its own ``python -m ocrtune.sweep.run.trial`` process (``--cold-trials``)."""

    def begin(self) -> None:
        pass

    def prepare(self, stop: threading.Event) -> None:
        pass

    def start(self, spec: Path, env: Mapping[str, str], log: Path) -> TrialProcess:
        return Child(trial_command(spec), dict(env), log)

    def close(self) -> None:
        pass


class Child:
    """One trial process: output to a log file, own session, terminated as a group."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        env = {**env, "OCRTUNE_PARENT_PID": str(os.getpid())}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, cwd=cwd, start_new_session=True)
        self.pid = self.proc.pid

    def wait(self, timeout: float) -> int | None:
        """Exit code, or None if still running after ``timeout`` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def terminate(self, grace: float = TERM_GRACE_S) -> int:
        """SIGTERM the child's process group (it records 'interrupted'), SIGKILL after ``grace``."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            if self.wait(grace) is None:
                self._signal(signal.SIGKILL)
        rc = self.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # stragglers such as dataloader workers
        return rc

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM like Ctrl-C while a sweep runs, so ``kill`` also stops it cleanly."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
