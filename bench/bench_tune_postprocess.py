"""Bench: `tune-postprocess` on 400 images x 100 settings, cached maps vs one network pass per setting.

Maps: a real network's, not drawn from the ground truth: ``cpu-demo`` (resnet10t at 320 px)
trained briefly (``--epochs``, default 6) on 40 synthetic receipts, then run once over 400 other
synthetic receipts (the ``val`` split of a second synthetic set). Its maps are as a half-trained
detector's are: noisy, many weak blobs, so thresholds matter.

Timed in the same process:

1. the one network pass that fills the cache (``maps-val/``);
2. the cached search: 100 settings (grid 4 x 5 x 5 over thresh, box_thresh, box_unclip_ratio),
   ``--jobs`` processes (default 2); then TPE with 100 trials;
3. reference A, the naive way: ``evaluate`` per setting (network + postprocess + CLEval), timed
   on ``--naive`` settings (default 2) and extrapolated to 100 (labelled);
4. reference B: the cached maps, but the plain ``DBPostProcessor`` + CLEval per setting in one
   process (what the stages save), timed on 3 settings and extrapolated.

Then a fresh ``evaluate`` with the chosen settings must give exactly the cached score.

Goal: the cached search under 60 s on 2 cores; the same score as a fresh evaluate.

Run: .venv/bin/python bench/bench_tune_postprocess.py [--work DIR] [--jobs 2] [--epochs 6]
(``--work`` keeps data, run and cache for a second run; by default a temporary folder.)
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from ocrtune.data.synthetic import synthesize
from ocrtune.metrics.cleval import CLEvalAccumulator
from ocrtune.metrics.iou import IoUAccumulator
from ocrtune.model.postprocess import DBPostProcessor
from ocrtune.presets.load import load_preset
from ocrtune.sweep.plan.space import parse_space
from ocrtune.train.fit import TrainOptions, fit
from ocrtune.train.infer import evaluate, load_checkpoint
from ocrtune.tune import cache as maps_cache
from ocrtune.tune.pool import Scorer
from ocrtune.tune.search import search
from ocrtune.tune.settings import PostSettings, full_key
from ocrtune.tune.stages import Floors

N_VAL = 400
GRID = {  # 4 x 5 x 5 = 100 settings around cpu-demo's (0.3, 0.5, 1.5)
    full_key("thresh"): {"values": [0.2, 0.25, 0.3, 0.35]},
    full_key("box_thresh"): {"values": [0.3, 0.4, 0.5, 0.6, 0.7]},
    full_key("box_unclip_ratio"): {"values": [1.0, 1.25, 1.5, 1.75, 2.0]},
}
TPE = {
    full_key("thresh"): {"distribution": "q_uniform", "min": 0.15, "max": 0.45, "q": 0.01},
    full_key("box_thresh"): {"distribution": "q_uniform", "min": 0.3, "max": 0.7, "q": 0.01},
    full_key("box_unclip_ratio"): {"distribution": "q_uniform", "min": 1.0, "max": 2.0, "q": 0.05},
}


def prepare(work: Path, epochs: int) -> tuple[Path, Path]:
    """(tune data root, run): reused when ``work`` already has them."""
    train_root, tune_root, runs = work / "train-data", work / "tune-data", work / "runs"
    if not (train_root / "jsons").is_dir():
        synthesize(train_root, n=48, seed=11, val_fraction=8 / 48, workers=2)
    if not (tune_root / "jsons").is_dir():
        start = time.perf_counter()
        synthesize(tune_root, n=N_VAL + 1, seed=12, val_fraction=N_VAL / (N_VAL + 1), workers=2)
        print(f"synthesised {N_VAL} val receipts in {time.perf_counter() - start:.0f}s")
    done = sorted(runs.glob("*/checkpoints/best.ckpt"))
    if done:
        return tune_root, done[-1].parent.parent
    start = time.perf_counter()
    result = fit(load_preset("cpu-demo"), TrainOptions(data=train_root, runs_dir=runs, name="bench", progress=False,
                                                       max_epochs=epochs))
    if result.status != "completed":
        raise SystemExit(f"training failed: {result.error}")
    print(f"trained cpu-demo {epochs} epochs on 40 receipts in {time.perf_counter() - start:.0f}s "
          f"(val H {result.best.get('hmean', 0):.3f})")
    return tune_root, Path(result.run_dir)


def naive_seconds(run: Path, data: Path, settings: list[PostSettings], work: Path) -> tuple[float, float, list[dict]]:
    """Reference A: evaluate per setting, the network included; wall and CPU seconds per setting."""
    out = []
    start, cpu = time.perf_counter(), time.process_time()
    for s in settings:
        loaded = load_checkpoint(run, s.overrides())
        out.append(evaluate(loaded, data, "val", out=work / "naive-eval.json"))
    n = len(settings)
    return (time.perf_counter() - start) / n, (time.process_time() - cpu) / n, out


def plain_seconds(cache: maps_cache.MapsCache, settings: list[PostSettings]) -> tuple[float, float]:
    """Reference B: cached maps, plain postprocess + CLEval + IoU per setting, one process (wall, CPU):
    what the search scores, without its stages."""
    start, cpu = time.perf_counter(), time.process_time()
    for s in settings:
        post, acc, iou = DBPostProcessor(**s.values()), CLEvalAccumulator(), IoUAccumulator()
        for i, im in enumerate(cache.images):
            polys = [d.polygon for d in post(cache.prob16(i), scale=im.scale, original_size=im.orig_size)]
            acc.update(im.name, im.gt, polys)
            iou.update(im.name, im.gt, polys, im.gt_ignore)
    return (time.perf_counter() - start) / len(settings), (time.process_time() - cpu) / len(settings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=None, help="keep data, run and cache here (reused)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--naive", type=int, default=2, help="settings timed the naive way")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-tune-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(work, args)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, args: argparse.Namespace) -> None:
    data, run_dir = prepare(work, args.epochs)
    loaded = load_checkpoint(run_dir)
    preset = loaded.preset
    current = PostSettings.of(preset.models.head.postprocess)
    inputs = maps_cache.inputs_of(loaded, data, "val", preset.dataloader.batch_size, "cpu")
    where = maps_cache.cache_dir(loaded.checkpoint, run_dir, "val")
    start = time.perf_counter()
    cache = maps_cache.open_if_fresh(where, loaded.checkpoint, inputs)
    if cache is None:
        cache = maps_cache.build(loaded, data, "val", where, inputs)
        print(f"one network pass + cache: {time.perf_counter() - start:.1f}s for {len(cache)} maps "
              f"({(where / maps_cache.MAPS).stat().st_size / 2**20:.0f} MiB float16, "
              f"{cache.images[0].shape[0]}x{cache.images[0].shape[1]})")
    else:
        print(f"cache reused: {len(cache)} maps")
    del loaded

    grid = parse_space(GRID, base=preset)
    tpe = parse_space(TPE, base=preset)
    floors = Floors(current.min_size, 0.3)
    with Scorer(cache, floors, args.jobs) as scorer:
        found = search(scorer.counts, current, grid, "grid")
        t_grid, cpu_grid = found.seconds, scorer.cpu_seconds
        tpe_found = search(scorer.counts, current, tpe, "tpe", trials=100)
        cpu_tpe = scorer.cpu_seconds - cpu_grid
    best = found.best
    print(f"cached search, grid, {len(found.tried)} settings, {args.jobs} processes: {t_grid:.1f}s wall "
          f"(goal < 60 s); workers' CPU {cpu_grid:.1f}s = {1000 * cpu_grid / len(found.tried) / len(cache):.2f} ms "
          f"per image-setting, so {cpu_grid / args.jobs:.1f}s on {args.jobs} idle cores")
    print(f"cached search, tpe, {len(tpe_found.tried)} settings ({tpe_found.distinct} distinct), "
          f"{args.jobs} processes: {tpe_found.seconds:.1f}s wall, workers' CPU {cpu_tpe:.1f}s; "
          f"best H {tpe_found.best.hmean:.4f}")
    print(f"  grid best H {best.hmean:.4f} P {best.precision:.4f} R {best.recall:.4f} vs current "
          f"H {found.current.hmean:.4f} ({100 * (best.hmean - found.current.hmean):+.2f} pp) with "
          + ", ".join(f"{k} {a}->{b}" for k, (a, b) in best.settings.changed(current).items()))

    picks = [best.settings, *(s.settings for s in found.tried[:: max(1, len(found.tried) // 3)])][:max(args.naive, 1)]
    per_naive, cpu_naive, fresh = naive_seconds(run_dir, data, picks, work)
    print(f"reference A, naive (evaluate per setting, network included): {per_naive:.1f}s wall, {cpu_naive:.1f}s CPU "
          f"per setting, timed on {len(picks)}; x100 = {100 * per_naive:.0f}s wall (extrapolated) -> cached search "
          f"{100 * per_naive / t_grid:.0f}x faster in wall time, {100 * cpu_naive / cpu_grid:.0f}x less CPU")
    per_plain, cpu_plain = plain_seconds(cache, [best.settings, current, found.tried[-1].settings])
    print(f"reference B, cached maps but plain postprocess + CLEval + IoU per setting, 1 process: {per_plain:.2f}s wall, "
          f"{cpu_plain:.2f}s CPU per setting, timed on 3; x100 = {100 * per_plain:.0f}s wall (extrapolated) -> the "
          f"stages take {100 * cpu_plain / cpu_grid:.1f}x less CPU; with {args.jobs} processes "
          f"{100 * per_plain / t_grid:.1f}x less wall time")
    im, io = fresh[0]["cleval"]["image_mean"], fresh[0]["iou"]["image_mean"]
    same = (im["hmean"], im["precision"], im["recall"]) == (best.hmean, best.precision, best.recall) and \
        fresh[0]["cleval"]["global"]["hmean"] == best.global_hmean and \
        (io["hmean"], io["precision"], io["recall"]) == (best.iou_hmean, best.iou_precision, best.iou_recall) and \
        fresh[0]["iou"]["global"]["hmean"] == best.iou_global_hmean
    print(f"exactness: fresh evaluate with the chosen settings H {im['hmean']!r}, cached {best.hmean!r}; IoU H "
          f"{io['hmean']!r}, cached {best.iou_hmean!r}: {'identical' if same else 'DIFFERENT'} (P, R and global H too)")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
