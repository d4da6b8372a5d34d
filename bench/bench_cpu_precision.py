"""A CPU training step at 1024 px, four ways: the model's memory layout (NCHW, or channels-last
as training now runs it on the CPU) by precision (fp32, or bf16-mixed: ``trainer.precision``).

Goal: a CPU with bf16 units (AMX, AVX512-BF16) trains as fast as it can. The reference is fp32
NCHW (ocrtune before this change). Each way trains its own copy of the same initial weights
on the same SROIE batches (padded to the batch, the recipe's setting), one process, the order
of the ways alternating batch by batch so that load on the machine weighs on all alike. Prints
ms/step, the speed-up, and each way's mean loss over the last half of the steps, next to the
fp32 reference's (bf16 rounding shows there first; whether it costs accuracy needs a training
run, docs/quality.md).

    python bench/bench_cpu_precision.py --data ../shared/data/sroie           # cpu-demo at 1024 px
    python bench/bench_cpu_precision.py --data ../shared/data/sroie --size 512 --steps 12
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ocrtune.cpu_malloc import keep_large_blocks  # noqa: E402
from ocrtune.presets.load import load_preset  # noqa: E402
from ocrtune.train.datamodule import collate  # noqa: E402
from ocrtune.train.module import DBNetModule  # noqa: E402
from ocrtune.train.resources import cpu_bf16_units  # noqa: E402

from bench_cpu_step import first_batches  # noqa: E402  (bench/ is the script's folder)

WAYS = (("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True))


def _label(precision: str, last: bool) -> str:
    return f"{precision} {'channels-last' if last else 'NCHW'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="cpu-demo")
    ap.add_argument("--set", action="append", default=[], dest="sets")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--size", type=int, default=1024, help="datasets.image_size (default 1024)")
    ap.add_argument("--steps", type=int, default=8, help="batches timed (each trained all four ways)")
    args = ap.parse_args()

    keep_large_blocks()  # as training on the CPU does
    preset = load_preset(args.preset, [f"datasets.image_size={args.size}", *args.sets]).preset
    dm, samples = first_batches(preset, args.data, args.steps + 1)
    bs = preset.dataloader.batch_size
    batches = [collate(s, pad="batch") for s in samples]

    torch.manual_seed(preset.seed)
    module = DBNetModule(preset.model_dump(mode="json"))
    loss_fn = module.loss
    models, opts = {}, {}
    for way in WAYS:
        m = copy.deepcopy(module.model).train()
        if way[1]:
            m = m.to(memory_format=torch.channels_last)
        models[way] = m
        opts[way] = torch.optim.AdamW(m.parameters(), lr=preset.models.optimizer.lr)

    def step(way: tuple[str, bool], batch: dict) -> tuple[float, float]:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=way[0] == "bf16"):
            maps = models[way](batch["image"])
            loss = loss_fn(maps, batch)["loss"]  # fp32 inside: the head hands fp32 logits
        opts[way].zero_grad(set_to_none=True)
        loss.backward()
        opts[way].step()
        return time.perf_counter() - t, loss.detach().item()

    for way in WAYS:
        step(way, batches[0])  # warm-up: first-call costs (oneDNN builds its kernels)
    times: dict = {w: [] for w in WAYS}
    losses: dict = {w: [] for w in WAYS}
    for n, batch in enumerate(batches[1:]):
        for way in (WAYS if n % 2 == 0 else WAYS[::-1]):
            t, loss = step(way, batch)
            times[way].append(t)
            losses[way].append(loss)

    ref = statistics.median(times[WAYS[0]])
    half = len(batches[1:]) // 2
    pixels = statistics.mean(b["image"].shape[-2] * b["image"].shape[-1] for b in batches[1:]) / args.size**2
    print(f"preset {args.preset}: {preset.models.encoder.model_name} at {args.size} px, batch {bs} padded to the "
          f"batch ({pixels:.2f} of the square), {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"CPU bf16 units: {', '.join(cpu_bf16_units()) or 'none (emulated: expect bf16 slower)'}; "
          f"data {dm.root} ({dm.n_train} train images), {len(batches) - 1} steps "
          "each way")
    print(f"{'way':19} {'ms/step':>8} {'speed-up':>9} {'loss, last ' + str(len(batches) - 1 - half) + ' steps':>22}")
    for way in WAYS:
        t = statistics.median(times[way])
        note = "  (reference)" if way == WAYS[0] else ""
        print(f"{_label(*way):19} {t * 1000:8.0f} {ref / t:8.2f}x {statistics.mean(losses[way][half:]):22.4f}{note}")


if __name__ == "__main__":
    main()
