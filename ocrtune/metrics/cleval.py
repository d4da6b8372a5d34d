"""Competition CLEval (detection only), as an update/summary accumulator.

This is the score the receipt competition ranks by, so validation during training and the
``evaluate`` command must reproduce it exactly, not approximately. Behaviour follows
shared/docs/cleval-detection.md; the shared metric cases pin every number. The per-image work
is vectorised (bounding-box pruning, numpy crossing tests, one shapely call) so scoring a full
validation set costs milliseconds per image instead of the reference's hundreds.
"""

from __future__ import annotations

import math

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ocrtune.data.formats.competition_json import ProblemCollector
from ocrtune.errors import InputError, Problem
from ocrtune.metrics._cleval_shape import (
    gt_char_counts,
    pccs_for_words,
    points_in_polygons,
    pred_fp_costs,
)
from ocrtune.metrics._polys import PolyBatch, pair_intersection_areas, to_batch
from ocrtune.metrics._score import Accumulator, Score

__all__ = [
    "CLEvalAccumulator",
    "CLEvalCounts",
    "ImageScore",
    "evaluate_cleval",
    "load_words_json",
    "score_image",
]

MAX_PREDICTIONS = 500
_AP_MIN32 = np.float32(0.3)  # area precision threshold, compared in float32 like the reference
_MERGE_MIN = 0.3  # merge rule: sum of float32 area precisions, compared in double


@dataclass(frozen=True)
class CLEvalCounts:
    """Character statistics of one image (or summed over many)."""

    num_char_gt: int = 0
    num_char_det: int = 0
    tp: int = 0
    gran_recall: int = 0
    gran_precision: int = 0
    num_char_fp: int = 0

    def __add__(self, other: CLEvalCounts) -> CLEvalCounts:
        return CLEvalCounts(*(a + b for a, b in zip(asdict(self).values(), asdict(other).values())))

    def scores(self) -> tuple[float, float, float]:
        """Recall, precision, H-mean with the reference's clamps and zero rules."""
        r = max(0, self.tp - self.gran_recall) / self.num_char_gt if self.num_char_gt else 0.0
        p = max(0, self.tp - self.gran_precision) / self.num_char_det if self.num_char_det else 0.0
        h = 2 * r * p / (r + p) if r + p > 0 else 0.0
        return r, p, h


class ImageScore(Score[CLEvalCounts]):
    """One image's recall, precision, H-mean and counts."""


def _prepare_gt(raw: object) -> PolyBatch:
    """Drop empty words, round half to even, drop words with fewer than 4 points."""
    words = to_batch(raw, "gt")
    words = words.take(np.flatnonzero(words.n >= 4))
    return words.with_points(np.round(words.pts))


def _prepare_pred(raw: object) -> PolyBatch:
    """Drop empty words, keep the first 500, then drop words with fewer than 4 points."""
    words = to_batch(raw, "pred")
    kept = np.flatnonzero(words.n > 0)[:MAX_PREDICTIONS]
    return words.take(kept[words.n[kept] >= 4])


