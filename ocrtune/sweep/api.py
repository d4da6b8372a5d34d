"""The sweep's entry points, one per command: ``run_sweep`` (start or resume),
``sweep_status`` (read only) and ``run_worker``. The CLI parses options into these calls
and renders what comes back; everything between lives in ``plan/``, ``run/`` and ``store/``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.sweep.prepare import SweepRequest, check_worker_data, check_worker_init, keep_stored_init, prepare
from ocrtune.sweep.run.coordinator import Coordinator
from ocrtune.sweep.run.launcher import Slot, make_slots, sigterm_as_interrupt
from ocrtune.sweep.run.worker import Outcome, WorkerPool, WorkerSettings
from ocrtune.sweep.store import Store, check_name
from ocrtune.sweep.summary import summarize
from ocrtune.sweep.types import Event, SweepConfig, SweepSummary


@dataclass
class Hooks:
    """What a caller sees while a sweep runs: ``started`` once the study is open, ``event``
    per trial start/end/error, ``update`` with the summary at each coordinator step."""

    started: Callable[[SweepConfig, str, Sequence[Slot]], None] = lambda cfg, url, slots: None
    event: Event = lambda kind, data: None
    update: Callable[[SweepSummary], None] = lambda summary: None


@dataclass(frozen=True)
class Place:
    """Where a sweep lives: its storage URL (None: SQLite under ``runs_dir``) and runs folder."""

    storage: str | None = None
    runs_dir: Path = field(default_factory=lambda: Path("runs"))

    def sweep_dir(self, name: str) -> Path:
        return self.runs_dir / "sweeps" / name


@dataclass(frozen=True)
class SweepOutcome:
    """A sweep that ran to its end: its summary, and its report folder (None when not asked
    for or when no trial has a score; ``report_error`` when writing it failed)."""

    summary: SweepSummary
    report_dir: Path | None = None
    report_error: str | None = None


def run_sweep(request: SweepRequest, place: Place, *, sets: Sequence[str] = (), presets_dir: Sequence[str] = (),
              gpus: str | None = None, parallel: int | None = None, hooks: Hooks | None = None,
              report: bool = True, warm: bool = True) -> SweepOutcome:
    """Check everything, open (or create) the study, drive the sweep to its end and write its
    report. Ctrl-C (or SIGTERM) raises ``KeyboardInterrupt`` once running trials are re-queued.
    ``warm=False`` starts each trial as a new process instead of forking a warm one."""
    from ocrtune.presets.load import load_preset

    hooks = hooks or Hooks()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    loaded = load_preset(request.preset, list(sets), list(presets_dir))
    slots = make_slots(gpus, parallel)
    cfg = prepare(request, loaded.preset, slots=len(slots), runs_dir=place.runs_dir)
    store = Store.open(cfg.name, place.storage, runs_dir=place.runs_dir, create=True, direction=cfg.direction)
    try:
        cfg = keep_stored_init(cfg, store.config(), loaded.preset)  # a resume without --init
        settings = WorkerSettings(sweep_dir=place.sweep_dir(cfg.name), warm=warm)
        coord = Coordinator(store, cfg, slots, settings, on_event=hooks.event)
        with sigterm_as_interrupt():
            summary = coord.run(on_update=hooks.update, on_attached=lambda: hooks.started(cfg, store.url, slots))
    finally:
        store.close()
    if not report or summary.best is None:
        return SweepOutcome(summary)
    from ocrtune.sweep.report.build import ReportRequest, make_report

    try:
        _, folder = make_report(ReportRequest(cfg.name, None, None, place.storage, place.runs_dir, presets_dir))
    except OSError as e:  # the sweep's results are safe in the study; the report can be re-made
        where = f"{e.filename}: " if e.filename else ""
        return SweepOutcome(summary, None, f"{where}{e.strerror or e}")
    except OcrtuneError as e:
        return SweepOutcome(summary, None, str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
    return SweepOutcome(summary, folder)


def sweep_status(name: str, place: Place) -> SweepSummary:
    """The sweep's state; changes nothing (works on a read-only copy)."""
    store = Store.open(check_name(name, key="NAME"), place.storage, runs_dir=place.runs_dir, read_only=True,
                       key="NAME")
    try:
        cfg = store.config()
        if cfg is None:
            raise InputError("this study was not created by ocrtune sweep (no settings stored)", key=name)
        return summarize(store, cfg, observe=True)
    finally:
        store.close()


def run_worker(name: str, place: Place, *, gpus: str | None = None, parallel: int | None = None,
               data: Path | None = None, max_idle: float | None = None, wait: float = 60.0,
               hooks: Hooks | None = None, warm: bool = True) -> list[Outcome]:
    """Pull queued trials of sweep ``name`` and run them here until the sweep finishes."""
    hooks = hooks or Hooks()
    check_name(name)
    slots = make_slots(gpus, parallel)
    if not slots:
        raise InputError("a worker needs at least one slot", key="--parallel")
    settings = WorkerSettings(sweep_dir=place.sweep_dir(name), data=str(data.resolve()) if data else None,
                              max_idle_s=max_idle, warm=warm)
    store = Store.open_when_ready(name, place.storage, runs_dir=place.runs_dir, wait_s=wait,
                                  poll_s=max(settings.poll_s, 0.05))
    try:
        cfg = store.config()
        assert cfg is not None  # open_when_ready waits for the settings
        check_worker_data(cfg, settings.data)  # this machine's data, before any trial takes it
        check_worker_init(cfg)  # and the sweep's --init checkpoint
        pool = WorkerPool(store, cfg, slots, settings, on_event=hooks.event, reap=True)
        hooks.started(cfg, store.url, slots)
        with sigterm_as_interrupt():
            return pool.run()
    finally:
        store.close()
