"""Per-image scores shared by both metrics: recall, precision, H-mean and the counts behind them,
and the accumulator that collects them image by image."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

from ocrtune.errors import InputError
from ocrtune.metrics._polys import located

C = TypeVar("C")
S = TypeVar("S", bound="Score[Any]")


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


class Accumulator(Generic[C, S]):
    """Per-image scores in scoring order plus pooled counts.

    The two metrics differ only in how one image is scored and how pooled counts become the
    global scores (``_pooled``); the image mean (mean of per-image R, P, H) is the competition's
    ranking number either way.
    """

    def __init__(self, zero: C) -> None:
        self._images: dict[str, S] = {}
        self._total = zero

    def __len__(self) -> int:
        return len(self._images)

    def _add(self, name: str, score: Callable[[], S]) -> S:
        if name in self._images:
            raise InputError(f"image {name!r} was scored twice", key=name)
        try:
            s = score()
        except InputError as err:
            raise located(name, err) from None
        self._images[name] = s
        self._total = self._total + s.counts  # type: ignore[operator]
        return s

    def _pooled(self, total: C) -> tuple[float, float, float]:
        raise NotImplementedError

    def summary(self) -> dict[str, Any]:
        n = len(self._images)
        mean = {
            m: (sum(getattr(s, m) for s in self._images.values()) / n if n else 0.0)
            for m in ("recall", "precision", "hmean")
        }
        r, p, h = self._pooled(self._total)
        return {
            "per_image": {k: v.as_dict() for k, v in self._images.items()},
            "image_mean": mean,
            "global": {"recall": r, "precision": p, "hmean": h, "counts": asdict(self._total)},  # type: ignore[call-overload]
        }
