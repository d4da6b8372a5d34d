"""Training-step throughput: the real loader against a preloaded in-memory batch.

Goal (issue 4): step time with the real loader <= 1.05x the preloaded step time, i.e. the loader
(decode, augmentation, DB targets in workers) is never the bottleneck. Also prints images/s and
peak memory.

    python bench/bench_train_step.py                               # cpu-demo on synthetic receipts
    python bench/bench_train_step.py --preset baseline --data ../shared/data/sroie \
        --steps 50 --workers 12 --set datasets.augment.enabled=true   # on a GPU machine
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocrtune.presets.load import load_preset  # noqa: E402
from ocrtune.train.datamodule import DetectionDataModule  # noqa: E402
from ocrtune.train.fit import precision_for, resolve_data_root  # noqa: E402
from ocrtune.train.precision import channels_last  # noqa: E402
from ocrtune.train.module import DBNetModule  # noqa: E402
from ocrtune.train.recorder import peak_memory_mb  # noqa: E402
from ocrtune.train.loader_workers import loader_workers  # noqa: E402


def to_device(batch: dict, dev: torch.device) -> dict:
    return {k: (v.to(dev, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default: the preset's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    preset = load_preset(args.preset, args.sets).preset
    dev = torch.device(args.device)
    precision = precision_for(preset, "gpu" if dev.type == "cuda" else "cpu")
    amp_dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    workers = loader_workers(preset.dataloader.num_workers) if args.workers is None else args.workers
    root = resolve_data_root(preset, args.data)
    dm = DetectionDataModule(root, preset.datasets, preset.dataloader.batch_size, workers,
                             pin_memory=dev.type == "cuda", pad=preset.dataloader.pad)
    loader = dm.train_dataloader()

    module = DBNetModule(preset.model_dump(mode="json")).to(dev)
    if channels_last(dev.type, precision):  # as training runs it
        module = module.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(module.parameters(), lr=preset.models.optimizer.lr)
    model, loss_fn = module.model.train(), module.loss

    def step(batch: dict) -> float:
        with torch.autocast(dev.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            out = model(batch["image"])
        loss = loss_fn(out, batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def timed(batches) -> list[float]:
        """Per-step wall time including waiting for the batch (what a slow loader costs)."""
        times = []
        it = iter(batches)
        for i in range(n):
            t = time.perf_counter()
            step(to_device(next(it), dev))
            sync()
            if i >= args.warmup:
                times.append(time.perf_counter() - t)
        return times

    def cycle_loader():
        while True:
            yield from loader

    n = args.steps + args.warmup
    fixed = next(iter(loader))
    mem_times = timed(itertools.repeat(fixed, n))
    load_times = timed(cycle_loader())
    bs = preset.dataloader.batch_size
    t_mem, t_load = statistics.median(mem_times), statistics.median(load_times)
    print(f"preset {args.preset}: {preset.models.encoder.model_name} at {preset.datasets.image_size}px, "
          f"batch {bs}, {precision}, {workers} workers, device {dev} "
          f"({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'})")
    print(f"data: {root} ({dm.n_train} train images)")
    print(f"preloaded batch : {t_mem * 1000:8.1f} ms/step  {bs / t_mem:7.1f} img/s")
    print(f"real loader     : {t_load * 1000:8.1f} ms/step  {bs / t_load:7.1f} img/s  (median of {args.steps})")
    print(f"loader/preloaded: {t_load / t_mem:.3f}x   (goal <= 1.05x)")
    print(f"end-to-end with loader: {args.steps * bs / sum(load_times):.1f} img/s; "
          f"peak memory {peak_memory_mb(dev):.0f} MB")


if __name__ == "__main__":
    main()
