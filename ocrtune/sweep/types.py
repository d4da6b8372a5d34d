"""The sweep's types: everything that crosses a module or a process boundary.

A sweep is spread over processes (coordinator, workers, one process per trial) and machines
that share only the study and the trial folders, so what they exchange is written down here
once, with its JSON form: the trial ``Status`` (and the one mapping to the store's states),
the ``TrialSpec`` a worker hands a trial process and the ``TrialResult`` it gets back, the
``SweepConfig`` stored in the study (settings every strategy shares plus the ``Search``
settings of one strategy; the fields a resume may change are marked ``resumable`` in the
type), what strategies plan from (``Result``, ``Batch``, ``Choice``) and the
``SweepSummary`` that the live view, ``sweep status`` and ``--json`` render.

Pure: no Optuna, no torch, no files except the two JSON helpers of the trial types.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Sequence, Union

from ocrtune.presets.schema import current_dump

Direction = Literal["maximize", "minimize"]
Metric = Literal["hmean", "val_loss"]
BatchKind = Literal["explore", "replicate"]
METRICS_AVAILABLE: tuple[str, ...] = ("hmean", "val_loss")
COLUMN: dict[str, str] = {"hmean": "val_hmean", "val_loss": "val_loss"}
DIRECTION: dict[str, Direction] = {"hmean": "maximize", "val_loss": "minimize"}
# What a sweep or k-fold run tells its renderer as it goes: an event kind and its figures.
Event = Callable[[str, Mapping[str, Any]], None]


def finite(v: Any) -> float | None:
    """A float if ``v`` is a finite number, else None (NaN, inf, text, missing)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def resumable(default: Any = MISSING, **kw: Any) -> Any:
    """A setting a resumed sweep may change (the budget; not what is trained or planned)."""
    if default is MISSING and "default_factory" not in kw:
        return field(metadata={"resumable": True}, **kw)
    return field(default=default, metadata={"resumable": True}, **kw)


# --- trial status ----------------------------------------------------------------------------


class Status(str, Enum):
    """What happened to one attempt at a trial (see docs/sweeps.md, "Statuses")."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    OOM = "oom"
    FAILED = "failed"
    PRUNED = "pruned"
    INTERRUPTED = "interrupted"
    LOST = "lost"

    def __str__(self) -> str:
        return self.value

    @property
    def is_result(self) -> bool:
        """A finished evaluation that strategies plan from (diverged and failed included)."""
        return self in _RESULTS

    @property
    def is_scored(self) -> bool:
        """Only completed and pruned attempts have a score."""
        return self in (Status.COMPLETED, Status.PRUNED)

    @property
    def is_live(self) -> bool:
        return self in (Status.QUEUED, Status.RUNNING)

    @property
    def store_state(self) -> str:
        """The study's trial state for this status (Optuna's ``TrialState`` name, lower case):
        the one place where ocrtune statuses meet the store's states."""
        return _STORE_STATE.get(self, "fail")

    @classmethod
    def from_store(cls, state: str, recorded: Any = None) -> Status:
        """The status of a stored attempt: a waiting or running trial is queued or running;
        a finished one has the status recorded with it (a finished trial still recorded as
        running was ended by another tool, e.g. Optuna's stale-trial check: lost), else what
        its state implies."""
        if state in ("waiting", "running"):
            return _FROM_STATE[state]
        try:
            status = cls(str(recorded)) if recorded is not None else None
        except ValueError:
            status = None
        if status is None:
            return _FROM_STATE.get(state, cls.FAILED)
        return cls.LOST if status.is_live else status


_RESULTS = frozenset({Status.COMPLETED, Status.DIVERGED, Status.OOM, Status.FAILED, Status.PRUNED})
_STORE_STATE = {Status.QUEUED: "waiting", Status.RUNNING: "running", Status.COMPLETED: "complete",
                Status.PRUNED: "pruned"}
_FROM_STATE = {"waiting": Status.QUEUED, "running": Status.RUNNING, "complete": Status.COMPLETED,
               "pruned": Status.PRUNED}
RESULT_STATUSES = tuple(s for s in Status if s.is_result)


