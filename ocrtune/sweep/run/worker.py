"""Workers: pull queued trials from the store, run each in a subprocess, record the outcome.

The coordinator's local slots and ``ocrtune sweep worker`` on other machines run this same
code: one thread per slot claims the oldest queued trial, writes its ``spec.json`` from the
sweep settings stored in the study, starts the trial pinned to the slot (forked from the pool's
warm zygote, ``warm.py``, or with ``--cold-trials`` as its own ``python -m
ocrtune.sweep.run.trial`` process), and while it runs

- reports each finished epoch's metric (read from the growing ``metrics.csv`` or
  ``progress.jsonl``) as an Optuna intermediate value, and terminates the trial when the pruner
  says so (never before ``--min-epochs``);
- keeps the trial's heartbeat fresh; if the store says the trial was meanwhile declared lost
  (this worker was silent too long), the trial is stopped, since its slot has been re-queued;
- stops it as failed past ``--trial-timeout`` or when it stalls (``Limits``);
- retries store writes that fail (``Patient``); a store unreachable for ``grace_s`` stops
  the trial, and in every case the trial process ends before the slot claims another.

When the process ends, the outcome (status, score, error tail, records) is told to the store.
A trial killed by a signal before writing its result is re-queued, up to ``MAX_CRASHES``.
Stopping a pool (Ctrl-C) terminates the children and marks their trials ``interrupted``; the
coordinator queues them again, so nothing is lost and nothing counts twice.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ocrtune.sweep.run.guards import (
    FAILED,
    STALL_FACTOR,
    STALL_FLOOR_S,
    Limits,
    Patient,
    SweepFilesError,
    disk_trouble,
    files_error,
)
from ocrtune.sweep.run.launcher import ColdTrials, Slot, TrialProcess, Trials
from ocrtune.sweep.run.records import find_run_dir, log_tail, progress, read_rows, trial_records
from ocrtune.sweep.run.trial import EXIT_DISK, LOG, RESULT, SPEC
from ocrtune.sweep.store import Store, StoredTrial
from ocrtune.sweep.types import Event, Status, SweepConfig, TrialResult, TrialSpec, derived_values, finite, scored
from ocrtune.train.rundir import write_json_atomic

MAX_CRASHES = 3  # a trial killed by a signal without a result is re-queued this many times in all
STALL_REFRESH_S = 60.0  # how often a running trial re-reads finished trials' epoch times


@dataclass
class WorkerSettings:
    """Per-process settings (the sweep's own settings come from the study)."""

    sweep_dir: Path
    data: str | None = None  # this machine's path to the dataset, if not the stored one
    heartbeat_s: float = 10.0
    grace_s: float = 60.0
    poll_s: float = field(default_factory=lambda: float(os.environ.get("OCRTUNE_SWEEP_POLL_S", "0.5")))
    max_idle_s: float | None = None
    stall_factor: float = STALL_FACTOR
    stall_floor_s: float = STALL_FLOOR_S
    warm: bool = True  # fork trials from a warm zygote (False: --cold-trials, a new process each)


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, as a slot saw it (the live view and ``sweep worker --json``)."""

    number: int
    status: Status
    score: float | None
    params: dict[str, Any]
    slot: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "status": self.status.value}


class WorkerPool:
    """One thread per slot, pulling trials until ``stop`` is set, or (``until_finished``) the
    sweep is marked finished with nothing queued, or nothing came for ``max_idle_s``."""

    def __init__(self, store: Store, config: SweepConfig, slots: Sequence[Slot], settings: WorkerSettings, *,
                 stop: threading.Event | None = None, on_event: Event | None = None,
                 until_finished: bool = True, reap: bool = False) -> None:
        self.store, self.config, self.slots, self.settings = store, config, list(slots), settings
        self.stop = stop or threading.Event()
        self.on_event = on_event or (lambda kind, data: None)
        self.until_finished, self.reap = until_finished, reap
        self.outcomes: list[Outcome] = []
        self.fatal: SweepFilesError | None = None  # set when a slot cannot write the sweep's files
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.label = f"{socket.gethostname()}:{os.getpid()}"
        self.trials: Trials = ColdTrials()
        store.set_pruner(config.prune, int(config.min_epochs or 1))

    def start(self) -> None:
        if self.settings.warm and self.slots:
            from ocrtune.sweep.run.warm import WarmTrials

            self.trials = WarmTrials(warm_spec(self.config, self.settings.data), zygote_env(self.slots),
                                     lambda msg: self.on_event("warning", {"error": msg}))
        self.trials.begin()  # the zygote imports while the slots start
        for i, slot in enumerate(self.slots):
            t = threading.Thread(target=self._loop, args=(slot, i == 0), name=f"ocrtune-slot-{slot.name}", daemon=True)
            t.start()
            self._threads.append(t)

    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def join(self, timeout: float | None = None) -> None:
        end = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if end is None else max(0.0, end - time.monotonic()))

    def close(self) -> None:
        """After ``join``: end the zygote (its trials have all ended by then)."""
        self.trials.close()

    def run(self) -> list[Outcome]:
        """Start, wait, and on Ctrl-C stop the children cleanly before re-raising."""
        self.start()
        try:
            while self.alive():
                self.join(0.5)
        except KeyboardInterrupt:
            self.stop.set()
            self.join()
            raise
        finally:
            if not self.alive():
                self.close()
        if self.fatal is not None:
            raise self.fatal
        return self.outcomes

    def _loop(self, slot: Slot, reaper: bool) -> None:
        idle_since = time.monotonic()
        last_reap = 0.0
        while not self.stop.is_set():
            trial = None
            try:
                self.trials.prepare(self.stop)  # a warm zygote ready before a trial is claimed
                if self.stop.is_set():
                    return
                trial = self.store.claim({"slot": slot.name, "worker": self.label})
                if trial is None:
                    if self.reap and reaper and time.monotonic() - last_reap > 5 * self.settings.poll_s:
                        self.store.reap_stale(self.settings.grace_s, adopt=adopt_result)
                        last_reap = time.monotonic()
                    if self.until_finished and self.store.finished() and not self.store.trials(Status.QUEUED):
                        return
                    if self.settings.max_idle_s is not None and time.monotonic() - idle_since > self.settings.max_idle_s:
                        return
                    self.stop.wait(self.settings.poll_s)
                    continue
                self.on_event("start", {"number": trial.number, "params": trial.params, "slot": slot.name})
                out = run_trial(self.store, self.config, trial, slot, self.settings, self.stop, self.on_event,
                                self.trials)
                with self._lock:
                    self.outcomes.append(out)
                self.on_event("end", out.to_json())
                idle_since = time.monotonic()
            except Exception as e:  # storage hiccup: report, re-queue the trial, back off, go on
                if isinstance(e, (SweepFilesError, OSError)) or disk_trouble(e):  # sweep files: every slot stops
                    self._stop_for(e, trial)
                    return
                self.on_event("error", {"slot": slot.name, "error": _tail_exc(e)})
                if trial is not None:
                    try:
                        self.store.finish(trial.trial_id, Status.LOST, None, {"error": _tail_exc(e)})
                    except Exception:
                        pass  # still unreachable: the reaper marks it lost later
                self.stop.wait(max(1.0, self.settings.poll_s))


    def _stop_for(self, e: BaseException, trial: StoredTrial | None) -> None:
        """Stop every slot (their trials end interrupted and are re-queued) for a files error."""
        err = e if isinstance(e, SweepFilesError) else files_error(
            getattr(e, "filename", None) or self.settings.sweep_dir, e)
        with self._lock:
            if self.fatal is None:
                self.fatal = err
        self.stop.set()
        if trial is not None:
            try:
                self.store.finish(trial.trial_id, Status.LOST, None, {"error": str(err)})
            except Exception:
                pass  # the store is on the full disk too: the next run finds the trial lost


def trial_spec(store: Store, config: SweepConfig, trial: StoredTrial, data: str | None) -> TrialSpec:
    """What the trial process runs: the stored settings with this trial's values."""
    return TrialSpec(name=f"{store.name}-t{trial.number:04d}", params=dict(trial.params), epochs=int(config.epochs),
                     metric=config.metric, base=config.base, preset=config.preset, data=data or config.data,
                     objective=config.objective, derived=derived_values(trial.params, config.couplings),
                     init=config.init)


def warm_spec(config: SweepConfig, data: str | None) -> TrialSpec:
    """What the zygote prepares for: the sweep's base preset and data (or its objective)."""
    return TrialSpec(name="warm-up", params={}, epochs=int(config.epochs), metric=config.metric, base=config.base,
                     preset=config.preset, data=data or config.data, objective=config.objective)


def zygote_env(slots: Sequence[Slot]) -> dict[str, str]:
    """The zygote's environment: this process's, with the slots' CPU share (torch reads
    ``OMP_NUM_THREADS`` once, at import) and no GPU pinning (each trial sets its own)."""
    return Slot("zygote", threads=slots[0].threads if slots else None).env()


def run_trial(store: Store, config: SweepConfig, trial: StoredTrial, slot: Slot, settings: WorkerSettings,
              stop: threading.Event, on_event: Event | None = None, trials: Trials | None = None) -> Outcome:
    """Run one claimed trial to its end and tell the store; returns what happened.

    ``trials`` starts the trial process (default: a cold process). The trial process never
    outlives this call: whatever ends it (a result, pruning, Ctrl-C, a limit, or a store that
    stayed unreachable for ``grace_s``), it is terminated before the slot can claim another
    trial.
    """
    on_event = on_event or (lambda kind, data: None)
    tid, metric = trial.trial_id, config.metric
    trial_dir = fresh_trial_dir(settings.sweep_dir, trial.number)
    spec_path = trial_dir / SPEC
    write_json_atomic(spec_path, trial_spec(store, config, trial, settings.data).to_json())
    calls = Patient(settings.grace_s, settings.poll_s, store.file)
    child = (trials or ColdTrials()).start(spec_path, slot.env(), trial_dir / LOG)
    try:
        w = _watch(store, config, trial, slot, child, trial_dir, settings, stop, on_event, calls)
    finally:
        if child.wait(0) is None:
            child.terminate()
    if w.rc == EXIT_DISK and w.ended_by is None:  # the trial could not write its files
        err = files_error(trial_dir, log_tail(trial_dir / LOG, 1))
        calls.until_ok(lambda: store.finish(tid, Status.LOST, None, {"error": str(err)}))
        raise err
    status, score, attrs = _outcome(trial_dir, metric, w.rc)
    if w.ended_by == "pruned":
        status, score = Status.PRUNED, w.last_value
        attrs["error"] = None
    elif w.ended_by in ("interrupted", "lost"):
        status, score = Status(w.ended_by), None
        attrs["error"] = "stopped by Ctrl-C; re-queued" if w.ended_by == "interrupted" else "declared lost while running"
    elif w.ended_by in ("timeout", "stalled"):
        status, score = Status.FAILED, None
        attrs["error"] = f"{w.note}\n{log_tail(trial_dir / LOG)}".strip()
    elif w.rc is not None and w.rc < 0 and not (trial_dir / RESULT).is_file():
        status, attrs = _crashed(store, trial, w.rc, attrs, calls)
    score = scored(status, score)
    if w.ended_by == "lost":
        store.release(tid)
    elif calls.until_ok(lambda: store.finish(tid, status, score, attrs)) is False:
        on_event("error", {"slot": slot.name, "error": f"trial {trial.number} had already ended elsewhere; result kept on disk only"})
    return Outcome(trial.number, status, score, trial.params, slot.name, attrs.get("error"))


@dataclass
class _Watched:
    rc: int | None = None
    ended_by: str | None = None  # pruned, interrupted, lost, timeout, stalled
    note: str | None = None
    last_value: float | None = None


def _watch(store: Store, config: SweepConfig, trial: StoredTrial, slot: Slot, child: TrialProcess, trial_dir: Path,
           settings: WorkerSettings, stop: threading.Event, on_event: Event, calls: Patient) -> _Watched:
    """Poll the trial until it exits or something ends it: report epochs, prune, heartbeat,
    apply the time limits. Store writes that fail are kept and retried on the next poll."""
    tid, metric, epochs = trial.trial_id, config.metric, int(config.epochs)
    w = _Watched()
    pending: dict[str, Any] = {"trial_dir": str(trial_dir), "child_pid": child.pid, "slot": slot.name, "epochs_planned": epochs,
                               "derived": derived_values(trial.params, config.couplings)}
    limits = Limits(finite(config.trial_timeout), settings.stall_factor, settings.stall_floor_s)
    reported = 0
    start = last_progress = last_beat = time.monotonic()
    last_stats = -math.inf
    while True:
        rc = child.wait(settings.poll_s)
        now = time.monotonic()
        if now - last_stats > STALL_REFRESH_S:  # finished trials' epoch times, for the stall rule
            got = calls.call(lambda: store.trials(Status.COMPLETED, Status.PRUNED))
            if got is not FAILED:
                limits.learn(got)
                last_stats = now
        steps = progress(read_rows(trial_dir), metric)
        if len(steps) > reported:
            last_progress = now
        for step, value in steps[reported:]:
            if value is not None and calls.call(lambda: store.report(tid, step, value)) is FAILED:
                break
            reported += 1
            if value is not None:
                w.last_value = value
            pending["progress"] = {"epoch": step, "epochs": epochs, "value": value}
            on_event("epoch", {"number": trial.number, "epoch": step, "epochs": epochs, "value": value})
            if rc is None and w.ended_by is None and value is not None and step < epochs \
                    and calls.call(lambda: store.should_prune(tid)) is True:
                w.ended_by = "pruned"
        if now - last_beat >= settings.heartbeat_s:
            pending["heartbeat"] = time.time()
            last_beat = now
        if pending:
            ok = calls.call(lambda: store.set_attrs(tid, **pending))
            if ok is not FAILED:
                pending = {}
            if ok is False:  # declared lost meanwhile and re-queued: stop duplicating it
                w.ended_by = "lost"
        if rc is not None:
            w.rc = rc
            return w
        if w.ended_by is None and stop.is_set():
            w.ended_by = "interrupted"
        if w.ended_by is None:
            hit = limits.check(now - start, now - last_progress)
            if hit is not None:
                w.ended_by, w.note = hit
        if w.ended_by is not None:
            w.rc = child.terminate()
            return w


def fresh_trial_dir(sweep_dir: Path, number: int) -> Path:
    """``trials/NNNN``, absolute, and empty of anything an earlier sweep of the same name left
    there (its study.db deleted, or the name reused on another --storage): such a folder is
    moved aside, never read as this trial's and never deleted (it may hold checkpoints)."""
    d = (sweep_dir / "trials" / f"{number:04d}").resolve()
    if d.exists() and any(d.iterdir()):
        d.rename(d.with_name(f"{d.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _crashed(store: Store, trial: StoredTrial, rc: int, attrs: dict[str, Any], calls: Patient) -> tuple[Status, dict[str, Any]]:
    """Killed by a signal before writing a result (the OOM killer, a node drained, a
    segfault): more likely the machine than the values, so the slot is re-queued, up to
    ``MAX_CRASHES`` attempts in all before it counts as failed."""
    earlier = calls.until_ok(lambda: store.trials(Status.LOST, Status.FAILED))
    n = 1 + sum(1 for t in earlier if (t.plan, t.slot) == (trial.plan, trial.slot) and t.attrs.get("crashed"))
    try:
        sig = signal.Signals(-rc).name
    except ValueError:
        sig = f"signal {-rc}"
    tail = attrs.get("error", "").partition("\n")[2]
    if n < MAX_CRASHES:
        return Status.LOST, {**attrs, "crashed": True,
                        "error": f"killed by {sig} without a result (crash {n} of at most {MAX_CRASHES}); re-queued\n{tail}".strip()}
    return Status.FAILED, {**attrs, "crashed": True,
                      "error": f"killed by {sig} without a result, {n} times; not retried\n{tail}".strip()}


def adopt_result(trial: StoredTrial) -> tuple[Status, float | None, dict[str, Any]] | None:
    """A dead worker's trial that wrote its result before the worker could tell it."""
    d = trial.attrs.get("trial_dir")
    if not d or not (Path(d) / RESULT).is_file():
        return None
    try:
        spec = TrialSpec.read(Path(d) / SPEC)
    except (OSError, ValueError, TypeError):
        return None
    status, score, attrs = _outcome(Path(d), spec.metric, None)
    return (status, score, attrs) if status.is_result else None


def _outcome(trial_dir: Path, metric: str, rc: int | None) -> tuple[Status, float | None, dict[str, Any]]:
    """Status, score and attrs from what the trial left on disk."""
    rows = read_rows(trial_dir)
    attrs: dict[str, Any] = dict(trial_records(rows, metric))
    run = find_run_dir(trial_dir)
    attrs.update(run_dir=os.path.abspath(run) if run else None, exit_code=rc, log=os.path.abspath(trial_dir / LOG))
    try:
        raw = json.loads((trial_dir / RESULT).read_text(encoding="utf-8"))
        result = TrialResult.from_json(raw) if isinstance(raw, dict) else None
    except (OSError, ValueError, TypeError):
        result = None
    if result is None:
        attrs["error"] = f"trial process exited with code {rc} and no result\n" + log_tail(trial_dir / LOG)
        return Status.FAILED, None, attrs
    for k in ("error", "hint", "device", "wall_time_s"):
        if getattr(result, k) is not None:
            attrs[k] = getattr(result, k)
    attrs["run_dir"] = os.path.abspath(result.run_dir) if result.run_dir else attrs["run_dir"]
    attrs.setdefault("error", None)
    return result.status, result.score, attrs


def _tail_exc(e: BaseException, n: int = 6) -> str:
    return "\n".join("".join(traceback.format_exception(type(e), e, e.__traceback__)).strip().splitlines()[-n:])
