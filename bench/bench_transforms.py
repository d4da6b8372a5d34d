"""Per-image cost of training augmentation against the bare resize/pad/normalise path.

Run: ``.venv/bin/python bench/bench_transforms.py [--images N] [--size S] [--words W]``

A receipt-like page (1200 x 1600, W word boxes) goes through ``Augment`` (default preset
settings, hflip 0.5 so the flip is timed too), then ``resize_and_pad`` and ``normalize``; the
reference is ``resize_and_pad`` + ``normalize`` alone. Prints ms/image and the ratio: the
augmentation overhead a loader worker pays.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ocrtune.data.transforms import Augment, normalize, resize_and_pad
from ocrtune.presets.schema import AugmentConfig


def page(rng: np.random.Generator, n_words: int) -> tuple[np.ndarray, list[np.ndarray]]:
    image = np.full((1600, 1200, 3), 235, np.uint8)
    polys = []
    y = 40.0
    while len(polys) < n_words and y < 1550:
        x = 40.0
        while x < 1100 and len(polys) < n_words:
            w = rng.uniform(40, 200)
            polys.append(np.array([[x, y], [x + w, y], [x + w, y + 24], [x, y + 24]]))
            image[int(y) : int(y) + 24, int(x) : int(x + w)] = 30
            x += w + rng.uniform(15, 40)
        y += 36
    return image, polys


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=30)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--words", type=int, default=150)
    a = ap.parse_args()
    image, polys = page(np.random.default_rng(0), a.words)
    aug = Augment(AugmentConfig(hflip=0.5), np.random.default_rng(1))

    t0 = time.perf_counter()
    for _ in range(a.images):
        normalize(resize_and_pad(image, polys, a.size)[0])
    t_ref = (time.perf_counter() - t0) / a.images * 1000

    t0 = time.perf_counter()
    for _ in range(a.images):
        res = aug(image, polys)
        normalize(resize_and_pad(res.image, res.polygons, a.size)[0])
    t_aug = (time.perf_counter() - t0) / a.images * 1000

    print(f"{a.images} pages 1200x1600, {len(polys)} words -> {a.size}x{a.size}")
    print(f"resize_and_pad + normalize          : {t_ref:7.2f} ms/image")
    print(f"Augment + resize_and_pad + normalize: {t_aug:7.2f} ms/image   ratio {t_aug / t_ref:.2f}")


if __name__ == "__main__":
    main()
