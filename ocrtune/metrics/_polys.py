"""Polygon batches shared by the detection metrics.

Metrics receive raw word lists (nested lists from JSON, or numpy arrays from the training loop),
possibly ragged. Converting them once into a padded ``(N, K, 2)`` array lets every later step
(bounding boxes, shoelace areas, point-in-polygon tests) run vectorised over all words. Padding
repeats the last vertex: the extra edges have zero length, so they change neither the shoelace
sum nor the crossing-number test.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.errors

from ocrtune.errors import InputError, Problem
from ocrtune.metrics._clip import clip_convex_areas, convex_ccw

__all__ = [
    "PolyBatch",
    "located",
    "to_batch",
    "pair_intersection_areas",
]


def located(name: str, err: InputError) -> InputError:
    """The same problems, with the image name prefixed to each key."""
    return InputError(
        problems=[
            Problem(p.message, p.file, p.line, p.column, f"{name}: {p.key}" if p.key else name)
            for p in err.problems
        ]
    )


def _check_points(arr: np.ndarray, key: str) -> np.ndarray:
    """Reject what no metric can interpret; empty polygons are legal (they are dropped later)."""
    if arr.size == 0:
        return np.zeros((0, 2), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise InputError(f"expected a list of [x, y] points, got shape {arr.shape}", key=key)
    if not np.isfinite(arr).all():
        raise InputError("polygon has a non-finite coordinate", key=key)
    return arr


def to_batch(polys: object, what: str = "polygons") -> PolyBatch:
    """One image's raw words (point lists, arrays, or an (N, K, 2) array) as a padded batch.

    Uniform inputs (the usual case) convert in one numpy call; ragged ones word by word.
    Empty words stay, with ``n == 0``: the metric decides what to drop.
    """
    if polys is None:
        return PolyBatch.empty()
    arr: np.ndarray | None = None
    if isinstance(polys, np.ndarray) and polys.dtype != object:
        arr = polys.astype(np.float64, copy=False)
        if arr.ndim == 3 and arr.shape[1] == 0:
            return PolyBatch(np.zeros((arr.shape[0], 4, 2)), np.zeros(arr.shape[0], dtype=np.int64))
        if arr.ndim != 3 or arr.shape[2] != 2:
            raise InputError(f"expected an (N, K, 2) array, got shape {arr.shape}", key=what)
    elif isinstance(polys, (Sequence, np.ndarray)) and not isinstance(polys, (str, bytes)):
        if len(polys) == 0:
            return PolyBatch.empty()
        try:
            arr = np.asarray(polys, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is not None and (arr.ndim != 3 or arr.shape[2] != 2 or arr.shape[1] == 0):
            arr = None
    else:
        raise InputError(f"expected a list of polygons, got {type(polys).__name__}", key=what)
    if arr is None:
        words = []
        for i, poly in enumerate(polys):  # type: ignore[arg-type]
            try:
                item = np.asarray(poly, dtype=np.float64)
            except (TypeError, ValueError):
                raise InputError("polygon is not a list of [x, y] numbers", key=f"{what}[{i}]") from None
            words.append(_check_points(item, f"{what}[{i}]"))
        return PolyBatch.from_arrays(words)
    if not np.isfinite(arr).all():
        raise InputError("polygon has a non-finite coordinate", key=what)
    return PolyBatch(arr, np.full(arr.shape[0], arr.shape[1], dtype=np.int64))


def axis_aligned_quads(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4, 2) quads -> (mask of axis-aligned rectangles, per-edge "edge i is vertical").

    A rectangle here has every edge horizontal xor vertical (so none is empty), alternating
    around the ring.
    """
    q = np.roll(p, -1, axis=1)
    same_x = p[..., 0] == q[..., 0]
    same_y = p[..., 1] == q[..., 1]
    mask = (
        (same_x ^ same_y).all(axis=1)
        & (same_x[:, 0] != same_x[:, 1])
        & (same_x[:, 0] == same_x[:, 2])
        & (same_x[:, 1] == same_x[:, 3])
    )
    return mask, same_x


