"""Lightning callback that keeps ``metrics.csv`` and ``summary.json`` current after every epoch."""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import lightning as L
import torch

from ocrtune.train.rundir import RunDir, best_row


def peak_memory_mb(device: torch.device | None) -> float:
    """Peak accelerator memory on GPU; peak resident memory of this process on CPU."""
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


class RunRecorder(L.Callback):
    """One ``metrics.csv`` row per epoch; ``summary.json`` rewritten atomically each time."""

    def __init__(
        self, run: RunDir, summary: dict[str, Any], rows: list[dict[str, Any]] | None = None, enabled: bool = True
    ) -> None:
        self.run = run
        self.summary = summary
        self.rows: list[dict[str, Any]] = list(rows or [])
        self.enabled = enabled  # False in DDP ranks > 0: rank 0 writes the run files
        self._epoch_start = time.perf_counter()
        self._epoch_lr: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        # The lr this epoch trains with: epoch schedulers step before on_train_epoch_end.
        self._epoch_lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.enabled:
            return
        m = trainer.callback_metrics
        exact = getattr(pl_module, "last_val", {})  # logged values are float32; keep full precision

        def get(key: str) -> float | None:
            if key in exact:
                return exact[key]
            v = m.get(key)
            return float(v) if v is not None else None

        row = {
            "epoch": trainer.current_epoch,
            "train_loss": get("train/loss_epoch") if "train/loss_epoch" in m else get("train/loss"),
            "train_prob": get("train/prob"),
            "train_thresh": get("train/thresh"),
            "train_binary": get("train/binary"),
            "val_loss": get("val/loss"),
            "val_hmean": get("val/hmean"),
            "val_precision": get("val/precision"),
            "val_recall": get("val/recall"),
            "val_iou_hmean": get("val/iou_hmean"),
            "lr": self._epoch_lr,
            "grad_norm": getattr(pl_module, "last_grad_norm", None),
            "epoch_time_s": time.perf_counter() - self._epoch_start,
            "peak_mem_mb": peak_memory_mb(pl_module.device),
        }
        self.rows = [r for r in self.rows if r.get("epoch") != row["epoch"]] + [row]
        self.run.write_metrics(self.rows)
        self.update_summary(epochs_completed=trainer.current_epoch + 1)

    def update_summary(self, **fields: Any) -> None:
        self.summary.update(fields)
        if not self.enabled:
            return
        best = best_row(self.rows)
        if best is not None:
            self.summary["best_epoch"] = best["epoch"]
            self.summary["best"] = {
                k: best.get(f"val_{k}") for k in ("hmean", "precision", "recall", "iou_hmean")
            }
        self.run.write_summary(self.summary)


class EpochLines(L.Callback):
    """Progress for logs and pipes: one plain line per epoch on stderr instead of a live bar."""

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        for label, key in (("loss", "train/loss_epoch"), ("val H", "val/hmean"), ("P", "val/precision"),
                           ("R", "val/recall")):
            if key in m:
                parts.append(f"{label} {float(m[key]):.4f}")
        parts.append(f"{time.perf_counter() - self._start:.1f}s")
        print("  ".join(parts), file=sys.stderr, flush=True)
