"""Word shape quantities of competition CLEval: aspect ratio, pseudo-character centres, containment.

Spec: shared/docs/cleval-detection.md sections 3-6. The aspect ratio comes from a rotating
calipers scan over the hull edges in Qhull's order, and ties are frequent (every edge of an
axis-aligned rectangle ties). Qhull's start vertex only matters when tied edges lead to
*different* final integers (pseudo-character count L, or false-positive cost), so strictly
convex quads are scanned in a vectorised pass over all words and only the genuinely ambiguous
ones (plus non-quads and degenerate shapes) are handed to ``scipy.spatial.ConvexHull``.
The per-edge arithmetic is shared by both paths, so they agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from ocrtune.metrics._polys import PolyBatch, axis_aligned_quads

__all__ = [
    "EPS",
    "char_count",
    "fp_cost",
    "gt_char_counts",
    "pred_fp_costs",
    "pccs_for_words",
    "points_in_polygons",
]

EPS = float(np.finfo(np.float32).eps)  # 2**-23, the reference's float32 epsilon used in double
_MAX = 100.0


def char_count(ar: np.ndarray) -> np.ndarray:
    """Pseudo-character count L of a GT word from its aspect ratio (spec section 5)."""
    ar = np.asarray(ar, dtype=np.float64)
    return np.minimum(np.round(0.5 + np.maximum(ar, 1.0 / (ar + EPS))), _MAX).astype(np.int64)


def fp_cost(ar: np.ndarray) -> np.ndarray:
    """Characters charged for an unmatched prediction (spec section 8)."""
    ar = np.asarray(ar, dtype=np.float64)
    return np.minimum(np.round(0.5 + 1.0 / (ar + EPS)), _MAX).astype(np.int64)


def _calipers(v32: np.ndarray) -> np.ndarray:
    """Aspect ratio ``h / (w + eps)`` (capped at 100) for every hull edge.

    ``v32``: (N, K, 2) float32 hull vertices, counter-clockwise. Returns (ar, area), each (N, K).
    Edge differences are float32, everything after is double, one IEEE operation at a time.
    """
    e = (np.roll(v32, -1, axis=1) - v32).astype(np.float64)
    dx, dy = e[..., 0], e[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):  # degenerate quads: checked by caller
        d = np.sqrt(dx * dx + dy * dy)
        ux, uy = (dx / d)[..., None], (dy / d)[..., None]
        v = v32.astype(np.float64)
        vx, vy = v[:, None, :, 0], v[:, None, :, 1]
        s = ux * vx + uy * vy
        t = (-uy) * vx + ux * vy
        len_u = s.max(axis=2) - s.min(axis=2)
        len_t = t.max(axis=2) - t.min(axis=2)
        ar = np.minimum(_MAX, len_t / (len_u + EPS))
        return np.stack([ar, len_u * len_t])


def _qhull_ar(p32: np.ndarray) -> float:
    """Aspect ratio exactly as the reference: Qhull's hull, first minimum-area edge wins."""
    try:
        hull = ConvexHull(p32)
    except (QhullError, ValueError):
        return 0.0
    ar, area = _calipers(p32[hull.vertices][None])
    return float(ar[0, int(np.argmin(area[0]))])


