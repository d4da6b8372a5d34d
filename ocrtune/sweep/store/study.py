"""``Store``: one sweep's study, with atomic claims, liveness and the coordinator lock."""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState, create_trial

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.sweep.run.liveness import gone_here, host_id, me, pid_alive
from ocrtune.sweep.plan.space import Dim
from ocrtune.sweep.plan.strategies import space_of
from ocrtune.sweep.types import Batch, Direction, Status, SweepConfig, finite, scored
from ocrtune.sweep.store.backends import (
    FILE_KINDS,
    close_backend,
    file_errors,
    file_lock,
    first_line,
    lock_path,
    open_backend,
    resolve_storage,
    show_storage,
)
from ocrtune.sweep.store.locks import Held, try_lock
from ocrtune.sweep.store.samplers import make_pruner, param_distribution, param_value
from ocrtune.sweep.store.trials import Plan, StoredTrial
from ocrtune.sweep.store.trials import jsonable as _jsonable
from ocrtune.sweep.store.trials import now as _now

_CONFIG, _PLAN, _FINISHED, _COORD = "ocrtune_config", "ocrtune_plan_", "ocrtune_finished", "ocrtune_coordinator"
Adopt = Callable[[StoredTrial], "tuple[str, float | None, dict[str, Any]] | None"]

optuna.logging.set_verbosity(optuna.logging.WARNING)