def scored(status: Status | str, score: float | None) -> float | None:
    """The score an attempt ranks by: only completed and pruned attempts have one. A run that
    diverged after a good epoch keeps no score, so no strategy plans from it."""
    return finite(score) if Status(status).is_scored else None


# --- what strategies plan from ---------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """A finished trial: the values it ran with and its score (None: diverged/failed).
    ``batch`` and ``kind`` echo the batch that proposed it."""

    params: Mapping[str, Any]
    score: float | None
    batch: int = 0
    kind: BatchKind = "explore"


@dataclass(frozen=True)
class Batch:
    """Trials to run next (empty when ``done``), with why they were chosen or why it stopped."""

    params: tuple[dict[str, Any], ...]
    index: int
    done: bool
    reason: str
    kind: BatchKind = "explore"


@dataclass(frozen=True)
class Choice:
    """The sweep's pick: its values, the score it ranks by (the smoothed score for the
    hierarchical strategy, the mean with replicates, else the measured score), the spread over
    ``n`` runs, and the best measured score among its runs (``raw``)."""

    params: dict[str, Any]
    score: float
    spread: float
    n: int
    raw: float | None = None


# --- coupled settings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Coupling:
    """A setting that follows a swept one: ``key = ratio * source`` in every trial.

    Why: a cosine schedule needs ``eta_min < lr``. A user who sweeps the learning rate over
    1e-5..1e-2 does not think about eta_min, and a fixed eta_min of 1e-5 would make the lowest
    values invalid (and change the schedule's shape from trial to trial). Keeping the preset's
    eta_min/lr ratio keeps its schedule shape at every learning rate.
    """

    key: str
    source: str
    ratio: float

    def value(self, params: Mapping[str, Any]) -> float:
        return float(f"{self.ratio * float(params[self.source]):.6g}")

    def describe(self) -> str:
        return f"{self.key} = {self.ratio:.4g} x {self.source} (the preset's ratio)"


def derived_values(params: Mapping[str, Any], couplings: Sequence[Coupling]) -> dict[str, Any]:
    """The coupled settings of one trial (only those whose source it sets)."""
    return {c.key: c.value(params) for c in couplings if c.source in params}


# --- one trial, across the process boundary --------------------------------------------------


@dataclass(frozen=True)
class TrialSpec:
    """What a trial process runs (``spec.json``): the resolved base preset, the trial's own
    values (``params``, swept; ``derived``, coupled to them), epochs, metric and data, and the
    checkpoint its weights start from (``init``, the sweep's ``--init``: an absolute path)."""

    name: str
    params: dict[str, Any]
    epochs: int
    metric: str
    base: dict[str, Any]
    preset: str | None = None
    data: str | None = None
    objective: str | None = None
    derived: dict[str, Any] = field(default_factory=dict)
    init: str | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """Every value the trial sets on the base preset: swept then coupled."""
        return {**self.params, **self.derived}

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, path: Path) -> TrialSpec:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class TrialResult:
    """What a trial process leaves in ``result.json`` when it ends."""

    status: Status
    score: float | None = None
    run_dir: str | None = None
    error: str | None = None
    hint: str | None = None
    device: str | None = None
    wall_time_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialResult:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["status"] = Status.from_store("fail", data.get("status", "failed"))
        kw["score"] = finite(kw.get("score"))
        return cls(**kw)


# --- the sweep's settings --------------------------------------------------------------------


@dataclass(frozen=True)
class HierarchicalSearch:
    """Coarse-to-fine over one float key (``plan/planner.py``)."""

    param: str = "models.optimizer.lr"
    low: float = 1e-5
    high: float = 1e-2
    log: bool = True
    points: int = 5
    top: int = 2
    stages: int = resumable(5)
    min_improvement: float = resumable(0.01)
    min_improvement_abs: float | None = resumable(None)
    replicates: int = resumable(0)
    replicate_top: int = resumable(3)
    kind: Literal["hierarchical"] = "hierarchical"

    @property
    def budget(self) -> int:
        return self.points * self.stages


@dataclass(frozen=True)
class GridSearch:
    """Every combination of the space; ranges give ``points`` values each."""

    points: int = 5
    trials: int | None = resumable(None)
    kind: Literal["grid"] = "grid"


@dataclass(frozen=True)
class RandomSearch:
    """``trials`` seeded draws from the space."""

    trials: int = resumable(25)
    kind: Literal["random"] = "random"


@dataclass(frozen=True)
class TPESearch:
    """Optuna's TPE, ``batch`` proposals at a time (the constant liar keeps them apart)."""

    trials: int = resumable(25)
    batch: int = resumable(1)
    kind: Literal["tpe"] = "tpe"


@dataclass(frozen=True)
class ImportedSearch:
    """Results run elsewhere (W&B export, a spreadsheet), imported by ``ocrtune sweep import``:
    nothing is planned; ``source`` is the file they came from."""

    source: str = ""
    rows: int = 0
    kind: Literal["imported"] = "imported"


Search = Union[HierarchicalSearch, GridSearch, RandomSearch, TPESearch, ImportedSearch]
SEARCHES: dict[str, type] = {"hierarchical": HierarchicalSearch, "grid": GridSearch, "random": RandomSearch,
                             "tpe": TPESearch, "imported": ImportedSearch}
STRATEGIES = ("hierarchical", "grid", "random", "tpe")  # what ``--strategy`` accepts


@dataclass(frozen=True)
class Difference:
    """A setting a resume changed although it may not (``stored`` -> ``new``). ``key`` is
    where it lives in ``SweepConfig`` (``base.models.optimizer.lr``, ``search.points``,
    ``search.range``, ``dims.models.optimizer.lr``); ``option`` names it as the user sets it
    (``--points``, ``models.optimizer.lr (--preset/--set)``, ``--space models.x.y``), and is
    what messages show."""

    key: str
    stored: Any
    new: Any
    option: str = ""

    def __str__(self) -> str:
        return f"{self.option or self.key}: stored {_show(self.stored)}, now {_show(self.new)}"


# The option that sets each SweepConfig (and Search) field that a resume may not change.
_OPTIONS = {
    "preset": "--preset", "metric": "--metric", "epochs": "--epochs", "prune": "--prune", "min_epochs": "--min-epochs",
    "seed": "--seed", "data": "--data", "objective": "--objective", "strategy": "--strategy", "param": "--param",
    "points": "--points", "top": "--top", "log": "--linear", "range": "--range",
    "source": "the imported file", "rows": "the imported rows", "init": "--init",
}
PRESET_OPTION = "--preset/--set"


@dataclass(frozen=True)
class SweepConfig:
    """Everything that defines a sweep; stored in the study so that workers, resumes and
    ``sweep status`` see the same sweep. ``base`` is the resolved preset (after ``--set``);
    ``dims`` the validated space (``plan/space.py``'s ``Dim`` as JSON); ``search`` what one
    strategy adds; ``couplings`` the settings that follow a swept key; ``init`` the checkpoint
    every trial's weights start from (``--init``, resolved to an absolute ``.ckpt`` path)."""

    name: str = resumable()
    preset: str = ""
    base: dict[str, Any] = field(default_factory=dict)
    search: Search = field(default_factory=HierarchicalSearch)
    metric: str = "hmean"
    epochs: int = 3
    dims: tuple[dict[str, Any], ...] = ()
    couplings: tuple[Coupling, ...] = ()
    prune: str | None = None
    min_epochs: int = 1
    seed: int = 0
    data: str | None = None
    objective: str | None = None
    init: str | None = None
    space_file: str | None = resumable(None)
    trial_timeout: float | None = resumable(None)

    @property
    def strategy(self) -> str:
        return self.search.kind

    @property
    def direction(self) -> Direction:
        return DIRECTION[self.metric]

    @property
    def keys(self) -> list[str]:
        return [d["key"] for d in self.dims]

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SweepConfig:
        """From the study (also the flat layout of sweeps created before ``search`` existed)."""
        data = dict(data)
        search = data.pop("search", None)
        if search is None:  # flat layout: the strategy's settings beside the common ones
            kind = data.get("strategy", "hierarchical")
            search = {k: data[k] for k in _field_names(SEARCHES[kind]) if k in data and k != "kind"}
            if kind in ("random", "tpe") and search.get("trials") is None:
                search["trials"] = int(data.get("points", 5)) * int(data.get("stages", 5))
        search = dict(search)
        kind = search.pop("kind", None) or data.get("strategy", "hierarchical")
        known = _field_names(SEARCHES[kind])
        s = SEARCHES[kind](**{k: v for k, v in search.items() if k in known})
        kw = {k: v for k, v in data.items() if k in _field_names(cls)}
        kw["dims"] = tuple(dict(d) for d in kw.get("dims", ()))
        kw["couplings"] = tuple(Coupling(**c) for c in kw.get("couplings", ()))
        return cls(**{**kw, "search": s})

    def differences(self, stored: SweepConfig) -> list[Difference]:
        """Every setting that differs from the stored sweep's and may not change on resume,
        each named by the option that sets it, down to the preset key
        (``models.optimizer.weight_decay (--preset/--set)``). Not listed, as they only repeat
        what is listed: the couplings (they follow from the preset and the keys) and, for the
        hierarchical strategy, the space (``--param``/``--range`` make it)."""
        out: list[Difference] = []
        for f in fields(self):
            if f.metadata.get("resumable") or f.name == "couplings":
                continue
            if f.name == "search":
                out += _search_differences(stored.search, self.search)
            elif f.name == "dims":
                if "hierarchical" not in (self.search.kind, stored.search.kind):
                    out += _space_differences(stored.dims, self.dims)
            elif f.name == "base":
                out += [replace(d, option=f"{d.key.removeprefix('base.')} ({PRESET_OPTION})")
                        for d in _diff("base", _plain(current_dump(stored.base)), _plain(current_dump(self.base)))]
            else:
                a, b = (_or_none(getattr(x, f.name)) if f.name == "init" else getattr(x, f.name) for x in (stored, self))
                out += [replace(d, option=_OPTIONS.get(f.name, f"--{f.name.replace('_', '-')}"))
                        for d in _diff(f.name, _plain(a), _plain(b))]
        return out


# --- the sweep's state, for people and --json ------------------------------------------------


@dataclass(frozen=True)
class Best:
    """The sweep's pick. ``score`` is its measured score (with replicates: the mean over its
    ``n`` runs, ``spread`` their sample std); ``smoothed`` the kernel-smoothed score the
    hierarchical strategy picks by (None for other strategies and for replicate means);
    ``note`` says why the pick is not the highest measured score, when it is not."""

    params: dict[str, Any]
    score: float
    smoothed: float | None
    spread: float
    n: int
    trial: int | None
    run_dir: str | None
    note: str | None = None


@dataclass(frozen=True)
class BatchRow:
    seq: int
    index: int
    stage: int
    kind: str
    reason: str
    planned: int
    done: int
    running: int
    queued: int


@dataclass(frozen=True)
class TrialRow:
    number: int
    plan: int | None
    slot_index: int | None
    batch: int
    stage: int
    kind: str
    params: dict[str, Any]
    derived: dict[str, Any]
    score: float | None
    smoothed: float | None
    status: Status
    state: str
    duration_s: float | None
    epochs: int | None = None
    loss_reduction_rate: float | None = None
    stability: float | None = None
    loss_spread: float | None = None
    time_per_epoch_s: float | None = None
    peak_mem_mb: float | None = None
    run_dir: str | None = None
    error: str | None = None
    hint: str | None = None
    progress: dict[str, Any] | None = None
    worker: str | None = None
    slot: str | None = None
    attempt: int | None = None
    device: str | None = None


@dataclass(frozen=True)
class SweepSummary:
    """The sweep's state: what ``sweep status``, the live view and ``--json`` show, and what
    reports are built from."""

    name: str
    storage: str
    strategy: str
    metric: str
    direction: Direction
    param: str | None
    keys: list[str]
    derived: list[str]
    epochs: int
    preset: str
    state: Literal["running", "stopped", "finished"]
    reason: str | None
    best: Best | None
    warning: str | None
    batches: list[BatchRow]
    trials: list[TrialRow]
    counts: dict[str, int]
    eta_s: float | None
    couplings: list[str] = field(default_factory=list)
    init: str | None = None  # the checkpoint every trial starts from (--init)

    def to_json(self) -> dict[str, Any]:
        return _plain(asdict(self))


# --- helpers ---------------------------------------------------------------------------------


def _field_names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def _plain(v: Any) -> Any:
    """JSON values: enums as their value, dataclasses as dicts, tuples as lists, so stored and
    fresh settings compare (and print)."""
    if isinstance(v, Enum):
        return v.value
    if is_dataclass(v) and not isinstance(v, type):
        return _plain(asdict(v))
    if isinstance(v, Mapping):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _diff(key: str, stored: Any, new: Any) -> list[Difference]:
    """Leaf by leaf for mappings (the preset), so a message names ``base.models.optimizer.lr``."""
    if isinstance(stored, Mapping) and isinstance(new, Mapping):
        out: list[Difference] = []
        for k in list(stored) + [k for k in new if k not in stored]:
            out += _diff(f"{key}.{k}", stored.get(k, "(absent)"), new.get(k, "(absent)"))
        return out
    if isinstance(stored, list) and isinstance(new, list) and len(stored) == len(new) \
            and any(isinstance(x, Mapping) for x in stored):
        return [d for i, (a, b) in enumerate(zip(stored, new)) for d in _diff(f"{key}[{i}]", a, b)]
    if isinstance(stored, float) and isinstance(new, float) and math.isclose(stored, new, rel_tol=1e-12):
        return []
    return [] if stored == new else [Difference(key, stored, new)]


def _search_differences(stored: Search, new: Search) -> list[Difference]:
    """The strategy's settings: ``--strategy`` alone when it changed; a range (low, high) as
    one ``--range``; ``log`` as ``--linear`` (its opposite)."""
    if new.kind != stored.kind:
        return [Difference("search.kind", stored.kind, new.kind, "--strategy")]
    out: list[Difference] = []
    names = [f.name for f in fields(new) if not f.metadata.get("resumable") and f.name != "kind"]
    for name in names:
        if name == "high" and "low" in names:
            continue
        if name == "low" and "high" in names:
            old_range, new_range = (stored.low, stored.high), (new.low, new.high)  # type: ignore[union-attr]
            if any(_diff("range", a, b) for a, b in zip(old_range, new_range)):
                out.append(Difference("search.range", _range_text(old_range), _range_text(new_range), "--range"))
            continue
        a, b = getattr(stored, name), getattr(new, name)
        if name == "log":
            a, b = not a, not b
        out += [replace(d, key=f"search.{name}", option=_OPTIONS.get(name, f"--{name.replace('_', '-')}"))
                for d in _diff(name, _plain(a), _plain(b))]
    return out


def _space_differences(stored: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[Difference]:
    """The space (grid, random, TPE) key by key: ``--space models.x.y: stored log_uniform
    1e-05..0.01, now (absent)``."""
    old = {str(d["key"]): d for d in stored}
    now = {str(d["key"]): d for d in new}
    out: list[Difference] = []
    for key in list(old) + [k for k in now if k not in old]:
        a, b = old.get(key), now.get(key)
        if a is not None and b is not None and not _diff(key, _plain(dict(a)), _plain(dict(b))):
            continue
        out.append(Difference(f"dims.{key}", _dim_text(a), _dim_text(b), f"--space {key}"))
    return out


class _Shown(str):
    """Text shown as it is (not quoted) in a difference."""


def _or_none(v: Any) -> Any:
    """No ``--init`` reads as ``(none)`` in a difference, not as JSON's null."""
    return _Shown("(none)") if v is None else v


def _range_text(pair: tuple[Any, Any]) -> _Shown:
    return _Shown(",".join(_show(v) for v in pair))


def _dim_text(d: Mapping[str, Any] | None) -> str:
    if d is None:
        return "(absent)"
    kind, values = d.get("kind"), list(d.get("values") or [])
    if kind == "fixed" and values:
        return _Shown(f"value {_show(values[0])}")
    if kind == "choice":
        return _Shown(f"values [{', '.join(_show(v) for v in values)}]")
    q = f" step {_show(d['q'])}" if d.get("q") is not None else ""
    return _Shown(f"{kind} {_show(d.get('low'))}..{_show(d.get('high'))}{q}")


def _show(v: Any) -> str:
    if v == "(absent)" or isinstance(v, _Shown):
        return str(v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, dict)) and len(json.dumps(v)) > 60:
        return json.dumps(v)[:57] + "..."
    return repr(v) if isinstance(v, str) else json.dumps(v)