@dataclass(frozen=True)
class PolyBatch:
    """Polygons padded to a common vertex count; ``n`` keeps the real counts."""

    pts: np.ndarray  # (N, K, 2) float64
    n: np.ndarray  # (N,) int

    @classmethod
    def empty(cls) -> PolyBatch:
        return cls(np.zeros((0, 4, 2)), np.zeros(0, dtype=np.int64))

    @classmethod
    def from_arrays(cls, arrays: Sequence[np.ndarray]) -> PolyBatch:
        if not arrays:
            return cls.empty()
        n = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
        k = max(int(n.max()), 1)
        if int(n.min()) == k:
            return cls(np.stack(arrays).astype(np.float64, copy=False), n)
        pts = np.zeros((len(arrays), k, 2), dtype=np.float64)
        for i, a in enumerate(arrays):
            m = len(a)
            if m:
                pts[i, :m] = a
                pts[i, m:] = a[m - 1]
        return cls(pts, n)

    def take(self, idx: np.ndarray | slice) -> PolyBatch:
        """Sub-batch, trimmed to the widest remaining word."""
        n = self.n[idx]
        k = max(int(n.max()), 1) if len(n) else self.pts.shape[1]
        return PolyBatch(self.pts[idx][:, :k], n)

    def with_points(self, pts: np.ndarray) -> PolyBatch:
        """Same words with transformed coordinates (rounded, truncated)."""
        return PolyBatch(pts, self.n)

    def __len__(self) -> int:
        return len(self.n)

    def poly(self, i: int) -> np.ndarray:
        return self.pts[i, : self.n[i]]

    def bboxes(self) -> np.ndarray:
        """(N, 4) as x0, y0, x1, y1 (padding repeats real vertices, so it is harmless)."""
        if len(self) == 0:
            return np.zeros((0, 4))
        lo = self.pts.min(axis=1)
        hi = self.pts.max(axis=1)
        return np.concatenate([lo, hi], axis=1)

    def shoelace(self) -> np.ndarray:
        """Net signed area (positive counter-clockwise in x-right/y-up axes)."""
        if len(self) == 0:
            return np.zeros(0)
        x, y = self.pts[..., 0], self.pts[..., 1]
        xn, yn = np.roll(x, -1, axis=1), np.roll(y, -1, axis=1)
        return (x * yn - xn * y).sum(axis=1) / 2.0

    def axis_rects(self) -> np.ndarray:
        """True where a word is a simple 4-vertex axis-aligned rectangle of positive area.

        Such pairs get an exact closed-form intersection (see ``pair_intersection_areas``).
        """
        if len(self) == 0 or self.pts.shape[1] < 4:
            return np.zeros(len(self), dtype=bool)
        alt, _ = axis_aligned_quads(self.pts[:, :4])
        return (self.n == 4) & alt

    def convex_quads(self) -> tuple[np.ndarray, np.ndarray]:
        """Mask of strictly convex 4-vertex words, and (N, 4, 2) counter-clockwise vertices."""
        if len(self) == 0 or self.pts.shape[1] < 4:
            return np.zeros(len(self), dtype=bool), np.zeros((len(self), 4, 2))
        ok, ccw = convex_ccw(self.pts[:, :4])
        return ok & (self.n == 4), ccw

    def geometries(self, idx: np.ndarray) -> np.ndarray:
        """Shapely polygons for the words in ``idx``, repaired when invalid.

        Repair uses ``make_valid`` (linework method): a self-intersecting ring is read with the
        even-odd rule, like the GPC clipper of the reference evaluator.
        """
        idx = np.asarray(idx, dtype=np.int64)
        geoms = np.empty(len(idx), dtype=object)
        ring = self.n[idx] >= 3  # fewer points cannot bound an area
        geoms[~ring] = shapely.Polygon()
        use = idx[ring]
        if use.size:
            n = self.n[use]
            coords = np.concatenate([self.pts[i, :m] for i, m in zip(use.tolist(), n.tolist())])
            try:
                rings = shapely.linearrings(coords, indices=np.repeat(np.arange(len(use)), n))
                polys = shapely.polygons(rings)
            except (shapely.errors.GEOSException, ValueError):  # e.g. 3 points, closed
                rows = zip(use.tolist(), n.tolist())
                polys = np.array([_one_polygon(self.pts[i, :m]) for i, m in rows])
            bad = np.flatnonzero(~shapely.is_valid(polys))
            for i in bad.tolist():
                polys[i] = _polygonal(shapely.make_valid(polys[i]))
            geoms[ring] = polys
        return geoms


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Only the areal part of a repaired geometry (GEOS overlay rejects mixed collections)."""
    if shapely.get_type_id(geom) in (3, 6):  # Polygon, MultiPolygon
        return geom
    polys: list[shapely.Polygon] = []
    for part in shapely.get_parts(geom):
        if shapely.get_type_id(part) == 3:
            polys.append(part)
        elif shapely.get_type_id(part) == 6:
            polys.extend(shapely.get_parts(part))
    return shapely.MultiPolygon(polys) if polys else shapely.Polygon()


def _intersection_area(ga: shapely.Geometry, gb: shapely.Geometry) -> float:
    """One pair, retrying on a buffer(0)-cleaned copy when GEOS gives up on the first try."""
    try:
        return float(shapely.area(shapely.intersection(ga, gb)))
    except shapely.errors.GEOSException:
        return float(shapely.area(shapely.intersection(ga.buffer(0), gb.buffer(0))))


def _one_polygon(pts: np.ndarray) -> shapely.Polygon:
    try:
        return shapely.Polygon(pts)
    except (shapely.errors.GEOSException, ValueError):
        return shapely.Polygon()


def pair_intersection_areas(
    a: PolyBatch, ia: np.ndarray, b: PolyBatch, ib: np.ndarray
) -> np.ndarray:
    """Area of ``a[ia[k]] ∩ b[ib[k]]`` for every pair k.

    Pairs of axis-aligned rectangles are computed in closed form (exact on integer
    coordinates); pairs of strictly convex quads by vectorised clipping; the rest (other
    vertex counts, concave or self-intersecting words) by shapely in one vectorised call.
    """
    out = np.zeros(len(ia), dtype=np.float64)
    if len(ia) == 0:
        return out
    fast = a.axis_rects()[ia] & b.axis_rects()[ib]
    if fast.any():
        ba, bb = a.bboxes()[ia[fast]], b.bboxes()[ib[fast]]
        w = np.minimum(ba[:, 2], bb[:, 2]) - np.maximum(ba[:, 0], bb[:, 0])
        h = np.minimum(ba[:, 3], bb[:, 3]) - np.maximum(ba[:, 1], bb[:, 1])
        out[fast] = np.clip(w, 0, None) * np.clip(h, 0, None)
    convex_a, ccw_a = a.convex_quads()
    convex_b, ccw_b = b.convex_quads()
    clip = ~fast & convex_a[ia] & convex_b[ib]
    if clip.any():
        out[clip] = clip_convex_areas(ccw_a[ia[clip]], ccw_b[ib[clip]])
    slow = np.flatnonzero(~fast & ~clip)
    if slow.size:
        ua, inv_a = np.unique(ia[slow], return_inverse=True)
        ub, inv_b = np.unique(ib[slow], return_inverse=True)
        ga, gb = a.geometries(ua)[inv_a], b.geometries(ub)[inv_b]
        live = ~(shapely.is_empty(ga) | shapely.is_empty(gb))
        ga, gb, rows = ga[live], gb[live], slow[live]
        try:
            out[rows] = shapely.area(shapely.intersection(ga, gb))
        except shapely.errors.GEOSException:
            out[rows] = [_intersection_area(x, y) for x, y in zip(ga, gb)]
    return out
