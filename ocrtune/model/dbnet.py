"""DBNet: encoder -> decoder -> DB head, assembled from the typed preset section.

``build_dbnet`` is the only place the parts meet, so a preset key reaches exactly one
constructor argument and a wrong key fails at build time, not deep in a training step.
"""

from __future__ import annotations

from torch import Tensor, nn

from ocrtune.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ocrtune.model.decoder import FPNDecoder, UNetDecoder, build_decoder, check_decoder_config
from ocrtune.model.encoder import Encoder, build_encoder
from ocrtune.model.head import DBHead
from ocrtune.presets.schema import ModelsConfig

__all__ = ["DBNet", "build_dbnet", "IMAGENET_MEAN", "IMAGENET_STD"]


class DBNet(nn.Module):
    """Text detector. Input: ImageNet-normalised images (B, 3, H, W), H and W multiples of 32.

    Output maps are (B, 1, H, W) at input resolution: in training ``prob_logits``, ``thresh`` and
    ``binary_logits``; in eval only ``prob`` (pass ``all_maps=True`` for e.g. a validation loss).
    """

    def __init__(self, encoder: Encoder, decoder: FPNDecoder | UNetDecoder, head: DBHead) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.head = head
        _init_weights(self.decoder)
        _init_weights(self.head)
        self.head.init_prior()

    def forward(self, images: Tensor, *, all_maps: bool | None = None) -> dict[str, Tensor]:
        fused = self.decoder(self.encoder(images))
        return self.head(fused, out_size=tuple(images.shape[-2:]), all_maps=all_maps)


def build_dbnet(cfg: ModelsConfig) -> DBNet:
    """Build the model described by ``models:`` (encoder weights loaded as configured)."""
    check_decoder_config(cfg.decoder)
    encoder = build_encoder(cfg.encoder)
    decoder = build_decoder(cfg.decoder, encoder.channels)
    head = DBHead(decoder.out_channels, k=cfg.head.k)
    return DBNet(encoder, decoder, head)


def _init_weights(module: nn.Module) -> None:
    """He init for convs feeding ReLUs; the encoder keeps timm's (or pretrained) weights."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
