"""CLEval of one image for many subsets of one candidate list, each as exact as ``score_image``.

A postprocess search keeps, per threshold and unclip ratio, different subsets of the same
unclipped candidates (``box_thresh``, ``min_size`` and ``max_candidates`` only filter). Every
geometric quantity CLEval computes belongs to one (GT word, prediction) pair or to one word:
which pseudo-character centres a prediction contains, the pair's intersection area, a
prediction's false-positive cost. ``PairTable`` computes them once for the whole list; a subset
then costs only the matching rules (one-to-one, split, merge) on its pairs.

The rules are not restated here: the pairs (``centre_pairs``), area precisions, matching
(``matched_pairs``) and counting (``tally``) are ``ocrtune.metrics.cleval_match``'s, the calls
``score_image`` makes, on the same pairs in the same order (by GT word, then prediction), so float
sums round alike. What lives here is only which rows a subset takes, and that two quantities
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
from ocrtune.metrics.cleval import MAX_PREDICTIONS, _prepare_gt
from ocrtune.metrics.cleval_match import (
    CLEvalCounts,
    area_precisions,
    centre_pairs,
    matched_pairs,
    no_matches,
    tally,
)

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
        self.inter = self.slack = np.zeros(0)
        self.recomputed = 0  # subsets whose areas score_image's call had to settle
        pb = PolyBatch(self.trunc, pred.n)
        self.pairs = centre_pairs(gt.pcc, gt.offsets, pb)  # none when either side is empty
        if len(self.pairs) == 0:
            return
        pg, pd = self.pairs.g, self.pairs.d
        # Every pair's intersection, whether or not a subset gives its prediction an area:
        # each pair is computed on its own, so extra pairs change no other.
        self.inter = pair_intersection_areas(gt.words, pg, pb, pd)
        # How far another batch could move each pair's area (see the module doc).
        reach = np.maximum(np.abs(gt.words.bboxes())[pg], np.abs(pb.bboxes())[pd])
        x, y = np.maximum(reach[:, 0], reach[:, 2]) + 1, np.maximum(reach[:, 1], reach[:, 3]) + 1
        self.slack = _SUM_ORDER * x * y

    def counts(self, sel: np.ndarray) -> CLEvalCounts:
        """``score_image(gt, [preds[i] for i in sel])`` for ascending indices ``sel``."""
        sel = np.asarray(sel, dtype=np.int64)[:MAX_PREDICTIONS]
        k = len(sel)
        if k == 0:
            return no_matches(self.num_gt, 0)
        if self.n_gt == 0:
            return no_matches(self.num_gt, int(self._fp_cost(sel).sum()))
        pos = np.full(self.n_pred, -1, dtype=np.int64)
        pos[sel] = np.arange(k)
        rows = np.flatnonzero(pos[self.pairs.d] >= 0)
        pg, pd = self.pairs.g[rows], pos[self.pairs.d[rows]]

        width = max(int(self.widths[sel].max()), 1)
        batch = PolyBatch(self.trunc[sel][:, :width], self.widths[sel])
        area_d = np.abs(batch.shoelace())[pd]
        has_area = area_d > 0
        inter, slack, area = self.inter[rows][has_area], self.slack[rows][has_area], area_d[has_area]
        ap, lo, hi = (np.zeros(len(rows), dtype=np.float32) for _ in range(3))
        if has_area.any():
            ap[has_area] = area_precisions(inter, area)
            q = inter / area
            reach = slack / area + 4 * np.spacing(q)
            lo[has_area], hi[has_area] = (q - reach).astype(np.float32), (q + reach).astype(np.float32)
        matched = matched_pairs(ap, pg, pd, self.n_gt, k)
        if (lo != hi).any() and not np.array_equal(matched_pairs(lo, pg, pd, self.n_gt, k),
                                                   matched_pairs(hi, pg, pd, self.n_gt, k)):
            # A decision sits within summation noise of 0.3: score_image's own areas decide.
            ap[has_area] = area_precisions(pair_intersection_areas(self.gt.words, pg[has_area], batch, pd[has_area]),
                                           area)
            matched = matched_pairs(ap, pg, pd, self.n_gt, k)
            self.recomputed += 1
        return tally(self.pairs, rows[matched], self.num_gt, self.n_gt, self.n_pred,
                     lambda lone: self._fp_cost(sel[lone[sel]]))

    def _fp_cost(self, idx: np.ndarray) -> np.ndarray:
        """False-positive costs of predictions ``idx``, computed once each (per word, so the
        batch they are computed in does not matter)."""
        todo = idx[self._fp[idx] < 0]
        if todo.size:
            self._fp[todo] = pred_fp_costs(self.raw.take(todo))
        return self._fp[idx]

