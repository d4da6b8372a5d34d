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

Stages: ``find_candidates`` (binarise, contours, geometry and score: depends on ``thresh``
and ``use_polygon`` only), ``grow`` (unclip and map back: depends on the unclip ratio only;
boxes in closed form, all at once) and ``select`` (the ``box_thresh`` / ``min_size`` /
``max_candidates`` filters). ``DBPostProcessor`` runs them in order; ``ocrtune
tune-postprocess`` runs each stage once per value of the settings it depends on and re-applies
only ``select``, with the same functions, so a cached search and a fresh run give the same
detections.

Quantisation: every map is first put on the float16 grid (``quantize``). Stored maps (the
tuning cache, ``predict --save-maps``) are float16, half the size of float32; a postprocess that
read float32 maps live but float16 maps from disk could find a pixel at ``thresh`` on one side
in one and on the other side in the other. On the shared grid both read the same numbers, so
their detections are identical by construction. The change to a live map is below 2.5e-4 in
probability (float16 keeps 11 significant bits; bf16 outputs above 6e-5 are on the grid already).

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

__all__ = [
    "Candidates", "Detection", "DBPostProcessor", "Grown", "MapBack", "as_float16", "find_candidates", "grow",
    "quantize", "select", "to_original",
]


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
    return _to_original(points, _scale_xy(scale), np.asarray(pad, dtype=np.float64), original_size)


def _to_original(points: np.ndarray, xy: np.ndarray, pad: np.ndarray, original_size: tuple[int, int] | None) -> np.ndarray:
    out = (np.asarray(points, dtype=np.float64) - pad) / xy
    if original_size is not None:
        out = clamp_to_image(out, original_size[1], original_size[0])
    return out


def as_float16(prob_map: np.ndarray) -> np.ndarray:
    """A map as float16, rounded to nearest (ties to even), as stored on disk.

    OpenCV's conversion: the same rounding as numpy's ``astype(np.float16)``, several times
    faster (the postprocess pays it on every map).
    """
    prob = np.asarray(prob_map)
    if prob.dtype == np.float16:
        return prob
    prob = np.ascontiguousarray(prob, dtype=np.float32)
    if prob.ndim != 2 or prob.size == 0:
        return prob.astype(np.float16)
    return cv2.multiply(prob, 1.0, dtype=cv2.CV_16F)


def quantize(prob_map: np.ndarray) -> np.ndarray:
    """The map on the float16 grid, as float32 (see the module doc for why every map is)."""
    half = np.ascontiguousarray(as_float16(prob_map))
    if half.ndim != 2 or half.size == 0:
        return half.astype(np.float32)
    return cv2.multiply(half, 1.0, dtype=cv2.CV_32F)


@dataclass(frozen=True)
class Candidates:
    """The scored regions of one map at one ``thresh``, best score first (ties in contour order).

    ``points`` are box corners or simplified polygons, in map pixels, and ``min_sides`` their
    short sides before unclipping. Box mode also keeps each box as ``boxes`` rows (centre x,
    centre y, width, height, cos, sin of its angle) for the closed-form unclip. Regions below
    the ``min_size``/``box_thresh`` floors ``find_candidates`` was given are left out: no
    setting at or above those floors can keep them.
    """

    use_polygon: bool
    scores: np.ndarray  # float64
    min_sides: np.ndarray  # float64
    points: list[np.ndarray]
    boxes: np.ndarray | None = None  # (N, 6) float64, box mode

    def __len__(self) -> int:
        return len(self.points)


