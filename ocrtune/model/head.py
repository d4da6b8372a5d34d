"""DB head: probability and threshold branches and the differentiable binarisation.

Training needs all three maps; inference needs only the probability map, so eval mode skips the
threshold branch. The binary map is formed in fp32 outside autocast: with k = 50 the difference
``P - T`` is amplified 50x, and bf16/fp16 rounding of that product is exactly what the loss sees.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _branch(cin: int, mid: int) -> nn.Sequential:
    """conv3x3-BN-ReLU, then two stride-2 transposed convs: 4x up to 1 logit channel."""
    return nn.Sequential(
        nn.Conv2d(cin, mid, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(mid, mid, 2, stride=2),
        nn.BatchNorm2d(mid),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(mid, 1, 2, stride=2),
    )


def _resize(x: Tensor, size: tuple[int, int] | None) -> Tensor:
    if size is None or tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


# Text covers a few percent of a receipt. Starting the probability logits at that prior (with a
# near-zero last layer) saves the first thousand steps a from-scratch model otherwise spends
# just moving one bias from 0.5 to the background level (RetinaNet's prior initialisation).
PROB_PRIOR = 0.05


class DBHead(nn.Module):
    """Maps decoder features to DB maps, shapes (B, 1, H, W).

    Returns ``{"prob_logits", "thresh", "binary_logits"}`` (fp32) when all maps are wanted (the
    default in training), else ``{"prob"}`` (sigmoid probabilities).
    """

    def __init__(self, in_channels: int, k: float = 50.0) -> None:
        super().__init__()
        mid = max(in_channels // 4, 1)
        self.k = float(k)
        self.prob = _branch(in_channels, mid)
        self.thresh = _branch(in_channels, mid)
        self.init_prior()

    def init_prior(self, prior: float = PROB_PRIOR) -> None:
        """Small last-layer weights and a bias at logit(prior) for the probability branch."""
        last = self.prob[-1]
        nn.init.normal_(last.weight, std=0.01)
        nn.init.constant_(last.bias, math.log(prior / (1 - prior)))

    def forward(
        self, x: Tensor, out_size: tuple[int, int] | None = None, all_maps: bool | None = None
    ) -> dict[str, Tensor]:
        want_all = self.training if all_maps is None else all_maps
        prob_logits = _resize(self.prob(x), out_size)
        if not want_all:
            return {"prob": torch.sigmoid(prob_logits)}
        thresh_logits = _resize(self.thresh(x), out_size)
        with torch.autocast(device_type=x.device.type, enabled=False):
            p = prob_logits.float()
            t = torch.sigmoid(thresh_logits.float())
            binary = self.k * (torch.sigmoid(p) - t)
        return {"prob_logits": p, "thresh": t, "binary_logits": binary}
