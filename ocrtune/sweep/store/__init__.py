"""The sweep's state in an Optuna study: the only package that imports Optuna.

Everything a sweep needs to stop, resume and spread over machines lives in one study:

- study user attrs: the sweep's settings (``config``), the plan log (one entry per batch the
  coordinator decided on, written *before* its trials are queued, so a coordinator killed
  half-way through queueing re-queues exactly the missing ones), the coordinator's identity
  and the ``finished`` mark workers wait for;
- one trial per attempt, queued with ``enqueue_trial`` and tagged with user attrs ``plan`` and
  ``plan_slot`` (its place in the plan), ``batch`` (the stage), ``kind`` and ``params``. A
  claimed trial also carries its swept values as real Optuna params with the space's
  distributions (``samplers.param_distribution``), its value, state and per-epoch
  intermediate values, so optuna-dashboard, ``optuna.importance`` and
  ``optuna.visualization`` read a sweep like any study. Finished
  attempts carry ``status`` (completed, diverged, oom, failed, pruned; or lost/interrupted for
  attempts that will be re-run), the score (completed and pruned attempts only), run
  directory, error tail and the figures of ``records.py``.

Liveness: optuna's own heartbeat only exists for RDB storages, so workers keep a ``heartbeat``
user attr fresh instead, with host, pid and process start time. A RUNNING trial is *lost* when
its process is gone on this host, or when its heartbeat has not changed for ``grace_s``
seconds of *this* process's clock (so clock skew between machines does not matter). A lost
trial's slot is queued again by the coordinator, the only process that queues. If the lost
process had already written its result (killed between finishing and telling), the result is
adopted instead of re-running the trial.

Claims (WAITING -> RUNNING) are atomic on every storage: PostgreSQL/MySQL lock the row, the
journal replays its log in order, and SQLite and journal files are additionally guarded by an
``flock`` next to the file, as are the read-modify-write steps of reaping. The coordinator's
own claim is a lock the storage holds for it (``locks.py``).

Modules: ``backends`` (names, storage URLs, opening), ``study`` (``Store``), ``trials`` (what it
hands out), ``locks`` (the coordinator lock), ``samplers`` (pruners, TPE proposals and
the Optuna distributions of swept keys).
"""

from __future__ import annotations

from ocrtune.sweep.store.backends import check_name, resolve_storage, show_storage
from ocrtune.sweep.store.samplers import MEDIAN_STARTUP, PRUNERS, make_pruner, propose_tpe
from ocrtune.sweep.store.study import Store
from ocrtune.sweep.store.trials import Plan, StoredTrial, planning_history

__all__ = [
    "MEDIAN_STARTUP", "PRUNERS", "Plan", "Store", "StoredTrial", "check_name", "make_pruner", "planning_history",
    "propose_tpe", "resolve_storage", "show_storage",
]