def find_candidates(
    prob: np.ndarray, thresh: float, use_polygon: bool, min_size: float = 0.0, box_thresh: float = 0.0
) -> Candidates:
    """Binarise a ``quantize``d map at ``thresh``, score every contour (mean probability inside
    its box or polygon) and sort by score. Contours with a short side below ``min_size`` are
    not scored and scores below ``box_thresh`` are dropped (the two filters commute with the
    stable sort, so ``select`` may apply stricter ones later)."""
    bitmap = (prob > thresh).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    scores: list[float] = []
    sides: list[float] = []
    points_out: list[np.ndarray] = []
    rows: list[tuple[float, ...]] = []
    for contour in contours:
        if use_polygon:
            eps = 0.002 * cv2.arcLength(contour, True)
            approx = cv2.approxPolyDP(contour, eps, True).reshape(-1, 2)
            if len(approx) < 4:
                continue
            points = approx.astype(np.float64)
            side = min_side(points)
            if side < min_size:
                continue
        else:
            if len(contour) < 2:
                continue
            rect = cv2.minAreaRect(contour)
            side = min(rect[1])
            if side < min_size:
                continue
            points = cv2.boxPoints(rect).astype(np.float64)
        score = _mean_inside(prob, points)
        if score >= box_thresh:
            scores.append(score)
            sides.append(side)
            points_out.append(points)
            if not use_polygon:
                (cx, cy), (w, h), angle = rect
                t = math.radians(angle)
                rows.append((cx, cy, w, h, math.cos(t), math.sin(t)))
    order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
    return Candidates(
        use_polygon,
        np.array([scores[i] for i in order], dtype=np.float64),
        np.array([sides[i] for i in order], dtype=np.float64),
        [points_out[i] for i in order],
        None if use_polygon else np.array([rows[i] for i in order], dtype=np.float64).reshape(-1, 6),
    )


