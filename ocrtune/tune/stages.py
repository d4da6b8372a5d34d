"""One image's postprocess + CLEval and IoU, staged so a search does each piece of work once per value
of the settings it depends on (pure: numpy, cv2 and the metric).

- contours and candidate scores depend on ``thresh`` (and the output mode) only; thresholds
  that split the float16 grid alike give the same bitmap, so they share them;
- unclipping depends on the unclip ratio only, and so do the CLEval pairs of the unclipped
  candidates with the ground truth (``PairTable``);
- ``box_thresh``, ``min_size`` and ``max_candidates`` only filter (``select``), and a filtered
  subset is scored from the pairs without new geometry. Its IoU counts are ``match_iou``'s on
  the subset (the call ``evaluate`` makes), once per distinct subset.

Each stage is the function ``DBPostProcessor`` itself calls (``find_candidates``, ``grow``,
``select``), on the map quantised the same way: the detections, and so the scores, equal a
fresh ``evaluate`` with the same settings.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import astuple, dataclass
from typing import Any, Sequence

import numpy as np

from ocrtune.metrics.cleval import CLEvalCounts
from ocrtune.metrics.iou import IoUCounts, match_iou
from ocrtune.metrics.iou_misses import IoUMisses, iou_misses
from ocrtune.model.postprocess import Candidates, Grown, MapBack, find_candidates, grow, quantize, select
from ocrtune.tune.cleval_table import GroundTruth, PairTable
from ocrtune.tune.settings import PostSettings

# Every finite float16 value, ascending, as float32: the values a quantised map can hold.
_POS = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)
_GRID = np.concatenate([-_POS[:0:-1], _POS])


def thresh_class(thresh: float) -> int:
    """How many float16 values lie above ``thresh``, compared as the postprocess compares
    (``prob > thresh``): thresholds with the same count binarise every quantised map alike."""
    return int(np.count_nonzero(_GRID > float(thresh)))


@dataclass(frozen=True)
class Floors:
    """The lowest ``min_size`` and ``box_thresh`` any setting of the search uses: candidates
    below them are never scored or kept."""

    min_size: float = 0.0
    box_thresh: float = 0.0


@dataclass(frozen=True)
class ImageCounts:
    """Both metrics' counts of one image under one setting."""

    cleval: CLEvalCounts
    iou: IoUCounts

    FIELDS = len(CLEvalCounts.__dataclass_fields__) + len(IoUCounts.__dataclass_fields__)

    def row(self) -> tuple[int, ...]:
        """The counts as ``FIELDS`` integers (CLEval's, then IoU's), for arrays across processes."""
        return astuple(self.cleval) + astuple(self.iou)

    @classmethod
    def of_row(cls, row: Any) -> ImageCounts:
        k = len(CLEvalCounts.__dataclass_fields__)
        values = [int(v) for v in row]
        return cls(CLEvalCounts(*values[:k]), IoUCounts(*values[k:]))


@dataclass
class _Unclipped:
    grown: Grown
    table: PairTable
    index: np.ndarray  # candidate -> row of the table (-1: never kept, not in the table)
    iou: dict[bytes, IoUCounts]  # kept candidates (their indices' bytes) -> IoU counts


class ImageStages:
    """The staged postprocess of one cached map, with its ground truth.

    ``keep`` bounds how many contour sets and unclipped sets are held (least recently used
    first out); a search that visits settings grouped by threshold and ratio rarely misses.
    """

    def __init__(self, prob16: np.ndarray, scale: Sequence[float], orig_size: Sequence[int], gt: Any,
                 gt_ignore: Sequence[bool], floors: Floors = Floors(), keep: int = 8) -> None:
        self.prob16 = prob16
        self.back = MapBack.of(scale=(float(scale[0]), float(scale[1])),
                               original_size=(int(orig_size[0]), int(orig_size[1])))
        self.gt = gt
        self.gt_ignore = list(gt_ignore)
        self._truth: GroundTruth | None = None
        self.floors = floors
        self.keep = keep
        self._cands: OrderedDict[tuple[int, bool], Candidates] = OrderedDict()
        self._unclipped: OrderedDict[tuple[int, bool, float], _Unclipped] = OrderedDict()
        self._prob: np.ndarray | None = None
        self.misses = {"contours": 0, "unclip": 0}

    def counts(self, s: PostSettings) -> ImageCounts:
        """CLEval and IoU counts of this image under settings ``s``."""
        cands, u, kept = self._kept(s)
        key = kept.tobytes()
        iou = u.iou.get(key)
        if iou is None:
            iou = u.iou[key] = match_iou(self.gt, [u.grown.polys[i] for i in kept.tolist()], self.gt_ignore)
        return ImageCounts(u.table.counts(u.index[kept]), iou)

    def iou_misses(self, s: PostSettings) -> IoUMisses:
        """This image's IoU misses by kind under ``s`` (``evaluate``'s breakdown; not cached:
        asked for a setting or two after a search)."""
        cands, u, kept = self._kept(s)
        return iou_misses(self.gt, [u.grown.polys[i] for i in kept.tolist()], self.gt_ignore)

    def detections(self, s: PostSettings) -> list[tuple[np.ndarray, float]]:
        """``(polygon, score)`` kept under ``s``, best first: what ``DBPostProcessor`` returns."""
        cands, u, kept = self._kept(s)
        return [(u.grown.polys[i], float(cands.scores[i])) for i in kept.tolist()]  # type: ignore[misc]

    def release(self) -> None:
        """Drop the float32 copy of the map (kept only while one batch of settings runs)."""
        self._prob = None

    def _kept(self, s: PostSettings) -> tuple[Candidates, _Unclipped, np.ndarray]:
        if s.min_size < self.floors.min_size or s.box_thresh < self.floors.box_thresh:
            raise ValueError(f"settings below the search's floors {self.floors}: {s}")
        key = (thresh_class(s.thresh), s.use_polygon)
        cands = self._candidates(key, s)
        u = self._unclip(cands, (*key, s.ratio))
        return cands, u, select(cands, u.grown, s.box_thresh, s.min_size, s.max_candidates)

    def _candidates(self, key: tuple[int, bool], s: PostSettings) -> Candidates:
        cands = self._cands.get(key)
        if cands is not None:
            self._cands.move_to_end(key)
            return cands
        self.misses["contours"] += 1
        if self._prob is None:
            self._prob = quantize(self.prob16)
        cands = find_candidates(self._prob, s.thresh, s.use_polygon, self.floors.min_size, self.floors.box_thresh)
        self._cands[key] = cands
        if len(self._cands) > self.keep:
            self._cands.popitem(last=False)
        return cands

    def _unclip(self, cands: Candidates, key: tuple[int, bool, float]) -> _Unclipped:
        u = self._unclipped.get(key)
        if u is not None:
            self._unclipped.move_to_end(key)
            return u
        self.misses["unclip"] += 1
        grown = grow(cands, key[2], self.back)
        # Only candidates some setting can keep enter the table: a real shape at least
        # min_size + 2 across at the lowest min_size.
        usable = select(cands, grown, self.floors.box_thresh, self.floors.min_size, len(cands))
        index = np.full(len(cands), -1, dtype=np.int64)
        index[usable] = np.arange(len(usable))
        if self._truth is None:
            self._truth = GroundTruth(self.gt)
        table = PairTable(self._truth, [grown.polys[i] for i in usable.tolist()])
        u = _Unclipped(grown, table, index, {})
        self._unclipped[key] = u
        if len(self._unclipped) > self.keep:
            self._unclipped.popitem(last=False)
        return u
