"""The sweep's state in an Optuna study: the only module that imports Optuna.

Everything a sweep needs to stop, resume and spread over machines lives in one study:

- study user attrs: the sweep's settings (``config``), the plan log (one entry per batch the
  coordinator decided on, written *before* its trials are queued, so a coordinator killed
  half-way through queueing re-queues exactly the missing ones), the coordinator's claim and
  the ``finished`` mark workers wait for;
- one trial per attempt, queued with ``enqueue_trial`` and tagged with user attrs ``plan`` and
  ``plan_slot`` (its place in the plan), ``batch`` (the stage), ``kind`` and ``params``. Finished
  attempts carry ``status`` (completed, diverged, oom, failed, pruned; or lost/interrupted for
  attempts that will be re-run), the score, run directory, error tail and the figures of
  ``records.py``.

Liveness: optuna's own heartbeat only exists for RDB storages, so workers keep a ``heartbeat``
user attr fresh instead, with host, pid and process start time. A RUNNING trial is *lost* when
its process is gone on this host, or when its heartbeat has not changed for ``grace_s``
seconds of *this* process's clock (so clock skew between machines does not matter). A lost
trial's slot is queued again by the coordinator, the only process that queues. If the lost
process had already written its result (killed between finishing and telling), the result is
adopted instead of re-running the trial.

Claims (WAITING -> RUNNING) are atomic on every storage: PostgreSQL/MySQL lock the row, the
journal replays its log in order, and SQLite and journal files are additionally guarded by an
``flock`` next to the file, as are the read-modify-write steps of reaping.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, InMemoryStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState, create_trial

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.sweep.launcher import host_id, me, pid_alive
from ocrtune.sweep.planner import Direction
from ocrtune.sweep.records import finite
from ocrtune.sweep.space import Dim, Space
from ocrtune.sweep.strategies import Batch, Result, Strategy
from ocrtune.train.rundir import slug

try:
    import fcntl
except ImportError:  # Windows: thread lock only
    fcntl = None  # type: ignore[assignment]

RESULT_STATUSES = ("completed", "diverged", "oom", "failed", "pruned")
RERUN_STATUSES = ("lost", "interrupted")
PRUNERS = ("median", "asha")
MEDIAN_STARTUP = 5
_CONFIG, _PLAN, _FINISHED, _COORD = "ocrtune_config", "ocrtune_plan_", "ocrtune_finished", "ocrtune_coordinator"
_MEMORY: dict[str, InMemoryStorage] = {}
_STATE = {"completed": TrialState.COMPLETE, "pruned": TrialState.PRUNED}

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Plan:
    """One batch the coordinator decided on: ``seq`` orders plans, ``index`` is the stage."""

    seq: int
    index: int
    kind: str
    reason: str
    params: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class StoredTrial:
    """One attempt as stored. ``attrs`` holds every user attr (records, run_dir, error ...)."""

    number: int
    trial_id: int
    state: str  # waiting, running, complete, fail, pruned
    status: str
    plan: int | None
    slot: int | None
    batch: int
    kind: str
    params: dict[str, Any]
    score: float | None
    attrs: dict[str, Any] = field(default_factory=dict)
    started: datetime | None = None
    ended: datetime | None = None

    @property
    def is_result(self) -> bool:
        """A finished evaluation the strategy plans from (diverged/failed included)."""
        if self.state in ("complete", "pruned"):
            return True
        return self.state == "fail" and self.status in ("diverged", "oom", "failed")

    @property
    def is_live(self) -> bool:
        return self.state in ("waiting", "running")

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        return ((self.ended or datetime.now()) - self.started).total_seconds()

    def result(self) -> Result:
        return Result(self.params, self.score, self.batch, "replicate" if self.kind == "replicate" else "explore")


def resolve_storage(name: str, storage: str | None, runs_dir: Path = Path("runs")) -> tuple[str, str]:
    """(kind, target): sqlite/journal file path, RDB URL or memory key. Default: SQLite in
    ``runs/sweeps/<name>/study.db``."""
    if storage is None or not storage.strip():
        return "sqlite", str(runs_dir / "sweeps" / slug(name) / "study.db")
    s = storage.strip()
    if s.startswith("memory:"):
        return "memory", s
    if s.startswith("sqlite:///"):
        return "sqlite", s[len("sqlite:///"):]
    if s.startswith("postgres://"):
        s = "postgresql://" + s[len("postgres://"):]  # SQLAlchemy only knows the long name
    if s.startswith(("postgresql", "mysql")):
        return "rdb", s
    if s.startswith("journal:"):
        return "journal", s[len("journal:"):]
    if "://" not in s:
        suffix = Path(s).suffix
        if suffix in (".db", ".sqlite", ".sqlite3"):
            return "sqlite", s
        if suffix in (".log", ".journal", ".jsonl"):
            return "journal", s
    raise InputError(f"unsupported storage {storage!r}; use postgresql://user:pass@host/db, sqlite:///path.db, "
                     "journal:path.log or a .db/.log file path", key="--storage")


def show_storage(kind: str, target: str) -> str:
    """The storage for people: file paths as given, passwords hidden."""
    if kind == "sqlite":
        return f"sqlite:///{target}"
    if kind == "journal":
        return f"journal:{target}"
    if kind == "rdb" and "@" in target and ":" in target.split("@")[0].split("//", 1)[-1]:
        head, tail = target.split("@", 1)
        scheme, cred = head.split("//", 1)
        return f"{scheme}//{cred.split(':')[0]}:***@{tail}"
    return target


class Store:
    """A sweep's study. Thread-safe; every process opens its own."""

    def __init__(self, name: str, kind: str, target: str, storage: BaseStorage, study: optuna.Study) -> None:
        self.name, self.kind, self.target = name, kind, target
        self._storage, self.study = storage, study
        self._sid = storage.get_study_id_from_name(name)
        self._lock = threading.RLock()
        self._lockfile = _lock_path(kind, target) if kind in ("sqlite", "journal") else None
        self._ids: dict[int, int] = {}
        self._beats: dict[int, tuple[Any, float]] = {}
        self._pruner: optuna.pruners.BasePruner | None = None
        self._active: set[int] = set()  # trials this process is running right now

    @property
    def url(self) -> str:
        return show_storage(self.kind, self.target)

    @property
    def direction(self) -> Direction:
        return "maximize" if self.study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"

    @classmethod
    def open(cls, name: str, storage: str | None = None, *, runs_dir: Path = Path("runs"),
             create: bool = False, direction: Direction = "maximize") -> Store:
        """Open (``create``: or create) the study ``name``; a missing one is an InputError."""
        kind, target = resolve_storage(name, storage, runs_dir)
        if kind in ("sqlite", "journal") and not create and not Path(target).is_file():
            raise InputError(f"no sweep named {name!r} here ({target} does not exist; pass --storage or --runs-dir "
                             "if it lives elsewhere)", key="--name")
        lock = _file_lock(_lock_path(kind, target)) if kind in ("sqlite", "journal") else contextlib.nullcontext()
        with lock:  # two processes creating the same SQLite schema at once collide
            backend = _backend(kind, target)
            try:
                study = optuna.load_study(study_name=name, storage=backend, sampler=optuna.samplers.RandomSampler())
            except KeyError:
                if not create:
                    raise InputError(f"no sweep named {name!r} in {show_storage(kind, target)}", key="--name") from None
                study = optuna.create_study(study_name=name, storage=backend, direction=direction,
                                            sampler=optuna.samplers.RandomSampler(), load_if_exists=True)
        store = cls(name, kind, target, backend, study)
        if create and store.direction != direction:
            raise InputError(f"sweep {name!r} exists and {store.direction}s its metric, not {direction}; "
                             "use another --name", key="--metric")
        return store

    @classmethod
    def exists(cls, name: str, storage: str | None = None, *, runs_dir: Path = Path("runs")) -> bool:
        kind, target = resolve_storage(name, storage, runs_dir)
        if kind in ("sqlite", "journal") and not Path(target).is_file():
            return False
        try:
            cls.open(name, storage, runs_dir=runs_dir)
        except InputError:
            return False
        return True

    def drop(self) -> None:
        """Delete the study (tests and ``--fresh`` restarts)."""
        with self._lock:
            optuna.delete_study(study_name=self.name, storage=self._storage)

    # --- study attrs -------------------------------------------------------------------------

    def _attrs(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._storage.get_study_user_attrs(self._sid))

    def _set(self, key: str, value: Any) -> None:
        with self._lock:
            self._storage.set_study_user_attr(self._sid, key, _jsonable(value))

    def config(self) -> dict[str, Any] | None:
        return self._attrs().get(_CONFIG)

    def set_config(self, config: Mapping[str, Any]) -> None:
        self._set(_CONFIG, dict(config))

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
                 "status": "queued", "attempt": attempt}
        with self._lock:
            self.study.enqueue_trial(dict(params), user_attrs=_jsonable(attrs))

    def trials(self, states: Sequence[str] | None = None) -> list[StoredTrial]:
        sel = tuple(TrialState[s.upper()] for s in states) if states else None
        with self._lock:
            frozen = self._storage.get_all_trials(self._sid, deepcopy=False, states=sel)
            return [self._stored(ft) for ft in frozen]

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
                attrs = {**ident, "status": "running", "heartbeat": time.time(), "claimed": _now()}
                self._active.add(tid)
                for k, v in _jsonable(attrs).items():
                    self._storage.set_trial_user_attr(tid, k, v)
                return self._stored(self._storage.get_trial(tid))
        return None

    def set_attrs(self, trial_id: int, **attrs: Any) -> bool:
        """Update a running trial's attrs; False if it already ended (another process reaped it)."""
        try:
            with self._lock:
                for k, v in _jsonable(attrs).items():
                    self._storage.set_trial_user_attr(trial_id, k, v)
        except (UpdateFinishedTrialError, RuntimeError):
            return False
        return True

    def release(self, trial_id: int) -> None:
        """Forget a trial this process was running without ending it (it ended elsewhere)."""
        self._active.discard(trial_id)

    def heartbeat(self, trial_id: int) -> bool:
        return self.set_attrs(trial_id, heartbeat=time.time())

    def report(self, trial_id: int, step: int, value: float) -> None:
        with self._lock, contextlib.suppress(UpdateFinishedTrialError, RuntimeError):
            self._storage.set_trial_intermediate_value(trial_id, step, float(value))

    def finish(self, trial_id: int, status: str, score: float | None = None, attrs: Mapping[str, Any] | None = None) -> bool:
        """End an attempt with ``status``; False if it had already ended elsewhere."""
        with self._exclusive():
            return self._finish(trial_id, status, score, attrs)

    def _finish(self, trial_id: int, status: str, score: float | None, attrs: Mapping[str, Any] | None) -> bool:
        if status not in RESULT_STATUSES + RERUN_STATUSES:
            raise ValueError(f"unknown trial status {status!r}")
        score = finite(score)
        if status == "completed" and score is None:
            status = "failed"
            attrs = {**(attrs or {}), "error": (attrs or {}).get("error") or "finished without a score"}
        state = _STATE.get(status, TrialState.FAIL)
        self._active.discard(trial_id)
        try:
            if self._storage.get_trial(trial_id).state.is_finished():
                return False
            for k, v in _jsonable({**(attrs or {}), "status": status, "score": score, "ended": _now()}).items():
                self._storage.set_trial_user_attr(trial_id, k, v)
            self._storage.set_trial_state_values(trial_id, state, [score] if state == TrialState.COMPLETE else None)
        except (UpdateFinishedTrialError, RuntimeError):
            return False
        return True

    def reap_stale(self, grace_s: float, adopt: Callable[[StoredTrial], tuple[str, float | None, dict[str, Any]] | None] | None = None) -> list[StoredTrial]:
        """Mark RUNNING trials whose process died (this host) or went silent (``grace_s``) as
        lost, or finish them with their written result (``adopt``). Returns those changed."""
        here, mine, now = host_id(), me(), time.monotonic()
        changed = []
        for t in self.trials(("running",)):
            a = t.attrs
            ours = a.get("host") == here and a.get("pid") == mine["pid"]
            if ours and t.trial_id in self._active:
                continue  # our own slot threads look after their trials
            beat = a.get("heartbeat")
            seen = self._beats.get(t.trial_id)
            if seen is None or seen[0] != beat:
                self._beats[t.trial_id] = (beat, now)
            silent = seen is not None and seen[0] == beat and now - seen[1] > grace_s
            dead = ours or (a.get("host") == here and isinstance(a.get("pid"), int)
                            and not pid_alive(a["pid"], a.get("pid_start")))
            if not (dead or silent):
                continue
            why = ("its slot in this process failed" if ours else f"worker process {a.get('pid')} on this host is gone" if dead
                   else f"no heartbeat from {a.get('host', '?')} pid {a.get('pid', '?')} for {grace_s:.0f}s")
            with self._exclusive():
                cur = self._storage.get_trial(t.trial_id)
                if cur.state != TrialState.RUNNING or cur.user_attrs.get("heartbeat") != beat:
                    continue
                got = adopt(t) if adopt is not None and dead else None
                if got is not None:
                    status, score, extra = got
                    ok = self._finish(t.trial_id, status, score, {**extra, "adopted": why})
                else:
                    ok = self._finish(t.trial_id, "lost", None, {"error": why})
            if ok:
                self._beats.pop(t.trial_id, None)
                changed.append(self.trial(t.trial_id))
        return changed

    # --- coordinator claim -------------------------------------------------------------------

    def claim_coordinator(self, grace_s: float) -> None:
        """Refuse to start a second coordinator while the first one lives."""
        with self._exclusive():
            cur = self._attrs().get(_COORD)
            if cur and _alive_elsewhere(cur, grace_s):
                where = f"pid {cur.get('pid')} on {str(cur.get('host', '?')).split('/')[0]}"
                raise OcrtuneError(f"sweep {self.name!r} is already coordinated by {where}; add capacity with "
                                   f"'ocrtune sweep worker --name {self.name}' (if that process is gone, retry in {grace_s:.0f}s)")
            self._set(_COORD, {**me(), "beat": time.time()})

    def coordinator(self, grace_s: float) -> dict[str, Any] | None:
        """The live coordinator's identity (None when none runs)."""
        cur = self._attrs().get(_COORD)
        if not cur:
            return None
        mine = cur.get("host") == host_id() and cur.get("pid") == me()["pid"]
        return dict(cur) if mine or _alive_elsewhere(cur, grace_s) else None

    def coordinator_beat(self) -> None:
        self._set(_COORD, {**me(), "beat": time.time()})

    def release_coordinator(self) -> None:
        with self._exclusive():
            cur = self._attrs().get(_COORD)
            if cur and cur.get("pid") == me()["pid"] and cur.get("host") == host_id():
                self._set(_COORD, None)

    # --- pruning -----------------------------------------------------------------------------

    def set_pruner(self, kind: str | None, min_epochs: int = 1) -> None:
        self._pruner = make_pruner(kind, min_epochs)

    def should_prune(self, trial_id: int) -> bool:
        if self._pruner is None:
            return False
        with self._lock:
            return bool(self._pruner.prune(self.study, self._storage.get_trial(trial_id)))

    # --- internals ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._lock:
            if self._lockfile is None:
                yield
                return
            with _file_lock(self._lockfile):
                yield

    def _tid(self, number: int) -> int:
        if number not in self._ids:
            self._ids[number] = self._storage.get_trial_id_from_study_id_trial_number(self._sid, number)
        return self._ids[number]

    def _stored(self, ft: FrozenTrial) -> StoredTrial:
        a = dict(ft.user_attrs)
        state = ft.state.name.lower()
        status = a.get("status") or {"waiting": "queued", "running": "running", "complete": "completed"}.get(state, "failed")
        score = finite(a.get("score")) if "score" in a else (finite(ft.value) if ft.values else None)
        return StoredTrial(ft.number, self._tid(ft.number), state, str(status), a.get("plan"), a.get("plan_slot"),
                           int(a.get("batch") or 0), str(a.get("kind") or "explore"), dict(a.get("params") or ft.params),
                           score, a, ft.datetime_start, ft.datetime_complete)


