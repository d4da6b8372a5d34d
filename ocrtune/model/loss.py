"""DB loss on precomputed target maps, always evaluated in fp32 from logits.

Mixed precision training feeds bf16/fp16 activations; BCE on probabilities or sums over a
megapixel batch overflow or lose all precision in half floats. Everything here is cast to fp32 and
autocast is switched off, so the loss is the same number whatever precision the model ran in.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ocrtune.presets.schema import LossConfig

_EPS = 1e-6
# Hard negatives kept when a batch holds no text at all: ratio x positives would be zero and the
# model would never be told that blank paper is background.
_NEGATIVES_WITHOUT_TEXT = 100
_DICE_SMOOTH = 1.0  # makes empty-vs-empty a perfect score instead of 0/0


def _map(x: Tensor) -> Tensor:
    """(B, 1, H, W) or (B, H, W) -> (B, H, W) float32."""
    if x.dim() == 4:
        x = x.squeeze(1)
    return x.float()


def ohem_bce(logits: Tensor, target: Tensor, mask: Tensor, negative_ratio: float) -> Tensor:
    """BCE over every positive plus the hardest ``negative_ratio`` x positives negatives."""
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    positive = target * mask
    negative = (1.0 - target) * mask
    # counts in float64: float32 stops counting exactly past 2**24 pixels (16 images of 1024^2)
    n_pos = positive.sum(dtype=torch.float64)
    n_neg_avail = negative.sum(dtype=torch.float64)
    wanted = torch.where(
        n_pos > 0, torch.floor(n_pos * negative_ratio), torch.full_like(n_pos, _NEGATIVES_WITHOUT_TEXT)
    )
    n_neg = torch.minimum(wanted, n_neg_avail)
    hard = top_sum((loss * negative).flatten(), n_neg)
    total = (loss * positive).sum() + hard
    return (total / (n_pos + n_neg + _EPS).float()).float()


def top_sum(values: Tensor, k: Tensor, sort: bool | None = None) -> Tensor:
    """Sum of the ``k`` largest of a flat tensor.

    On accelerators (``sort`` None -> True) a full sort keeps ``k`` on the device: ``topk`` needs
    a Python int, i.e. a host sync every step. On CPU reading ``k`` is free and a partial ``topk``
    is several times faster than a full sort (bench/bench_loss.py).
    """
    if sort is None:
        sort = values.device.type != "cpu"
    if not sort:
        return torch.topk(values, int(k.item()), sorted=False).values.sum()
    ordered, _ = values.sort(descending=True)
    rank = torch.arange(ordered.numel(), device=ordered.device)
    return (ordered * (rank < k)).sum()


def masked_l1(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    return ((pred - target).abs() * mask).sum() / (mask.sum() + _EPS)


def dice_loss(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    pred = torch.sigmoid(logits) * mask
    gt = target * mask
    inter = (pred * gt).sum()
    return 1.0 - (2.0 * inter + _DICE_SMOOTH) / (pred.sum() + gt.sum() + _DICE_SMOOTH)


class DBLoss(nn.Module):
    """prob_weight * OHEM-BCE(prob) + thresh_weight * L1(thresh) + binary_weight * Dice(binary).

    ``preds``: the model's training maps; ``batch``: ``prob_map``, ``prob_mask``, ``thresh_map``,
    ``thresh_mask`` (B, H, W). Returns ``loss`` and the unweighted parts ``prob``, ``thresh``,
    ``binary`` (fp32 scalars).
    """

    def __init__(self, cfg: LossConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LossConfig()

    def forward(self, preds: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        device_type = preds["prob_logits"].device.type
        with torch.autocast(device_type=device_type, enabled=False):
            prob_logits = _map(preds["prob_logits"])
            thresh = _map(preds["thresh"])
            binary_logits = _map(preds["binary_logits"])
            prob_map = _map(batch["prob_map"])
            prob_mask = _map(batch["prob_mask"])
            thresh_map = _map(batch["thresh_map"])
            thresh_mask = _map(batch["thresh_mask"])

            prob = ohem_bce(prob_logits, prob_map, prob_mask, self.cfg.negative_ratio)
            l1 = masked_l1(thresh, thresh_map, thresh_mask)
            binary = dice_loss(binary_logits, prob_map, prob_mask)
            total = self.cfg.prob_weight * prob + self.cfg.thresh_weight * l1 + self.cfg.binary_weight * binary
        return {"loss": total, "prob": prob.detach(), "thresh": l1.detach(), "binary": binary.detach()}
