"""DB probability map to scored polygons in original-image pixels (numpy + cv2 only).

Kept free of torch so cached probability maps can be re-postprocessed while tuning
``thresh``/``box_thresh``/``unclip_ratio`` without a model.

Pipeline (DBNet): binarise at ``thresh``; find contours; per contour make a rotated box
(``minAreaRect``) or a simplified polygon (``approxPolyDP``); score it by the mean
probability inside; keep ``score >= box_thresh``; unclip (dilate) to undo the training-time
shrink; map back to the original image.

Unlike implementations that stop after the first ``max_candidates`` contours in discovery
order, every contour is scored (cheaply, on its bounding-box crop) and the best-scoring
ones win.

Inverse mapping: the map is assumed to come from an image resized by ``scale`` (original
pixels times ``scale`` = map pixels) and padded by ``pad = (left, top)`` map pixels (usually
``(0, 0)``: padding at the bottom/right). A map point ``u`` goes to ``(u - pad) / scale``,
then is clamped to ``[0, w] x [0, h]`` of ``original_size = (h, w)`` when given. This is
the inverse of ``data.transforms.resize_and_pad``; any other mapping can be passed as an
``inverse`` callable (``(N, 2)`` map points -> ``(N, 2)`` original points) instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ocrtune.errors import InputError
from ocrtune.geometry import clamp_to_image, min_side, polygon_area, unclip

__all__ = ["Detection", "DBPostProcessor", "to_original"]


@dataclass(frozen=True)
class Detection:
    """One detected text region: ``polygon`` (N, 2) in original-image pixels, ``score``."""

    polygon: np.ndarray
    score: float


Scale = float | tuple[float, float]


def _scale_xy(scale: Scale) -> np.ndarray:
    """One ratio for both axes, or ``(x, y)`` ratios; every ratio must be > 0."""
    xy = np.broadcast_to(np.asarray(scale, dtype=np.float64).reshape(-1), (2,)).copy()
    if not (np.all(np.isfinite(xy)) and np.all(xy > 0)):
        raise InputError(f"must be > 0, got {scale}", key="scale")
    return xy


def to_original(
    points: np.ndarray,
    *,
    scale: Scale = 1.0,
    pad: tuple[float, float] = (0.0, 0.0),
    original_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Map points from probability-map pixels to original-image pixels (see module doc)."""
    out = (np.asarray(points, dtype=np.float64) - np.asarray(pad, dtype=np.float64)) / _scale_xy(scale)
    if original_size is not None:
        out = clamp_to_image(out, original_size[1], original_size[0])
    return out


@dataclass(frozen=True)
class _Candidate:
    points: np.ndarray  # box corners or simplified polygon, map pixels
    score: float
    rect: tuple | None = None  # cv2.minAreaRect result in box mode