# --- pruners ---------------------------------------------------------------------------------


class _NotBefore(optuna.pruners.BasePruner):
    """Never prunes before ``min_epochs`` epochs are done; then asks the wrapped pruner."""

    def __init__(self, inner: optuna.pruners.BasePruner, min_epochs: int) -> None:
        self.inner, self.min_epochs = inner, min_epochs

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        return step is not None and step >= self.min_epochs and self.inner.prune(study, trial)


def make_pruner(kind: str | None, min_epochs: int = 1) -> optuna.pruners.BasePruner | None:
    """``median`` (below the median of earlier trials at the same epoch, after
    ``MEDIAN_STARTUP`` finished trials) or ``asha`` (successive halving, rungs from
    ``min_epochs`` on, keeping the top third); steps count finished epochs."""
    if kind is None or kind == "none":
        return None
    if kind not in PRUNERS:
        raise InputError(f"must be one of {', '.join(PRUNERS)} (got {kind!r})", key="--prune")
    if min_epochs < 1:
        raise InputError(f"must be >= 1 (got {min_epochs})", key="--min-epochs")
    if kind == "median":
        inner: optuna.pruners.BasePruner = optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP, n_warmup_steps=0)
    else:
        inner = optuna.pruners.SuccessiveHalvingPruner(min_resource=min_epochs, reduction_factor=3)
    return _NotBefore(inner, min_epochs)


