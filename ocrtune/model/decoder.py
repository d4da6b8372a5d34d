"""Decoders fusing encoder stages into one map at the finest encoder resolution.

Both decoders are sized from the encoder's declared ``channels`` and produce
``out_channels * n_levels`` channels (``DecoderConfig``: 64 x 4 = 256 by default, the width DBNet's
head expects), so the head never needs to know which decoder ran.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ocrtune.errors import InputError
from ocrtune.presets.schema import DecoderConfig


def _conv_bn_relu(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def _resize_to(x: Tensor, ref: Tensor) -> Tensor:
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")


class AdaptiveScaleFusion(nn.Module):
    """DBNet++ adaptive scale fusion: learn per-pixel weights for each pyramid level.

    Plain concatenation treats every level as equally useful everywhere; small text wants fine
    levels and long lines coarse ones. A spatial attention over the fused map is added back, then a
    1x1 conv predicts one sigmoid weight map per level that scales that level before concatenation.
    """

    def __init__(self, channels: int, n_levels: int) -> None:
        super().__init__()
        self.n_levels = n_levels
        self.reduce = nn.Conv2d(channels * n_levels, channels, 3, padding=1, bias=False)
        self.spatial = nn.Sequential(
            nn.Conv2d(1, 1, 3, padding=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(1, 1, 1, bias=False),
            nn.Sigmoid(),
        )
        self.level_weights = nn.Sequential(nn.Conv2d(channels, n_levels, 1, bias=False), nn.Sigmoid())

    def forward(self, levels: list[Tensor]) -> Tensor:
        fused = self.reduce(torch.cat(levels, dim=1))
        attended = fused + self.spatial(fused.mean(dim=1, keepdim=True))
        weights = self.level_weights(attended)
        return torch.cat([weights[:, i : i + 1] * lvl for i, lvl in enumerate(levels)], dim=1)


class FPNDecoder(nn.Module):
    """DBNet's FPN: 1x1 laterals, top-down nearest upsample and add, 3x3 smoothing per level to
    ``out_channels``, upsample every level to the finest one and concatenate (optionally ASF)."""

    def __init__(self, in_channels: list[int], inner_channels: int, out_channels: int, asf: bool = False) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, inner_channels, 1, bias=False) for c in in_channels)
        self.smooth = nn.ModuleList(
            nn.Conv2d(inner_channels, out_channels, 3, padding=1, bias=False) for _ in in_channels
        )
        self.asf = AdaptiveScaleFusion(out_channels, len(in_channels)) if asf else None
        self.out_channels = out_channels * len(in_channels)

    def forward(self, feats: list[Tensor]) -> Tensor:
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]
        for i in range(len(lat) - 2, -1, -1):
            lat[i] = lat[i] + _resize_to(lat[i + 1], lat[i])
        levels = [_resize_to(conv(x), lat[0]) for conv, x in zip(self.smooth, lat)]
        if self.asf is not None:
            return self.asf(levels)
        return torch.cat(levels, dim=1)


class UNetDecoder(nn.Module):
    """UNet-style decoder: from the deepest stage, upsample, concatenate the skip, two 3x3 convs.

    Intermediate blocks are ``inner_channels`` wide; the last block (at the finest stage) outputs
    ``out_channels * n_levels`` so it is a drop-in for the FPN.
    """

    def __init__(self, in_channels: list[int], inner_channels: int, out_channels: int) -> None:
        super().__init__()
        n = len(in_channels)
        self.out_channels = out_channels * n
        self.bottom = _conv_bn_relu(in_channels[-1], inner_channels if n > 1 else self.out_channels, 1)
        blocks = []
        for i in range(n - 2, -1, -1):  # deepest skip first
            width = self.out_channels if i == 0 else inner_channels
            blocks.append(
                nn.Sequential(_conv_bn_relu(inner_channels + in_channels[i], width, 3), _conv_bn_relu(width, width, 3))
            )
        self.blocks = nn.ModuleList(blocks)

    def forward(self, feats: list[Tensor]) -> Tensor:
        x = self.bottom(feats[-1])
        for block, skip in zip(self.blocks, reversed(feats[:-1])):
            up = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([up, skip], dim=1))
        return x


def check_decoder_config(cfg: DecoderConfig) -> None:
    """Reject combinations the schema cannot express, before any backbone is built."""
    if cfg.name == "unet" and cfg.asf:
        raise InputError("asf (adaptive scale fusion) applies only to the fpn decoder", key="models.decoder.asf")


def build_decoder(cfg: DecoderConfig, in_channels: list[int]) -> FPNDecoder | UNetDecoder:
    check_decoder_config(cfg)
    if cfg.name == "unet":
        return UNetDecoder(in_channels, cfg.inner_channels, cfg.out_channels)
    return FPNDecoder(in_channels, cfg.inner_channels, cfg.out_channels, asf=cfg.asf)
