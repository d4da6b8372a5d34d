"""Polygon helpers shared by targets, metrics and postprocessing.

A polygon is an ``np.ndarray`` of shape ``(N, 2)`` holding ``(x, y)`` points in pixel
coordinates (x right, y down), without a repeated closing point. Integer coordinates are
pixel centres, the convention ``cv2.fillPoly`` uses, so polygons and rasterised maps agree.

Offsetting goes through pyclipper, which works on integers: coordinates are scaled by
``CLIPPER_SCALE`` first so sub-pixel offsets survive. Functions never mutate their input and
return ``float64`` arrays.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pyclipper
import shapely
from shapely.geometry import Polygon as _ShapelyPolygon
from shapely.geometry.base import BaseGeometry

from ocrtune.errors import InputError

__all__ = [
    "CLIPPER_SCALE",
    "as_polygon",
    "signed_area",
    "polygon_area",
    "perimeter",
    "offset_polygon",
    "unclip",
    "clamp_to_image",
    "clip_polygon_to_image",
    "is_valid",
    "repair_polygon",
    "min_side",
    "polygon_iou",
]

#: Fixed-point factor for pyclipper: 1/256 px resolution, far below rasterisation error.
CLIPPER_SCALE = 256.0


def as_polygon(points: object, *, where: str | None = None) -> np.ndarray:
    """Return ``points`` as a float64 ``(N, 2)`` array, or raise a located ``InputError``.

    Accepts anything array-like (lists of pairs, flat ``[x1, y1, x2, y2, ...]`` lists).
    ``where`` names the polygon in the message (e.g. ``"polygons[3]"``).
    """
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("polygon points are not numbers", key=where) from None
    if arr.ndim == 1 and arr.size % 2 == 0:
        arr = arr.reshape(-1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"polygon must have shape (N, 2), got {arr.shape}", key=where)
    if not np.isfinite(arr).all():
        raise InputError("polygon has non-finite coordinates", key=where)
    return arr


def signed_area(poly: np.ndarray) -> float:
    """Shoelace area; positive when the points run clockwise on screen (y axis down)."""
    p = np.asarray(poly, dtype=np.float64)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    # Slicing instead of np.roll: this runs for every polygon of every training image.
    cross = np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]) + x[-1] * y[0] - x[0] * y[-1]
    return 0.5 * float(cross)


def polygon_area(poly: np.ndarray) -> float:
    """Absolute shoelace area (self-intersecting rings give the net, not the true, area)."""
    return abs(signed_area(poly))


def perimeter(poly: np.ndarray) -> float:
    """Length of the closed ring, closing edge included."""
    p = np.asarray(poly, dtype=np.float64)
    if len(p) < 2:
        return 0.0
    steps = np.diff(p, axis=0, append=p[:1])
    return float(np.sqrt((steps**2).sum(axis=1)).sum())


def offset_polygon(poly: np.ndarray, distance: float) -> list[np.ndarray]:
    """Offset a polygon by ``distance`` pixels with round joins (Vatti/pyclipper).

    Positive ``distance`` dilates, negative shrinks. Shrinking may split a concave polygon
    into several parts or make it vanish, hence the list (possibly empty). Only outer rings
    are returned (holes are dropped), largest first.
    """
    p = np.asarray(poly, dtype=np.float64)
    if len(p) < 3 or not np.isfinite(distance):
        return []
    if distance == 0:
        return [p.copy()]
    pco = pyclipper.PyclipperOffset(arc_tolerance=0.25 * CLIPPER_SCALE)
    path = np.round(p * CLIPPER_SCALE).astype(np.int64).tolist()
    pco.AddPath(path, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    try:
        solution = pco.Execute(float(distance) * CLIPPER_SCALE)
    except pyclipper.ClipperException:
        return []
    # Clipper returns holes (possible when dilating a bottle-shaped polygon) with the
    # opposite orientation; a text region's outline is its outer ring only.
    outers = [s for s in solution if len(s) >= 3 and pyclipper.Orientation(s)]
    parts = [np.asarray(s, dtype=np.float64) / CLIPPER_SCALE for s in outers]
    areas = [polygon_area(q) for q in parts]
    order = sorted(range(len(parts)), key=areas.__getitem__, reverse=True)
    return [parts[i] for i in order if areas[i] > 0]


def unclip(poly: np.ndarray, ratio: float) -> np.ndarray | None:
    """DBNet unclip: dilate by ``area * ratio / perimeter``; largest part or None.

    This undoes the training-time shrink (``area * (1 - r**2) / perimeter``) approximately;
    the ratio is a tunable postprocessing knob, not derived from the shrink ratio.
    """
    length = perimeter(poly)
    area = polygon_area(poly)
    if length <= 0 or area <= 0:
        return None
    parts = offset_polygon(poly, area * ratio / length)
    return parts[0] if parts else None


def clamp_to_image(poly: np.ndarray, width: float, height: float) -> np.ndarray:
    """Clamp every coordinate into ``[0, width] x [0, height]`` (shape may flatten)."""
    p = np.array(poly, dtype=np.float64, copy=True)
    np.clip(p[:, 0], 0.0, float(width), out=p[:, 0])
    np.clip(p[:, 1], 0.0, float(height), out=p[:, 1])
    return p


def clip_polygon_to_image(poly: np.ndarray, width: float, height: float) -> np.ndarray | None:
    """Intersect with the image rectangle ``[0, width] x [0, height]``.

    Unlike ``clamp_to_image`` this keeps the true shape of what lies inside. Returns the
    largest polygonal piece, or None when nothing with positive area is left.
    """
    shape = _to_shapely(poly)
    if shape is None:
        return None
    box = shapely.box(0.0, 0.0, float(width), float(height))
    return _largest_ring(shape.intersection(box))


def is_valid(poly: np.ndarray) -> bool:
    """True for a simple (non self-intersecting) ring with at least 3 points and area > 0."""
    p = np.asarray(poly, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3 or not np.isfinite(p).all():
        return False
    shape = _ShapelyPolygon(p)
    return bool(shape.is_valid) and shape.area > 0


def repair_polygon(poly: np.ndarray) -> np.ndarray | None:
    """Make an annotated polygon usable: fix self-intersections (bow-ties, spikes).

    Uses shapely ``make_valid`` and keeps the largest polygonal part's exterior ring, since a
    text region is one connected area. Returns None when nothing with positive area remains
    (fewer than 3 points, collinear points).
    """
    p = np.asarray(poly, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3 or not np.isfinite(p).all():
        return None
    shape = _ShapelyPolygon(p)
    if shape.is_valid:
        return p.copy() if shape.area > 0 else None
    return _largest_ring(shapely.make_valid(shape))


def min_side(poly: np.ndarray) -> float:
    """Short side of the minimum-area bounding rectangle: the "text height" of a region."""
    p = np.asarray(poly, dtype=np.float32)
    if len(p) < 2:
        return 0.0
    (_, _), (w, h), _ = cv2.minAreaRect(p.reshape(-1, 1, 2))
    return float(min(w, h))


def polygon_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two polygons, in [0, 1].

    Invalid rings are repaired first; degenerate ones count as empty (IoU 0).
    """
    sa, sb = _to_shapely(a), _to_shapely(b)
    if sa is None or sb is None:
        return 0.0
    inter = sa.intersection(sb).area
    union = sa.area + sb.area - inter
    if union <= 0:
        return 0.0
    return float(min(1.0, max(0.0, inter / union)))


def _to_shapely(poly: np.ndarray) -> BaseGeometry | None:
    """Shapely polygon for ``poly`` (repaired when invalid), or None when degenerate."""
    fixed = repair_polygon(poly)
    if fixed is None:
        return None
    return _ShapelyPolygon(fixed)


def _largest_ring(geom: BaseGeometry) -> np.ndarray | None:
    """Exterior ring (no closing point) of the largest polygon inside any geometry."""
    best: _ShapelyPolygon | None = None
    for part in shapely.get_parts(geom):
        if part.geom_type == "GeometryCollection" or part.geom_type == "MultiPolygon":
            candidate = _largest_ring(part)
            part = _ShapelyPolygon(candidate) if candidate is not None else None
        if part is None or part.geom_type != "Polygon" or part.is_empty:
            continue
        if best is None or part.area > best.area:
            best = part
    if best is None or best.area <= 0 or not math.isfinite(best.area):
        return None
    ring = np.asarray(best.exterior.coords, dtype=np.float64)[:-1]
    return ring if len(ring) >= 3 else None