# --- TPE -------------------------------------------------------------------------------------


class TPE(Strategy):
    """Optuna's TPE behind the strategy interface: ``batch`` proposals at a time.

    Each call rebuilds an in-memory study from the finished results (a diverged trial counts as
    the worst score seen, so TPE learns the cliff) and asks ``batch`` times with the constant
    liar, so one batch does not propose the same point twice. The sampler is seeded with
    (seed, number of results), so a resumed sweep proposes exactly what it would have.
    """

    name = "tpe"

    def __init__(self, space: Space, trials: int, batch: int = 1, seed: int = 0, direction: Direction = "maximize") -> None:
        if trials < 1:
            raise InputError(f"must be >= 1 (got {trials})", key="--trials")
        self.space, self.trials, self.batch, self.seed, self.direction = space, trials, max(1, batch), seed, direction

    def next_batch(self, history: Sequence[Result]) -> Batch:
        n = len(history)
        index = -(-n // self.batch)
        if n >= self.trials:
            return Batch((), index, True, f"all {self.trials} TPE trials finished")
        k = min(self.batch, self.trials - n)
        params = propose_tpe(self.space.dims, history, k, (self.seed * 1_000_003 + n) % 2**31, self.direction)
        return Batch(tuple(params), index, False, f"TPE trials {n + 1}-{n + k} of {self.trials}")


def propose_tpe(dims: Sequence[Dim], history: Sequence[Result], k: int, seed: int, direction: Direction) -> list[dict[str, Any]]:
    dists = {d.key: _distribution(d) for d in dims if d.kind != "fixed"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    study = optuna.create_study(direction=direction, sampler=sampler)
    scores = [s for s in (finite(r.score) for r in history) if s is not None]
    worst = (min(scores) if direction == "maximize" else max(scores)) if scores else None
    for r in history:
        internal = {}
        for d in dims:
            if d.key in dists:
                v = _to_internal(d, r.params.get(d.key))
                if v is None or not dists[d.key]._contains(v):
                    break
                internal[d.key] = dists[d.key].to_external_repr(v)
        else:
            value = finite(r.score)
            value = worst if value is None else value
            state = TrialState.COMPLETE if value is not None else TrialState.FAIL
            study.add_trial(create_trial(params=internal, distributions=dists, value=value, state=state))
    out = []
    for _ in range(k):
        t = study.ask(dists)
        p = {d.key: (d.values[0] if d.kind == "fixed" else _to_external(d, t.params[d.key])) for d in dims}
        out.append(p)
    return out


def _distribution(d: Dim) -> BaseDistribution:
    if d.kind in ("uniform", "log_uniform"):
        return FloatDistribution(float(d.low), float(d.high), log=d.kind == "log_uniform")  # type: ignore[arg-type]
    if d.kind == "int_uniform":
        return IntDistribution(int(d.low), int(d.high))  # type: ignore[arg-type]
    if d.kind == "q_uniform":
        steps = d._steps()
        return IntDistribution(int(steps[0]), int(steps[-1]))
    return CategoricalDistribution(list(range(len(d.values))))  # indices: values may be lists


def _to_internal(d: Dim, v: Any) -> Any:
    if v is None:
        return None
    if d.kind == "choice":
        return next((i for i, x in enumerate(d.values) if x == v), None)
    if d.kind == "q_uniform":
        return int(round(float(v) / float(d.q)))  # type: ignore[arg-type]
    return v


def _to_external(d: Dim, v: Any) -> Any:
    if d.kind == "choice":
        return d.values[int(v)]
    if d.kind == "q_uniform":
        return float(f"{int(v) * float(d.q):.12g}")  # type: ignore[arg-type]
    if d.kind == "int_uniform":
        return int(v)
    return float(v)


# --- helpers ---------------------------------------------------------------------------------


def _backend(kind: str, target: str) -> BaseStorage:
    if kind == "memory":
        return _MEMORY.setdefault(target, InMemoryStorage())
    if kind in ("sqlite", "journal"):
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "journal":
            return JournalStorage(JournalFileBackend(str(path)))
        rdb = RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 60}})
        sqlalchemy.event.listen(rdb.engine, "connect", _sqlite_pragmas)
        rdb.engine.dispose()  # reconnect with the pragmas
        return rdb
    try:
        return RDBStorage(_with_driver(target), engine_kwargs={"pool_pre_ping": True})
    except ImportError:
        raise InputError(f"no database driver for {show_storage(kind, target)}: pip install psycopg2-binary "
                         "(PostgreSQL) or pymysql (MySQL)", key="--storage") from None
    except Exception as e:  # connection refused, bad credentials, unknown database
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise OcrtuneError(f"cannot open storage {show_storage(kind, target)}: {first}") from None


