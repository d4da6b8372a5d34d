"""Lightning callbacks of a run: ``metrics.csv`` and ``summary.json`` kept current after every
epoch, best/last checkpoints that survive a moved run directory, and progress for people.

Epochs are counted from 1 wherever people read them (bars, log lines); the files keep
Lightning's index from 0 (``metrics.csv`` ``epoch``, ``best_epoch``, a checkpoint's ``epoch``).
"""

from __future__ import annotations

import math
import resource
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar
from rich.progress import ProgressColumn, Task
from rich.text import Text

from ocrtune.procs import Owner
from ocrtune.train.resources import SLOW_RUN_S, duration, pace_line
from ocrtune.train.rundir import BEST, LAST, Heartbeat, RunDir, best_row, os_error_line


def peak_memory_mb(device: torch.device | None) -> float:
    """Peak accelerator memory on GPU; peak resident memory of this process on CPU."""
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


class RunRecorder(L.Callback):
    """One ``metrics.csv`` row per epoch; ``summary.json`` rewritten atomically each time.

    From ``begin`` to ``end`` the summary names this process as the run's ``owner`` and a
    heartbeat file is touched, so readers can tell a live run from one whose process died.
    """

    def __init__(
        self, run: RunDir, summary: dict[str, Any], rows: list[dict[str, Any]] | None = None, enabled: bool = True
    ) -> None:
        self.run = run
        self.summary = summary
        self.rows: list[dict[str, Any]] = list(rows or [])
        self.enabled = enabled  # False in DDP ranks > 0: rank 0 writes the run files
        self._epoch_start = time.perf_counter()
        self._lr = EpochLr()
        self._heartbeat: Heartbeat | None = None
        self._rows_trimmed = False

    def begin(self) -> None:
        """Write ``metrics.csv`` (its header at least) and a summary with every outcome key before
        the first epoch, so a run that ends in its first epoch has both (null: never reached)."""
        self.summary.setdefault("epochs_completed", len(self.rows))
        self._start_epochs = int(self.summary["epochs_completed"] or 0)  # what last.ckpt holds at the start
        self.summary.setdefault("epoch_base", 0)
        self.summary.setdefault("best_epoch", None)
        self.summary.setdefault("best", None)
        if self.enabled:
            self.summary["owner"] = Owner.me().to_json()
            self.run.write_metrics(self.rows)
        self.update_summary()
        if self.enabled:
            self._heartbeat = Heartbeat(self.run.heartbeat).start()

    def end(self, **fields: Any) -> str | None:
        """The outcome, recorded as far as the disk allows: None once written, else the located
        line saying why it could not be (a full disk); the heartbeat stops either way."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None
        try:
            if self._rows_trimmed and self.enabled:
                self.run.write_metrics(self.rows)
            self.update_summary(**fields)
        except OSError as e:
            return os_error_line(e)
        return None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Training stopped (Ctrl-C, a full disk): the epochs recorded are cut back to those
        last.ckpt holds, since its write comes after this recorder's each epoch and may not have
        happened. A resume then retrains them, and best.ckpt still matches the best epoch."""
        last = next((cb for cb in trainer.callbacks if isinstance(cb, LastCheckpoint)), None)
        if last is None or not self.enabled:
            return
        saved = last.saved_epochs if last.saved_epochs is not None else self._start_epochs
        kept = [r for r in self.rows if isinstance(r.get("epoch"), int) and r["epoch"] < saved]
        if len(kept) < len(self.rows):
            self.rows, self._rows_trimmed = kept, True
            self.summary["epochs_completed"] = saved
            if best_row(kept) is None:
                self.summary["best_epoch"] = self.summary["best"] = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()
        self._lr.start(trainer, pl_module)
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._lr.batch(trainer)

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
            "lr": self._lr.value(),
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
    """Progress for logs and pipes: plain lines on stderr instead of a live bar. One per epoch,
    and inside an epoch one every ``every_s`` seconds (step, images/s, the epoch's ETA), so an
    hour-long CPU epoch is not an hour of silence."""

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.perf_counter) -> None:
        self.every_s = every_s
        self._clock = clock
        self._start = self._last = clock()
        self._images = 0
        self._lr = EpochLr()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = self._last = self._clock()
        self._images = 0
        self._lr.start(trainer, pl_module)

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._lr.batch(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._images += _batch_len(batch)
        now = self._clock()
        if not trainer.is_global_zero or now - self._last < self.every_s:
            return
        self._last = now
        done, total = batch_idx + 1, trainer.num_training_batches
        elapsed = now - self._start
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        parts.append(f"step {done}/{total}" if isinstance(total, int) else f"step {done}")
        parts.append(f"{self._images / elapsed:.2f} images/s" if elapsed > 0 else "")
        if isinstance(total, int) and done < total:
            parts.append(f"epoch ETA {duration(elapsed / done * (total - done))}")
        print("  ".join(p for p in parts if p), file=sys.stderr, flush=True)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        for label, key in (("loss", "train/loss_epoch"), ("val H", "val/hmean"), ("P", "val/precision"),
                           ("R", "val/recall")):
            if key in m:
                parts.append(f"{label} {float(m[key]):.4f}")
        if (lr := self._lr.value()) is not None:
            parts.append(f"lr {lr:.3g}{_warmup_label(trainer.current_epoch, pl_module)}")
        parts.append(f"{self._clock() - self._start:.1f}s")
        print("  ".join(parts), file=sys.stderr, flush=True)


class CpuPace(L.Callback):
    """One warning line on a CPU once the pace is measured (steps 2 to ``1 + steps``; the first
    pays for start-up), when at that pace the run takes longer than ``slow_s``: a preset sized
    for a GPU otherwise trains on for days with only a slowly moving bar."""

    def __init__(self, steps: int = 3, slow_s: float = SLOW_RUN_S, clock: Callable[[], float] = time.perf_counter,
                 out: Callable[[str], None] | None = None, remedies: Sequence[str] = ()) -> None:
        self.steps = steps
        self.remedies = tuple(remedies)  # what would shorten the run (resources.pace_remedies)
        self.slow_s = slow_s
        self._clock = clock
        self._out = out
        self._seen = 0
        self._t0: float | None = None
        self._images = 0
        self.line: str | None = None  # the warning, once given
        self.done = False

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.done or not trainer.is_global_zero:
            return
        self._seen += 1
        if self._seen == 1:
            self._t0 = self._clock()
            return
        self._images += _batch_len(batch)
        if self._seen < self.steps + 1 or self._t0 is None:
            return
        self.done = True
        per_step = (self._clock() - self._t0) / self.steps
        total = trainer.num_training_batches
        steps = total if isinstance(total, int) else batch_idx + 1
        epochs_left = max((trainer.max_epochs or 1) - trainer.current_epoch, 1)
        if per_step * steps * epochs_left < self.slow_s:
            return
        self.line = pace_line(per_step, max(round(self._images / self.steps), 1), steps, epochs_left, self.remedies)
        (self._out or _warn)(self.line)


def _warn(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)  # sys.stderr now: a live bar redirects it


def _batch_len(batch: Any) -> int:
    images = batch.get("image") if isinstance(batch, dict) else None
    return int(images.shape[0]) if images is not None else 0


def _current_lr(trainer: L.Trainer) -> float | None:
    try:
        return float(trainer.optimizers[0].param_groups[0]["lr"])
    except (AttributeError, IndexError, KeyError, TypeError):
        return None


class EpochLr:
    """The rate an epoch trained at, as the epoch table shows it: an epoch schedule's rate (it
    steps before ``on_train_epoch_end``), or the mean of a step schedule's batches."""

    def __init__(self) -> None:
        self._first: float | None = None
        self._steps: list[float] | None = None

    def start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self._first = _current_lr(trainer)
        preset = getattr(pl_module, "preset", None)
        self._steps = [] if preset is not None and preset.models.scheduler.interval == "step" else None

    def batch(self, trainer: L.Trainer) -> None:
        if self._steps is not None and (lr := _current_lr(trainer)) is not None:
            self._steps.append(lr)

    def value(self) -> float | None:
        return math.fsum(self._steps) / len(self._steps) if self._steps else self._first


def _warmup_label(epoch: int, pl_module: Any) -> str:
    """`` (warm-up 1/2, target 0.002)`` in a warm-up epoch, else nothing."""
    preset = getattr(pl_module, "preset", None)
    warmup = preset.models.scheduler.warmup_epochs if preset is not None else 0
    if epoch >= warmup:
        return ""
    return f" (warm-up {epoch + 1}/{warmup}, target {preset.models.optimizer.lr:g})"


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
        self.saved_epochs: int | None = None  # epochs in the last.ckpt this process wrote

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_model_path = str(Path(str(self.dirpath)) / LAST)

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        super()._save_checkpoint(trainer, filepath)
        self.saved_epochs = trainer.current_epoch + 1

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

    def configure_columns(self, trainer: L.Trainer) -> list:
        """Steps done/total, ETA, images per second (batches/s times the batch size)."""
        columns = super().configure_columns(trainer)
        batch = getattr(trainer.datamodule, "batch_size", None) if trainer.datamodule is not None else None
        return [*columns[:3], _TimeColumn(self.theme.time), _ImagesPerSecond(batch, self.theme.processing_speed)]


class _TimeColumn(ProgressColumn):
    max_refresh = 0.5

    def __init__(self, style: Any) -> None:
        super().__init__()
        self.style = style

    def render(self, task: Task) -> Text:
        """``ETA 0:12:40`` while running (the time taken once finished): short, since the metrics
        share the line."""
        if task.finished:
            return Text(str(timedelta(seconds=int(task.finished_time or 0))), style=self.style)
        left = task.time_remaining
        return Text(f"ETA {timedelta(seconds=int(left))}" if left is not None else "ETA -:--:--", style=self.style)


class _ImagesPerSecond(ProgressColumn):
    def __init__(self, batch_size: int | None, style: Any) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.style = style

    def render(self, task: Task) -> Text:
        if task.speed is None:
            return Text("", style=self.style)
        if self.batch_size:
            return Text(f"{task.speed * self.batch_size:.2f} img/s", style=self.style)
        return Text(f"{task.speed:.2f} steps/s", style=self.style)
