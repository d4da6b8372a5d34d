"""LightningModule: DB loss in training, CLEval H-mean in validation, Adam(W) + cosine schedule."""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from ocrtune.errors import OcrtuneError
from ocrtune.metrics.cleval import CLEvalAccumulator, CLEvalCounts
from ocrtune.metrics.iou import IoUAccumulator
from ocrtune.metrics.iou_misses import IoUMisses, classify
from ocrtune.model.dbnet import build_dbnet
from ocrtune.model.loss import DBLoss
from ocrtune.model.postprocess import DBPostProcessor
from ocrtune.presets.schema import EmaConfig, PostprocessConfig, Preset
from ocrtune.train.datamodule import TARGET_KEYS
from ocrtune.train.extents import by_extent, prob_maps
from ocrtune.train.schedule import lr_factor, step_lr_factor

VAL_METRICS = ("val/hmean", "val/precision", "val/recall", "val/iou_hmean")


class Diverged(OcrtuneError):
    """The training loss became NaN or infinite; the run ends with status ``diverged``."""


def postprocessor(cfg: PostprocessConfig) -> DBPostProcessor:
    return DBPostProcessor(
        thresh=cfg.thresh,
        box_thresh=cfg.box_thresh,
        max_candidates=cfg.max_candidates,
        use_polygon=cfg.use_polygon,
        box_unclip_ratio=cfg.box_unclip_ratio,
        polygon_unclip_ratio=cfg.polygon_unclip_ratio,
        min_size=cfg.min_size,
    )


class DetectionScores:
    """Postprocess probability maps and score them with CLEval and IoU.

    Validation and ``ocrtune evaluate`` share it, so both score exactly the same way;
    ``misses`` also sorts the IoU misses by kind (evaluate's breakdown, not needed per epoch).
    """

    def __init__(self, post: DBPostProcessor, misses: bool = False) -> None:
        self.post = post
        self.cleval = CLEvalAccumulator()
        self.iou = IoUAccumulator()
        self.misses: dict[str, IoUMisses] | None = {} if misses else None

    def add(self, maps: Sequence[np.ndarray], batch: dict[str, Any]) -> None:
        """``maps``: each image's (H, W) probabilities (any extent covering it), in batch order."""
        for name, m, s, o, gt, ignore in zip(
            batch["name"], maps, batch["scale"], batch["orig_size"], batch["gt"], batch["gt_ignore"]
        ):
            polys = [d.polygon for d in self.post(m, scale=s, original_size=tuple(o))]
            self.cleval.update(name, gt, polys)
            match = self.iou.update_match(name, gt, polys, gt_ignore=ignore)  # one matching: score and misses
            if self.misses is not None:
                self.misses[name] = classify(match, self.iou.iou_threshold)