def _pcc_pairs(
    pcc: np.ndarray, offsets: np.ndarray, pred: PolyBatch
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """PCC-in-prediction tests for (GT, prediction) pairs whose boxes can touch.

    Returns pair arrays (g, d), and per contained PCC its global PCC index and pair index.
    """
    starts = offsets[:-1]
    lo = np.minimum.reduceat(pcc, starts)
    hi = np.maximum.reduceat(pcc, starts)
    box = pred.bboxes()
    near = (
        (lo[:, None, 0] <= box[None, :, 2])
        & (hi[:, None, 0] >= box[None, :, 0])
        & (lo[:, None, 1] <= box[None, :, 3])
        & (hi[:, None, 1] >= box[None, :, 1])
    )
    gi, di = np.nonzero(near)
    n_pts = offsets[gi + 1] - offsets[gi]
    pair = np.repeat(np.arange(len(gi)), n_pts)
    first = np.cumsum(n_pts) - n_pts
    pt = offsets[gi][pair] + np.arange(len(pair)) - first[pair]
    xy = pcc[pt]
    b = box[di[pair]]
    # A point outside the closed bounding box is never inside (the crossing cut stays on its edge).
    keep = (xy[:, 0] >= b[:, 0]) & (xy[:, 0] <= b[:, 2]) & (xy[:, 1] >= b[:, 1]) & (xy[:, 1] <= b[:, 3])
    pair, pt = pair[keep], pt[keep]
    inside = points_in_polygons(pcc[pt], pred.pts[di[pair]])
    return gi, di, pt[inside], pair[inside]


def score_image(gt_raw: object, pred_raw: object) -> CLEvalCounts:
    """Character counts of one image (``pred_raw=None``: no predictions at all)."""
    gt = _prepare_gt(gt_raw)
    pred = _prepare_pred(pred_raw)
    n_char = gt_char_counts(gt)
    num_gt = int(n_char.sum())
    if len(pred) == 0:
        return CLEvalCounts(num_char_gt=num_gt)
    if len(gt) == 0:
        fp = int(pred_fp_costs(pred).sum())
        return CLEvalCounts(num_char_det=fp, num_char_fp=fp)

    pcc, offsets = pccs_for_words(gt, n_char)
    pb = pred.with_points(np.trunc(pred.pts))  # geometry uses truncated coordinates
    gi, di, pt_in, pair_in = _pcc_pairs(pcc, offsets, pb)
    c_all = np.bincount(pair_in, minlength=len(gi))
    hit = np.flatnonzero(c_all)  # pairs with C > 0: the only ones any rule can look at
    pg, pd, c = gi[hit], di[hit], c_all[hit]

    area_d = np.abs(pb.shoelace())[pd]
    has_area = area_d > 0
    ap = np.zeros(len(hit), dtype=np.float32)
    if has_area.any():
        inter = pair_intersection_areas(gt, pg[has_area], pb, pd[has_area])
        ap[has_area] = (inter / area_d[has_area]).astype(np.float32)

    n_gt, n_det = len(gt), len(pred)
    cand = ap >= _AP_MIN32
    cand_g = np.bincount(pg[cand], minlength=n_gt)
    cand_d = np.bincount(pd[cand], minlength=n_det)
    one_to_one = cand & (cand_g[pg] == 1) & (cand_d[pd] == 1)
    split = cand & (cand_g[pg] >= 2)
    s_size = np.bincount(pd, minlength=n_det)
    s_ap = np.bincount(pd, weights=ap.astype(np.float64), minlength=n_det)
    merge = (s_size[pd] >= 2) & (s_ap[pd] >= _MERGE_MIN)
    matched = one_to_one | split | merge

    pair_ok = np.zeros(len(gi), dtype=bool)
    pair_ok[hit[matched]] = True
    tp = len(np.unique(pt_in[pair_ok[pair_in]]))
    per_g = np.bincount(pg[matched], minlength=n_gt)
    per_d = np.bincount(pd[matched], minlength=n_det)
    gran_r = int(np.maximum(per_g - 1, 0).sum())
    gran_p = int(np.maximum(per_d - 1, 0).sum())
    lone = np.flatnonzero(per_d == 0)
    fp = int(pred_fp_costs(pred.take(lone)).sum())
    num_det = int(c[matched].sum()) + fp
    return CLEvalCounts(num_gt, num_det, tp, gran_r, gran_p, fp)


class CLEvalAccumulator(Accumulator[CLEvalCounts, ImageScore]):
    """Scores images one at a time; ``summary`` gives per-image, image-mean and global scores
    (the global variant pools character counts over images)."""

    def __init__(self) -> None:
        super().__init__(CLEvalCounts())

    def update(
        self,
        name: str,
        gt: Sequence[Sequence[Sequence[float]]] | np.ndarray,
        pred: Sequence[Sequence[Sequence[float]]] | np.ndarray | None,
    ) -> ImageScore:
        """Score one image. ``pred=None``: the image is missing from the predictions."""

        def score() -> ImageScore:
            counts = score_image(gt, pred)
            r, p, h = (0.0, 0.0, 0.0) if pred is None else counts.scores()
            return ImageScore(r, p, h, counts)

        return self._add(name, score)

    def _pooled(self, total: CLEvalCounts) -> tuple[float, float, float]:
        return total.scores()


def evaluate_cleval(gt: Mapping[str, Any], pred: Mapping[str, Any]) -> dict[str, Any]:
    """Score every GT image in GT order; prediction images absent from GT are ignored."""
    acc = CLEvalAccumulator()
    for name, words in gt.items():
        acc.update(name, words, pred.get(name))
    return acc.summary()


def load_words_json(path: str | Path) -> dict[str, list[list[list[float]]]]:
    """Read the competition JSON into ``{image: [points, ...]}`` with words in file order.

    Word ids are not interpreted (the metric never does); every malformed entry is reported
    with its key path, up to 20 at once.
    """
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM is tolerated, as by every reader here
    except FileNotFoundError:
        raise InputError("file not found", file=where) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read file: {err}", file=where) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(
            f"invalid JSON: {err.msg}", file=where, line=err.lineno, column=err.colno
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
        raise InputError('expected an object with an "images" object', file=where, key="images")
    out: dict[str, list[list[list[float]]]] = {}
    col = ProblemCollector(where, text)
    for name, image in data["images"].items():
        key = ["images", name]
        if not isinstance(image, dict) or "words" not in image:
            col.add(key, 'expected an object with "words"')
            continue
        words = image["words"]
        if words is None:
            words = {}
        if not isinstance(words, dict):
            col.add([*key, "words"], "expected an object of words or null")
            continue
        polys: list[list[list[float]]] = []
        for wid, word in words.items():
            pts = word.get("points") if isinstance(word, dict) else None
            if not isinstance(pts, list) or not all(_is_point(p) for p in pts):
                col.add([*key, "words", wid, "points"], "expected a list of [x, y] number pairs")
                continue
            polys.append([[float(p[0]), float(p[1])] for p in pts])
        out[name] = polys
    if col.dropped:
        col.problems.append(Problem(f"... and {col.dropped} more problems like these (not listed)", file=where))
    col.raise_if_any()
    return out


def _is_point(p: object) -> bool:
    return (
        isinstance(p, list)
        and len(p) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and _finite(v) for v in p)
    )


def _finite(v: float) -> bool:
    try:
        return math.isfinite(float(v))
    except OverflowError:  # a JSON integer too large for a float
        return False
