"""DB (Differentiable Binarization) training targets, built in data-loader workers.

For each text polygon (DBNet, Liao et al. 2020):

* probability map: the polygon shrunk by ``D = A * (1 - r**2) / L`` is filled with 1;
* probability mask: 1 everywhere except over "don't care" regions (flagged ignore, text
  shorter than ``min_text_size``, or polygons too degenerate to shrink: ``D < 1`` px or an
  empty shrink), where it is 0;
* threshold map: within the polygon dilated by ``D``, ``1 - clip(dist_to_edge / D, 0, 1)``,
  max-merged over polygons, then rescaled to ``[thresh_min, thresh_max]``;
* threshold mask: 1 inside the dilated polygons.

Everything runs once per training image, so the distance field is computed only inside each
dilated polygon's bounding box, for all pixels and edges at once with numpy broadcasting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ocrtune.errors import InputError
from ocrtune.geometry import (
    as_polygon,
    min_side,
    offset_polygon,
    perimeter,
    polygon_area,
    repair_polygon,
)

__all__ = [
    "DBTargets",
    "build_db_targets",
    "distance_to_edges",
    "fill_polygons",
    "shrink_distance",
]

# Broadcast at most this many (edge, pixel) pairs at once; bounds peak memory per chunk.
_MAX_PAIRS = 1 << 22
# Below this shrink offset (px) the kernel is thinner than cv2.fillPoly's rasterisation
# error (it always draws edge pixels), so it could spill outside the polygon: don't care.
_MIN_SHRINK_PX = 1.0
# Sub-pixel bits for cv2.fillPoly, so shrunk/dilated outlines are not snapped to pixels.
_FILL_SHIFT = 4


@dataclass(frozen=True)
class DBTargets:
    """The four H x W float32 maps the DB loss consumes, plus which polygons were ignored."""

    prob_map: np.ndarray
    prob_mask: np.ndarray
    thresh_map: np.ndarray
    thresh_mask: np.ndarray
    ignored: np.ndarray  # bool per input polygon: flagged, tiny or degenerate

    def as_dict(self) -> dict[str, np.ndarray]:
        """Maps only, keyed by name (what a collate function stacks)."""
        return {
            "prob_map": self.prob_map,
            "prob_mask": self.prob_mask,
            "thresh_map": self.thresh_map,
            "thresh_mask": self.thresh_mask,
        }


def shrink_distance(poly: np.ndarray, shrink_ratio: float) -> float:
    """DBNet offset ``A * (1 - r**2) / L``; 0 for degenerate polygons."""
    length = perimeter(poly)
    if length <= 0:
        return 0.0
    return polygon_area(poly) * (1.0 - shrink_ratio**2) / length


def fill_polygons(canvas: np.ndarray, polys: Sequence[np.ndarray], value: float) -> None:
    """Rasterise polygons into ``canvas`` in place, with sub-pixel vertex precision."""
    if not polys:
        return
    scale = float(1 << _FILL_SHIFT)
    pts = [np.round(np.asarray(p, dtype=np.float64) * scale).astype(np.int32) for p in polys]
    cv2.fillPoly(canvas, pts, value, lineType=cv2.LINE_8, shift=_FILL_SHIFT)


def build_db_targets(
    polygons: Sequence[np.ndarray],
    ignore: Sequence[bool] | None,
    shape: tuple[int, int],
    *,
    shrink_ratio: float = 0.4,
    thresh_min: float = 0.3,
    thresh_max: float = 0.7,
    min_text_size: float = 8.0,
) -> DBTargets:
    """Build DB targets for one image of size ``shape = (H, W)``.

    ``polygons`` are in the pixel coordinates of that (already resized/padded) image and may
    stick out of it. ``ignore`` flags don't-care regions (None: none flagged). Polygons with
    fewer than 3 points, no area, a shrink offset under 1 px, or a short side below
    ``min_text_size`` are ignored too, never an error; self-intersecting ones are repaired
    (``geometry.repair_polygon``). Malformed arrays (not ``(N, 2)``, non-finite) raise
    ``InputError``.
    """
    height, width = _check_args(polygons, ignore, shape, shrink_ratio, thresh_min, thresh_max)
    flags = [False] * len(polygons) if ignore is None else [bool(f) for f in ignore]

    prob_map = np.zeros((height, width), dtype=np.float32)
    prob_mask = np.ones((height, width), dtype=np.float32)
    border = np.zeros((height, width), dtype=np.float32)
    thresh_mask = np.zeros((height, width), dtype=np.float32)
    ignored = np.zeros(len(polygons), dtype=bool)

    for i, raw in enumerate(polygons):
        raw_poly = as_polygon(raw, where=f"polygons[{i}]")
        # Self-intersecting annotations (bow-ties) become their largest simple part.
        poly = None if flags[i] else repair_polygon(raw_poly)
        distance = shrink_distance(poly, shrink_ratio) if poly is not None else 0.0
        shrunk: list[np.ndarray] = []
        if poly is not None and distance >= _MIN_SHRINK_PX and min_side(poly) >= min_text_size:
            shrunk = offset_polygon(poly, -distance)
        if poly is None or not shrunk:
            ignored[i] = True
            if len(raw_poly):
                fill_polygons(prob_mask, [raw_poly], 0.0)
            continue
        fill_polygons(prob_map, shrunk, 1.0)
        _draw_border(poly, distance, border, thresh_mask)

    thresh_map = (thresh_min + (thresh_max - thresh_min) * border).astype(np.float32)
    return DBTargets(prob_map, prob_mask, thresh_map, thresh_mask, ignored)


def _draw_border(
    poly: np.ndarray, distance: float, border: np.ndarray, thresh_mask: np.ndarray
) -> None:
    """Max-merge ``1 - clip(d / distance, 0, 1)`` over the dilated polygon into ``border``."""
    dilated = offset_polygon(poly, distance)
    if not dilated:
        return
    outline = dilated[0]
    height, width = border.shape
    x0 = max(int(np.floor(outline[:, 0].min())), 0)
    y0 = max(int(np.floor(outline[:, 1].min())), 0)
    x1 = min(int(np.ceil(outline[:, 0].max())), width - 1)
    y1 = min(int(np.ceil(outline[:, 1].max())), height - 1)
    if x1 < x0 or y1 < y0:
        return  # entirely outside the image

    inside = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    fill_polygons(inside, [outline - (x0, y0)], 1)
    dist = distance_to_edges(poly, np.arange(x0, x1 + 1), np.arange(y0, y1 + 1))
    value = (1.0 - np.clip(dist / distance, 0.0, 1.0)).astype(np.float32)
    value *= inside

    box = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    np.maximum(border[box], value, out=border[box])
    np.maximum(thresh_mask[box], inside, out=thresh_mask[box])


def distance_to_edges(poly: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Distance from every grid point ``(xs[j], ys[i])`` to the polygon outline.

    Returns a ``(len(ys), len(xs))`` array: the minimum over edges of the point-to-segment
    distance, broadcast as (edges, rows, cols) in chunks of edges to bound memory.
    """
    start = np.asarray(poly, dtype=np.float64)
    delta = np.concatenate((start[1:], start[:1])) - start
    length2 = (delta**2).sum(axis=1)
    safe = np.where(length2 > 0, length2, 1.0)

    # Pixel offsets from each edge start: (E, 1, W) and (E, H, 1); only the products
    # below are full (E, H, W) arrays, computed in place where possible.
    rel_x = np.asarray(xs, dtype=np.float64)[None, None, :] - start[:, 0, None, None]
    rel_y = np.asarray(ys, dtype=np.float64)[None, :, None] - start[:, 1, None, None]
    dx, dy = delta[:, 0, None, None], delta[:, 1, None, None]
    proj_x, proj_y = rel_x * (dx / safe[:, None, None]), rel_y * (dy / safe[:, None, None])

    pixels = max(rel_x.shape[2] * rel_y.shape[1], 1)
    chunk = max(1, _MAX_PAIRS // pixels)
    best = np.full((rel_y.shape[1], rel_x.shape[2]), np.inf)
    for k in range(0, len(start), chunk):
        e = slice(k, k + chunk)
        # Projection parameter of each pixel onto each edge, clamped to the segment.
        t = proj_x[e] + proj_y[e]
        np.clip(t, 0.0, 1.0, out=t)
        ex = rel_x[e] - t * dx[e]
        t *= dy[e]
        np.subtract(rel_y[e], t, out=t)
        ex *= ex
        t *= t
        ex += t
        np.minimum(best, ex.min(axis=0), out=best)
    return np.sqrt(best)


def _check_args(
    polygons: Sequence[np.ndarray],
    ignore: Sequence[bool] | None,
    shape: tuple[int, int],
    shrink_ratio: float,
    thresh_min: float,
    thresh_max: float,
) -> tuple[int, int]:
    """Validate the call; returns ``(H, W)``."""
    if len(shape) != 2 or int(shape[0]) <= 0 or int(shape[1]) <= 0:
        raise InputError(f"image shape must be (H, W) with positive sides, got {shape}")
    if ignore is not None and len(ignore) != len(polygons):
        raise InputError(
            f"got {len(ignore)} ignore flags for {len(polygons)} polygons", key="ignore"
        )
    if not 0.0 < shrink_ratio <= 1.0:
        raise InputError(f"must be in (0, 1], got {shrink_ratio}", key="shrink_ratio")
    if not 0.0 <= thresh_min < thresh_max <= 1.0:
        raise InputError(
            f"need 0 <= thresh_min < thresh_max <= 1, got {thresh_min} and {thresh_max}",
            key="thresh_min",
        )
    return int(shape[0]), int(shape[1])