class DBPostProcessor:
    """Turn a DB probability map into ``Detection``s.

    Args:
        thresh: binarisation threshold on the probability map.
        box_thresh: minimum mean probability inside a candidate to keep it.
        max_candidates: keep at most this many detections, the highest-scoring ones.
        use_polygon: output simplified polygons instead of rotated 4-point boxes.
        box_unclip_ratio: dilation ratio for boxes (distance = area * ratio / perimeter).
        polygon_unclip_ratio: dilation ratio for polygons.
        min_size: drop candidates whose short side (map pixels) is below this before
            unclipping, or below ``min_size + 2`` after it (as DBNet does).
    """

    def __init__(
        self,
        thresh: float = 0.3,
        box_thresh: float = 0.7,
        max_candidates: int = 1000,
        use_polygon: bool = False,
        box_unclip_ratio: float = 1.5,
        polygon_unclip_ratio: float = 2.0,
        min_size: float = 3,
    ) -> None:
        for key, value in (("thresh", thresh), ("box_thresh", box_thresh)):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"must be in [0, 1], got {value}", key=key)
        if max_candidates < 1:
            raise InputError(f"must be >= 1, got {max_candidates}", key="max_candidates")
        for key, value in (
            ("box_unclip_ratio", box_unclip_ratio),
            ("polygon_unclip_ratio", polygon_unclip_ratio),
            ("min_size", min_size),
        ):
            if value < 0:
                raise InputError(f"must be >= 0, got {value}", key=key)
        self.thresh = float(thresh)
        self.box_thresh = float(box_thresh)
        self.max_candidates = int(max_candidates)
        self.use_polygon = bool(use_polygon)
        self.box_unclip_ratio = float(box_unclip_ratio)
        self.polygon_unclip_ratio = float(polygon_unclip_ratio)
        self.min_size = float(min_size)

    def __call__(
        self,
        prob_map: np.ndarray,
        *,
        scale: Scale = 1.0,
        pad: tuple[float, float] = (0.0, 0.0),
        original_size: tuple[int, int] | None = None,
        inverse: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> list[Detection]:
        """Detections for one ``(H, W)`` probability map, best score first.

        ``inverse``, when given, replaces ``scale``/``pad``/``original_size``.
        """
        prob = np.asarray(prob_map)
        if prob.ndim == 3 and prob.shape[0] == 1:
            prob = prob[0]
        if prob.ndim != 2:
            raise InputError(f"probability map must be (H, W), got shape {prob.shape}")
        prob = prob.astype(np.float32, copy=False)
        # Plain Python numbers: callers often pass collated tensor or numpy scalars.
        scale = tuple(_scale_xy(scale))  # type: ignore[assignment]
        pad = (float(pad[0]), float(pad[1]))
        if original_size is not None:
            original_size = (int(original_size[0]), int(original_size[1]))

        candidates = self._score_contours(prob)
        candidates.sort(key=lambda c: c.score, reverse=True)
        ratio = self.polygon_unclip_ratio if self.use_polygon else self.box_unclip_ratio
        out: list[Detection] = []
        for cand in candidates:
            if len(out) >= self.max_candidates:
                break
            grown = self._unclip(cand, ratio)
            if grown is None:
                continue
            if inverse is not None:
                poly = np.asarray(inverse(grown), dtype=np.float64).reshape(-1, 2)
            else:
                poly = to_original(grown, scale=scale, pad=pad, original_size=original_size)
            if len(poly) < 4 or polygon_area(poly) <= 0:
                continue
            out.append(Detection(poly, cand.score))
        return out

    def batch(
        self,
        prob_maps: np.ndarray | Sequence[np.ndarray],
        *,
        scales: Sequence[Scale] | None = None,
        original_sizes: Sequence[tuple[int, int] | None] | None = None,
        inverses: Sequence[Callable[[np.ndarray], np.ndarray] | None] | None = None,
    ) -> list[list[Detection]]:
        """Postprocess ``(B, H, W)`` / ``(B, 1, H, W)`` maps (or a list of maps) at once."""
        maps = list(prob_maps)
        n = len(maps)
        scale_list = [1.0] * n if scales is None else list(scales)
        size_list = [None] * n if original_sizes is None else list(original_sizes)
        inv_list = [None] * n if inverses is None else list(inverses)
        if not len(scale_list) == len(size_list) == len(inv_list) == n:
            raise InputError(
                f"got {n} maps but {len(scale_list)} scales, {len(size_list)} original sizes"
                f" and {len(inv_list)} inverses"
            )
        return [
            self(m, scale=s, original_size=o, inverse=i)
            for m, s, o, i in zip(maps, scale_list, size_list, inv_list)
        ]

    def _score_contours(self, prob: np.ndarray) -> list[_Candidate]:
        """Score every contour that passes the size and ``box_thresh`` filters."""
        bitmap = (prob > self.thresh).astype(np.uint8)
        contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        out: list[_Candidate] = []
        for contour in contours:
            if self.use_polygon:
                eps = 0.002 * cv2.arcLength(contour, True)
                approx = cv2.approxPolyDP(contour, eps, True).reshape(-1, 2)
                if len(approx) < 4:
                    continue
                points = approx.astype(np.float64)
                if min_side(points) < self.min_size:
                    continue
            else:
                if len(contour) < 2:
                    continue
                rect = cv2.minAreaRect(contour)
                if min(rect[1]) < self.min_size:
                    continue
                points = cv2.boxPoints(rect).astype(np.float64)
            score = _mean_inside(prob, points)
            if score >= self.box_thresh:
                out.append(_Candidate(points, score, None if self.use_polygon else rect))
        return out

    def _unclip(self, cand: _Candidate, ratio: float) -> np.ndarray | None:
        """Dilate a candidate; None when it degenerates or is too small afterwards."""
        if cand.rect is not None:
            return self._unclip_box(cand.rect, ratio)
        grown = unclip(cand.points, ratio)
        if grown is None or len(grown) < 3:
            return None
        if min_side(grown) < self.min_size + 2:
            return None
        return grown if len(grown) >= 4 else None

    def _unclip_box(self, rect: tuple, ratio: float) -> np.ndarray | None:
        """Box unclip in closed form, no polygon clipping.

        Dilating a w x h rectangle by d with round joins and taking the minimum-area
        rectangle again (what DBNet does) gives the same centre and angle with sides
        w + 2d and h + 2d.
        """
        centre, (w, h), angle = rect
        if w <= 0 or h <= 0:
            return None
        d = (w * h) * ratio / (2.0 * (w + h))
        if min(w, h) + 2 * d < self.min_size + 2:
            return None
        return _ordered_box(cv2.boxPoints((centre, (w + 2 * d, h + 2 * d), angle)))


def _mean_inside(prob: np.ndarray, points: np.ndarray) -> float:
    """Mean probability inside a polygon, rasterised only over its bounding box."""
    # Plain-Python bounds: numpy call overhead dominates on 4-point boxes.
    h, w = prob.shape
    xs, ys = points[:, 0].tolist(), points[:, 1].tolist()
    x0 = min(max(math.floor(min(xs)), 0), w - 1)
    x1 = min(max(math.ceil(max(xs)), 0), w - 1)
    y0 = min(max(math.floor(min(ys)), 0), h - 1)
    y1 = min(max(math.ceil(max(ys)), 0), h - 1)
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    local = (points - (x0, y0)).round().astype(np.int32)
    cv2.fillPoly(mask, [local], 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def _ordered_box(corners: np.ndarray) -> np.ndarray:
    """Four corners clockwise on screen, starting nearest the top-left."""
    pts = np.asarray(corners, dtype=np.float64).reshape(4, 2).tolist()
    cross = sum(
        pts[i][0] * pts[(i + 1) % 4][1] - pts[(i + 1) % 4][0] * pts[i][1] for i in range(4)
    )
    if cross < 0:
        pts.reverse()
    start = min(range(4), key=lambda i: pts[i][0] + pts[i][1])
    return np.array(pts[start:] + pts[:start], dtype=np.float64)
