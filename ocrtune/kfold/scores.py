"""Out-of-fold scores from the files the folds left (no torch): each fold's ``oof.json``
(predictions of its best checkpoint on its held-out images) against the fold's ``val.json``
(those images' ground truth as the source wrote it).

Per fold, and pooled: CLEval over every held-out image of every fold at once, the score of
the whole data set predicted by models that never saw the image they predicted. The pooled
image mean weighs every image alike; the mean of the folds' scores weighs a small fold's
images more, so the two differ when folds differ in size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ocrtune.kfold.layout import DATA, OOF
from ocrtune.kfold.types import Scores
from ocrtune.metrics.cleval import evaluate_cleval, load_words_json


@dataclass(frozen=True)
class HeldOut:
    """Ground truth and predictions of the held-out images (``{image: [polygon, ...]}``)."""

    gt: dict[str, Any]
    pred: dict[str, Any]


def read_held_out(fold_dir: Path) -> HeldOut:
    return HeldOut(load_words_json(fold_dir / DATA / "jsons" / "val.json"), load_words_json(fold_dir / OOF))


def score(held: HeldOut) -> tuple[Scores, Scores]:
    """(image mean, global) CLEval of the held-out images; an image without predictions scores 0."""
    res = evaluate_cleval(held.gt, held.pred)
    return Scores.of(res["image_mean"]), Scores.of(res["global"])  # type: ignore[return-value]


def pooled(parts: Sequence[HeldOut]) -> tuple[Scores, Scores, int]:
    """(image mean, global, images) of every fold's held-out images scored together."""
    gt: dict[str, Any] = {}
    pred: dict[str, Any] = {}
    for p in parts:
        gt.update(p.gt)
        pred.update({k: v for k, v in p.pred.items() if k in p.gt})
    mean, glob = score(HeldOut(gt, pred))
    return mean, glob, len(gt)


def mean_of(scores: Sequence[Scores]) -> Scores | None:
    """The plain mean of the folds' scores (each fold counts once, whatever its size)."""
    if not scores:
        return None
    n = len(scores)
    return Scores(sum(s.hmean for s in scores) / n, sum(s.precision for s in scores) / n,
                  sum(s.recall for s in scores) / n)
