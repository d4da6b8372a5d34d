"""Detection metrics: competition CLEval (the ranking score) and ICDAR2015 IoU H-mean.

Both are pure numpy/shapely accumulators: ``update(name, gt, pred)`` per image, then
``summary()`` for per-image, image-mean and global recall/precision/H-mean.
"""

from __future__ import annotations

from ocrtune.metrics.cleval import (
    CLEvalAccumulator,
    CLEvalCounts,
    ImageScore,
    evaluate_cleval,
    load_words_json,
)
from ocrtune.metrics.iou import IoUAccumulator, IoUCounts, IoUImageScore, evaluate_iou

__all__ = [
    "CLEvalAccumulator",
    "CLEvalCounts",
    "ImageScore",
    "IoUAccumulator",
    "IoUCounts",
    "IoUImageScore",
    "evaluate_cleval",
    "evaluate_iou",
    "load_words_json",
]
