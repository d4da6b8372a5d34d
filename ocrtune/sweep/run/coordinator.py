"""The coordinator: plan a batch, queue it, wait until every trial of it has a result, plan
the next; resumable at any point because it plans only from results stored in the study.

Resuming (re-running the same command) replays the same loop: the settings must match the
stored ones; RUNNING trials whose worker died are marked lost (or adopted if they had written
their result); every recorded plan slot without a result or a live attempt is queued again;
and only when the latest batch is complete does the strategy plan the next one. A batch is
recorded in the plan log before its trials are queued, so a coordinator killed in between
queues the rest on resume; one killed before recording re-plans the same batch, since
strategies are deterministic functions of the results (random and TPE are seeded). A plan
slot counts once: if it somehow got two results, the first one is the one planned from.

Local slots (``--gpus``/``--parallel``) are a ``WorkerPool`` inside this process (its warm
zygote starts with it, so its imports overlap the first planning); remote ``ocrtune sweep
worker`` processes pull from the same queue. With ``--parallel 0`` this process only
coordinates.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Mapping, Sequence

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.sweep.plan.strategies import build_strategy
from ocrtune.sweep.run.guards import FAILED, Patient
from ocrtune.sweep.run.launcher import Slot
from ocrtune.sweep.run.worker import WorkerPool, WorkerSettings, adopt_result
from ocrtune.sweep.store import Plan, Store, StoredTrial, planning_history, propose_tpe
from ocrtune.sweep.summary import summarize
from ocrtune.sweep.types import SweepConfig, SweepSummary


class Coordinator:
    """Drives one sweep to its end (or until Ctrl-C) and returns its ``SweepSummary``."""

    def __init__(self, store: Store, cfg: SweepConfig, slots: Sequence[Slot], settings: WorkerSettings,
                 on_event: Callable[[str, Mapping[str, Any]], None] | None = None) -> None:
        self.store, self.cfg, self.slots, self.settings = store, cfg, list(slots), settings
        self.strategy = build_strategy(cfg, propose_tpe)
        self.on_event = on_event
        self.stop = threading.Event()
        self._last_beat = 0.0
        self._last_plan: tuple[Any, ...] | None = None
        self._pool: WorkerPool | None = None

    def attach(self) -> None:
        """Store the settings (new sweep) or check them against the stored ones (resume)."""
        stored = self.store.config()
        if stored is not None:
            diff = self.cfg.differences(stored)
            if diff:
                # each difference names the option that sets it; the name itself is not the problem
                raise InputError(f"sweep {self.cfg.name!r} exists with different settings: "
                                 f"{'; '.join(str(d) for d in diff)}. Re-run it with the same options or pick "
                                 "another --name")
        self.store.set_config(self.cfg)  # budget settings may have grown
        self.store.set_finished(None)  # re-checked below; a larger budget may plan more

    def run(self, on_update: Callable[[SweepSummary], None] | None = None,
            on_attached: Callable[[], None] | None = None) -> SweepSummary:
        """Claim the sweep, check (or store) its settings, then plan and wait until it ends;
        ``on_attached`` is called once the settings are known to match."""
        self.store.claim_coordinator()
        pool = None
        try:
            self.attach()
            if on_attached is not None:
                on_attached()
            pool = WorkerPool(self.store, self.cfg, self.slots, self.settings, stop=self.stop,
                              on_event=self.on_event, until_finished=False)
            pool.start()
            self._pool = pool
            self._loop(on_update)
        finally:
            self.stop.set()
            if pool is not None:
                pool.join()
                pool.close()
            self.store.release_coordinator()
        summary = summarize(self.store, self.cfg, len(self.slots))
        if on_update:
            on_update(summary)
        return summary

    def _loop(self, on_update: Callable[[SweepSummary], None] | None) -> None:
        """Steps until the sweep is finished. A step that fails on the store is tried again
        next poll, like a worker's writes; only ``grace_s`` of failures in a row stop it."""
        calls = Patient(self.settings.grace_s, self.settings.poll_s, self.store.file)
        self._last_beat, self._last_plan = 0.0, None
        while (done := calls.call(lambda: self._step(on_update))) is not True:
            if done is FAILED or done is False:
                time.sleep(self.settings.poll_s)

    def _step(self, on_update: Callable[[SweepSummary], None] | None) -> bool | None:
        """One round: True when finished, False to wait a poll, None to go on at once."""
        if self._pool is not None and self._pool.fatal is not None:
            raise self._pool.fatal  # a slot could not write the sweep's files: stop, resume later
        if time.monotonic() - self._last_beat > 5:
            self.store.coordinator_beat()
            self._last_beat = time.monotonic()
        self.store.reap_stale(self.settings.grace_s, adopt=adopt_result)
        trials, plans = self.store.trials(), self.store.plans()
        filled = fill_missing(self.store, plans, trials)
        if filled or any(t.is_live for t in trials):
            if on_update:
                on_update(summarize(self.store, self.cfg, len(self.slots), trials, plans))
            return False
        batch = self.strategy.next_batch(planning_history(trials))
        if batch.done:
            self.store.set_finished({"reason": batch.reason, "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
            return True
        key = (batch.index, batch.kind, batch.params)
        if plans and key == (plans[-1].index, plans[-1].kind, plans[-1].params) or key == self._last_plan:
            raise OcrtuneError(f"the {self.cfg.strategy} strategy planned the same batch twice ({batch.reason})")
        plan = self.store.add_plan(batch)
        self._last_plan = key
        for slot in range(len(plan.params)):
            self.store.enqueue(plan, slot)
        return None


def fill_missing(store: Store, plans: Sequence[Plan], trials: Sequence[StoredTrial]) -> int:
    """Queue every plan slot that has neither a result nor a live attempt; returns how many."""
    covered = {(t.plan, t.slot) for t in trials if t.is_live or t.is_result}
    attempts: dict[tuple[int | None, int | None], int] = {}
    for t in trials:
        attempts[(t.plan, t.slot)] = attempts.get((t.plan, t.slot), 0) + 1
    n = 0
    for plan in plans:
        for slot in range(len(plan.params)):
            if (plan.seq, slot) not in covered:
                store.enqueue(plan, slot, attempt=attempts.get((plan.seq, slot), 0) + 1)
                n += 1
    return n
