"""The sweep's entry points, one per command: ``run_sweep`` (start or resume),
``sweep_status`` (read only) and ``run_worker``. The CLI parses options into these calls
and renders what comes back; everything between lives in ``plan/``, ``run/`` and ``store/``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ocrtune.errors import InputError
from ocrtune.sweep.prepare import SweepRequest, check_worker_data, prepare
from ocrtune.sweep.run.coordinator import Coordinator
from ocrtune.sweep.run.launcher import Slot, make_slots, sigterm_as_interrupt
from ocrtune.sweep.run.worker import Outcome, WorkerPool, WorkerSettings
from ocrtune.sweep.store import Store, check_name
from ocrtune.sweep.summary import summarize
from ocrtune.sweep.types import SweepConfig, SweepSummary

Event = Callable[[str, Mapping[str, Any]], None]


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


def run_sweep(request: SweepRequest, place: Place, *, sets: Sequence[str] = (), presets_dir: Sequence[str] = (),
              gpus: str | None = None, parallel: int | None = None, hooks: Hooks | None = None) -> SweepSummary:
    """Check everything, open (or create) the study and drive the sweep to its end.
    Ctrl-C (or SIGTERM) raises ``KeyboardInterrupt`` once running trials are re-queued."""
    from ocrtune.presets.load import load_preset

    hooks = hooks or Hooks()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    loaded = load_preset(request.preset, list(sets), list(presets_dir))
    slots = make_slots(gpus, parallel)
    cfg = prepare(request, loaded.preset, slots=len(slots))
    store = Store.open(cfg.name, place.storage, runs_dir=place.runs_dir, create=True, direction=cfg.direction)
    try:
        coord = Coordinator(store, cfg, slots, WorkerSettings(sweep_dir=place.sweep_dir(cfg.name)), on_event=hooks.event)
        with sigterm_as_interrupt():
            return coord.run(on_update=hooks.update, on_attached=lambda: hooks.started(cfg, store.url, slots))
    finally:
        store.close()


def sweep_status(name: str, place: Place) -> SweepSummary:
    """The sweep's state; changes nothing (works on a read-only copy)."""
    store = Store.open(check_name(name, key="NAME"), place.storage, runs_dir=place.runs_dir, read_only=True)
    try:
        cfg = store.config()
        if cfg is None:
            raise InputError("this study was not created by ocrtune sweep (no settings stored)", key=name)
        return summarize(store, cfg, observe=True)
    finally:
        store.close()


def run_worker(name: str, place: Place, *, gpus: str | None = None, parallel: int | None = None,
               data: Path | None = None, max_idle: float | None = None, wait: float = 60.0,
               hooks: Hooks | None = None) -> list[Outcome]:
    """Pull queued trials of sweep ``name`` and run them here until the sweep finishes."""
    hooks = hooks or Hooks()
    check_name(name)
    slots = make_slots(gpus, parallel)
    if not slots:
        raise InputError("a worker needs at least one slot", key="--parallel")
    settings = WorkerSettings(sweep_dir=place.sweep_dir(name), data=str(data.resolve()) if data else None,
                              max_idle_s=max_idle)
    store = Store.open_when_ready(name, place.storage, runs_dir=place.runs_dir, wait_s=wait,
                                  poll_s=max(settings.poll_s, 0.05))
    try:
        cfg = store.config()
        assert cfg is not None  # open_when_ready waits for the settings
        check_worker_data(cfg, settings.data)  # this machine's data, before any trial takes it
        pool = WorkerPool(store, cfg, slots, settings, on_event=hooks.event, reap=True)
        hooks.started(cfg, store.url, slots)
        with sigterm_as_interrupt():
            return pool.run()
    finally:
        store.close()
