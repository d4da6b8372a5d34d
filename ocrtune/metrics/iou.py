"""ICDAR2015-style IoU H-mean, as an update/summary accumulator.

CLEval is what the competition ranks by, but the IoU H-mean is the number papers and other
tools report, so training logs both. Rules (the ICDAR 2015 "Incidental Scene Text" protocol,
with a deterministic matcher):

- GT words flagged ``ignore`` (transcription ``###``) are don't-care: they never count toward
  recall. A prediction whose area lies more than 50% inside a single don't-care word is
  dropped before matching, so it is not a false positive either.
- Remaining predictions and GT words are matched one-to-one at IoU >= 0.5, greedily by IoU
  descending (ties: GT order, then prediction order). ICDAR15's script takes the first pair
  above the threshold in index order; both agree whenever no word has two candidates.
- Per image, an image with no cared-for GT has recall 1 and precision 1 if it also has no
  cared-for prediction, else 0 (the ICDAR15 convention). The global scores pool counts.

Words may have any vertex count; self-intersecting ones are repaired with ``make_valid``,
and zero-area words simply never match.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from ocrtune.errors import InputError
from ocrtune.metrics._polys import PolyBatch, pair_intersection_areas, to_batch
from ocrtune.metrics._score import Accumulator, Score

__all__ = ["IoUAccumulator", "IoUCounts", "IoUImageScore", "IoUMatch", "evaluate_iou", "match_iou",
           "match_iou_pairs"]


@dataclass(frozen=True)
class IoUCounts:
    num_gt: int = 0  # cared-for GT words
    num_det: int = 0  # predictions not absorbed by a don't-care word
    matched: int = 0

    def __add__(self, other: IoUCounts) -> IoUCounts:
        return IoUCounts(
            self.num_gt + other.num_gt, self.num_det + other.num_det, self.matched + other.matched
        )

    def scores(self) -> tuple[float, float, float]:
        """Recall, precision, H-mean of one image (an image without cared-for GT: ICDAR15's rule)."""
        if self.num_gt == 0:
            r, p = 1.0, (0.0 if self.num_det else 1.0)
        else:
            r = self.matched / self.num_gt
            p = self.matched / self.num_det if self.num_det else 0.0
        return r, p, _hmean(r, p)

    def pooled(self) -> tuple[float, float, float]:
        """Recall, precision, H-mean of counts pooled over images (no empty-image rule)."""
        r = self.matched / self.num_gt if self.num_gt else 0.0
        p = self.matched / self.num_det if self.num_det else 0.0
        return r, p, _hmean(r, p)


class IoUImageScore(Score[IoUCounts]):
    """One image's recall, precision, H-mean and counts."""


def _hmean(r: float, p: float) -> float:
    return 2 * r * p / (r + p) if r + p > 0 else 0.0


def _areas(words: PolyBatch) -> np.ndarray:
    """Polygon areas; self-intersecting words are measured after repair, like the overlaps."""
    area = np.abs(words.shoelace())
    simple = words.axis_rects() | words.convex_quads()[0]
    other = np.flatnonzero(~simple)
    if other.size:
        area[other] = shapely.area(words.geometries(other))
    return area


def _overlapping_pairs(a: PolyBatch, b: PolyBatch) -> tuple[np.ndarray, np.ndarray]:
    """(i, j) pairs whose bounding boxes overlap with positive area."""
    ba, bb = a.bboxes(), b.bboxes()
    near = (
        (ba[:, None, 0] < bb[None, :, 2])
        & (ba[:, None, 2] > bb[None, :, 0])
        & (ba[:, None, 1] < bb[None, :, 3])
        & (ba[:, None, 3] > bb[None, :, 1])
    )
    return np.nonzero(near)


@dataclass(frozen=True)
class IoUMatch:
    """One image's matching, for the counts and for telling the misses apart (``iou_misses``).

    Indices refer to the words kept (non-empty): ``gt`` and ``pred``; ``gi, di, inter, iou``
    are every overlapping pair of a cared-for GT word and a live prediction (not absorbed by a
    don't-care word)."""

    gt: PolyBatch
    pred: PolyBatch
    area_g: np.ndarray
    area_d: np.ndarray
    care: np.ndarray  # bool per GT word: not don't-care
    live: np.ndarray  # bool per prediction: not absorbed
    gi: np.ndarray
    di: np.ndarray
    inter: np.ndarray
    iou: np.ndarray
    matched_g: np.ndarray  # bool per GT word
    matched_d: np.ndarray  # bool per prediction

    @property
    def counts(self) -> IoUCounts:
        return IoUCounts(int(self.care.sum()), int(self.live.sum()), int(self.matched_g.sum()))


def match_iou(
    gt_raw: object,
    pred_raw: object,
    gt_ignore: Sequence[bool] | np.ndarray | None = None,
    *,
    iou_threshold: float = 0.5,
    dont_care_threshold: float = 0.5,
) -> IoUCounts:
    """Counts of one image. Empty point lists are not words; ``gt_ignore`` follows ``gt_raw``."""
    return match_iou_pairs(
        gt_raw, pred_raw, gt_ignore, iou_threshold=iou_threshold, dont_care_threshold=dont_care_threshold
    ).counts


def match_iou_pairs(
    gt_raw: object,
    pred_raw: object,
    gt_ignore: Sequence[bool] | np.ndarray | None = None,
    *,
    iou_threshold: float = 0.5,
    dont_care_threshold: float = 0.5,
) -> IoUMatch:
    """The matching of one image with the overlaps behind it (see ``match_iou``)."""
    gt = to_batch(gt_raw, "gt")
    pred = to_batch(pred_raw, "pred")
    ignore = np.zeros(len(gt), dtype=bool)
    if gt_ignore is not None:
        ignore = np.asarray(gt_ignore, dtype=bool).reshape(-1)
        if len(ignore) != len(gt):
            raise InputError(
                f"gt_ignore has {len(ignore)} flags for {len(gt)} GT words", key="gt_ignore"
            )
    keep_g = np.flatnonzero(gt.n > 0)
    gt, ignore = gt.take(keep_g), ignore[keep_g]
    pred = pred.take(np.flatnonzero(pred.n > 0))
    none = np.zeros(0, dtype=np.int64)
    if len(pred) == 0 or len(gt) == 0:
        return IoUMatch(gt, pred, np.zeros(len(gt)), np.zeros(len(pred)), ~ignore, np.ones(len(pred), dtype=bool),
                        none, none, np.zeros(0), np.zeros(0), np.zeros(len(gt), dtype=bool),
                        np.zeros(len(pred), dtype=bool))

    area_g, area_d = _areas(gt), _areas(pred)
    gi, di = _overlapping_pairs(gt, pred)
    inter = pair_intersection_areas(gt, gi, pred, di)
    nz = inter > 0
    gi, di, inter = gi[nz], di[nz], inter[nz]

    # Predictions mostly inside one don't-care word leave the game.
    dc = ignore[gi]
    with np.errstate(divide="ignore", invalid="ignore"):
        inside = np.where(area_d[di] > 0, inter / area_d[di], 0.0)
    absorbed = np.zeros(len(pred), dtype=bool)
    absorbed[di[dc & (inside > dont_care_threshold)]] = True

    live = ~ignore[gi] & ~absorbed[di]
    gi, di, inter = gi[live], di[live], inter[live]
    union = area_g[gi] + area_d[di] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    ok = np.flatnonzero(iou >= iou_threshold)
    order = ok[np.lexsort((di[ok], gi[ok], -iou[ok]))]
    matched_g = np.zeros(len(gt), dtype=bool)
    matched_d = np.zeros(len(pred), dtype=bool)
    for g, d in zip(gi[order].tolist(), di[order].tolist()):
        if not matched_g[g] and not matched_d[d]:
            matched_g[g] = matched_d[d] = True
    return IoUMatch(gt, pred, area_g, area_d, ~ignore, ~absorbed, gi, di, inter, iou, matched_g, matched_d)


class IoUAccumulator(Accumulator[IoUCounts, IoUImageScore]):
    """Scores images one at a time; ``summary`` gives per-image, image-mean and global scores."""

    def __init__(self, iou_threshold: float = 0.5) -> None:
        super().__init__(IoUCounts())
        self.iou_threshold = iou_threshold

    def update(
        self,
        name: str,
        gt: Sequence[Sequence[Sequence[float]]] | np.ndarray,
        pred: Sequence[Sequence[Sequence[float]]] | np.ndarray | None,
        gt_ignore: Sequence[bool] | np.ndarray | None = None,
    ) -> IoUImageScore:
        """Score one image; ``pred=None`` (missing from the predictions) counts as no words."""
        return self._score(name, gt, pred, gt_ignore)[0]

    def update_match(
        self,
        name: str,
        gt: Sequence[Sequence[Sequence[float]]] | np.ndarray,
        pred: Sequence[Sequence[Sequence[float]]] | np.ndarray | None,
        gt_ignore: Sequence[bool] | np.ndarray | None = None,
    ) -> IoUMatch:
        """``update``, returning the matching behind the score (``iou_misses.classify`` reads it)."""
        return self._score(name, gt, pred, gt_ignore)[1]

    def _score(self, name: str, gt: Any, pred: Any, gt_ignore: Any) -> tuple[IoUImageScore, IoUMatch]:
        found: list[IoUMatch] = []

        def score() -> IoUImageScore:
            found.append(match_iou_pairs(gt, pred, gt_ignore, iou_threshold=self.iou_threshold))
            return IoUImageScore(*found[0].counts.scores(), found[0].counts)

        return self._add(name, score), found[0]

    def _pooled(self, t: IoUCounts) -> tuple[float, float, float]:
        return t.pooled()


def evaluate_iou(
    gt: Mapping[str, Any],
    pred: Mapping[str, Any],
    gt_ignore: Mapping[str, Sequence[bool]] | None = None,
    iou_threshold: float = 0.5,
) -> dict[str, Any]:
    """Score every GT image in GT order; prediction images absent from GT are ignored."""
    acc = IoUAccumulator(iou_threshold)
    for name, words in gt.items():
        acc.update(name, words, pred.get(name), (gt_ignore or {}).get(name))
    return acc.summary()
