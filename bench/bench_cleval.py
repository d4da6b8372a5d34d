"""Speed of the competition CLEval accumulator against a straightforward per-pair version.

Run: ``.venv/bin/python bench/bench_cleval.py [--images N] [--ref-images M] [--words W] [--repeats R]``

Each synthetic image is a receipt-like page: W words in text lines (integer, slightly skewed
hand-annotation quads). Predictions are jittered float copies with some words split, some
neighbours merged, some missed and a few false positives, a share of them exact axis-aligned
boxes (what minAreaRect gives for upright text). The reference below follows the spec
literally: Qhull per word, Python loops, one shapely intersection per overlapping pair.
Both must give identical per-image counts; the script prints ms/image and the ratio.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import shapely
from scipy.spatial import ConvexHull, QhullError

from ocrtune.metrics.cleval import CLEvalAccumulator, CLEvalCounts

EPS = float(np.finfo(np.float32).eps)


# ---------------------------------------------------------------- synthetic receipts
def make_image(rng: np.random.Generator, n_words: int) -> tuple[list, list]:
    gt: list[list[list[float]]] = []
    y = 20.0
    while len(gt) < n_words:
        x = 15.0 + rng.uniform(0, 20)
        h = rng.uniform(16, 28)
        for _ in range(rng.integers(2, 7)):
            if len(gt) >= n_words:
                break
            w = rng.uniform(25, 160)
            box = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
            box += rng.integers(-2, 3, size=(4, 2)) * (rng.random() < 0.6)
            gt.append(np.round(box).astype(int).tolist())
            x += w + rng.uniform(8, 25)
        y += h + rng.uniform(6, 14)
    pred: list = []
    i = 0
    while i < len(gt):
        g = np.array(gt[i], dtype=float)
        u = rng.random()
        if u < 0.05:  # missed
            i += 1
            continue
        if u < 0.10 and i + 1 < len(gt):  # merged with the right neighbour
            g2 = np.array(gt[i + 1], dtype=float)
            if abs(g2[0, 1] - g[0, 1]) < 5:
                g = np.array([g[0], g2[1], g2[2], g[3]])
                i += 1
        if 0.10 <= u < 0.16:  # split at the middle
            mid = (g[0] + g[1]) / 2, (g[3] + g[2]) / 2
            for part in ([g[0], mid[0], mid[1], g[3]], [mid[0], g[1], g[2], mid[1]]):
                pred.append((np.array(part) + rng.normal(0, 1.0, (4, 2))).tolist())
            i += 1
            continue
        if rng.random() < 0.3:  # upright minAreaRect-style box
            x0, y0 = g.min(0) + rng.normal(0, 1.5, 2)
            x1, y1 = g.max(0) + rng.normal(0, 1.5, 2)
            pred.append([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
        else:
            pred.append((g + rng.normal(0, 1.5, (4, 2))).tolist())
        i += 1
    for _ in range(10):  # false positives: logos, lines, specks
        x0, y0 = rng.uniform(0, 600, 2)
        w, h = rng.uniform(3, 120), rng.uniform(2, 30)
        pred.append([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]])
    return gt, pred


# ---------------------------------------------------------------- straightforward reference
def ref_ar(points: np.ndarray) -> float:
    p = np.asarray(points, dtype=np.float32)
    try:
        hull = p[ConvexHull(p).vertices]
    except QhullError:
        return 0.0
    best, w_best, h_best = math.inf, 0.0, 0.0
    k = len(hull)
    for i in range(k):
        dx = float(hull[(i + 1) % k][0] - hull[i][0])
        dy = float(hull[(i + 1) % k][1] - hull[i][1])
        d = math.sqrt(dx * dx + dy * dy)
        ux, uy = dx / d, dy / d
        s = [ux * float(v[0]) + uy * float(v[1]) for v in hull]
        t = [-uy * float(v[0]) + ux * float(v[1]) for v in hull]
        w, h = max(s) - min(s), max(t) - min(t)
        if w * h < best:
            best, w_best, h_best = w * h, w, h
    return min(100.0, h_best / (w_best + EPS))


def ref_pccs(p: np.ndarray, n: int) -> list[tuple[float, float]]:
    k = len(p) // 2
    top, bot = list(p[:k]), list(p[::-1][: len(p) - k])

    def dense(chain: list) -> list:
        out = []
        for s in range(k - 1):
            out.append(chain[s])
            step = (chain[s + 1] - chain[s]) / n
            out += [np.trunc(chain[s] + step * j) for j in range(1, n)]
        return out + [chain[-1]]

    t, b = dense(top), dense(bot)
    s = k - 1
    return [tuple((t[c * s] + t[(c + 1) * s] + b[c * s] + b[(c + 1) * s]) / 4) for c in range(n)]


def ref_contains(poly: np.ndarray, x: float, y: float) -> bool:
    inside = False
    for i in range(len(poly)):
        ax, ay = poly[i]
        bx, by = poly[i - 1]
        if (ay <= y < by or by <= y < ay) and x < (bx - ax) * (y - ay) / (by - ay) + ax:
            inside = not inside
    return inside


def ref_score(gt_raw: list, pred_raw: list) -> CLEvalCounts:
    gt = [np.round(np.array(w, float)) for w in gt_raw if len(w) >= 4]
    raw = [np.array(w, float) for w in pred_raw if len(w)][:500]
    raw = [w for w in raw if len(w) >= 4]
    pred = [np.trunc(w) for w in raw]
    n_char = [int(min(round(0.5 + max(a, 1 / (a + EPS))), 100)) for a in map(ref_ar, gt)]
    pccs = [ref_pccs(g, n) for g, n in zip(gt, n_char)]
    gpoly = [shapely.make_valid(shapely.Polygon(g)) for g in gt]
    dpoly = [shapely.make_valid(shapely.Polygon(d)) for d in pred]
    darea = [abs(shapely.Polygon(d).area) for d in pred]
    ng, nd = len(gt), len(pred)
    ap = np.zeros((ng, nd), np.float32)
    inc = [[[False] * len(pccs[g]) for _ in range(nd)] for g in range(ng)]
    for g in range(ng):
        for d in range(nd):
            if darea[d] > 0 and gpoly[g].intersects(dpoly[d]):
                ap[g, d] = gpoly[g].intersection(dpoly[d]).area / darea[d]
            x0, y0 = pred[d].min(0)
            x1, y1 = pred[d].max(0)
            for c, (x, y) in enumerate(pccs[g]):
                if x0 <= x <= x1 and y0 <= y <= y1:
                    inc[g][d][c] = ref_contains(pred[d], x, y)
    cnt = np.array([[sum(inc[g][d]) for d in range(nd)] for g in range(ng)]).reshape(ng, nd)
    cand = (ap >= np.float32(0.3)) & (cnt > 0)
    match = np.zeros((ng, nd), bool)
    for g in range(ng):
        for d in range(nd):
            if cand[g, d] and cand[g].sum() == 1 and cand[:, d].sum() == 1:
                match[g, d] = True
        if cand[g].sum() >= 2:
            match[g] |= cand[g]
    for d in range(nd):
        s = [g for g in range(ng) if cnt[g, d] > 0]
        if len(s) >= 2 and sum(float(ap[g, d]) for g in s) >= 0.3:
            match[s, d] = True
    tp = sum(
        any(inc[g][d][c] and match[g, d] for d in range(nd))
        for g in range(ng)
        for c in range(len(pccs[g]))
    )
    fp = 0
    for d in range(nd):
        if not match[:, d].any():
            fp += int(min(round(0.5 + 1 / (ref_ar(raw[d]) + EPS)), 100))
    gran_r = int(sum(max(0, int(match[g].sum()) - 1) for g in range(ng)))
    gran_p = int(sum(max(0, int(match[:, d].sum()) - 1) for d in range(nd)))
    det = int(cnt[match].sum()) + fp
    return CLEvalCounts(sum(n_char), det, tp, gran_r, gran_p, fp)


# ---------------------------------------------------------------- timing
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--ref-images", type=int, default=5)
    ap.add_argument("--words", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5, help="timed passes of the accumulator")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    images = [make_image(rng, args.words) for _ in range(args.images)]
    n_pred = np.mean([len(p) for _, p in images])

    CLEvalAccumulator().update("warmup", *images[0])
    runs = []
    for _ in range(args.repeats):
        acc = CLEvalAccumulator()
        t0 = time.perf_counter()
        fast = [acc.update(f"img{i}", gt, pred).counts for i, (gt, pred) in enumerate(images)]
        runs.append((time.perf_counter() - t0) / len(images))
    t_fast, t_best = float(np.median(runs)), min(runs)

    m = min(args.ref_images, len(images))
    t0 = time.perf_counter()
    ref = [ref_score(gt, pred) for gt, pred in images[:m]]
    t_ref = (time.perf_counter() - t0) / m
    for i, (a, b) in enumerate(zip(fast, ref)):
        assert a == b, f"image {i}: fast {a} != reference {b}"

    s = acc.summary()["image_mean"]
    print(f"images: {len(images)} x {args.words} GT words, {n_pred:.0f} predictions on average")
    print(f"image-mean R/P/H: {s['recall']:.4f} / {s['precision']:.4f} / {s['hmean']:.4f}")
    print(
        f"accumulator : {t_fast * 1e3:8.2f} ms/image"
        f"  (median of {len(runs)} passes, best {t_best * 1e3:.2f})"
    )
    print(f"reference   : {t_ref * 1e3:8.2f} ms/image  ({m} images, identical counts)")
    print(f"speed-up    : {t_ref / t_fast:8.1f}x")


if __name__ == "__main__":
    main()
