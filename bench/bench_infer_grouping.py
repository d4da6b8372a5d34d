"""How many images one inference forward should take: images of one padded extent together up
to a pixel budget (``train/extents.py``), from one image at a time to the whole batch's.

Goal: validation, ``evaluate``, ``predict`` and the tuning cache as fast as they can be, on the CPU
and on a GPU. Each batch runs every way, the order rotating, so whatever else runs on the machine
slows all alike; prints seconds and images/s each way, the ratio to the first, the input shapes
each way meets (on a GPU each new one costs seconds of kernel set-up once per process:
docs/benchmarks.md, "GPU"), and the largest difference of the maps. The model is an untrained
preset: timing only. ``--budgets``: pixels a forward, 0 for one image, ``all`` for no limit.

    python bench/bench_infer_grouping.py --size 1024 --batch 8 --budgets 0 1048576 all
    python bench/bench_infer_grouping.py --preset baseline --device cuda --budgets 0 all   # a GPU
    python bench/bench_infer_grouping.py --preset baseline --device cuda --budgets all     # then each
    python bench/bench_infer_grouping.py --preset baseline --device cuda --budgets 0       # alone, in a
                                          # fresh process: its kernel set-up counted in its time
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocrtune.cpu_malloc import keep_large_blocks  # noqa: E402
from ocrtune.presets.load import load_preset  # noqa: E402
from ocrtune.train.datamodule import DetectionDataset, collate, load_split  # noqa: E402
from ocrtune.train.extents import prob_maps  # noqa: E402
from ocrtune.train.module import DBNetModule  # noqa: E402
from ocrtune.train.precision import bf16_inference, channels_last, precision_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ALL = 2**62


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sroie"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=None, help="first N images (default: all)")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8, help="images the loader hands over at once")
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: the GPU if there is one)")
    ap.add_argument("--budgets", nargs="+", default=["0", "all"], help="pixels a forward (0: one image; all)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    preset = load_preset(a.preset, [f"datasets.image_size={a.size}", "models.encoder.pretrained=false"]).preset
    torch.manual_seed(0)
    model = DBNetModule(preset.model_dump(mode="json")).model.eval().to(dev)
    if channels_last(dev.type, precision_for(preset, dev.type)):  # as load_checkpoint runs it
        model = model.to(memory_format=torch.channels_last)
    if dev.type == "cpu":
        keep_large_blocks()  # as evaluate/predict do on the CPU
    items, _ = load_split(Path(a.data), a.split)
    ds = DetectionDataset(items[: a.limit], preset.datasets, train=False, with_targets=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch, collate_fn=collate)
    amp = bf16_inference(dev.type, preset)  # as evaluate runs
    prob = lambda x: model(x)["prob"]  # noqa: E731
    budgets = {b: ALL if b == "all" else int(b) for b in a.budgets}
    seconds = {b: 0.0 for b in budgets}
    shapes: dict[str, set] = {b: set() for b in budgets}
    worst = 0.0
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        prob(torch.zeros(1, 3, 128, 128, device=dev))  # the device's own start-up, untimed
        for k, batch in enumerate(loader):
            images, maps = batch["image"].to(dev), {}
            order = list(budgets)[k % len(budgets):] + list(budgets)[: k % len(budgets)]
            for b in order:
                def seen(x: torch.Tensor, b: str = b) -> torch.Tensor:  # the input shapes this way meets
                    shapes[b].add(tuple(x.shape))
                    return prob(x)

                t = time.perf_counter()
                maps[b] = prob_maps(seen, images, batch["extent"], max_pixels=budgets[b])
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                seconds[b] += time.perf_counter() - t
            first = maps[a.budgets[0]]
            worst = max([worst] + [float(np.abs(f - m).max()) for b in budgets for f, m in zip(first, maps[b])])
    n, ref = len(ds), seconds[a.budgets[0]]
    print(f"untrained {a.preset}: {n} images of {a.data} {a.split} at {a.size} px, batches of {a.batch}, "
          f"{torch.get_num_threads()} threads, {dev}")
    print("pixels a forward   seconds  images/s  time ratio  input shapes")
    for b in budgets:
        print(f"{b:<17}{seconds[b]:9.1f}{n / seconds[b]:10.2f}{seconds[b] / ref:11.2f}x{len(shapes[b]):14d}"
              + ("  (reference)" if b == a.budgets[0] and len(budgets) > 1 else ""))
    if len(budgets) > 1:
        print(f"largest difference of the maps over an image: {worst:.2e}")
    if a.json:
        a.json.write_text(json.dumps({"preset": a.preset, "size": a.size, "batch": a.batch, "device": str(dev),
                                      "images": n, "seconds": seconds, "shapes": {b: len(v) for b, v in shapes.items()},
                                      "max_map_difference": worst}, indent=1))


if __name__ == "__main__":
    main()