class DBNetModule(L.LightningModule):
    def __init__(self, preset: dict[str, Any], val_loss: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.preset = Preset.model_validate(preset)
        self.model = build_dbnet(self.preset.models)
        self.ema = build_ema(self.model, self.preset.trainer.ema)
        self._ema_step = -1
        self.loss = DBLoss(self.preset.models.loss)
        self.post = postprocessor(self.preset.models.head.postprocess)
        self.val_loss = val_loss
        self._scores = DetectionScores(self.post)
        self._val_losses: dict[str, float] = {}  # image name -> its loss (names: DDP repeats some)
        self.last_grad_norm: float | None = None
        self.last_val: dict[str, float] = {}

    @property
    def scored_model(self) -> nn.Module:
        """The weights validation scores, checkpoints are chosen by, and evaluate/predict use:
        the moving average when the preset keeps one, else the trained weights."""
        return self.ema.module if self.ema is not None else self.model

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        return self.scored_model(images)

    def reset_ema(self) -> None:
        """Restart the average at the current weights (after ``--init`` replaced them)."""
        if self.ema is not None:
            self.ema.set(self.model)

    # --- training -------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Any] | None, batch_idx: int) -> Tensor | None:
        if batch is None:
            return None
        out = self.model(batch["image"])
        losses = self.loss(out, batch)
        if not torch.isfinite(losses["loss"]):
            raise Diverged(
                f"training loss became {losses['loss'].item()} at epoch {self.current_epoch + 1}, "
                f"step {self.global_step} (lr {self._lr():.3g})"
            )
        n = batch["image"].shape[0]
        # Step values only feed the progress bar; epoch means are synced across DDP ranks once.
        self.log("train/loss", losses["loss"].detach(), on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        self.log("train/loss_epoch", losses["loss"].detach(), on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        for part in ("prob", "thresh", "binary"):
            self.log(f"train/{part}", losses[part], on_step=False, on_epoch=True, batch_size=n, sync_dist=True)
        return losses["loss"]

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # global_step counts optimizer steps: with gradient accumulation most batches step nothing
        if self.ema is not None and self.global_step != self._ema_step:
            self.ema.update(self.model, step=self.global_step)
            self._ema_step = self.global_step

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        norms = [p.grad.detach().float().norm(2) for p in self.model.parameters() if p.grad is not None]
        if norms:
            self.last_grad_norm = float(torch.linalg.vector_norm(torch.stack(norms), 2))

    def _lr(self) -> float:
        try:
            return float(self.trainer.optimizers[0].param_groups[0]["lr"])
        except (AttributeError, IndexError, RuntimeError):
            return float("nan")

    # --- validation -----------------------------------------------------------------------

    def on_validation_epoch_start(self) -> None:
        self._scores = DetectionScores(self.post)
        self._val_losses = {}

    def validation_step(self, batch: dict[str, Any] | None, batch_idx: int) -> None:
        if batch is None:
            return
        want_loss = self.val_loss and "prob_map" in batch
        if not want_loss:
            maps = prob_maps(lambda x: self.scored_model(x)["prob"], batch["image"], batch["extent"])
            self._scores.add(maps, batch)
            return
        # The maps scored are the ones above; the loss is each image's own on its extent (a
        # batch's loss pools its images: the value would depend on how they were batched).
        maps = [np.empty(0)] * len(batch["name"])
        for idx, part in by_extent(batch["image"], batch["extent"]):
            out = self.scored_model(part, all_maps=True)
            h, w = part.shape[-2:]
            prob = torch.sigmoid(out["prob_logits"].float()).squeeze(1).cpu().numpy()
            for k, i in enumerate(idx):
                maps[i] = prob[k]
                one = {key: v[k : k + 1] for key, v in out.items()}
                targets = {key: batch[key][i : i + 1, ..., :h, :w] for key in TARGET_KEYS}
                self._val_losses[batch["name"][i]] = float(self.loss(one, targets)["loss"])
        self._scores.add(maps, batch)

    def on_validation_epoch_end(self) -> None:
        cle = self._scores.cleval.summary()
        iou = self._scores.iou.summary()
        losses = self._val_losses
        if self.trainer.world_size > 1:
            cle, iou, losses = _gather_summaries(cle, iou, losses)
        scores = {
            "val/hmean": cle["image_mean"]["hmean"],
            "val/precision": cle["image_mean"]["precision"],
            "val/recall": cle["image_mean"]["recall"],
            "val/iou_hmean": iou["image_mean"]["hmean"],
        }
        if losses:
            scores["val/loss"] = float(np.mean(list(losses.values())))
        for k, v in scores.items():
            self.log(k, float(v), prog_bar=k == "val/hmean", sync_dist=False)
        self.last_val = {k: float(v) for k, v in scores.items()}

    # --- optimisation ---------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        o, s = self.preset.models.optimizer, self.preset.models.scheduler
        cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        opt = cls(self.model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        shape = dict(lr=o.lr, eta_min=s.eta_min, t_max=s.T_max, warmup=s.warmup_epochs, name=s.name)
        if s.interval == "step":
            factor = partial(step_lr_factor, steps_per_epoch=self.steps_per_epoch(), **shape)
        else:
            factor = partial(lr_factor, **shape)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": s.interval}}

    def on_train_start(self) -> None:
        self._align_step_schedule()

    def _align_step_schedule(self) -> None:
        """A resumed step schedule goes on from the epoch reached, whatever the steps an epoch are
        now (another --data, other devices): its saved step count assumed the old ones."""
        if self.preset.models.scheduler.interval != "step" or not self.trainer.lr_scheduler_configs:
            return
        sched = self.trainer.lr_scheduler_configs[0].scheduler
        step = self.trainer.current_epoch * self.steps_per_epoch()
        if not isinstance(sched, torch.optim.lr_scheduler.LambdaLR) or sched.last_epoch == step:
            return
        sched.last_epoch = step
        rates = [base * factor(step) for base, factor in zip(sched.base_lrs, sched.lr_lambdas)]
        for group, lr in zip(sched.optimizer.param_groups, rates):
            group["lr"] = lr
        sched._last_lr = rates  # what get_last_lr() reports

    def steps_per_epoch(self) -> int:
        """Optimizer steps an epoch, as Lightning counts them (accumulation and batch limits included)."""
        epochs = max(int(self.trainer.max_epochs or 1), 1)
        return max(math.ceil(self.trainer.estimated_stepping_batches / epochs), 1)


def build_ema(model: nn.Module, cfg: EmaConfig) -> nn.Module | None:
    """timm's ``ModelEmaV3`` of ``model``, or None when the preset keeps no average. Its first
    update copies the weights (decay 0 at step 1), so it never averages in the random start."""
    if not cfg.enabled:
        return None
    from timm.utils import ModelEmaV3

    ema = ModelEmaV3(model, decay=cfg.decay, use_warmup=cfg.warmup)
    ema.requires_grad_(False)  # not trained: kept out of the optimizer, grad norms and DDP's reducer
    # timm leaves the copy in eval mode; follow the module's mode instead (Lightning warns about
    # eval-mode modules at the start of training). It only runs in validation and inference,
    # where the whole module is in eval mode, so its batch-norm statistics stay averaged ones.
    ema.train()
    return ema


def _gather_summaries(cle: dict[str, Any], iou: dict[str, Any], losses: dict[str, float]
                      ) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """Merge per-rank metric summaries and per-image losses (DDP): image means over all images,
    pooled counts; an image a sampler gave two ranks counts once."""
    import torch.distributed as dist

    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, (cle["per_image"], iou["per_image"], losses))
    cle_imgs: dict[str, Any] = {}
    iou_imgs: dict[str, Any] = {}
    all_losses: dict[str, float] = {}
    for c, i, v in parts:
        cle_imgs.update(c)
        iou_imgs.update(i)
        all_losses.update(v)
    return _mean_of(cle_imgs, pooled=True), _mean_of(iou_imgs, pooled=False), all_losses


def _mean_of(per_image: dict[str, Any], pooled: bool) -> dict[str, Any]:
    n = max(len(per_image), 1)
    mean = {m: sum(v[m] for v in per_image.values()) / n for m in ("recall", "precision", "hmean")}
    out: dict[str, Any] = {"per_image": per_image, "image_mean": mean}
    if pooled:
        total = CLEvalCounts()
        for v in per_image.values():
            total = total + CLEvalCounts(**v["counts"])
        r, p, h = total.scores()
        out["global"] = {"recall": r, "precision": p, "hmean": h}
    return out
