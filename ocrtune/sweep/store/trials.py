"""What the store hands out: stored attempts and plans, and the history strategies plan from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Sequence

from ocrtune.sweep.types import Result, Status


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
    state: str  # the store's: waiting, running, complete, fail, pruned (``Status.store_state``)
    status: Status
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
        return self.status.is_result

    @property
    def is_live(self) -> bool:
        return self.status.is_live

    @property
    def derived(self) -> dict[str, Any]:
        """Settings coupled to the swept ones (``Coupling``), as the trial ran them."""
        return dict(self.attrs.get("derived") or {})

    @property
    def duration_s(self) -> float | None:
        if self.started is None:
            return None
        return ((self.ended or datetime.now()) - self.started).total_seconds()

    def result(self) -> Result:
        return Result(self.params, self.score, self.batch, "replicate" if self.kind == "replicate" else "explore")


def planning_history(trials: Sequence[StoredTrial]) -> list[Result]:
    """One result per plan slot (the first), in plan order: what strategies plan from."""
    seen: set[tuple[int, int]] = set()
    out = []
    for t in sorted(trials, key=lambda t: (t.plan if t.plan is not None else -1, t.slot or 0, t.number)):
        if t.plan is None or not t.is_result or (t.plan, t.slot or 0) in seen:
            continue
        seen.add((t.plan, t.slot or 0))
        out.append(t.result())
    return out


def jsonable(v: Any) -> Any:
    """Plain JSON values (NaN/inf become None, tuples lists) so every backend stores the same."""
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Status):
        return v.value
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if hasattr(v, "item"):  # numpy scalars
        return jsonable(v.item())
    return str(v)


def now() -> str:
    return datetime.now().isoformat(timespec="seconds")
