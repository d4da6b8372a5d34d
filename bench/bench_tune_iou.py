"""Bench: what scoring the IoU@0.5 beside CLEval costs `tune-postprocess`, on a real maps cache.

Times, in this process, the staged search over a grid of settings on the first ``--images``
images of a cache (``<run>/maps-<split>/``, as `tune-postprocess` leaves it):

1. CLEval and IoU (what `tune-postprocess` does: ``ImageStages.counts``);
2. reference: CLEval alone on the same stages (the selection and ``PairTable.counts`` only),
   what the search cost before the IoU was added.

Both passes start from fresh stages (contours and unclipping are redone for each), so the
difference is the IoU matches (``match_iou``, once per distinct selection).

Run: .venv/bin/python bench/bench_tune_iou.py runs/<run>/maps-train [--images 60]
(without a cache: the newest ``runs/*/maps-*`` here; none, and it says so and measures nothing).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

from ocrtune.tune.cache import MANIFEST, VERSION, MapsCache
from ocrtune.tune.settings import PostSettings
from ocrtune.tune.pool import image_stages
from ocrtune.tune.stages import Floors

GRID = {"thresh": [0.2, 0.3, 0.4], "box_thresh": [0.3, 0.4, 0.5], "box_unclip_ratio": [1.25, 1.5, 2.0]}


def _current(path: Path) -> bool:
    """A cache this version of ocrtune reads (older ones lack the don't-care flags)."""
    try:
        return json.loads((path / MANIFEST).read_text()).get("version") == VERSION
    except (OSError, ValueError):
        return False


def newest_cache() -> Path | None:
    found = [p for p in Path("runs").glob("*/maps-*") if _current(p)]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cache", type=Path, nargs="?", help="A maps cache folder (default: the newest runs/*/maps-*).")
    ap.add_argument("--images", type=int, default=60)
    args = ap.parse_args()
    path = args.cache or newest_cache()
    if path is None:
        print("no current maps cache under runs/: run `ocrtune tune-postprocess RUN` once, or pass a cache folder")
        return
    if not _current(path):
        raise SystemExit(f"{path}: not a maps cache of this ocrtune (version {VERSION}); run tune-postprocess "
                         "--rebuild-cache on its run")
    print(f"cache: {path}")
    cache = MapsCache(path)
    settings = [PostSettings(t, b, 1000, False, r, 2.0, 3.0) for t, b, r in itertools.product(*GRID.values())]
    floors = Floors(3.0, min(GRID["box_thresh"]))
    n = min(args.images, len(cache))

    both = image_stages(cache, floors, range(n))
    t0 = time.process_time()
    for st in both:
        for s in settings:
            st.counts(s)
        st.release()
    with_iou = time.process_time() - t0

    alone = image_stages(cache, floors, range(n))
    t0 = time.process_time()
    for st in alone:
        for s in settings:
            _, u, kept = st._kept(s)
            u.table.counts(u.index[kept])
        st.release()
    cleval_only = time.process_time() - t0

    k = n * len(settings)
    print(f"{n} images x {len(settings)} settings = {k} image-settings, CPU seconds (one process):")
    print(f"  CLEval + IoU (tune-postprocess): {with_iou:.2f} s  ({1e3 * with_iou / k:.2f} ms an image-setting)")
    print(f"  reference, CLEval alone:         {cleval_only:.2f} s  ({1e3 * cleval_only / k:.2f} ms an image-setting)")
    print(f"  ratio: {with_iou / cleval_only:.2f}x")


if __name__ == "__main__":
    main()
