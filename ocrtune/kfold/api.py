"""``run_kfold`` (start or resume a k-fold) and ``kfold_status`` (read only).

``run_kfold`` checks everything before it writes anything (preset, folds, data, weights),
builds the folds (``folds.py``) and records them in ``kfold.json``, writes each fold's dataset
(``sources.py``), and trains the folds not yet completed, one per slot at a time, each in its
own process (``fold.py``, started through the sweep's launcher: ``Slot`` pins it to a GPU or
a share of the CPU cores, ``Child`` gives it its own session and stops it cleanly). A fold is
done once its ``result.json`` says completed; a resumed k-fold trains only the others (an
interrupted fold's run goes on from its ``last.ckpt``), and refuses (exit 2) when the preset,
the folds, the seed or the data changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.kfold.folds import build_folds, check_folds
from ocrtune.kfold.layout import COMPLETED, KFOLD_JSON, LOG, OOF, PROCESS, RESULT, RUNS, SPEC, completed_run, fold_dir
from ocrtune.kfold.sources import TRAIN, VAL, Sources, read_sources, write_fold_data
from ocrtune.kfold.status import (
    OWNER,
    SCORES,
    check_name,
    find_kfold,
    fold_process_alive,
    kfold_dir,
    owner_alive,
    read_owner,
    read_result,
    scores_record,
    summarize,
)
from ocrtune.kfold.types import FoldResult, KFoldSettings, KFoldSummary
from ocrtune.sweep.run.launcher import TERM_GRACE_S, Child, Slot, make_slots, sigterm_as_interrupt
from ocrtune.sweep.run.liveness import host_id, me, process_start
from ocrtune.sweep.run.records import find_run_dir, log_tail, progress, read_rows
from ocrtune.sweep.run.trial import EXIT_DISK
from ocrtune.sweep.types import Event, TrialSpec
from ocrtune.train.rundir import RunDir, slug, write_json_atomic, write_text_atomic


@dataclass(frozen=True)
class KFoldRequest:
    """The ``ocrtune kfold`` options as given."""

    preset: str = "cpu-demo"
    folds: int = 5
    data: Path | None = None
    name: str | None = None
    seed: int = 0
    epochs: int | None = None
    sets: tuple[str, ...] = ()
    presets_dir: tuple[str, ...] = ()
    runs_dir: Path = field(default_factory=lambda: Path("runs"))
    gpus: str | None = None
    parallel: int | None = None


@dataclass
class Hooks:
    """What a caller sees: ``started`` once the folds are written (settings, slots, the folds
    to train, data problems), then ``event`` per fold start / epoch / end."""

    started: Callable[[KFoldSettings, Sequence[Slot], Sequence[int], Sequence[str]], None] = \
        lambda settings, slots, todo, problems: None
    event: Event = lambda kind, data: None


@dataclass(frozen=True)
class KFoldOutcome:
    summary: KFoldSummary
    trained: tuple[int, ...]  # the folds this call trained (or tried to)


def prepare(request: KFoldRequest) -> tuple[KFoldSettings, Sources]:
    """Every check that needs no training, in the order a user fixes them; nothing is written."""
    from ocrtune.presets.load import load_preset
    from ocrtune.train.fit import resolve_data_root

    r = request
    if r.name is not None:
        check_name(r.name)
    if r.folds < 2:
        raise InputError(f"must be at least 2 (got {r.folds})", key="--folds")
    if r.epochs is not None and r.epochs < 1:
        raise InputError(f"must be >= 1 (got {r.epochs})", key="--epochs")
    loaded = load_preset(r.preset, list(r.sets), list(r.presets_dir))
    preset = loaded.preset
    _check_weights(preset)
    base = preset.model_dump(mode="json")
    base["trainer"]["max_epochs"] = r.epochs if r.epochs is not None else preset.trainer.max_epochs
    root = resolve_data_root(preset, r.data)
    sources = read_sources(root, (preset.datasets.train, preset.datasets.val))
    check_folds(r.folds, sources.entries)
    name = r.name or slug(f"{Path(r.preset).stem}-{r.folds}fold")
    settings = KFoldSettings(name=name, preset=r.preset, base=base, data=str(sources.root), splits=sources.splits,
                             folds=r.folds, seed=r.seed, images=sources.entries,
                             assignment=build_folds(sources.entries, r.folds, r.seed))
    return settings, sources


def _check_weights(preset: Any) -> None:
    """Hub weights every fold would need, refused now when they cannot be had here (as a sweep does)."""
    from ocrtune.model.weights import unavailable_weights

    enc = preset.models.encoder
    if not enc.pretrained or enc.pretrained_path:
        return
    why = unavailable_weights(enc.model_name)
    if why is not None:
        raise InputError(f"pretrained: true, but {why}; set models.encoder.pretrained_path to a local weights "
                         "file, or --set models.encoder.pretrained=false to train from scratch",
                         key="models.encoder.pretrained")


def run_kfold(request: KFoldRequest, hooks: Hooks | None = None) -> KFoldOutcome:
    """Start or resume a k-fold and train its missing folds. Ctrl-C (or SIGTERM) raises
    ``KeyboardInterrupt`` once the running folds are stopped (they are trained again on resume)."""
    import logging

    hooks = hooks or Hooks()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    settings, sources = prepare(request)
    slots = make_slots(request.gpus, request.parallel)
    if not slots:
        raise InputError("must be >= 1: a k-fold trains its folds here (got 0)", key="--parallel")
    root = kfold_dir(request.runs_dir, settings.name)
    with _owned(root, settings.name):
        settings = _settings_for_resume(root, settings)
        todo = [k for k in range(1, settings.folds + 1) if completed_run(fold_dir(root, k)) is None]
        for k in todo:
            _ready_fold(root, settings, sources, k)
        hooks.started(settings, slots, todo, sources.problems)
        if todo:
            with sigterm_as_interrupt():
                FoldPool(root, settings, slots, hooks.event).run(todo)
        summary = summarize(root, settings, live=False)
        if summary.state == "finished" and summary.pooled is not None:
            write_json_atomic(root / SCORES, scores_record(summary))
    return KFoldOutcome(summary, tuple(todo))


def kfold_status(ref: str, runs_dir: Path = Path("runs")) -> KFoldSummary:
    """A k-fold's folds and scores; writes nothing."""
    return summarize(find_kfold(ref, runs_dir))


