"""A CPU training step at 1024 px, four ways: batches padded to the square or to the batch
(``dataloader.pad``), and glibc serving large tensors with fresh mappings (its default) or from
its heap (``ocrtune.cpu_malloc``, what train/evaluate do on the CPU).

Goal: a step costs about what its pixels cost. The reference is the square batch with fresh
mappings (ocrtune before both). The allocator setting belongs to a process (blocks freed into
the heap serve later requests whatever the setting), so each setting runs in its own child
process, both children at once with one torch thread each, so that whatever else runs on the
machine slows both alike; inside a child each batch is timed padded both ways, the order
alternating. Prints ms/step, system CPU ms/step (page faults, zeroing fresh pages) and each
child's peak RSS above what it held before its first step. The model runs NCHW, as training did
when these figures were taken (bench_cpu_precision.py measures the layout and precision).

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
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocrtune.cpu_malloc import GLIBC_DEFAULT, THRESHOLD, set_mmap_threshold  # noqa: E402
from ocrtune.presets.load import load_preset  # noqa: E402
from ocrtune.train.datamodule import DetectionDataset, EpochShuffle, collate, load_split  # noqa: E402
from ocrtune.train.fit import load_data  # noqa: E402
from ocrtune.train.module import DBNetModule  # noqa: E402

PADS = ("square", "batch")
SETTINGS = {"fresh mappings": GLIBC_DEFAULT, "heap": THRESHOLD}


def _status(field: str) -> int:
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith(field))


def first_batches(preset: Any, data: Path | None, n: int) -> tuple[Any, list[list[dict]]]:
    """The data module and the samples of the first ``n`` training batches, as the run's first
    epoch draws them (its shuffle and seed, augmented), loaded once to be collated as a bench needs."""
    dm = load_data(preset, data)
    items, _ = load_split(dm.root, preset.datasets.train)
    ds = DetectionDataset(items, dm.cfg, train=True)
    bs = preset.dataloader.batch_size
    draws = list(EpochShuffle(len(ds), preset.seed))[: n * bs]
    return dm, [[ds[d] for d in draws[i : i + bs]] for i in range(0, len(draws), bs)]


def child(args: argparse.Namespace) -> None:
    """One allocator setting: each batch timed padded both ways; JSON on stdout."""
    torch.set_num_threads(1)
    set_mmap_threshold(SETTINGS[args.child])
    preset = load_preset(args.preset, [f"datasets.image_size={args.size}", *args.sets]).preset
    dm, samples = first_batches(preset, args.data, args.steps + 1)
    bs = preset.dataloader.batch_size
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

    try:  # the peak of loading the samples must not count: reset the high-water mark
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    base = _status("VmRSS")
    step(collate(samples[0]))  # warm-up: first-call costs
    out: dict = {p: {"s": [], "sys": []} for p in PADS}
    kept = []
    for n, s in enumerate(samples[1:]):
        batches = {"square": collate(s), "batch": collate(s, pad="batch")}
        kept.append(batches["batch"]["image"][0, 0].numel() / batches["square"]["image"][0, 0].numel())
        for pad in (PADS if n % 2 == 0 else PADS[::-1]):
            t, st = step(batches[pad])
            out[pad]["s"].append(t)
            out[pad]["sys"].append(st)
    print(json.dumps({"steps": out, "kept": kept, "peak_mb": (_status("VmHWM") - base) / 2**20,
                      "root": str(dm.root), "n_train": dm.n_train, "model": preset.models.encoder.model_name,
                      "batch": bs}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--size", type=int, default=1024, help="datasets.image_size (default 1024)")
    ap.add_argument("--steps", type=int, default=8, help="batches timed (each padded both ways)")
    ap.add_argument("--child", choices=sorted(SETTINGS), default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        return child(args)

    base = [sys.executable, __file__, "--preset", args.preset, "--size", str(args.size), "--steps", str(args.steps),
            *(["--data", str(args.data)] if args.data else []), *[x for s in args.sets for x in ("--set", s)]]
    procs = {name: subprocess.Popen([*base, "--child", name], stdout=subprocess.PIPE, text=True,
                                    env={**os.environ, "PYTHONWARNINGS": "ignore"}) for name in SETTINGS}
    res = {}
    for name, p in procs.items():
        stdout, _ = p.communicate()
        if p.returncode:
            sys.exit(f"child {name!r} failed (exit {p.returncode})")
        res[name] = json.loads(stdout.strip().splitlines()[-1])

    first = next(iter(res.values()))
    kept = first["kept"]
    ref = statistics.median(res["fresh mappings"]["steps"]["square"]["s"])
    print(f"preset {args.preset}: {first['model']} at {args.size} px, batch {first['batch']}, 1 thread per "
          f"process, both at once; data {first['root']} ({first['n_train']} train images), "
          f"{len(kept)} batches each way")
    print(f"pixels kept by padding to the batch: {statistics.mean(kept):.2f} of the square "
          f"(batches {min(kept):.2f}-{max(kept):.2f})")
    print(f"{'pad':7} {'large tensors':15} {'ms/step':>8} {'sys ms/step':>12} {'speed-up':>9}")
    for name, r in res.items():
        for pad in PADS:
            t = statistics.median(r["steps"][pad]["s"])
            st = statistics.median(r["steps"][pad]["sys"])
            ref_note = "  (reference)" if (name, pad) == ("fresh mappings", "square") else ""
            print(f"{pad:7} {name:15} {t * 1000:8.0f} {st * 1000:12.0f} {ref / t:8.2f}x" + ref_note)
        print(f"{'':7} {name:15} peak RSS above the loaded samples, both paddings: {r['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
