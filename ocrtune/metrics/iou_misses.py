"""Why the IoU H-mean misses what it misses: each unmatched word and detection by kind.

The IoU H-mean says how many words were not matched at IoU >= 0.5, not why, and the remedies
differ: boxes that swallow a neighbour (the model does not see where the annotation splits a
line), words cut in pieces, boxes drawn too loosely or tightly (unclip ratio, thresholds) and
words not found at all (small or faint text) are fixed by different settings or training.
The kinds come from the same matching as the score (``match_iou_pairs``); "covers half of a
word" and "lies half inside a word" compare the overlap with the word's and the detection's
area (at least 0.5). Don't-care words and the detections they absorb are left out, as the
score leaves them out; a don't-care word is not "another word" for a merge.

GT words not matched (each in the first kind that applies):

- ``merged``: a detection covers half of it and half of another word too.
- ``split``: two or more detections lie half inside it and cover half of it together.
- ``misfit``: a detection covers half of it, or lies half inside it and covers a tenth of
  it, short of the IoU threshold (too loose, too tight or shifted).
- ``not_found``: no detection covers half of it, and none lies half inside it covering a
  tenth of it.

Detections not matched: ``merged`` (covers half of two or more words), ``duplicate`` (reaches
the IoU threshold with a word matched to another detection), ``fragment`` (lies half inside
a word), ``misfit`` (covers half of a word, or has a tenth of its area on one) and
``background`` (less than a tenth of it on every word).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import shapely

from ocrtune.metrics.iou import IoUMatch, match_iou_pairs

__all__ = ["IoUMisses", "classify", "iou_misses"]

_HALF = 0.5
_SLIVER = 0.1


@dataclass(frozen=True)
class IoUMisses:
    """Counts of one image (or, added up, of all images scored)."""

    gt_matched: int = 0
    gt_merged: int = 0
    gt_split: int = 0
    gt_misfit: int = 0
    gt_not_found: int = 0
    det_matched: int = 0
    det_merged: int = 0
    det_duplicate: int = 0
    det_fragment: int = 0
    det_misfit: int = 0
    det_background: int = 0

    def __add__(self, other: IoUMisses) -> IoUMisses:
        return IoUMisses(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def missed(self) -> dict[str, int]:
        """The kinds of miss this image has, with their counts (matched words and kinds at 0 left out)."""
        return {f.name: n for f in fields(self) if (n := getattr(self, f.name)) and not f.name.endswith("_matched")}

    @property
    def gt_total(self) -> int:
        return self.gt_matched + self.gt_merged + self.gt_split + self.gt_misfit + self.gt_not_found

    @property
    def det_total(self) -> int:
        return (self.det_matched + self.det_merged + self.det_duplicate + self.det_fragment + self.det_misfit
                + self.det_background)


def iou_misses(
    gt: object,
    pred: object,
    gt_ignore: Sequence[bool] | np.ndarray | None = None,
    *,
    iou_threshold: float = 0.5,
) -> IoUMisses:
    """Each cared-for GT word and each live detection of one image, by kind (module docstring)."""
    return classify(match_iou_pairs(gt, pred, gt_ignore, iou_threshold=iou_threshold), iou_threshold)


def classify(m: IoUMatch, iou_threshold: float = 0.5) -> IoUMisses:
    """The kinds of one image's matching (made at ``iou_threshold``)."""
    n_g, n_d = len(m.area_g), len(m.area_d)
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(m.area_g[m.gi] > 0, m.inter / m.area_g[m.gi], 0.0)  # share of the word
        inside = np.where(m.area_d[m.di] > 0, m.inter / m.area_d[m.di], 0.0)  # share of the detection
    covers = cover >= _HALF
    # How many words each detection covers by half: a detection on two or more is a merge.
    spans = np.bincount(m.di[covers], minlength=n_d)
    merging = spans[m.di] >= 2
    piece = inside >= _HALF

    gt_kind = np.full(n_g, "", dtype=object)
    gt_kind[m.matched_g] = "matched"
    merged_g = _marked(n_g, m.gi[merging & covers])
    split_g = _split(m, piece, n_g)
    misfit_g = _marked(n_g, m.gi[covers | (piece & (cover >= _SLIVER))])
    for mask, kind in ((merged_g, "merged"), (split_g, "split"), (misfit_g, "misfit")):
        gt_kind[(gt_kind == "") & mask] = kind
    gt_kind[gt_kind == ""] = "not_found"
    gt_kind = gt_kind[m.care]

    det_kind = np.full(n_d, "", dtype=object)
    det_kind[m.matched_d] = "matched"
    duplicate_d = _marked(n_d, m.di[(m.iou >= iou_threshold) & m.matched_g[m.gi] & ~m.matched_d[m.di]])
    most_on_one = np.zeros(n_d)
    np.maximum.at(most_on_one, m.di, inside)
    misfit_d = (spans >= 1) | (most_on_one >= _SLIVER)
    for mask, kind in ((spans >= 2, "merged"), (duplicate_d, "duplicate"), (_marked(n_d, m.di[piece]), "fragment"),
                       (misfit_d, "misfit")):
        det_kind[(det_kind == "") & mask] = kind
    det_kind[det_kind == ""] = "background"
    det_kind = det_kind[m.live]

    def count(kinds: np.ndarray, kind: str) -> int:
        return int((kinds == kind).sum())

    return IoUMisses(
        *(count(gt_kind, k) for k in ("matched", "merged", "split", "misfit", "not_found")),
        *(count(det_kind, k) for k in ("matched", "merged", "duplicate", "fragment", "misfit", "background")),
    )


def _marked(n: int, idx: np.ndarray) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[idx] = True
    return out


def _split(m: IoUMatch, piece: np.ndarray, n_g: int) -> np.ndarray:
    """Words that two or more detections lie half inside and cover half of together (their
    union: overlapping pieces count once)."""
    out = np.zeros(n_g, dtype=bool)
    candidates = np.flatnonzero((np.bincount(m.gi[piece], minlength=n_g) >= 2) & ~m.matched_g)
    for g in candidates.tolist():
        if m.area_g[g] <= 0:
            continue
        dets = m.di[piece & (m.gi == g)]
        word = m.gt.geometries(np.array([g]))[0]
        together = shapely.union_all(m.pred.geometries(dets))
        out[g] = shapely.area(shapely.intersection(word, together)) / m.area_g[g] >= _HALF
    return out