class Store:
    """A sweep's study. Thread-safe; every process opens its own."""

    clock: Callable[[], float] = staticmethod(time.monotonic)  # how silence is timed (tests set their own)

    def __init__(self, name: str, kind: str, target: str, storage: BaseStorage, study: optuna.Study) -> None:
        self.name, self.kind, self.target = name, kind, target
        self._storage, self.study = storage, study
        self._sid = storage.get_study_id_from_name(name)
        self._lock = threading.RLock()
        self._lockfile = lock_path(target) if kind in FILE_KINDS else None
        self._ids: dict[int, int] = {}
        self._beats: dict[int, tuple[Any, float]] = {}
        self._pruner: optuna.pruners.BasePruner | None = None
        self._active: set[int] = set()  # trials this process is running right now
        self._coord: Held | None = None
        self._dist: dict[str, tuple[Dim, Any]] | None = None

    @property
    def url(self) -> str:
        return show_storage(self.kind, self.target)

    @property
    def file(self) -> str | None:
        """The study's file (SQLite, journal), for messages about it; None for a database."""
        return self.target if self.kind in FILE_KINDS else None

    @property
    def direction(self) -> Direction:
        return "maximize" if self.study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"

    @classmethod
    def open(cls, name: str, storage: str | None = None, *, runs_dir: Path = Path("runs"),
             create: bool = False, direction: Direction = "maximize", read_only: bool = False,
             key: str = "--name") -> Store:
        """Open (``create``: or create) the study ``name``; a missing one is an InputError.
        ``read_only`` (``sweep status``) writes nothing, not even a lock file, so a copy of a
        sweep on a read-only disk can be shown. ``key`` is how messages about the name call it
        (``NAME`` where a command takes it as an argument)."""
        kind, target = resolve_storage(name, storage, runs_dir)
        if kind in FILE_KINDS and not create and not Path(target).is_file():
            raise InputError(f"no sweep named {name!r} here ({target} does not exist; pass --storage or --runs-dir "
                             "if it lives elsewhere)", key=key)
        with contextlib.nullcontext() if read_only else _creating(kind, target):  # two creators of one SQLite schema collide
            backend = open_backend(kind, target, read_only=read_only)
            try:
                study = _load(name, backend, kind, target, create, direction)
            except BaseException:
                close_backend(backend)
                raise
        if study is None:
            close_backend(backend)
            raise InputError(f"no sweep named {name!r} in {show_storage(kind, target)}", key=key)
        store = cls(name, kind, target, backend, study)
        if create and store.direction != direction:
            store.close()
            raise InputError(f"sweep {name!r} exists and {store.direction}s its metric, not {direction}; "
                             "use another --name", key="--metric")
        return store

    @classmethod
    def open_when_ready(cls, name: str, storage: str | None = None, *, runs_dir: Path = Path("runs"),
                        wait_s: float = 60.0, poll_s: float = 0.5) -> Store:
        """Wait up to ``wait_s`` for sweep ``name`` to exist with its settings (a worker started
        before its coordinator). One backend serves every poll: a database sees one
        connection pool, not one per poll."""
        kind, target = resolve_storage(name, storage, runs_dir)
        deadline = time.monotonic() + wait_s
        while kind in FILE_KINDS and not Path(target).is_file():
            if time.monotonic() > deadline:
                return cls.open(name, storage, runs_dir=runs_dir)  # raises the located error
            time.sleep(poll_s)
        with _creating(kind, target):
            backend = open_backend(kind, target)
        try:
            while True:
                with _creating(kind, target):
                    study = _load(name, backend, kind, target, False, "maximize")
                if study is not None:
                    store = cls(name, kind, target, backend, study)
                    if store.config() is not None:
                        return store
                if time.monotonic() > deadline:
                    what = "has no settings yet" if study is not None else f"does not exist in {show_storage(kind, target)}"
                    raise InputError(f"sweep {name!r} {what} after {wait_s:g}s (is its coordinator running?)", key="--name")
                time.sleep(poll_s)
        except BaseException:
            close_backend(backend)
            raise

    @classmethod
    def open_here(cls, name: str, runs_dir: Path = Path("runs")) -> Store | None:
        """The study of sweep ``name`` in its default place (``runs_dir/sweeps/NAME/study.db``),
        opened read-only; None when there is no such file (a sweep on another ``--storage``)."""
        _, target = resolve_storage(name, None, runs_dir)
        if not Path(target).is_file():
            return None
        return cls.open(name, None, runs_dir=runs_dir, read_only=True)

    @classmethod
    def exists(cls, name: str, storage: str | None = None, *, runs_dir: Path = Path("runs")) -> bool:
        kind, target = resolve_storage(name, storage, runs_dir)
        if kind in FILE_KINDS and not Path(target).is_file():
            return False
        try:
            cls.open(name, storage, runs_dir=runs_dir).close()
        except InputError:
            return False
        return True

    def close(self) -> None:
        """Release the coordinator lock and the backend's connections."""
        self.release_coordinator()
        close_backend(self._storage)

    def drop(self) -> None:
        """Delete the study."""
        with self._lock:
            optuna.delete_study(study_name=self.name, storage=self._storage)

    # --- study attrs -------------------------------------------------------------------------

    def _attrs(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._storage.get_study_user_attrs(self._sid))

    def _set(self, key: str, value: Any) -> None:
        with self._lock:
            self._storage.set_study_user_attr(self._sid, key, _jsonable(value))

    def config(self) -> SweepConfig | None:
        """The sweep's settings (None for a study that ``ocrtune sweep`` did not create)."""
        raw = self._attrs().get(_CONFIG)
        return SweepConfig.from_dict(raw) if raw else None

    def set_config(self, config: SweepConfig) -> None:
        self._set(_CONFIG, config.to_dict())
        self._dist = None

    def plans(self) -> list[Plan]:
        attrs = self._attrs()
        out = []
        for key in sorted(k for k in attrs if k.startswith(_PLAN)):
            p = attrs[key]
            out.append(Plan(int(key[len(_PLAN):]), int(p["index"]), p["kind"], p["reason"], tuple(p["params"])))
        return out

    def add_plan(self, batch: Batch) -> Plan:
        """Record a batch before queueing it (only the coordinator calls this)."""
        seq = len(self.plans())
        params = tuple(dict(p) for p in _jsonable(list(batch.params)))
        self._set(f"{_PLAN}{seq:05d}", {"index": batch.index, "kind": batch.kind, "reason": batch.reason, "params": list(params)})
        return Plan(seq, batch.index, batch.kind, batch.reason, params)

    def finished(self) -> dict[str, Any] | None:
        return self._attrs().get(_FINISHED)

    def set_finished(self, info: Mapping[str, Any] | None) -> None:
        self._set(_FINISHED, dict(info) if info is not None else None)

    # --- trials ------------------------------------------------------------------------------

    def enqueue(self, plan: Plan, slot: int, attempt: int = 1) -> None:
        params = plan.params[slot]
        attrs = {"plan": plan.seq, "plan_slot": slot, "batch": plan.index, "kind": plan.kind, "params": params,
                 "status": Status.QUEUED, "attempt": attempt}
        with self._lock:
            self.study.enqueue_trial(dict(params), user_attrs=_jsonable(attrs))

    def trials(self, *statuses: Status) -> list[StoredTrial]:
        """Every attempt, or those with one of ``statuses``."""
        sel = tuple({TrialState[s.store_state.upper()] for s in statuses}) if statuses else None
        with self._lock:
            frozen = self._storage.get_all_trials(self._sid, deepcopy=False, states=sel)
            out = [self._stored(ft) for ft in frozen]
        return [t for t in out if t.status in statuses] if statuses else out

    def trial(self, trial_id: int) -> StoredTrial:
        with self._lock:
            return self._stored(self._storage.get_trial(trial_id))

    def claim(self, owner: Mapping[str, Any] | None = None) -> StoredTrial | None:
        """Take the oldest queued trial for this process (None when none is queued)."""
        ident = {**me(), **(owner or {})}
        with self._exclusive():
            for ft in self._storage.get_all_trials(self._sid, deepcopy=False, states=(TrialState.WAITING,)):
                tid = self._tid(ft.number)
                try:
                    if not self._storage.set_trial_state_values(tid, TrialState.RUNNING):
                        continue
                except (UpdateFinishedTrialError, RuntimeError):
                    continue
                if self._optuna_heartbeat:  # first: from here on Optuna's stale-trial check sees it
                    self._storage.record_heartbeat(tid)  # type: ignore[attr-defined]
                # "claimed" last: until it is written the trial is half-claimed (_reap)
                attrs = {**ident, "status": Status.RUNNING, "heartbeat": time.time(), "claimed": _now()}
                self._active.add(tid)
                for k, v in _jsonable(attrs).items():
                    self._storage.set_trial_user_attr(tid, k, v)
                self._set_params(tid, dict(ft.user_attrs.get("params") or {}))
                return self._stored(self._storage.get_trial(tid))
        return None

    def set_attrs(self, trial_id: int, **attrs: Any) -> bool:
        """Update a running trial's attrs; False if it already ended (another process reaped
        it). A ``heartbeat`` among them is also recorded as Optuna's RDB heartbeat, which is
        what decides silence there. Storage failures raise: callers decide whether to retry."""
        try:
            with self._lock:
                for k, v in _jsonable(attrs).items():
                    self._storage.set_trial_user_attr(trial_id, k, v)
                if "heartbeat" in attrs and self._optuna_heartbeat:
                    self._storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]
        except (UpdateFinishedTrialError, RuntimeError):
            return False
        return True

    def release(self, trial_id: int) -> None:
        """Forget a trial this process was running without ending it (it ended elsewhere)."""
        self._active.discard(trial_id)

    def heartbeat(self, trial_id: int) -> bool:
        """Tell the store the trial's worker is alive: Optuna's RDB heartbeat where the storage
        has one, and the ``heartbeat`` user attr everywhere (journal and in-memory studies
        have no other; ``sweep status`` reads it). False if the trial ended elsewhere."""
        return self.set_attrs(trial_id, heartbeat=time.time())

    @property
    def _optuna_heartbeat(self) -> bool:
        return isinstance(self._storage, RDBStorage) and self._storage.heartbeat_interval is not None

    def report(self, trial_id: int, step: int, value: float) -> None:
        with self._lock, contextlib.suppress(UpdateFinishedTrialError, RuntimeError):
            self._storage.set_trial_intermediate_value(trial_id, step, float(value))

    def finish(self, trial_id: int, status: str, score: float | None = None, attrs: Mapping[str, Any] | None = None) -> bool:
        """End an attempt with ``status``; False if it had already ended elsewhere."""
        with self._exclusive():
            return self._finish(trial_id, status, score, attrs)

    def _finish(self, trial_id: int, status: Status | str, score: float | None, attrs: Mapping[str, Any] | None) -> bool:
        try:
            status = Status(status)
        except ValueError:
            raise ValueError(f"unknown trial status {status!r}") from None
        if status.is_live:
            raise ValueError(f"{status} is not how a trial ends")
        score = scored(status, score)
        if status == Status.COMPLETED and score is None:
            status = Status.FAILED
            attrs = {**(attrs or {}), "error": (attrs or {}).get("error") or "finished without a score"}
        state = TrialState[status.store_state.upper()]
        self._active.discard(trial_id)
        try:
            if self._storage.get_trial(trial_id).state.is_finished():
                return False
            for k, v in _jsonable({**(attrs or {}), "status": status, "score": score, "ended": _now()}).items():
                self._storage.set_trial_user_attr(trial_id, k, v)
            # a pruned trial keeps its last reported value, as Optuna's own pruned trials do
            self._storage.set_trial_state_values(trial_id, state, [score] if score is not None else None)
        except (UpdateFinishedTrialError, RuntimeError):
            return False
        return True

    def add_finished(self, plan: Plan, slot: int, status: Status | str, score: float | None = None,
                     attrs: Mapping[str, Any] | None = None, duration_s: float | None = None) -> StoredTrial:
        """Record slot ``slot`` of ``plan`` as an attempt that already ended elsewhere (``sweep
        import``), in one write: the user attrs a trial run here carries (``plan``, ``plan_slot``,
        ``batch``, ``kind``, ``params``, ``status``, ``score`` ...), its swept values as Optuna params
        with the space's distributions, its value (completed and pruned attempts) and its state.
        ``duration_s`` (how long the run took, when known) sets its start before its end."""
        status = Status(status)
        if not status.is_result:
            raise ValueError(f"{status} is not how a finished trial ends")
        attrs = dict(attrs or {})
        score = scored(status, score)
        if status == Status.COMPLETED and score is None:
            status = Status.FAILED
            attrs["error"] = attrs.get("error") or "finished without a score"
        params = dict(plan.params[slot])
        dims = self._dims()
        values: dict[str, Any] = {}
        dists: dict[str, Any] = {}
        for key, value in params.items():
            got = param_value(*dims[key], value) if key in dims else None
            if got is not None:
                values[key], dists[key] = got[1].to_external_repr(got[0]), got[1]
        user = {"plan": plan.seq, "plan_slot": slot, "batch": plan.index, "kind": plan.kind, "params": params,
                "attempt": 1, **attrs, "status": status, "score": score, "ended": _now()}
        state = TrialState[status.store_state.upper()]
        frozen = create_trial(state=state, value=score if state != TrialState.FAIL else None, params=values,
                              distributions=dists, user_attrs=_jsonable(user))
        if duration_s is not None and duration_s >= 0 and frozen.datetime_complete is not None:
            frozen.datetime_start = frozen.datetime_complete - timedelta(seconds=float(duration_s))
        with self._lock:
            trial_id = self._storage.create_new_trial(self._sid, template_trial=frozen)
        return self.trial(trial_id)

    def reap_stale(self, grace_s: float, adopt: Adopt | None = None) -> list[StoredTrial]:
        """Mark RUNNING trials whose process died (this host) or went silent (``grace_s``) as
        lost, or finish them with their written result (``adopt``). Returns those changed.

        A process gone on this host is seen at once (pid and start time). Silence is Optuna's
        stale-trial check on RDB storages (heartbeats timed by the database's clock, failed
        trials reported through the storage's stale-trial callback); journal and in-memory
        studies, which Optuna gives no heartbeat, use the ``heartbeat`` attr timed by this
        process's clock (``clock``), so clock skew between machines does not matter."""
        changed = self._reap(grace_s, adopt)
        if self._optuna_heartbeat:
            changed += self._fail_stale(grace_s)
        return changed

    def _fail_stale(self, grace_s: float) -> list[StoredTrial]:
        storage = self._storage
        assert isinstance(storage, RDBStorage)
        stale: list[int] = []
        storage.grace_period = grace_s  # type: ignore[assignment]
        storage.heartbeat_stale_trial_callback = lambda study, ft: stale.append(ft.number)
        with self._exclusive(), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        return [self.trial(self._tid(n)) for n in stale]

    def _reap(self, grace_s: float, adopt: Adopt | None) -> list[StoredTrial]:
        here, mine, now = host_id(), me(), self.clock()
        changed = []
        for t in self.trials(Status.RUNNING):  # Optuna's running state makes the status, whatever the attrs say
            a = t.attrs
            # ``claim`` moves a trial to running, then writes who took it: a process killed in
            # between leaves a running trial still marked queued, with no owner and no heartbeat
            # (Optuna's stale-trial check never sees it). Only silence can tell it is orphaned.
            half = "claimed" not in a
            ours = a.get("host") == here and a.get("pid") == mine["pid"]
            if ours and t.trial_id in self._active:
                continue  # our own slot threads look after their trials
            beat = a.get("heartbeat")
            seen = self._beats.get(t.trial_id)
            if seen is None or seen[0] != beat:
                self._beats[t.trial_id] = (beat, now)
            silent = (seen is not None and seen[0] == beat and now - seen[1] > grace_s
                      and (half or not self._optuna_heartbeat))
            dead = ours or gone_here(a)
            if not (dead or silent):
                continue
            why = ("its slot in this process failed" if ours else f"worker process {a.get('pid')} on this host is gone" if dead
                   else f"claimed by a process that stopped before it recorded itself, {grace_s:.0f}s ago or more"
                   if half else f"no heartbeat from {a.get('host', '?')} pid {a.get('pid', '?')} for {grace_s:.0f}s")
            with self._exclusive():
                cur = self._storage.get_trial(t.trial_id)
                if cur.state != TrialState.RUNNING or cur.user_attrs.get("heartbeat") != beat:
                    continue
                got = adopt(t) if adopt is not None and dead else None
                if got is not None:
                    status, score, extra = got
                    ok = self._finish(t.trial_id, status, score, {**extra, "adopted": why})
                else:
                    ok = self._finish(t.trial_id, Status.LOST, None, {"error": why})
            if ok:
                self._beats.pop(t.trial_id, None)
                changed.append(self.trial(t.trial_id))
        return changed

    # --- coordinator claim -------------------------------------------------------------------

    def claim_coordinator(self) -> None:
        """Become the sweep's one coordinator, or refuse while another holds the lock (see
        ``locks``); the stored identity only names the holder for people."""
        with self._lock:
            if self._coord is not None:
                return
            held = try_lock(self.kind, self.target, self._storage, self.name)
            if held is None:
                cur = self._attrs().get(_COORD) or {}
                where = (f"pid {cur.get('pid')} on {str(cur.get('host', '?')).split('/')[0]}" if cur.get("pid")
                         else "another process")
                raise OcrtuneError(f"sweep {self.name!r} is already coordinated by {where}; add capacity with "
                                   f"'ocrtune sweep worker --name {self.name}'")
            self._coord = held
            try:
                self._set(_COORD, {**me(), "beat": time.time()})
            except BaseException:
                self.release_coordinator()
                raise

    def coordinator(self, grace_s: float) -> dict[str, Any] | None:
        """The live coordinator's identity (None when none runs)."""
        cur = self._attrs().get(_COORD)
        if not cur:
            return None
        mine = cur.get("host") == host_id() and cur.get("pid") == me()["pid"]
        return dict(cur) if mine or _alive_elsewhere(cur, grace_s) else None

    def coordinator_beat(self) -> None:
        """Refresh the stored identity; stops (OcrtuneError) if the lock was lost to another."""
        if self._coord is not None:
            self._coord.check()
        self._set(_COORD, {**me(), "beat": time.time()})

    def release_coordinator(self) -> None:
        with self._lock:
            held, self._coord = self._coord, None
            if held is None:
                return
            try:
                cur = self._attrs().get(_COORD)
                if cur and cur.get("pid") == me()["pid"] and cur.get("host") == host_id():
                    self._set(_COORD, None)
            finally:
                held.release()

    # --- analysis ----------------------------------------------------------------------------

    def curves(self) -> dict[int, list[tuple[int, float]]]:
        """Each attempt's reported metric per epoch (Optuna's intermediate values)."""
        with self._lock:
            frozen = self._storage.get_all_trials(self._sid, deepcopy=False)
        return {ft.number: sorted((int(k), float(v)) for k, v in ft.intermediate_values.items()) for ft in frozen
                if ft.intermediate_values}

    def importance(self, min_trials: int = 10) -> tuple[dict[str, float] | None, str]:
        """Optuna's parameter importance estimate over the completed trials, or why there is
        none: one parameter (nothing to apportion) or fewer than ``min_trials`` trials."""
        done = [t for t in self.study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE and t.params]
        keys = {k for t in done for k in t.params}
        if len(keys) < 2:
            return None, "one parameter was searched: there is nothing to apportion"
        if len(done) < min_trials:
            return None, f"only {len(done)} completed trials: too few to trust an importance estimate (need {min_trials})"
        try:
            with self._lock:
                values = optuna.importance.get_param_importances(self.study)
        except (ValueError, RuntimeError, ImportError) as e:
            return None, f"Optuna could not estimate importance: {first_line(e)}"
        return {k: float(v) for k, v in values.items()}, (
            f"Optuna's fANOVA estimate over {len(done)} completed trials (the share of the score's variance "
            "each parameter explains)")

    # --- pruning -----------------------------------------------------------------------------

    def set_pruner(self, kind: str | None, min_epochs: int = 1) -> None:
        self._pruner = make_pruner(kind, min_epochs)

    def should_prune(self, trial_id: int) -> bool:
        if self._pruner is None:
            return False
        with self._lock:
            return bool(self._pruner.prune(self.study, self._storage.get_trial(trial_id)))

    # --- internals ---------------------------------------------------------------------------

    def _set_params(self, trial_id: int, params: Mapping[str, Any]) -> None:
        """The trial's swept values as Optuna params, with the space's distributions (keys
        outside the space, such as a replicate's seed, stay in the ``params`` user attr)."""
        dims = self._dims()
        for key, value in params.items():
            if key not in dims:
                continue
            d, dist = dims[key]
            got = param_value(d, dist, value)
            if got is not None:
                self._storage.set_trial_param(trial_id, key, got[0], got[1])

    def _dims(self) -> dict[str, tuple[Dim, Any]]:
        if self._dist is None:
            cfg = self.config()
            dims = space_of(cfg).dims if cfg else ()
            self._dist = {d.key: (d, param_distribution(d)) for d in dims}
        return self._dist

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._lock:
            if self._lockfile is None:
                yield
                return
            with file_lock(self._lockfile):
                yield

    def _tid(self, number: int) -> int:
        if number not in self._ids:
            self._ids[number] = self._storage.get_trial_id_from_study_id_trial_number(self._sid, number)
        return self._ids[number]

    def _stored(self, ft: FrozenTrial) -> StoredTrial:
        a = dict(ft.user_attrs)
        state = ft.state.name.lower()
        status = Status.from_store(state, a.get("status"))
        if status == Status.LOST and a.get("status") == Status.RUNNING.value and not a.get("error"):
            a["error"] = ("no heartbeat within the grace period: failed by Optuna's stale-trial check; the slot is "
                          "queued again")
        score = finite(a.get("score")) if "score" in a else (finite(ft.value) if ft.values else None)
        if not status.is_live:
            score = scored(status, score)  # studies written before the rule was enforced
        return StoredTrial(ft.number, self._tid(ft.number), state, status, a.get("plan"), a.get("plan_slot"),
                           int(a.get("batch") or 0), str(a.get("kind") or "explore"), dict(a.get("params") or ft.params),
                           score, a, ft.datetime_start, ft.datetime_complete)


@contextlib.contextmanager
def _creating(kind: str, target: str) -> Iterator[None]:
    """File studies: under the file lock, with file errors as one line."""
    if kind not in FILE_KINDS:
        yield
        return
    with file_errors(kind, target), file_lock(lock_path(target)):
        yield


def _load(name: str, backend: BaseStorage, kind: str, target: str, create: bool, direction: Direction) -> optuna.Study | None:
    """The study, created when ``create``; None when it does not exist."""
    with file_errors(kind, target) if kind in FILE_KINDS else contextlib.nullcontext():
        try:
            return optuna.load_study(study_name=name, storage=backend, sampler=optuna.samplers.RandomSampler())
        except KeyError:
            if not create:
                return None
            return optuna.create_study(study_name=name, storage=backend, direction=direction,
                                       sampler=optuna.samplers.RandomSampler(), load_if_exists=True)


def _alive_elsewhere(cur: Mapping[str, Any], grace_s: float) -> bool:
    if cur.get("host") == host_id() and cur.get("pid") == me()["pid"]:
        return False
    if cur.get("host") == host_id():
        return isinstance(cur.get("pid"), int) and pid_alive(cur["pid"], cur.get("pid_start"))
    return time.time() - float(cur.get("beat") or 0) < grace_s
