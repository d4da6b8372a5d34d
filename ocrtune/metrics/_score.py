"""Per-image scores shared by both metrics: recall, precision, H-mean and the counts behind them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

C = TypeVar("C")


@dataclass(frozen=True)
class Score(Generic[C]):
    recall: float
    precision: float
    hmean: float
    counts: C

    def as_dict(self) -> dict[str, Any]:
        return {
            "recall": self.recall,
            "precision": self.precision,
            "hmean": self.hmean,
            "counts": asdict(self.counts),  # type: ignore[call-overload]
        }
