"""Inference on own extents one image per forward (``train/extents.py`` since 2026-12-04) against
running a batch's images of one padded extent together (what it did before).

Goal: validation, ``evaluate``, ``predict`` and the tuning cache as fast as they can be, on the CPU
and on a GPU. Each batch runs both ways, the order alternating, so whatever else runs on the
machine slows both alike; prints seconds and images/s each way, the ratio, the input shapes each
way meets (on a GPU each new one costs seconds of kernel set-up once per process:
docs/benchmarks.md, "GPU"), and the largest difference of the maps. The model is an untrained
preset: timing only.

    python bench/bench_infer_grouping.py --data ../shared/data/sroie --batch 8 --limit 64
    python bench/bench_infer_grouping.py --preset baseline --device cuda        # a GPU
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocrtune.cpu_malloc import keep_large_blocks  # noqa: E402
from ocrtune.presets.load import load_preset  # noqa: E402
from ocrtune.train.datamodule import DetectionDataset, collate, load_split  # noqa: E402
from ocrtune.train.extents import padded_extent, prob_maps  # noqa: E402
from ocrtune.train.module import DBNetModule  # noqa: E402
from ocrtune.train.precision import bf16_inference, channels_last, precision_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def grouped(model, images: torch.Tensor, extents, shapes: set) -> list[np.ndarray]:
    """The way before: images of one padded extent in one forward, maps in batch order."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, e in enumerate(extents):
        groups.setdefault(padded_extent(e, images.shape[-2:]), []).append(i)
    out: list = [None] * len(extents)
    for (h, w), idx in groups.items():
        part = images[idx][..., :h, :w].contiguous()
        shapes.add(tuple(part.shape))
        prob = model(part).float().squeeze(1).cpu().numpy()
        for k, i in enumerate(idx):
            out[i] = prob[k]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sroie"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=None, help="first N images (default: all)")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8, help="images the loader hands over at once")
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: the GPU if there is one)")
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
    seconds = {"grouped": 0.0, "one per forward": 0.0}
    shapes: dict[str, set] = {"grouped": set(), "one per forward": set()}
    worst = 0.0

    def single(x: torch.Tensor) -> torch.Tensor:
        shapes["one per forward"].add(tuple(x.shape))
        return prob(x)

    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        prob(torch.zeros(1, 3, 128, 128, device=dev))  # the device's own start-up, untimed
        for k, batch in enumerate(loader):
            images, maps = batch["image"].to(dev), {}
            for way in (list(seconds) if k % 2 == 0 else list(seconds)[::-1]):
                t = time.perf_counter()
                if way == "grouped":
                    maps[way] = grouped(prob, images, batch["extent"], shapes[way])
                else:
                    maps[way] = prob_maps(single, images, batch["extent"])
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                seconds[way] += time.perf_counter() - t
            worst = max([worst] + [float(np.abs(g - o).max()) for g, o in zip(*maps.values())])
    n = len(ds)
    print(f"untrained {a.preset}: {n} images of {a.data} {a.split} at {a.size} px, batches of {a.batch}, "
          f"{torch.get_num_threads()} threads, {dev}")
    print("way               seconds  images/s  time ratio  input shapes")
    for way in seconds:
        print(f"{way:<16}{seconds[way]:9.1f}{n / seconds[way]:10.2f}{seconds[way] / seconds['grouped']:11.2f}x"
              f"{len(shapes[way]):14d}" + ("  (reference)" if way == "grouped" else ""))
    print(f"largest difference of the two maps over an image: {worst:.2e}")


if __name__ == "__main__":
    main()
