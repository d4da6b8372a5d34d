"""Inference on each image's own extent instead of the whole padded square.

``resize_and_pad`` fits the long side to ``image_size`` and pads the rest of the square at the
bottom and right; a receipt at 1024 px is about half padding, which the network would compute
on all the same. Validation, ``evaluate``, ``predict``, ensembles and the tuning cache run the
model on each image cut to its resized extent rounded up to ``PAD_STEP`` instead: images of a
batch that round to the same extent run together, the others apart. An image's map therefore
depends on the image alone, not on the batch it was loaded with (up to float rounding:
``dataloader.pad: batch`` cuts training batches to their largest image instead, which is fine
for a loss and wrong for a score). Figures: docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

__all__ = ["PAD_STEP", "by_extent", "padded_extent", "prob_maps"]

# Sides are rounded up to this: a multiple of the network's stride (32), coarse enough that few
# distinct shapes occur. With 32 px steps, freed activations of one shape rarely fit the next,
# and on the CPU (where ``cpu_malloc`` keeps them in the heap) a training process at 1024 px grew
# by 3 GB over 30 steps; with 128 px it stays flat. (cuDNN also tunes each new shape once.)
PAD_STEP = 128


def padded_extent(extent: Sequence[int], limit: Sequence[int], step: int = PAD_STEP) -> tuple[int, int]:
    """(height, width) ``extent`` rounded up to ``step``, at most the input's (height, width) ``limit``."""
    h, w = (min(int(m), -(-int(n) // step) * step) for n, m in zip(extent, limit))
    return h, w


def by_extent(images: torch.Tensor, extents: Sequence[Sequence[int]],
              step: int = PAD_STEP) -> Iterator[tuple[list[int], torch.Tensor]]:
    """The batch's images cut to their own padded extents, those of one extent together:
    ``(indices into the batch, (n, C, h, w) tensor)``, in the order each extent first occurs."""
    if len(extents) != images.shape[0]:
        raise ValueError(f"{len(extents)} extents for a batch of {images.shape[0]} images")
    limit = tuple(images.shape[-2:])
    groups: dict[tuple[int, int], list[int]] = {}
    for i, extent in enumerate(extents):
        groups.setdefault(padded_extent(extent, limit, step), []).append(i)
    for (h, w), idx in groups.items():
        part = images[idx[0] : idx[0] + 1] if len(idx) == 1 else images[idx]
        yield idx, part[..., :h, :w].contiguous()


def prob_maps(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
              extents: Sequence[Sequence[int]], step: int = PAD_STEP) -> list[np.ndarray]:
    """Each image's ``(h, w)`` probability map (float32, numpy) over its padded extent, in
    batch order; ``model`` maps ``(n, C, h, w)`` inputs to ``(n, 1, h, w)`` probabilities."""
    out: list[np.ndarray | None] = [None] * len(extents)
    for idx, part in by_extent(images, extents, step):
        prob = model(part).float().squeeze(1).cpu().numpy()
        for k, i in enumerate(idx):
            out[i] = prob[k]
    return out  # type: ignore[return-value]
