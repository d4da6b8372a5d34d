"""Loader throughput with and without the decoded-image cache (``datasets.cache``), and whether
the loader limits a training step (loader/preloaded).

1. Epoch time of the train and val loaders, per image size: without the cache, with the cache
   being built (first epoch on a machine) and with it built (every later epoch and trial); and
   ms per image in this process (no workers: steadier on a loaded machine).
2. A training step fed by the loader (cache off, then on) against the same step fed batches
   already in memory: loader/preloaded, goal <= 1.05 with the preset's workers (on the GPU).

    python bench/bench_loader_cache.py                                  # SROIE if ../shared has it
    python bench/bench_loader_cache.py --data ../shared/data/sroie --sizes 512 1024 --device cuda

The cache goes to a fresh temp folder (``--cache-dir`` to keep one), so "building" is really cold.
On CPU the step runs only with ``--steps N`` and trains the cpu-demo model (``--step-preset`` to
change it); on CUDA it trains the preset's model.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocrtune.presets.load import load_preset  # noqa: E402
from ocrtune.data.decoded_cache import DecodedCache  # noqa: E402
from ocrtune.train.datamodule import DetectionDataModule, DetectionDataset, Draw  # noqa: E402
from ocrtune.train.fit import precision_for, resolve_data_root  # noqa: E402
from ocrtune.train.loader_workers import loader_workers  # noqa: E402

SROIE = Path(__file__).resolve().parents[2] / "shared" / "data" / "sroie"


def to_device(batch: dict, dev: torch.device) -> dict:
    return {k: (v.to(dev, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def epoch_rate(loader) -> tuple[float, int]:
    """Images per second over one epoch, timed from the first batch on (worker start-up excluded)."""
    it = iter(loader)
    first = next(it)
    t, n = time.perf_counter(), 0
    for batch in it:
        n += len(batch["image"])
    dt = time.perf_counter() - t
    return (n / dt if dt > 0 else float("nan")), n + len(first["image"])


def per_image_ms(ds, n: int, repeat: int) -> float:
    """Best of ``repeat`` passes over the first ``n`` samples, in ms per image (this process)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        for i in range(min(n, len(ds))):
            ds[Draw(i, i)]
        best = min(best, (time.perf_counter() - t) / min(n, len(ds)) * 1000)
    return best


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="baseline", help="data settings and workers (default baseline)")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--data", type=Path, default=SROIE if SROIE.is_dir() else None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default: the preset's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--step-preset", default=None, help="model of the step (default: cpu-demo on CPU, --preset on CUDA)")
    ap.add_argument("--steps", type=int, default=None,
                    help="timed steps (default 60 on CUDA; on CPU the step runs only when given: it takes seconds)")
    ap.add_argument("--no-step", action="store_true", help="loader epochs only")
    ap.add_argument("--images", type=int, default=60, help="images of the in-process ms/image figure")
    ap.add_argument("--repeat", type=int, default=2, help="epochs per setting, alternated; the best counts")
    ap.add_argument("--cache-dir", type=Path, default=None)
    args = ap.parse_args()

    dev = torch.device(args.device)
    preset = load_preset(args.preset, args.sets).preset
    workers = loader_workers(preset.dataloader.num_workers) if args.workers is None else args.workers
    root = resolve_data_root(preset, args.data).resolve()
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="ocrtune-bench-cache-"))
    os.environ["OCRTUNE_CACHE"] = str(cache_dir)  # read by DecodedCache() in the datamodule
    bs = preset.dataloader.batch_size
    print(f"data {root}, preset {args.preset} (augment {'on' if preset.datasets.augment.enabled else 'off'}), "
          f"batch {bs}, {workers} workers, device {dev}"
          f"{' (' + torch.cuda.get_device_name(dev) + ')' if dev.type == 'cuda' else ''}, cache {cache_dir}")

    def module(size: int, cache: bool) -> DetectionDataModule:
        cfg = preset.datasets.model_copy(update={"image_size": size, "cache": cache, "root": str(root)})
        dm = DetectionDataModule(root, cfg, bs, workers, pin_memory=dev.type == "cuda", seed=preset.seed,
                                 pad=preset.dataloader.pad)
        dm.prepare()
        return dm

    try:
        for size in args.sizes:
            # on a shared machine other load comes and goes: the settings alternate, the best epoch counts
            rates: dict[str, dict[str, float]] = {}
            runs = [("cache, building", True)] + [("cache, built", True), ("no cache", False)] * args.repeat
            for label, cache in runs:
                dm = module(size, cache)
                r = {"train": epoch_rate(dm.train_dataloader())[0], "val": epoch_rate(dm.val_dataloader())[0]}
                best = rates.setdefault(label, r)
                rates[label] = {k: max(best[k], r[k]) for k in r}
            print(f"\n{size} px: {dm.n_train} train / {dm.n_val} val images, loader epoch throughput (img/s, "
                  f"best of {args.repeat} alternated epochs; building: once)")
            for label, r in rates.items():
                print(f"  {label:16s} train {r['train']:7.1f}   val {r['val']:7.1f}")
            off, on = rates["no cache"], rates["cache, built"]
            print(f"  cached/uncached throughput: train {on['train'] / off['train']:.2f}x, val {on['val'] / off['val']:.2f}x "
                  f"(epoch time ratio uncached/cached); cache on disk {du(cache_dir / 'decoded') / 1e9:.2f} GB so far")
            for split, train, items in (("train", True, dm._train or []), ("val", False, dm._val or [])):
                # the datamodule's epoch above built these entries: "cache" reads them
                ms = {c: per_image_ms(DetectionDataset(items, dm.cfg.model_copy(update={"cache": c}), train=train,
                                                       cache=DecodedCache() if c else None), args.images, args.repeat)
                      for c in (True, False)}
                print(f"  in-process, {split} (targets {'on' if train else 'off'}): no cache {ms[False]:.1f} ms/image, "
                      f"cache {ms[True]:.1f} ms/image: {ms[False] / ms[True]:.2f}x")
            if not args.no_step and (dev.type == "cuda" or args.steps):
                step_ratio(args, size, dev, workers, module)
    finally:
        if args.cache_dir is None:
            shutil.rmtree(cache_dir, ignore_errors=True)


