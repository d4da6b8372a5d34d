"""Lightning callbacks of a run: ``metrics.csv`` and ``summary.json`` kept current after every
epoch, best/last checkpoints that survive a moved run directory, and progress for people.

Epochs are counted from 1 wherever people read them (bars, log lines); the files keep
Lightning's index from 0 (``metrics.csv`` ``epoch``, ``best_epoch``, a checkpoint's ``epoch``).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar

from ocrtune.train.rundir import BEST, LAST, RunDir, best_row


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

    def begin(self) -> None:
        """Write ``metrics.csv`` (its header at least) and a summary with every outcome key before
        the first epoch, so a run that ends in its first epoch has both (null: never reached)."""
        self.summary.setdefault("epochs_completed", len(self.rows))
        self.summary.setdefault("epoch_base", 0)
        self.summary.setdefault("best_epoch", None)
        self.summary.setdefault("best", None)
        if self.enabled:
            self.run.write_metrics(self.rows)
        self.update_summary()

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


class BestCheckpoint(ModelCheckpoint):
    """``best.ckpt`` by val H-mean, replaced only by a strictly better epoch.

    On resume the best score comes from the run's own records, with paths in the run's current
    place. Lightning keeps absolute paths in ``last.ckpt`` and drops the best score of a run
    that was moved or copied (with a warning), after which the first resumed epoch replaced
    ``best.ckpt`` whatever its H-mean while ``summary.json`` still named the old best epoch.
    """

    def __init__(self, run: RunDir, recorded_best: float | None = None) -> None:
        super().__init__(dirpath=run.checkpoints, filename=Path(BEST).stem, monitor="val/hmean", mode="max",
                         **_COMMON)
        if recorded_best is not None:
            self._restore(torch.tensor(recorded_best, dtype=torch.float32))

    def _restore(self, score: torch.Tensor) -> None:
        path = str(Path(str(self.dirpath)) / BEST)
        if not Path(path).is_file():  # nothing to protect: the next epoch writes best.ckpt
            return
        self.best_model_score = self.kth_value = score
        self.best_model_path = self.kth_best_model_path = path
        self.best_k_models = {path: score}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # The saved score is the exact value Lightning compares against; it is used when it is the
        # score the run's metrics.csv records (or when those record none), never a stale path.
        saved = state_dict.get("best_model_score")
        if not isinstance(saved, torch.Tensor):
            return
        mine = self.best_model_score
        if mine is None or abs(float(saved) - float(mine)) < 1e-6:
            self._restore(saved.detach().float().cpu())

    def _generate_state_key(self, **kwargs: Any) -> str:
        return _state_key(kwargs)  # the key plain ModelCheckpoint used: older runs resume too


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every epoch, for ``--resume``; its stored paths are never reloaded (they may
    name the run's old place)."""

    def __init__(self, run: RunDir) -> None:
        super().__init__(dirpath=run.checkpoints, filename=Path(LAST).stem, monitor=None, **_COMMON)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_model_path = str(Path(str(self.dirpath)) / LAST)

    def _generate_state_key(self, **kwargs: Any) -> str:
        return _state_key(kwargs)


_COMMON: dict[str, Any] = dict(auto_insert_metric_name=False, enable_version_counter=False, save_top_k=1)


def _state_key(kwargs: dict[str, Any]) -> str:
    return f"ModelCheckpoint{kwargs!r}"


class EpochBar(RichProgressBar):
    """Lightning's live bar on a terminal, counting epochs from 1 ("Epoch 1/3", as the log lines and
    tables do) and without the logger's version number (``v_num``), which means nothing here."""

    def _get_train_description(self, current_epoch: int) -> str:
        text = f"Epoch {current_epoch + 1}"
        if self.trainer.max_epochs is not None and self.trainer.max_epochs >= 0:
            text += f"/{self.trainer.max_epochs}"
        return f"{text:{len(self.validation_description)}}"

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
