"""Training steps on batches padded to the batch (``dataloader.pad: batch``) against the same
batches padded to the square (the reference), in one process.

Goal: on tall receipts (SROIE: width/height 0.49 at the median) a step costs about what the
pixels cost, so "batch" should train about 1/(pixel fraction) faster; the loss is the same
function of the same image pixels, so nothing but the padding changes. Prints the padding cut,
ms/step for each and the ratio. Each batch is timed both ways, alternating which goes first.

    python bench/bench_batch_padding.py --data ../shared/data/sroie            # cpu-demo at 1024 px
    python bench/bench_batch_padding.py --data ../shared/data/sroie --set datasets.image_size=512
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocrtune.presets.load import load_preset  # noqa: E402
from ocrtune.train.datamodule import DetectionDataset, EpochShuffle, collate, load_split  # noqa: E402
from ocrtune.train.fit import load_data  # noqa: E402
from ocrtune.train.module import DBNetModule  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--size", type=int, default=1024, help="datasets.image_size (default 1024)")
    ap.add_argument("--steps", type=int, default=12, help="batches timed (each both ways)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    preset = load_preset(args.preset, [f"datasets.image_size={args.size}", *args.sets]).preset
    dm = load_data(preset, args.data)
    items, _ = load_split(dm.root, preset.datasets.train)
    ds = DetectionDataset(items, dm.cfg, train=True)
    bs = preset.dataloader.batch_size
    draws = list(EpochShuffle(len(ds), preset.seed))[: (args.steps + 1) * bs]
    samples = [[ds[d] for d in draws[i : i + bs]] for i in range(0, len(draws), bs)]

    module = DBNetModule(preset.model_dump(mode="json"))
    opt = torch.optim.AdamW(module.parameters(), lr=preset.models.optimizer.lr)
    model, loss_fn = module.model.train(), module.loss

    def step(batch: dict) -> float:
        t = time.perf_counter()
        loss = loss_fn(model(batch["image"]), batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    step(collate(samples[0]))  # warm-up: allocator, first-call costs
    square_t, batch_t, kept = [], [], []
    for i, s in enumerate(samples[1:]):
        square, cut = collate(s), collate(s, pad="batch")
        kept.append(cut["image"][0, 0].numel() / square["image"][0, 0].numel())
        first, second = (square, cut) if i % 2 == 0 else (cut, square)
        a, b = step(first), step(second)
        square_t.append(a if i % 2 == 0 else b)
        batch_t.append(b if i % 2 == 0 else a)

    ts, tb = statistics.median(square_t), statistics.median(batch_t)
    print(f"preset {args.preset}: {preset.models.encoder.model_name} at {args.size} px, batch {bs}, "
          f"{torch.get_num_threads()} threads; data {dm.root} ({dm.n_train} train images), {len(kept)} batches")
    print(f"pixels kept by padding to the batch: {statistics.mean(kept):.2f} of the square "
          f"(batches {min(kept):.2f}-{max(kept):.2f})")
    print(f"square (reference): {ts * 1000:8.0f} ms/step")
    print(f"batch             : {tb * 1000:8.0f} ms/step")
    print(f"speed-up          : {ts / tb:.2f}x  (median step times)")
    print(f"peak RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
