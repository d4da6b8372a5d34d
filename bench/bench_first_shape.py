"""What the first call on a new input shape costs, against a repeat of it, in a fresh process.

A GPU run's first epoch took 82 s against 13 s for each later one (EfficientNet-B4, 1024 px,
bf16, H200; docs/quality.md): the convolution library sets up its kernels once per input shape
(in cuDNN, per (n, h, w)), and validation on each image's own extent (train/extents.py) meets up
to one shape per extent and group size. This times, for the baseline model: forward passes at
validation-like shapes, each first and second time; a training step at the batch's shape and at
the last, smaller batch's shape, first and second time; and the same with cudnn.benchmark on.

    python bench/bench_first_shape.py --device cuda --json /tmp/first-shape.json
    python bench/bench_first_shape.py --preset cpu-demo --size 256 --device cpu   # CPU rehearsal
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocrtune.presets.load import load_preset  # noqa: E402
from ocrtune.train.precision import precision_for  # noqa: E402
from ocrtune.train.module import DBNetModule  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="baseline")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    dev = torch.device(args.device)
    preset = load_preset(args.preset, ["models.encoder.pretrained=false", f"datasets.image_size={args.size}"]).preset
    bs = preset.dataloader.batch_size
    net = DBNetModule(preset.model_dump(mode="json")).to(dev)
    amp = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision_for(preset, dev.type))
    if dev.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    model = net.model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    rows: list[dict] = []
    s = args.size

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def image(n: int, h: int, w: int) -> torch.Tensor:
        x = torch.randn(n, 3, h, w, device=dev)
        return x.to(memory_format=torch.channels_last) if dev.type == "cuda" else x

    def timed(kind: str, n: int, h: int, w: int) -> None:
        x = image(n, h, w)
        sync()
        t = time.perf_counter()
        with torch.autocast(dev.type, dtype=amp or torch.float32, enabled=amp is not None):
            if kind == "forward":
                with torch.no_grad():
                    model.eval()(x)
            else:
                out = model.train()(x)
                loss = sum(v.float().mean() for v in out.values())
        if kind != "forward":
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync()
        row = {"kind": kind, "shape": [n, 3, h, w], "benchmark": torch.backends.cudnn.benchmark,
               "seconds": round(time.perf_counter() - t, 4)}
        rows.append(row)
        print(f"{kind:8} {str(row['shape']):22} benchmark={row['benchmark']!s:5} {row['seconds']:8.3f} s", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"device": str(dev), "preset": args.preset, "rows": rows}, indent=1))

    timed("forward", 1, 64, 64)  # the device's own start-up (context, library handles), not a shape's
    q = s // 8  # validation-like extents: full height, widths in PAD_STEP-like steps, group sizes 1 and 2
    for shape in [(1, s, 5 * q), (1, s, 5 * q), (1, s, 6 * q), (1, s, 6 * q), (2, s, 6 * q), (2, s, 6 * q),
                  (1, 7 * q, 5 * q), (1, 7 * q, 5 * q)]:
        timed("forward", *shape)
    for n in (bs, bs, 3, 3):
        timed("train", n, s, s)
    torch.backends.cudnn.benchmark = True
    for shape in [(1, s, 4 * q), (1, s, 4 * q), (3, s, 7 * q), (3, s, 7 * q)]:
        timed("forward", *shape)
    for n in (5, 5):
        timed("train", n, s, s)


if __name__ == "__main__":
    main()
