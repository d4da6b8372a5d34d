"""Speed of DBLoss against a straightforward reference (topk OHEM reading k with .item()).

Run: ``.venv/bin/python bench/bench_loss.py [--batch B] [--size S] [--reps R] [--device cpu|cuda]``

Both compute the same number (checked). Prints ms per loss step (forward + backward) for DBLoss
(device default: topk on CPU, sync-free sort elsewhere), for the reference, and for the two
hard-negative selections alone, with ratios. On a GPU the .item() stalls the launch queue once
per step, which a single-process timing like this understates.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from ocrtune.model.loss import DBLoss, dice_loss, masked_l1, top_sum


def reference_loss(preds: dict, batch: dict, ratio: float = 3.0) -> torch.Tensor:
    logits = preds["prob_logits"].squeeze(1).float()
    gt, mask = batch["prob_map"], batch["prob_mask"]
    bce = F.binary_cross_entropy_with_logits(logits, gt, reduction="none")
    pos, neg = gt * mask, (1 - gt) * mask
    n_pos = int(pos.sum().item())
    k = min(int(neg.sum().item()), int(n_pos * ratio)) if n_pos else min(int(neg.sum().item()), 100)
    hard = torch.topk((bce * neg).flatten(), k).values.sum() if k else bce.new_zeros(())
    prob = ((bce * pos).sum() + hard) / (n_pos + k + 1e-6)
    l1 = masked_l1(preds["thresh"].squeeze(1).float(), batch["thresh_map"], batch["thresh_mask"])
    dice = dice_loss(preds["binary_logits"].squeeze(1).float(), gt, mask)
    return 5 * prob + 10 * l1 + dice


def make(b: int, s: int, device: str) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    prob_map = (torch.rand(b, s, s, generator=g) < 0.1).float()
    batch = {
        "prob_map": prob_map,
        "prob_mask": (torch.rand(b, s, s, generator=g) < 0.98).float(),
        "thresh_map": torch.rand(b, s, s, generator=g),
        "thresh_mask": (torch.rand(b, s, s, generator=g) < 0.3).float(),
    }
    p = torch.randn(b, 1, s, s, generator=g) * 3
    t = torch.rand(b, 1, s, s, generator=g)
    preds = {"prob_logits": p, "thresh": t, "binary_logits": 50 * (torch.sigmoid(p) - t)}
    return ({k: v.to(device).requires_grad_() for k, v in preds.items()}, {k: v.to(device) for k, v in batch.items()})


def timed(fn, reps: int, device: str) -> float:
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    preds, batch = make(a.batch, a.size, a.device)
    loss = DBLoss()
    ours = loss(preds, batch)["loss"].item()
    ref = reference_loss(preds, batch).item()
    assert abs(ours - ref) <= 1e-4 * abs(ref), (ours, ref)

    t_ours = timed(lambda: loss(preds, batch)["loss"].backward(), a.reps, a.device)
    t_ref = timed(lambda: reference_loss(preds, batch).backward(), a.reps, a.device)
    print(f"batch {a.batch}x{a.size}x{a.size} on {a.device}: loss {ours:.5f} (reference {ref:.5f})")
    print(f"DBLoss (device default): {t_ours:8.2f} ms/step")
    print(f"reference (topk+.item) : {t_ref:8.2f} ms/step   ratio ours/ref {t_ours / t_ref:.2f}")
    values = torch.rand(a.batch * a.size * a.size, device=a.device)
    k = torch.tensor(float(values.numel() // 10), dtype=torch.float64, device=a.device)
    t_sort = timed(lambda: top_sum(values, k, sort=True), a.reps, a.device)
    t_topk = timed(lambda: top_sum(values, k, sort=False), a.reps, a.device)
    print(f"hard negatives: sort {t_sort:.2f} ms, topk {t_topk:.2f} ms, sort/topk {t_sort / t_topk:.2f}")


if __name__ == "__main__":
    main()