def step_ratio(args, size: int, dev: torch.device, workers: int, module) -> None:
    """Steps fed by the loader against steps fed batches already in memory (the same model)."""
    from ocrtune.train.module import DBNetModule

    name = args.step_preset or (args.preset if dev.type == "cuda" else "cpu-demo")
    sp = load_preset(name, [*args.sets, f"datasets.image_size={size}"]).preset
    precision = precision_for(sp, "gpu" if dev.type == "cuda" else "cpu")
    amp = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    net = DBNetModule(sp.model_dump(mode="json")).to(dev)
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-5)
    model, loss_fn = net.model.train(), net.loss
    steps = args.steps or 60

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # untimed warm-up steps: as many as the loader prefetches, so the timed steps are not fed
    # from batches it made ahead while the first step (worker start, autotuning) ran
    warmup = max(1, 2 * workers)

    def run(batches) -> float:
        """Seconds for ``steps`` steps after the warm-up, waiting for batches included."""
        it = iter(batches)
        t = 0.0
        for i in range(warmup + steps):
            if i == warmup:
                sync()
                t = time.perf_counter()
            batch = to_device(next(it), dev)
            with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
                out = model(batch["image"])
            loss = loss_fn(out, batch)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync()
        return time.perf_counter() - t

    def endless(dm: DetectionDataModule):
        loader = dm.train_dataloader()
        while True:
            yield from loader

    held = list(itertools.islice(endless(module(size, True)), min(steps, 8)))
    if dev.type == "cuda":
        held = [{k: (v.pin_memory() if torch.is_tensor(v) else v) for k, v in b.items()} for b in held]
    t_mem = run(itertools.cycle(held))
    print(f"  step ({name}: {sp.models.encoder.model_name}, {precision}), {steps} steps: "
          f"preloaded {t_mem / steps * 1000:.0f} ms/step (after {warmup} warm-up steps)")
    for label, cache in (("cache", True), ("no cache", False)):
        t = run(endless(module(size, cache)))
        print(f"    loader, {label:8s} {t / steps * 1000:7.0f} ms/step   loader/preloaded {t / t_mem:.3f}x (goal <= 1.05x)")


if __name__ == "__main__":
    main()
