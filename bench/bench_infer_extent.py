"""Inference on each image's own extent (``ocrtune.train.extents``: what validation, evaluate,
predict and tune-postprocess do) against the whole padded square (what they did before).

Goal: inference costs what the image's pixels cost, with the same scores. Each batch of the
split runs both ways, the order alternating from batch to batch, so whatever else runs on the
machine slows both alike. Prints the pixels the network sees, seconds and images/s each way,
the ratio, and with ``--run`` the CLEval / IoU H-mean each way and their difference in pp (the
largest difference of the two maps over the image, too). Without ``--run`` the model is an
untrained preset (cpu-demo unless ``--preset``): the timing holds, the scores mean nothing and
are left out.

    python bench/bench_infer_extent.py --run runs/RUN --data ../shared/data/sroie
    python bench/bench_infer_extent.py                    # untrained cpu-demo, SROIE val, 16 images
    python bench/bench_infer_extent.py --preset baseline --device cuda --json extent.json  # a GPU
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
from ocrtune.train.extents import by_extent, prob_maps  # noqa: E402
from ocrtune.train.infer import load_checkpoint  # noqa: E402
from ocrtune.train.module import DBNetModule, DetectionScores, postprocessor  # noqa: E402
from ocrtune.train.precision import bf16_inference, channels_last, precision_for  # noqa: E402
from ocrtune.train.views import crop_to_image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", help="a run or .ckpt: scores too (default: an untrained cpu-demo, timing only)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "sroie"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--limit", type=int, default=None, help="first N images (default: all with --run, else 16)")
    ap.add_argument("--size", type=int, default=1024, help="input size of the untrained model")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--preset", default="cpu-demo", help="the untrained model's preset (without --run)")
    ap.add_argument("--device", default=None, help="cpu or cuda (default: the GPU if there is one)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    a = ap.parse_args()
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if a.run:
        loaded = load_checkpoint(a.run, device=str(dev))
        model, preset, what = loaded.module.model, loaded.preset, f"{a.run} ({loaded.checkpoint.name})"
    else:
        sets = [f"datasets.image_size={a.size}", "models.encoder.pretrained=false"]  # no hub here
        preset = load_preset(a.preset, sets).preset
        torch.manual_seed(0)
        model = DBNetModule(preset.model_dump(mode="json")).model.eval().to(dev)
        if channels_last(dev.type, precision_for(preset, dev.type)):  # as load_checkpoint runs it
            model = model.to(memory_format=torch.channels_last)
        what = f"untrained {a.preset}"
    if next(model.parameters()).device.type == "cpu":
        keep_large_blocks()  # as evaluate/predict do on the CPU
    items, _ = load_split(Path(a.data), a.split)
    limit = a.limit or (None if a.run else 16)
    items = items[:limit]
    ds = DetectionDataset(items, preset.datasets, train=False, with_targets=False)
    loader = torch.utils.data.DataLoader(ds, batch_size=a.batch, collate_fn=collate)
    post = postprocessor(preset.models.head.postprocess)
    scores = {"square": DetectionScores(post), "extent": DetectionScores(post)}
    seconds = {"square": 0.0, "extent": 0.0}
    pixels = {"square": 0, "extent": 0}
    worst = 0.0
    amp = bf16_inference(dev.type, preset)  # as evaluate runs
    prob = lambda x: model(x)["prob"]  # noqa: E731
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        first = next(iter(loader))  # warm-up, untimed: first calls allocate and pick kernels
        prob(first["image"].to(dev)), prob_maps(prob, first["image"].to(dev), first["extent"])
        for k, batch in enumerate(loader):
            images = batch["image"].to(dev)
            maps = {}
            for way in (("square", "extent") if k % 2 == 0 else ("extent", "square")):
                t = time.perf_counter()
                if way == "square":
                    maps[way] = list(prob(images).float().squeeze(1).cpu().numpy())
                else:
                    maps[way] = prob_maps(prob, images, batch["extent"])
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                seconds[way] += time.perf_counter() - t
            pixels["square"] += batch["image"][:, 0].numel()
            pixels["extent"] += sum(p[:, 0].numel() for _, p in by_extent(batch["image"], batch["extent"]))
            for hw, s, sq, ex in zip(batch["orig_size"], batch["scale"], maps["square"], maps["extent"]):
                a_, b_ = crop_to_image(sq, hw, s), crop_to_image(ex, hw, s)
                worst = max(worst, float(np.abs(a_ - b_).max()))
            if a.run:
                for way in scores:
                    scores[way].add(maps[way], batch)
    n = len(ds)
    hmean = {w: {m: getattr(scores[w], m).summary()["image_mean"]["hmean"] for m in ("cleval", "iou")}
             for w in scores} if a.run else None  # each way's image-mean H-mean, computed once
    print(f"{what}: {n} images of {a.data} {a.split} at {preset.datasets.image_size} px, batch {a.batch},"
          f" {torch.get_num_threads()} threads, {next(model.parameters()).device}")
    print(f"pixels the network sees on its own extent: {pixels['extent'] / pixels['square']:.2f} of the square")
    print("input          seconds  images/s  speed-up" + ("   CLEval H  IoU H" if a.run else ""))
    for way in ("square", "extent"):
        line = (f"{way:<13}{seconds[way]:9.1f}{n / seconds[way]:10.2f}"
                f"{seconds['square'] / seconds[way]:9.2f}x")
        if hmean:
            line += f"   {hmean[way]['cleval']:.5f}  {hmean[way]['iou']:.5f}"
        print(line + ("  (reference)" if way == "square" else ""))
    if hmean:
        d = {m: (hmean["extent"][m] - hmean["square"][m]) * 100 for m in ("cleval", "iou")}
        print(f"extent - square: CLEval {d['cleval']:+.3f} pp, IoU {d['iou']:+.3f} pp")
    print(f"largest difference of the two maps over an image: {worst:.2e}")
    if a.json:
        fig = {"model": what, "images": n, "size": preset.datasets.image_size, "batch": a.batch, "device": str(dev),
               "pixels_extent_over_square": round(pixels["extent"] / pixels["square"], 4),
               "seconds": {k: round(v, 3) for k, v in seconds.items()},
               "speedup": round(seconds["square"] / seconds["extent"], 3), "max_map_difference": worst}
        if hmean:
            fig["hmean"] = hmean
        a.json.write_text(json.dumps(fig, indent=2))


if __name__ == "__main__":
    main()