def _lock_path(kind: str, target: str) -> Path:
    return Path(target + ".ocrtune-lock")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` across processes on this machine (no-op where unsupported)."""
    if fcntl is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _sqlite_pragmas(conn: Any, record: Any) -> None:
    """WAL lets the coordinator read while workers write; synchronous=NORMAL skips an fsync per
    write (20x faster here). A killed process loses nothing; a power cut may lose the last
    writes, which resuming redoes."""
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _with_driver(url: str) -> str:
    """``postgresql://`` with whichever PostgreSQL driver is installed (SQLAlchemy 2.1 assumes
    psycopg 3; psycopg2-binary is the common one)."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None \
            and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    if url.startswith("mysql://") and importlib.util.find_spec("MySQLdb") is None \
            and importlib.util.find_spec("pymysql") is not None:
        return "mysql+pymysql://" + url[len("mysql://"):]
    return url


def _alive_elsewhere(cur: Mapping[str, Any], grace_s: float) -> bool:
    if cur.get("host") == host_id() and cur.get("pid") == me()["pid"]:
        return False
    if cur.get("host") == host_id():
        return isinstance(cur.get("pid"), int) and pid_alive(cur["pid"], cur.get("pid_start"))
    return time.time() - float(cur.get("beat") or 0) < grace_s


def _jsonable(v: Any) -> Any:
    """Plain JSON values (NaN/inf become None, tuples lists) so every backend stores the same."""
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if hasattr(v, "item"):  # numpy scalars
        return _jsonable(v.item())
    return str(v)


def _now() -> str:
    return datetime.now().isoformat(timespec="seconds")
