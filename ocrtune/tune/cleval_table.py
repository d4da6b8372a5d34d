"""CLEval of one image for many subsets of one candidate list, each as exact as ``score_image``.

A postprocess search keeps, per threshold and unclip ratio, different subsets of the same
unclipped candidates (``box_thresh``, ``min_size`` and ``max_candidates`` only filter). Every
geometric quantity CLEval computes belongs to one (GT word, prediction) pair or to one word:
which pseudo-character centres a prediction contains, the pair's intersection area, a
prediction's false-positive cost. ``PairTable`` computes them once for the whole list; a subset
then costs only the matching rules (one-to-one, split, merge) on its pairs.

The rules below are ``ocrtune.metrics.cleval.score_image`` step for step, on the same arrays in
the same order (pairs by GT word, then prediction), so float sums round alike. Two quantities
depend, in their last bits, on which other predictions share the batch, because numpy sums a
row padded to the batch's widest polygon in a different order than a narrower row:

- a prediction's shoelace area: recomputed per subset at the subset's own width;
- a pair's intersection area from the vectorised convex clipper (rows padded to the widest
  intersection). Only the matching decisions use it (area precision ``>= 0.3``, merge sums
  ``>= 0.3``), so each subset bounds how far any summation order could move each area
  precision, and if a decision could flip inside that bound (a precision within ~1e-9 of 0.3)
  the subset's areas are recomputed by ``score_image``'s own call on ``score_image``'s batch.

``tests/tune`` checks subsets against ``score_image`` directly, the recomputation path included.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ocrtune.metrics._cleval_shape import gt_char_counts, pccs_for_words, pred_fp_costs
from ocrtune.metrics._polys import PolyBatch, pair_intersection_areas, to_batch
from ocrtune.metrics.cleval import _AP_MIN32, _MERGE_MIN, MAX_PREDICTIONS, CLEvalCounts, _pcc_pairs, _prepare_gt

# Two summation orders of the <= 8 shoelace terms of a clipped intersection (each term at most
# 2 * X * Y for coordinates bounded by X, Y) differ by at most 2 * 7 * 2**-53 * 16 * X * Y;
# 4x that, to be safe.
_SUM_ORDER = 512 * 2.0**-52


class GroundTruth:
    """An image's GT words as ``score_image`` prepares them, with their pseudo-character
    centres: the same for every table of the image."""

    def __init__(self, gt_raw: Any) -> None:
        self.words = _prepare_gt(gt_raw)
        self.n_char = gt_char_counts(self.words)
        self.pcc, self.offsets = pccs_for_words(self.words, self.n_char)


class PairTable:
    """Pairs of an image's GT words with every prediction of ``preds`` (each with >= 4 points)."""

    def __init__(self, gt: GroundTruth | Any, preds: Sequence[np.ndarray] | np.ndarray) -> None:
        if not isinstance(gt, GroundTruth):
            gt = GroundTruth(gt)
        self.gt = gt
        self.n_gt = len(gt.words)
        self.num_gt = int(gt.n_char.sum())
        pred = to_batch(preds, "pred")
        if len(pred) and int(pred.n.min()) < 4:
            raise ValueError("PairTable takes predictions of 4 or more points")
        self.n_pred = len(pred)
        self.raw = pred  # raw points: what score_image costs lone predictions by
        self._fp = np.full(len(pred), -1, dtype=np.int64)  # filled on first need
        self.trunc = np.trunc(pred.pts)  # geometry uses truncated coordinates
        self.widths = pred.n
        empty = np.zeros(0, dtype=np.int64)
        self.pg = self.pd = self.c = empty
        self.inter = self.slack = np.zeros(0)
        self.point_pcc = self.point_pair = empty
        self.recomputed = 0  # subsets whose areas score_image's call had to settle
        if self.n_gt == 0 or self.n_pred == 0:
            return
        pb = PolyBatch(self.trunc, pred.n)
        gi, di, pt_in, pair_in = _pcc_pairs(gt.pcc, gt.offsets, pb)
        c_all = np.bincount(pair_in, minlength=len(gi))
        hit = np.flatnonzero(c_all)
        self.pg, self.pd, self.c = gi[hit], di[hit], c_all[hit]
        # Every pair's intersection, whether or not a subset gives its prediction an area:
        # each pair is computed on its own, so extra pairs change no other.
        self.inter = pair_intersection_areas(gt.words, self.pg, pb, self.pd)
        # How far another batch could move each pair's area (see the module doc).
        reach = np.maximum(np.abs(gt.words.bboxes())[self.pg], np.abs(pb.bboxes())[self.pd])
        x, y = np.maximum(reach[:, 0], reach[:, 2]) + 1, np.maximum(reach[:, 1], reach[:, 3]) + 1
        self.slack = _SUM_ORDER * x * y
        slot = np.full(len(gi), -1, dtype=np.int64)
        slot[hit] = np.arange(len(hit))
        self.point_pcc, self.point_pair = pt_in, slot[pair_in]  # contained centre -> hit pair

    def counts(self, sel: np.ndarray) -> CLEvalCounts:
        """``score_image(gt, [preds[i] for i in sel])`` for ascending indices ``sel``."""
        sel = np.asarray(sel, dtype=np.int64)[:MAX_PREDICTIONS]
        k = len(sel)
        if k == 0:
            return CLEvalCounts(num_char_gt=self.num_gt)
        if self.n_gt == 0:
            fp = int(self._fp_cost(sel).sum())
            return CLEvalCounts(num_char_det=fp, num_char_fp=fp)
        pos = np.full(self.n_pred, -1, dtype=np.int64)
        pos[sel] = np.arange(k)
        rows = np.flatnonzero(pos[self.pd] >= 0)
        pg, pd, c = self.pg[rows], pos[self.pd[rows]], self.c[rows]

        width = max(int(self.widths[sel].max()), 1)
        batch = PolyBatch(self.trunc[sel][:, :width], self.widths[sel])
        area_d = np.abs(batch.shoelace())[pd]
        has_area = area_d > 0
        inter, slack = self.inter[rows][has_area], self.slack[rows][has_area]
        ap, lo, hi = (np.zeros(len(rows), dtype=np.float32) for _ in range(3))
        if has_area.any():
            q = inter / area_d[has_area]
            reach = slack / area_d[has_area] + 4 * np.spacing(q)
            ap[has_area] = q.astype(np.float32)
            lo[has_area], hi[has_area] = (q - reach).astype(np.float32), (q + reach).astype(np.float32)
        matched = _matched(ap, pg, pd, self.n_gt, k)
        if (lo != hi).any() and not np.array_equal(_matched(lo, pg, pd, self.n_gt, k), _matched(hi, pg, pd, self.n_gt, k)):
            # A decision sits within summation noise of 0.3: score_image's own areas decide.
            ap[has_area] = (pair_intersection_areas(self.gt.words, pg[has_area], batch, pd[has_area])
                            / area_d[has_area]).astype(np.float32)
            matched = _matched(ap, pg, pd, self.n_gt, k)
            self.recomputed += 1

        pair_ok = np.zeros(len(self.pg), dtype=bool)
        pair_ok[rows[matched]] = True
        tp = len(np.unique(self.point_pcc[pair_ok[self.point_pair]]))
        per_g = np.bincount(pg[matched], minlength=self.n_gt)
        per_d = np.bincount(pd[matched], minlength=k)
        gran_r = int(np.maximum(per_g - 1, 0).sum())
        gran_p = int(np.maximum(per_d - 1, 0).sum())
        fp = int(self._fp_cost(sel[per_d == 0]).sum())
        num_det = int(c[matched].sum()) + fp
        return CLEvalCounts(self.num_gt, num_det, tp, gran_r, gran_p, fp)

    def _fp_cost(self, idx: np.ndarray) -> np.ndarray:
        """False-positive costs of predictions ``idx``, computed once each (per word, so the
        batch they are computed in does not matter)."""
        todo = idx[self._fp[idx] < 0]
        if todo.size:
            self._fp[todo] = pred_fp_costs(self.raw.take(todo))
        return self._fp[idx]


def _matched(ap: np.ndarray, pg: np.ndarray, pd: np.ndarray, n_gt: int, k: int) -> np.ndarray:
    """score_image's matching rules (one-to-one, split, merge) on area precisions ``ap``.

    Monotone in every ``ap``: equal results at two bounds mean equal results between them.
    """
    cand = ap >= _AP_MIN32
    cand_g = np.bincount(pg[cand], minlength=n_gt)
    cand_d = np.bincount(pd[cand], minlength=k)
    one_to_one = cand & (cand_g[pg] == 1) & (cand_d[pd] == 1)
    split = cand & (cand_g[pg] >= 2)
    s_size = np.bincount(pd, minlength=k)
    s_ap = np.bincount(pd, weights=ap.astype(np.float64), minlength=k)
    merge = (s_size[pd] >= 2) & (s_ap[pd] >= _MERGE_MIN)
    return one_to_one | split | merge
