"""Competition CLEval (detection only), as an update/summary accumulator.

This is the score the receipt competition ranks by, so validation during training and the
``evaluate`` command must reproduce it exactly, not approximately. Behaviour follows
shared/docs/cleval-detection.md; the shared metric cases pin every number. The per-image work
is vectorised (bounding-box pruning, numpy crossing tests, one shapely call) so scoring a full
validation set costs milliseconds per image instead of the reference's hundreds.

Here: preprocessing and the geometry of one image. The matching and counting rules live in
``cleval_match``, shared with the postprocess tuner (``tune.cleval_table``).
"""

from __future__ import annotations

import math

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ocrtune.data.formats.competition_json import ProblemCollector
from ocrtune.errors import InputError, Problem
from ocrtune.metrics._cleval_shape import gt_char_counts, pccs_for_words, pred_fp_costs
from ocrtune.metrics._polys import PolyBatch, pair_intersection_areas, to_batch
from ocrtune.metrics._score import Accumulator, Score
from ocrtune.metrics.cleval_match import (
    CLEvalCounts,
    area_precisions,
    centre_pairs,
    matched_pairs,
    no_matches,
    tally,
)

__all__ = [
    "CLEvalAccumulator",
    "CLEvalCounts",
    "ImageScore",
    "evaluate_cleval",
    "load_words_json",
    "score_image",
]

MAX_PREDICTIONS = 500


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


def score_image(gt_raw: object, pred_raw: object) -> CLEvalCounts:
    """Character counts of one image (``pred_raw=None``: no predictions at all)."""
    gt = _prepare_gt(gt_raw)
    pred = _prepare_pred(pred_raw)
    n_char = gt_char_counts(gt)
    num_gt = int(n_char.sum())
    if len(pred) == 0:
        return no_matches(num_gt, 0)
    if len(gt) == 0:
        return no_matches(num_gt, int(pred_fp_costs(pred).sum()))

    pcc, offsets = pccs_for_words(gt, n_char)
    pb = pred.with_points(np.trunc(pred.pts))  # geometry uses truncated coordinates
    pairs = centre_pairs(pcc, offsets, pb)
    area_d = np.abs(pb.shoelace())[pairs.d]
    has_area = area_d > 0
    ap = np.zeros(len(pairs), dtype=np.float32)
    if has_area.any():
        inter = pair_intersection_areas(gt, pairs.g[has_area], pb, pairs.d[has_area])
        ap[has_area] = area_precisions(inter, area_d[has_area])
    n_gt, n_det = len(gt), len(pred)
    matched = np.flatnonzero(matched_pairs(ap, pairs.g, pairs.d, n_gt, n_det))
    return tally(pairs, matched, num_gt, n_gt, n_det, lambda lone: pred_fp_costs(pred.take(np.flatnonzero(lone))))


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