@dataclass(frozen=True)
class MapBack:
    """Map pixels -> original-image pixels: ``inverse`` when given, else the inverse resize
    (``(u - pad) / scale``, clamped to ``original_size`` = (h, w) when given)."""

    xy: np.ndarray
    pad: np.ndarray
    original_size: tuple[int, int] | None = None
    inverse: Callable[[np.ndarray], np.ndarray] | None = None

    @classmethod
    def of(
        cls,
        scale: Scale = 1.0,
        pad: tuple[float, float] = (0.0, 0.0),
        original_size: tuple[int, int] | None = None,
        inverse: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> MapBack:
        # Plain Python numbers: callers often pass collated tensor or numpy scalars.
        size = None if original_size is None else (int(original_size[0]), int(original_size[1]))
        offset = np.array([float(pad[0]), float(pad[1])], dtype=np.float64)
        return cls(_scale_xy(scale) if inverse is None else np.ones(2), offset, size, inverse)

    def one(self, points: np.ndarray) -> np.ndarray:
        """One polygon, (N, 2)."""
        if self.inverse is not None:
            return np.asarray(self.inverse(points), dtype=np.float64).reshape(-1, 2)
        return _to_original(points, self.xy, self.pad, self.original_size)


@dataclass(frozen=True)
class Grown:
    """Every candidate unclipped and mapped back to the original image.

    ``polys``: an (N, 4, 2) array of boxes, or a list of polygons; ``sides``: the short side
    after unclipping, map pixels (what ``min_size + 2`` is checked against, as DBNet does;
    -inf when unclipping degenerates); ``ok``: the mapped shape has at least 4 points and an
    area.
    """

    polys: np.ndarray | list[np.ndarray | None]
    sides: np.ndarray
    ok: np.ndarray


def grow(cands: Candidates, ratio: float, back: MapBack) -> Grown:
    """Unclip every candidate by ``ratio`` and map it back."""
    if cands.boxes is not None and back.inverse is None:
        return _grow_boxes(cands.boxes, ratio, back)
    n = len(cands)
    polys: list[np.ndarray | None] = []
    sides = np.full(n, -np.inf)
    ok = np.zeros(n, dtype=bool)
    for i in range(n):
        if cands.boxes is not None:
            grown, sides[i] = _unclip_box(cands.boxes[i], ratio)
        else:
            grown, sides[i] = _unclip_polygon(cands.points[i], ratio)
        poly = None if grown is None else back.one(grown)
        ok[i] = poly is not None and len(poly) >= 4 and polygon_area(poly) > 0
        polys.append(poly)
    return Grown(polys, sides, ok)


def select(cands: Candidates, grown: Grown, box_thresh: float, min_size: float, max_candidates: int) -> np.ndarray:
    """Indices of the detections kept, best score first: score at least ``box_thresh``, short
    side at least ``min_size`` before unclipping and ``min_size + 2`` after, a real shape; at
    most ``max_candidates``."""
    keep = grown.ok & (cands.scores >= box_thresh) & (cands.min_sides >= min_size) & (grown.sides >= min_size + 2)
    return np.flatnonzero(keep)[:max_candidates]


def _unclip_polygon(points: np.ndarray, ratio: float) -> tuple[np.ndarray | None, float]:
    grown = unclip(points, ratio)
    if grown is None or len(grown) < 3:
        return None, -math.inf
    side = min_side(grown)
    return (grown if len(grown) >= 4 else None), side


def _box_corners(boxes: np.ndarray, ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form box unclip of (N, 6) box rows: corners (N, 4, 2) and grown short sides.

    Dilating a w x h rectangle by d with round joins and taking the minimum-area rectangle
    again (what DBNet does) gives the same centre and angle with sides w + 2d and h + 2d.
    Corners run clockwise on screen from the one nearest the top-left. Degenerate boxes get
    side -inf.
    """
    cx, cy, w, h, c, s = (boxes[:, k] for k in range(6))
    valid = (w > 0) & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (w * h) * ratio / (2.0 * (w + h))
    side = np.where(valid, np.minimum(w, h) + 2 * d, -np.inf)
    gw, gh = w + 2 * d, h + 2 * d
    ux, uy = c * gw * 0.5, s * gw * 0.5  # half the width, along the box
    vx, vy = -s * gh * 0.5, c * gh * 0.5  # half the height, across it
    x = np.stack([cx - ux + vx, cx - ux - vx, cx + ux - vx, cx + ux + vx], axis=1)
    y = np.stack([cy - uy + vy, cy - uy - vy, cy + uy - vy, cy + uy + vy], axis=1)
    pts = np.stack([x, y], axis=2)
    pts = np.where((_cross4(pts) < 0)[:, None, None], pts[:, ::-1], pts)
    start = np.argmin(pts[:, :, 0] + pts[:, :, 1], axis=1)
    order = (start[:, None] + np.arange(4)) % 4
    return np.take_along_axis(pts, order[:, :, None], axis=1), side


def _grow_boxes(boxes: np.ndarray, ratio: float, back: MapBack) -> Grown:
    corners, side = _box_corners(boxes, ratio)
    polys = (corners - back.pad) / back.xy
    if back.original_size is not None:
        h, w = back.original_size
        np.clip(polys[..., 0], 0.0, float(w), out=polys[..., 0])
        np.clip(polys[..., 1], 0.0, float(h), out=polys[..., 1])
    ok = np.isfinite(side) & (_cross4(polys) != 0)
    return Grown(polys, side, ok)


def _unclip_box(row: np.ndarray, ratio: float) -> tuple[np.ndarray | None, float]:
    corners, side = _box_corners(row.reshape(1, 6), ratio)
    return (corners[0] if np.isfinite(side[0]) else None), float(side[0])


def _cross4(p: np.ndarray) -> np.ndarray:
    """Twice the signed area of (N, 4, 2) quads, about their first corner: a quad squashed
    onto a line or a point by clamping gives exactly 0."""
    d = p[:, 1:] - p[:, :1]
    return (d[:, 0, 0] * d[:, 1, 1] - d[:, 1, 0] * d[:, 0, 1]) + (d[:, 1, 0] * d[:, 2, 1] - d[:, 2, 0] * d[:, 1, 1])


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
        back = MapBack.of(scale, pad, original_size, inverse)
        cands = find_candidates(quantize(prob), self.thresh, self.use_polygon, self.min_size, self.box_thresh)
        grown = grow(cands, self.ratio, back)
        return [
            Detection(grown.polys[i], float(cands.scores[i]))  # type: ignore[arg-type]
            for i in select(cands, grown, self.box_thresh, self.min_size, self.max_candidates).tolist()
        ]

    @property
    def ratio(self) -> float:
        """The unclip ratio of the output mode."""
        return self.polygon_unclip_ratio if self.use_polygon else self.box_unclip_ratio

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