# --- settings and folders ---------------------------------------------------------------------


def _settings_for_resume(root: Path, settings: KFoldSettings) -> KFoldSettings:
    """The stored settings when they match (the k-fold resumes), else exit 2 naming every
    difference; a new k-fold's settings are written first."""
    path = root / KFOLD_JSON
    if not path.is_file():
        write_json_atomic(path, settings.to_json())
        return settings
    stored = KFoldSettings.read(path)
    diffs = settings.differences(stored)
    if diffs:
        raise InputError(f"k-fold {settings.name} was started with other settings: "
                         + "; ".join(str(d) for d in diffs)
                         + f". Use another --name, or move {root} away to start over", file=str(path))
    return stored


def _ready_fold(root: Path, settings: KFoldSettings, sources: Sources, k: int) -> None:
    """The fold's dataset and ``spec.json``; an earlier attempt's files are moved to
    ``attempts/<n>/`` (never deleted: they may hold checkpoints)."""
    d = fold_dir(root, k)
    d.mkdir(parents=True, exist_ok=True)
    _wait_for_old_process(d, k)
    _retire_attempt(d)
    data = write_fold_data(d, sources, settings.assignment, k)
    base = json.loads(json.dumps(settings.base))
    base["datasets"].update(train=TRAIN, val=VAL)  # the fold's own dataset; its root comes from spec.data
    spec = TrialSpec(name=f"{settings.name}-f{k}", params={}, epochs=settings.epochs, metric="hmean", base=base,
                     preset=settings.preset, data=str(data.resolve()))
    write_json_atomic(d / SPEC, spec.to_json())


def _wait_for_old_process(d: Path, k: int) -> None:
    """A fold process of a ``kfold`` killed a moment ago gets SIGTERM and records its run as
    interrupted: give it the time to finish that before its files are moved."""
    end = time.monotonic() + TERM_GRACE_S + 5
    while not (d / RESULT).is_file() and fold_process_alive(d):
        if time.monotonic() > end:
            raise InputError(f"fold {k}'s process from an earlier run still runs ({d / PROCESS}); stop it first",
                             file=str(d))
        time.sleep(0.2)


def continuable(d: Path) -> Path | None:
    """The run an earlier attempt left that the next one can go on with: interrupted (or
    killed while ``running``) with a ``last.ckpt`` to resume from, or trained to the end but
    not yet scored (its process was stopped while predicting). Failed, diverged and
    out-of-memory runs start over."""
    run = find_run_dir(d)
    if run is None:
        return None
    r = RunDir(run)
    try:
        status = r.read_summary().get("status")
    except InputError:
        return None
    if status in ("interrupted", "running") and r.last_ckpt.is_file():
        return run
    return run if status == COMPLETED and r.best_ckpt.is_file() else None


def _retire_attempt(d: Path) -> None:
    keep_runs = continuable(d) is not None
    left = [d / n for n in (RESULT, OOF, "oof.csv", RUNS, LOG, SPEC, PROCESS)
            if (d / n).exists() and not (n == RUNS and keep_runs)]
    if not left:
        return
    attempts = d / "attempts"
    attempts.mkdir(exist_ok=True)
    n = 1 + max((int(p.name) for p in attempts.iterdir() if p.name.isdigit()), default=0)
    dest = attempts / str(n)
    dest.mkdir()
    for p in left:
        os.rename(p, dest / p.name)


