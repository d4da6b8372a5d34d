"""CLEval's matching and counting rules (spec sections 7-8), on precomputed pair quantities.

The geometry comes first and differs by caller: which of a GT word's pseudo-character centres
(PCCs) a prediction contains (``centre_pairs``) and each pair's intersection area. What follows
from those is the competition's rules, kept here once for both callers:

- ``metrics.cleval.score_image``: one prediction list, every quantity computed for it;
- ``tune.cleval_table.PairTable``: many subsets of one candidate list, the pairs computed once
  for the whole list and each subset scored from its rows.

Both hand over pairs in ``centre_pairs``' order (by GT word, then prediction), so the merge
rule's float sums add in the same order and round alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from ocrtune.metrics._cleval_shape import points_in_polygons
from ocrtune.metrics._polys import PolyBatch

__all__ = [
    "AP_MIN32",
    "MERGE_MIN",
    "CLEvalCounts",
    "CentrePairs",
    "area_precisions",
    "centre_pairs",
    "matched_pairs",
    "no_matches",
    "tally",
]

AP_MIN32 = np.float32(0.3)  # area precision threshold, compared in float32 like the reference
MERGE_MIN = 0.3  # merge rule: sum of float32 area precisions, compared in double


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


@dataclass(frozen=True)
class CentrePairs:
    """(GT word, prediction) pairs in which the prediction contains at least one of the word's
    PCCs (C > 0: the only pairs any rule looks at), by GT word, then prediction."""

    g: np.ndarray  # GT word of each pair
    d: np.ndarray  # prediction of each pair
    c: np.ndarray  # C: how many of g's PCCs d contains (>= 1)
    centre: np.ndarray  # per contained PCC: its index among all the image's PCCs
    pair: np.ndarray  # per contained PCC: its pair (index into g, d, c)

    def __len__(self) -> int:
        return len(self.g)


def centre_pairs(pcc: np.ndarray, offsets: np.ndarray, pred: PolyBatch) -> CentrePairs:
    """The pairs of GT words (PCCs ``pcc``, word blocks ``offsets``) with predictions ``pred``
    (truncated coordinates) that share a PCC; the point tests run only where boxes touch."""
    if len(offsets) < 2 or len(pred) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return CentrePairs(empty, empty, empty, empty, empty)
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
    pt_in, pair_in = pt[inside], pair[inside]
    c_all = np.bincount(pair_in, minlength=len(gi))
    hit = np.flatnonzero(c_all)
    slot = np.full(len(gi), -1, dtype=np.int64)
    slot[hit] = np.arange(len(hit))
    return CentrePairs(gi[hit], di[hit], c_all[hit], pt_in, slot[pair_in])


def area_precisions(inter: np.ndarray, area: np.ndarray) -> np.ndarray:
    """AP = intersection / prediction area, stored as float32 (pairs whose prediction has no
    area are not passed: their AP is 0)."""
    return (inter / area).astype(np.float32)


def matched_pairs(ap: np.ndarray, g: np.ndarray, d: np.ndarray, n_gt: int, n_det: int) -> np.ndarray:
    """Which pairs (GT word ``g``, prediction ``d``, area precision ``ap``; all with C > 0)
    any of the three rules matches: one-to-one, split, merge, each on the initial values.

    Monotone in every ``ap``: equal results at two bounds mean equal results between them.
    """
    cand = ap >= AP_MIN32
    cand_g = np.bincount(g[cand], minlength=n_gt)
    cand_d = np.bincount(d[cand], minlength=n_det)
    one_to_one = cand & (cand_g[g] == 1) & (cand_d[d] == 1)
    split = cand & (cand_g[g] >= 2)
    s_size = np.bincount(d, minlength=n_det)
    s_ap = np.bincount(d, weights=ap.astype(np.float64), minlength=n_det)
    merge = (s_size[d] >= 2) & (s_ap[d] >= MERGE_MIN)
    return one_to_one | split | merge


def tally(
    pairs: CentrePairs,
    matched: np.ndarray,
    num_gt: int,
    n_gt: int,
    n_det: int,
    fp_costs: Callable[[np.ndarray], np.ndarray],
) -> CLEvalCounts:
    """One image's counts from its matched pairs (``matched``: indices into ``pairs``).

    ``fp_costs(lone)`` gives the false-positive cost of each prediction in no matched pair,
    ``lone`` being a boolean mask over the ``n_det`` predictions ``pairs.d`` refers to.
    """
    ok = np.zeros(len(pairs), dtype=bool)
    ok[matched] = True
    tp = len(np.unique(pairs.centre[ok[pairs.pair]]))  # a PCC in two matched predictions: once
    per_g = np.bincount(pairs.g[matched], minlength=n_gt)
    per_d = np.bincount(pairs.d[matched], minlength=n_det)
    gran_r = int(np.maximum(per_g - 1, 0).sum())
    gran_p = int(np.maximum(per_d - 1, 0).sum())
    fp = int(fp_costs(per_d == 0).sum())
    num_det = int(pairs.c[matched].sum()) + fp
    return CLEvalCounts(num_gt, num_det, tp, gran_r, gran_p, fp)


def no_matches(num_gt: int, fp: int) -> CLEvalCounts:
    """Counts of an image where nothing can match (no predictions, or no GT words): every
    prediction is a false positive costing ``fp`` characters in all."""
    return CLEvalCounts(num_char_gt=num_gt, num_char_det=fp, num_char_fp=fp)
