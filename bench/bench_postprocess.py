"""Bench: DB postprocessing speed on a 1024 x 1024 map with 150 word blobs.

The map is what a trained model roughly emits: the shrunk word boxes of a receipt
(``bench_targets.receipt_words``), lightly blurred, scaled per word by a confidence in
[0.8, 1], plus noise. Also runs a "cut in contour order" variant (first ``max_candidates``
contours, as several public tools do) to show what that cut loses when ``max_candidates``
is below the number of regions.

Goal: <= 10 ms per map (box mode).
Run: .venv/bin/python bench/bench_postprocess.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_targets import SIZE, receipt_words  # noqa: E402

from ocrtune.data.targets import build_db_targets  # noqa: E402
from ocrtune.model.postprocess import DBPostProcessor  # noqa: E402


def synth_map(seed: int = 0) -> tuple[np.ndarray, int]:
    polys, _ = receipt_words(seed)
    targets = build_db_targets(polys, None, (SIZE, SIZE))
    rng = np.random.default_rng(seed)
    prob = cv2.GaussianBlur(targets.prob_map, (3, 3), 0)
    # Per-word confidence spread, so scores differ and the top-k choice matters.
    n, labels = cv2.connectedComponents((targets.prob_map > 0).astype(np.uint8))
    conf = rng.uniform(0.8, 1.0, size=n).astype(np.float32)
    conf[0] = 1.0
    prob = prob * conf[cv2.dilate(labels.astype(np.uint16), np.ones((9, 9), np.uint8))]
    prob += rng.normal(0.0, 0.03, prob.shape).astype(np.float32)
    return np.clip(prob, 0.0, 1.0).astype(np.float32), n - 1


def contour_order_cut(post: DBPostProcessor, prob: np.ndarray, k: int) -> list[float]:
    """Scores kept by a postprocessor that stops after the first ``k`` contours."""
    bitmap = (prob > post.thresh).astype(np.uint8)
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    scores = []
    for contour in contours[:k]:
        mask = np.zeros_like(bitmap)
        box = cv2.boxPoints(cv2.minAreaRect(contour))
        cv2.fillPoly(mask, [np.round(box).astype(np.int32)], 1)
        score = float(cv2.mean(prob, mask)[0])
        if score >= post.box_thresh and min(cv2.minAreaRect(contour)[1]) >= post.min_size:
            scores.append(score)
    return scores


def bench(post: DBPostProcessor, prob: np.ndarray, runs: int = 30) -> tuple[float, float, int]:
    """Median and best ms per map over ``runs`` (the median resists a busy machine)."""
    dets = post(prob)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        post(prob)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times)), min(times), len(dets)


def main() -> None:
    prob, regions = synth_map()
    print(f"map: {SIZE}x{SIZE}, {regions} word blobs")
    for name, post in (
        ("boxes", DBPostProcessor()),
        ("polygons", DBPostProcessor(use_polygon=True)),
    ):
        ms, best, count = bench(post, prob)
        goal = " (goal <= 10 ms)" if name == "boxes" else ""
        print(f"{name:9s}: {ms:6.2f} ms/map median, {best:6.2f} best{goal}; {count} detections")

    k = 50
    best = [d.score for d in DBPostProcessor(max_candidates=k)(prob)]
    naive = contour_order_cut(DBPostProcessor(), prob, k)
    print(
        f"max_candidates={k}: top-score keeps {len(best)} with mean score "
        f"{np.mean(best):.3f} (min {min(best):.3f}); contour-order cut keeps {len(naive)} "
        f"with mean {np.mean(naive):.3f} (min {min(naive):.3f})"
    )


if __name__ == "__main__":
    main()