@contextlib.contextmanager
def _owned(root: Path, name: str) -> Iterator[None]:
    """One ``kfold`` process per k-fold: ``owner.json`` names it (host, pid, start time) while
    it runs; one left by a process that is gone is taken over."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / OWNER
    mine = me()
    for _ in range(3):
        try:
            write_text_atomic(path, json.dumps(mine) + "\n", exclusive=True)
            break
        except FileExistsError:
            owner = read_owner(root)
            if owner_alive(owner):
                raise InputError(f"k-fold {name} is running already (pid {owner.get('pid')} on "  # type: ignore[union-attr]
                                 f"{owner.get('host')}); see `ocrtune kfold status {name}`. If that process is "  # type: ignore[union-attr]
                                 f"gone, delete {path}", file=str(root)) from None
            path.unlink(missing_ok=True)  # its process is gone: take over
    else:
        raise OcrtuneError(f"{path}: could not take over the k-fold")
    try:
        yield
    finally:
        if read_owner(root) == json.loads(json.dumps(mine)):
            path.unlink(missing_ok=True)


# --- running the folds -------------------------------------------------------------------------


def fold_command(spec: Path) -> list[str]:
    import sys

    return [sys.executable, "-m", "ocrtune.kfold.fold", str(spec)]


class FoldPool:
    """One thread per slot, each taking the next fold to train until none is left. Ctrl-C
    stops every running fold (they record 'interrupted') before ``run`` re-raises it; a fold
    that cannot write its files stops the others (``SweepFilesError``, exit 1)."""

    def __init__(self, root: Path, settings: KFoldSettings, slots: Sequence[Slot], on_event: Event,
                 poll_s: float | None = None) -> None:
        self.root, self.settings, self.slots, self.on_event = root, settings, list(slots), on_event
        self.poll_s = poll_s if poll_s is not None else float(os.environ.get("OCRTUNE_SWEEP_POLL_S", "0.5"))
        self.stop = threading.Event()
        self.fatal: OcrtuneError | None = None
        self.results: dict[int, FoldResult] = {}
        self._lock = threading.Lock()

    def run(self, folds: Sequence[int]) -> dict[int, FoldResult]:
        todo: queue.Queue[int] = queue.Queue()
        for k in folds:
            todo.put(k)
        threads = [threading.Thread(target=self._loop, args=(slot, todo), name=f"ocrtune-fold-{slot.name}",
                                    daemon=True) for slot in self.slots]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(0.5)
        except KeyboardInterrupt:
            self.stop.set()
            for t in threads:
                t.join()
            raise
        if self.fatal is not None:
            raise self.fatal
        return self.results

    def _loop(self, slot: Slot, todo: queue.Queue[int]) -> None:
        while not self.stop.is_set():
            try:
                k = todo.get_nowait()
            except queue.Empty:
                return
            try:
                res = self._run_fold(k, slot)
            except Exception as e:  # the parent's own trouble (a full disk): every slot stops
                with self._lock:
                    self.fatal = self.fatal or (e if isinstance(e, OcrtuneError) else OcrtuneError(f"fold {k}: {e}"))
                self.stop.set()
                return
            with self._lock:
                self.results[k] = res

    def _run_fold(self, k: int, slot: Slot) -> FoldResult:
        d = fold_dir(self.root, k)
        n_out = sum(1 for v in self.settings.assignment.values() if v == k)
        reported = len(read_rows(d))  # epochs a kept run already has
        self.on_event("start", {"fold": k, "folds": self.settings.folds, "slot": slot.name, "held_out": n_out,
                                "train": len(self.settings.assignment) - n_out, "log": str(d / LOG),
                                "resumed_epochs": reported})
        child = Child(fold_command(d / SPEC), slot.env(), d / LOG)
        write_json_atomic(d / PROCESS, {"host": host_id(), "pid": child.pid, "pid_start": process_start(child.pid)})
        stopped = False
        try:
            while True:
                rc = child.wait(self.poll_s)
                steps = progress(read_rows(d), "hmean")
                for step, value in steps[reported:]:
                    self.on_event("epoch", {"fold": k, "folds": self.settings.folds, "epoch": step,
                                            "epochs": self.settings.epochs, "hmean": value})
                reported = max(reported, len(steps))
                if rc is not None:
                    break
                if self.stop.is_set():
                    rc, stopped = child.terminate(), True
                    break
        finally:
            if child.wait(0) is None:
                child.terminate()
        if rc == EXIT_DISK:  # the fold could not write its files: the disk's fault, not the fold's
            raise OcrtuneError(f"{log_tail(d / LOG, 1) or d}; the k-fold stopped: free some space (or make the "
                               "folder writable) and re-run the same command to resume")
        res = read_result(d)
        if res is None:  # killed before it could write one
            status = "interrupted" if stopped else "failed"
            res = FoldResult(k, status, error=f"fold process exited with code {rc} and no result\n"
                             + log_tail(d / LOG))
            write_json_atomic(d / RESULT, res.to_json())
        self.on_event("end", {"fold": k, "folds": self.settings.folds, "slot": slot.name, **res.to_json()})
        return res


__all__ = ["KFoldRequest", "KFoldOutcome", "Hooks", "prepare", "run_kfold", "kfold_status"]
