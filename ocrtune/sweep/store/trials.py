"""What the store hands out: stored attempts and plans, and the rule for their scores."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping

from ocrtune.sweep.records import finite
from ocrtune.sweep.strategies import Result

RESULT_STATUSES = ("completed", "diverged", "oom", "failed", "pruned")
RERUN_STATUSES = ("lost", "interrupted")
SCORED_STATUSES = ("completed", "pruned")


def scored(status: str, score: float | None) -> float | None:
    """The score an attempt ranks by: only completed and pruned attempts have one. A run that
    diverged after a good epoch keeps no score, so no strategy plans from it."""
    return finite(score) if status in SCORED_STATUSES else None


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


def jsonable(v: Any) -> Any:
    """Plain JSON values (NaN/inf become None, tuples lists) so every backend stores the same."""
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if hasattr(v, "item"):  # numpy scalars
        return jsonable(v.item())
    return str(v)


def now() -> str:
    return datetime.now().isoformat(timespec="seconds")
