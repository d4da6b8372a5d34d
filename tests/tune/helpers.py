"""Small probability maps with known words, and caches of them, for the tuning tests (no model)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from ocrtune.geometry import offset_polygon, perimeter, polygon_area
from ocrtune.tune.cache import CacheWriter, MapsCache


def words(seed: int, size: tuple[int, int] = (240, 320)) -> list[np.ndarray]:
    """Word boxes on lines, some rotated a little, in original-image pixels."""
    rng = np.random.default_rng(seed)
    h, w = size
    out: list[np.ndarray] = []
    y = 12.0
    while y < h - 30:
        x, height = rng.uniform(8, 20), rng.uniform(9, 16)
        angle = math.radians(rng.uniform(-4, 4)) if rng.random() < 0.3 else 0.0
        while True:
            width = rng.uniform(20, 70)
            if x + width > w - 8:
                break
            box = np.array([[0, 0], [width, 0], [width, height], [0, height]], float)
            c, s = math.cos(angle), math.sin(angle)
            out.append(box @ np.array([[c, s], [-s, c]]) + (x, y))
            x += width + rng.uniform(6, 20)
        y += height + rng.uniform(6, 14)
    return out


def model_map(polys: list[np.ndarray], shape: tuple[int, int], seed: int, scale: float = 1.0) -> np.ndarray:
    """What a trained DBNet roughly emits at ``scale``: shrunk kernels with per-word
    confidence, blurred, with noise (so thresholds and box thresholds matter)."""
    rng = np.random.default_rng(seed)
    prob = np.zeros(shape, np.float32)
    for poly in polys:
        p = poly * scale
        d = polygon_area(p) * (1 - 0.4**2) / perimeter(p)
        parts = offset_polygon(p, -d)
        if parts:
            cv2.fillPoly(prob, [np.round(parts[0] * 16).astype(np.int32)], float(rng.uniform(0.35, 1.0)), shift=4)
    prob = cv2.GaussianBlur(prob, (5, 5), 0) + rng.normal(0, 0.06, shape).astype(np.float32)
    return np.clip(prob, 0, 1)


def dont_care(gt: list[np.ndarray]) -> list[bool]:
    """Every seventh word flagged don't-care (``###``), so the IoU's don't-care rule is exercised."""
    return [i % 7 == 3 for i in range(len(gt))]


def synthetic_cache(path: Path, n: int = 6, scale: float = 0.75) -> MapsCache:
    """``n`` images of 240 x 320 px whose maps are at ``scale`` (a padded square, as the loader makes)."""
    side = int(math.ceil(320 * scale / 32) * 32)
    with CacheWriter(path) as w:
        for i in range(n):
            gt = words(i)
            w.add(f"img{i}.jpg", model_map(gt, (side, side), seed=100 + i, scale=scale), (scale, scale), (240, 320), gt,
                  dont_care(gt))
        return w.finish({})