def _strictly_convex_ccw(p32: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (N, 4, 2) quads: which are clearly strictly convex, and those reordered CCW.

    "Clearly" leaves a wide margin over Qhull's roundoff so that Qhull is certain to keep all
    four vertices; anything closer to degenerate takes the exact Qhull path.
    """
    p = p32.astype(np.float64)
    e = np.roll(p, -1, axis=1) - p
    ep = np.roll(e, 1, axis=1)
    cross = ep[..., 0] * e[..., 1] - ep[..., 1] * e[..., 0]
    norm2 = (e * e).sum(axis=2)
    margin = 1e-7 * np.sqrt(norm2 * np.roll(norm2, 1, axis=1))
    pos = (cross > margin).all(axis=1)
    neg = (cross < -margin).all(axis=1)
    ccw = np.where(neg[:, None, None], p32[:, ::-1], p32)
    return pos | neg, ccw


def _rect_first_edge_ar(p32: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned rectangles (N, 4, 2): mask, and the ratio Qhull's first hull edge gives.

    All four edges of such a rectangle tie exactly, so Qhull's start vertex decides. For the
    eight simple vertex orders Qhull starts on a vertical edge exactly when the first two
    listed vertices are the two left corners (spec section 4 table; checked against Qhull on
    random rectangles in the tests).
    """
    rect, same_x = axis_aligned_quads(p32)
    p = p32.astype(np.float64)
    width = p[..., 0].max(axis=1) - p[..., 0].min(axis=1)
    height = p[..., 1].max(axis=1) - p[..., 1].min(axis=1)
    vertical = same_x[:, 0] & (p[:, 0, 0] == p[..., 0].min(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        ar = np.where(vertical, width / (height + EPS), height / (width + EPS))
    return rect, np.minimum(_MAX, ar)


def _ratio_integers(words: PolyBatch, to_int: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``to_int(aspect ratio)`` per word, calling Qhull only where its start vertex matters."""
    out = np.zeros(len(words), dtype=np.int64)
    if len(words) == 0:
        return out
    quad = words.n == 4
    slow = ~quad
    qi = np.flatnonzero(quad)
    if qi.size:
        p32 = words.pts[qi, :4].astype(np.float32)
        ok, ccw = _strictly_convex_ccw(p32)
        ar, area = _calipers(ccw)
        with np.errstate(invalid="ignore"):
            vals = to_int(np.where(ok[:, None], ar, 1.0))
        tied = area == area.min(axis=1, keepdims=True)
        hi = np.where(tied, vals, np.iinfo(np.int64).min).max(axis=1)
        lo = np.where(tied, vals, np.iinfo(np.int64).max).min(axis=1)
        rect, rect_ar = _rect_first_edge_ar(p32)
        hi = np.where(rect, to_int(np.where(rect, rect_ar, 1.0)), hi)
        sure = rect | (ok & (hi == lo))
        out[qi[sure]] = hi[sure]
        slow[qi[~sure]] = True
    for i in np.flatnonzero(slow).tolist():
        out[i] = to_int(np.array(_qhull_ar(words.poly(i).astype(np.float32))))
    return out


def gt_char_counts(words: PolyBatch) -> np.ndarray:
    """L for each GT word (integer points)."""
    return _ratio_integers(words, char_count)


def pred_fp_costs(words: PolyBatch) -> np.ndarray:
    """False-positive cost for each prediction (raw, untruncated points)."""
    return _ratio_integers(words, fp_cost)


def _dense_chain(chain: np.ndarray, n_char: int) -> np.ndarray:
    """Chain points with ``n_char - 1`` truncated steps inserted per segment, then its last point."""
    k = len(chain)
    out = []
    j = np.arange(1, n_char, dtype=np.float64)[:, None]
    for s in range(k - 1 if k > 1 else 0):
        x0 = chain[s]
        step = (chain[s + 1] - x0) / n_char
        out.append(x0[None])
        out.append(np.trunc(x0 + step * j))
    return out


def _pccs_general(p: np.ndarray, n_char: int) -> np.ndarray:
    """PCCs of one word with any vertex count (spec section 6)."""
    n = len(p)
    k = n // 2
    top = p[:k]
    bottom = p[::-1][: n - k]
    tops = _dense_chain(top, n_char) + [top[-1][None]]
    # The bottom chain walks only its first k points, then jumps to its last (p_k for odd n).
    bots = _dense_chain(bottom[:k], n_char) + [bottom[-1][None]]
    tp = np.concatenate(tops)
    bp = np.concatenate(bots)
    sigma = k - 1
    a = np.arange(n_char) * sigma
    b = a + sigma
    return (tp[a] + tp[b] + bp[a] + bp[b]) / 4.0


def _pccs_quads(p: np.ndarray, n_char: np.ndarray) -> np.ndarray:
    """PCCs of many quads at once: top chain p0->p1, bottom chain p3->p2."""
    word = np.repeat(np.arange(len(p)), n_char)
    start = np.cumsum(n_char) - n_char
    c = (np.arange(len(word)) - start[word]).astype(np.float64)[:, None]
    nc = n_char[word].astype(np.float64)[:, None]

    def dense(x0: np.ndarray, x1: np.ndarray, j: np.ndarray, last: np.ndarray) -> np.ndarray:
        step = (x1 - x0) / nc
        val = np.trunc(x0 + step * j)
        val = np.where(j == 0, x0, val)
        return np.where(last, x1, val)

    t0, t1 = p[word, 0], p[word, 1]
    b0, b1 = p[word, 3], p[word, 2]
    is_last = (c + 1) == nc
    no = np.zeros_like(is_last)
    ta, tb = dense(t0, t1, c, no), dense(t0, t1, c + 1, is_last)
    ba, bb = dense(b0, b1, c, no), dense(b0, b1, c + 1, is_last)
    return (ta + tb + ba + bb) / 4.0


def pccs_for_words(words: PolyBatch, n_char: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All PCCs of an image: (M, 2) centres, and the (G + 1) offsets of each word's block."""
    offsets = np.concatenate([[0], np.cumsum(n_char)]).astype(np.int64)
    out = np.empty((int(offsets[-1]), 2), dtype=np.float64)
    if len(words) == 0:
        return out, offsets
    quad = words.n == 4
    if quad.all():
        return _pccs_quads(words.pts[:, :4], n_char), offsets
    qi = np.flatnonzero(quad)
    if qi.size:
        rows = np.repeat(quad, n_char)
        out[rows] = _pccs_quads(words.pts[qi, :4], n_char[qi])
    for i in np.flatnonzero(~quad).tolist():
        out[offsets[i] : offsets[i + 1]] = _pccs_general(words.poly(i), int(n_char[i]))
    return out, offsets


def points_in_polygons(pts: np.ndarray, polys: np.ndarray) -> np.ndarray:
    """Crossing test of point k against polygon k (spec section 3), vectorised.

    ``pts``: (P, 2); ``polys``: (P, K, 2) padded by repeating the last vertex (zero-length
    edges never flip the flag). Left/top edges count as inside, right/bottom as outside.
    """
    if len(pts) == 0:
        return np.zeros(0, dtype=bool)
    x, y = pts[:, 0:1], pts[:, 1:2]
    ax, ay = polys[..., 0], polys[..., 1]
    bx, by = np.roll(ax, 1, axis=1), np.roll(ay, 1, axis=1)
    straddle = ((ay <= y) & (y < by)) | ((by <= y) & (y < ay))
    with np.errstate(divide="ignore", invalid="ignore"):
        cut = (bx - ax) * (y - ay) / (by - ay) + ax
    flips = straddle & (x < cut)
    return (flips.sum(axis=1) % 2).astype(bool)
