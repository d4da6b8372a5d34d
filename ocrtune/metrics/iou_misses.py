"""Why the IoU H-mean misses what it misses: each unmatched word and detection by kind.

The IoU H-mean says how many words were not matched at IoU >= 0.5, not why, and the remedies
differ: boxes that swallow a neighbour (the model does not see where the annotation splits a
line), words cut in pieces, boxes drawn too loosely or tightly (unclip ratio, thresholds) and
words not found at all (small or faint text) are fixed by different settings or training.
The kinds come from the same matching as the score (``match_iou_pairs``), with coverage
measured as a share of the word's or the detection's area:

GT words not matched (each in the first kind that applies):

- ``merged``: a detection covers at least half of it and at least half of another word too.
- ``split``: two or more detections lie mostly (half their area) inside it and cover at least
  half of it together.
- ``misfit``: one detection covers half of it, or lies half inside it, but the two do not reach
  the IoU threshold (too loose, too tight or shifted).
- ``not_found``: nothing of the above; at most slivers of detections touch it.

Detections not matched: ``merged`` (covers half of two or more words), ``fragment`` (lies half
inside one word), ``misfit`` (overlaps words otherwise, by a tenth of its area or more) and
``background`` (less than a tenth of it on any word). Don't-care words and the detections they
absorb are left out, as the score leaves them out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from ocrtune.metrics.iou import match_iou_pairs

__all__ = ["IoUMisses", "iou_misses"]

_HALF = 0.5
_SLIVER = 0.1


@dataclass(frozen=True)
class IoUMisses:
    """Counts of one image (or, added up, of a split)."""

    gt_matched: int = 0
    gt_merged: int = 0
    gt_split: int = 0
    gt_misfit: int = 0
    gt_not_found: int = 0
    det_matched: int = 0
    det_merged: int = 0
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
        return self.det_matched + self.det_merged + self.det_fragment + self.det_misfit + self.det_background


def iou_misses(
    gt: object,
    pred: object,
    gt_ignore: Sequence[bool] | np.ndarray | None = None,
    *,
    iou_threshold: float = 0.5,
) -> IoUMisses:
    """Each cared-for GT word and each live detection of one image, by kind (module docstring)."""
    m = match_iou_pairs(gt, pred, gt_ignore, iou_threshold=iou_threshold)
    n_g, n_d = len(m.area_g), len(m.area_d)
    with np.errstate(divide="ignore", invalid="ignore"):
        cover = np.where(m.area_g[m.gi] > 0, m.inter / m.area_g[m.gi], 0.0)  # share of the word
        inside = np.where(m.area_d[m.di] > 0, m.inter / m.area_d[m.di], 0.0)  # share of the detection
    # How many words each detection covers by half: a detection on two or more is a merge.
    spans = np.bincount(m.di[cover >= _HALF], minlength=n_d)
    merging = spans[m.di] >= 2

    gt_kind = np.full(n_g, "", dtype=object)
    gt_kind[m.matched_g] = "matched"
    merged_g = np.zeros(n_g, dtype=bool)
    merged_g[m.gi[merging & (cover >= _HALF)]] = True
    piece = inside >= _HALF
    pieces = np.bincount(m.gi[piece], minlength=n_g)
    piece_cover = np.bincount(m.gi[piece], weights=cover[piece], minlength=n_g)
    split_g = (pieces >= 2) & (piece_cover >= _HALF)
    misfit_g = np.zeros(n_g, dtype=bool)
    misfit_g[m.gi[(cover >= _HALF) | piece]] = True
    for mask, kind in ((merged_g, "merged"), (split_g, "split"), (misfit_g, "misfit")):
        gt_kind[(gt_kind == "") & mask] = kind
    gt_kind[gt_kind == ""] = "not_found"
    gt_kind = gt_kind[m.care]

    det_kind = np.full(n_d, "", dtype=object)
    det_kind[m.matched_d] = "matched"
    merged_d = spans >= 2
    fragment_d = np.zeros(n_d, dtype=bool)
    fragment_d[m.di[piece]] = True
    on_words = np.bincount(m.di, weights=inside, minlength=n_d)
    for mask, kind in ((merged_d, "merged"), (fragment_d, "fragment"), (on_words >= _SLIVER, "misfit")):
        det_kind[(det_kind == "") & mask] = kind
    det_kind[det_kind == ""] = "background"
    det_kind = det_kind[m.live]

    def count(kinds: np.ndarray, kind: str) -> int:
        return int((kinds == kind).sum())

    return IoUMisses(
        *(count(gt_kind, k) for k in ("matched", "merged", "split", "misfit", "not_found")),
        *(count(det_kind, k) for k in ("matched", "merged", "fragment", "misfit", "background")),
    )
