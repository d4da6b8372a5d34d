"""Bench: vectorised DB targets vs a per-pixel Python reference, same process.

Scene: a 1024 x 1024 receipt with 150 word boxes on text lines (some quads rotated a few
degrees, a few flagged ignore, one tiny). The reference is the straightforward algorithm: for
every polygon, loop in Python over the pixels of its dilated polygon and compute the distance
to each edge. It shares the rasterisation (pyclipper offsets + cv2.fillPoly) with the fast
path, so pixel membership is identical and the comparison measures the distance field.

Goal: >= 10x faster, max |difference| <= 0.02 on every map.
Run: .venv/bin/python bench/bench_targets.py
"""

from __future__ import annotations

import math
import time

import numpy as np

from ocrtune.data.targets import build_db_targets, fill_polygons, shrink_distance
from ocrtune.geometry import min_side, offset_polygon

SIZE = 1024
WORDS = 150


def receipt_words(seed: int = 0) -> tuple[list[np.ndarray], list[bool]]:
    """150 word quads laid out on lines, like a scanned receipt."""
    rng = np.random.default_rng(seed)
    polys: list[np.ndarray] = []
    y = 40.0
    while len(polys) < WORDS:
        height = rng.uniform(14, 26)
        angle = math.radians(rng.uniform(-3, 3)) if rng.random() < 0.3 else 0.0
        x = rng.uniform(30, 80)
        while len(polys) < WORDS:
            width = rng.uniform(30, 150)
            if x + width > SIZE - 30:
                break
            corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], float)
            c, s = math.cos(angle), math.sin(angle)
            corners = corners @ np.array([[c, s], [-s, c]]) + (x, y)
            polys.append(corners)
            x += width + rng.uniform(10, 40)
        y += height + rng.uniform(12, 30)
    polys[7] = polys[7][0] + np.array([[0, 0], [5, 0], [5, 5], [0, 5]])
    ignore = [bool(rng.random() < 0.05) for _ in polys]
    return polys, ignore


def reference(
    polys: list[np.ndarray], ignore: list[bool], shape: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Per-polygon, per-pixel Python implementation of the DB targets."""
    h, w = shape
    prob_map = np.zeros(shape, np.float32)
    prob_mask = np.ones(shape, np.float32)
    border = np.zeros(shape, np.float32)
    thresh_mask = np.zeros(shape, np.float32)
    for poly, flag in zip(polys, ignore):
        d = shrink_distance(poly, 0.4)
        shrunk = offset_polygon(poly, -d) if (not flag and d > 0 and min_side(poly) >= 8) else []
        if not shrunk:
            fill_polygons(prob_mask, [poly], 0.0)
            continue
        fill_polygons(prob_map, shrunk, 1.0)
        dilated = offset_polygon(poly, d)[0]
        inside = np.zeros(shape, np.uint8)
        fill_polygons(inside, [dilated], 1)
        ys, xs = np.nonzero(inside)
        edges = [(poly[i], poly[(i + 1) % len(poly)]) for i in range(len(poly))]
        for py, px in zip(ys.tolist(), xs.tolist()):
            best = math.inf
            for (ax, ay), (bx, by) in edges:
                dx, dy = bx - ax, by - ay
                l2 = dx * dx + dy * dy
                t = 0.0 if l2 == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / l2))
                best = min(best, math.hypot(px - ax - t * dx, py - ay - t * dy))
            value = 1.0 - min(best / d, 1.0)
            border[py, px] = max(border[py, px], value)
            thresh_mask[py, px] = 1.0
    thresh_map = (0.3 + 0.4 * border).astype(np.float32)
    return {
        "prob_map": prob_map,
        "prob_mask": prob_mask,
        "thresh_map": thresh_map,
        "thresh_mask": thresh_mask,
    }


def main() -> None:
    polys, ignore = receipt_words()
    shape = (SIZE, SIZE)
    build_db_targets(polys, ignore, shape)  # warm-up

    runs = 20
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fast = build_db_targets(polys, ignore, shape)
        times.append(time.perf_counter() - start)
    fast_s = float(np.median(times))

    start = time.perf_counter()
    ref = reference(polys, ignore, shape)
    ref_s = time.perf_counter() - start

    print(f"scene: {SIZE}x{SIZE}, {len(polys)} polygons, {int(fast.ignored.sum())} ignored")
    best_ms = min(times) * 1e3
    print(f"vectorised: {fast_s * 1e3:8.2f} ms/image (median of {runs}, best {best_ms:.2f})")
    print(f"reference : {ref_s * 1e3:8.2f} ms/image (1 run, full polygon set)")
    print(f"speedup   : {ref_s / fast_s:8.1f}x (goal >= 10x)")
    worst = 0.0
    for name, ref_map in ref.items():
        diff = float(np.abs(fast.as_dict()[name] - ref_map).max())
        worst = max(worst, diff)
        print(f"max |diff| {name:11s}: {diff:.2e}")
    print(f"result    : {'PASS' if ref_s / fast_s >= 10 and worst <= 0.02 else 'FAIL'}")


if __name__ == "__main__":
    main()
