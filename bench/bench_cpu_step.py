"""A CPU training step at 1024 px, four ways, in one process: batches padded to the square or to
the batch (``dataloader.pad``), and glibc serving large tensors with fresh mappings (its
default) or from its heap (``ocrtune.cpu_malloc``, what train/evaluate do on the CPU).

Goal: a step costs about what its pixels cost. The reference is the square batch with the C
library's default (ocrtune before both). Each batch is timed all four ways, the order rotating
from batch to batch; the allocator setting is switched between steps (mallopt applies to later
allocations). Also prints the system CPU time per step (page faults, zeroing fresh pages) and,
from two child processes running the same steps with one setting each, the peak RSS.

    python bench/bench_cpu_step.py --data ../shared/data/sroie            # cpu-demo at 1024 px
    python bench/bench_cpu_step.py --data ../shared/data/sroie --size 512
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocrtune.cpu_malloc import GLIBC_DEFAULT, THRESHOLD, set_mmap_threshold  # noqa: E402
from ocrtune.presets.load import load_preset  # noqa: E402
from ocrtune.train.datamodule import DetectionDataset, EpochShuffle, collate, load_split  # noqa: E402
from ocrtune.train.fit import load_data  # noqa: E402
from ocrtune.train.module import DBNetModule  # noqa: E402

WAYS = [("square", GLIBC_DEFAULT), ("batch", GLIBC_DEFAULT), ("square", THRESHOLD), ("batch", THRESHOLD)]
NAME = {GLIBC_DEFAULT: "fresh mappings", THRESHOLD: "heap"}


def setup(args: argparse.Namespace):
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

    def step(batch: dict) -> tuple[float, float]:
        r, t = resource.getrusage(resource.RUSAGE_SELF).ru_stime, time.perf_counter()
        loss = loss_fn(model(batch["image"]), batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_stime - r

    return preset, dm, samples, step


def child(args: argparse.Namespace) -> None:
    """One setting only: the peak RSS it leads to."""
    pad, threshold = WAYS[args.child]
    set_mmap_threshold(threshold)
    _, _, samples, step = setup(args)
    for s in samples:
        step(collate(s, pad=pad))
    print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--size", type=int, default=1024, help="datasets.image_size (default 1024)")
    ap.add_argument("--steps", type=int, default=8, help="batches timed (each all four ways)")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS child processes")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child(args)

    preset, dm, samples, step = setup(args)
    set_mmap_threshold(THRESHOLD)
    step(collate(samples[0]))  # warm-up: first-call costs
    times: dict[int, list[float]] = {i: [] for i in range(len(WAYS))}
    sys_s: dict[int, list[float]] = {i: [] for i in range(len(WAYS))}
    kept = []
    for n, s in enumerate(samples[1:]):
        batches = {"square": collate(s), "batch": collate(s, pad="batch")}
        kept.append(batches["batch"]["image"][0, 0].numel() / batches["square"]["image"][0, 0].numel())
        for k in range(len(WAYS)):
            i = (n + k) % len(WAYS)
            pad, threshold = WAYS[i]
            set_mmap_threshold(threshold)
            t, st = step(batches[pad])
            times[i].append(t)
            sys_s[i].append(st)
    rss = {}
    if not args.no_rss:
        base = [sys.executable, __file__, "--preset", args.preset, "--size", str(args.size), "--steps", str(args.steps),
                *(["--data", str(args.data)] if args.data else []), *[x for s in args.sets for x in ("--set", s)]]
        for i in range(len(WAYS)):
            out = subprocess.run([*base, "--child", str(i)], capture_output=True, text=True, check=True,
                                 env={**os.environ, "PYTHONWARNINGS": "ignore"}).stdout
            rss[i] = json.loads(out.strip().splitlines()[-1])["rss_mb"]

    ref = statistics.median(times[0])
    print(f"preset {args.preset}: {preset.models.encoder.model_name} at {args.size} px, batch "
          f"{preset.dataloader.batch_size}, {torch.get_num_threads()} threads; data {dm.root} "
          f"({dm.n_train} train images), {len(kept)} batches each way")
    print(f"pixels kept by padding to the batch: {statistics.mean(kept):.2f} of the square "
          f"(batches {min(kept):.2f}-{max(kept):.2f})")
    print(f"{'pad':7} {'large tensors':15} {'ms/step':>8} {'sys ms/step':>12} {'speed-up':>9} {'peak RSS':>9}")
    for i, (pad, threshold) in enumerate(WAYS):
        t = statistics.median(times[i])
        mem = f"{rss[i]:7.0f} MB" if i in rss else ""
        print(f"{pad:7} {NAME[threshold]:15} {t * 1000:8.0f} {statistics.median(sys_s[i]) * 1000:12.0f} "
              f"{ref / t:8.2f}x {mem:>9}" + ("  (reference)" if i == 0 else ""))


if __name__ == "__main__":
    main()
