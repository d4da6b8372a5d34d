"""Inference on each image's own extent instead of the whole padded square.

``resize_and_pad`` fits the long side to ``image_size`` and pads the rest of the square at the
bottom and right; a receipt at 1024 px is about half padding, which the network would compute
on all the same. Validation, ``evaluate``, ``predict``, ensembles and the tuning cache run the
model on each image cut to its resized extent rounded up to ``PAD_STEP`` instead, one image per
forward: an image's map depends on the image alone, never on the batch it was loaded with
(``dataloader.pad: batch`` cuts training batches to their largest image instead, which is fine
for a loss and wrong for a score). One image at a time is also the faster way on the CPU (0.82x the
time of running a batch's images of one extent together at batch 8, 0.94x at 4), and meets a
third of the input shapes, each of which costs a GPU seconds of kernel set-up once per process.
Figures: docs/benchmarks.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

__all__ = ["PAD_STEP", "by_extent", "padded_extent", "prob_maps"]

# Sides are rounded up to this: a multiple of the network's stride (32), coarse enough that few
# distinct shapes occur. With 32 px steps, freed activations of one shape rarely fit the next,
# and on the CPU (where ``cpu_malloc`` keeps them in the heap) a training process at 1024 px grew
# by 3 GB over 30 steps; with 128 px it stays flat. On a GPU each new shape costs seconds of
# kernel set-up once per process (2 to 3 s a forward of EfficientNet-B4 at 1024 px on an H200).
PAD_STEP = 128


def padded_extent(extent: Sequence[int], limit: Sequence[int], step: int = PAD_STEP) -> tuple[int, int]:
    """(height, width) ``extent`` rounded up to ``step``, at most the input's (height, width) ``limit``."""
    h, w = (min(int(m), -(-int(n) // step) * step) for n, m in zip(extent, limit))
    return h, w


def by_extent(images: torch.Tensor, extents: Sequence[Sequence[int]],
              step: int = PAD_STEP) -> Iterator[tuple[int, torch.Tensor]]:
    """Each image of the batch alone, cut to its own padded extent, in batch order:
    ``(index into the batch, (1, C, h, w) tensor)``."""
    if len(extents) != images.shape[0]:
        raise ValueError(f"{len(extents)} extents for a batch of {images.shape[0]} images")
    limit = tuple(images.shape[-2:])
    for i, extent in enumerate(extents):
        h, w = padded_extent(extent, limit, step)
        yield i, images[i : i + 1, ..., :h, :w].contiguous()


def prob_maps(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
              extents: Sequence[Sequence[int]], step: int = PAD_STEP) -> list[np.ndarray]:
    """Each image's ``(h, w)`` probability map (float32, numpy) over its padded extent, in
    batch order; ``model`` maps ``(n, C, h, w)`` inputs to ``(n, 1, h, w)`` probabilities."""
    return [model(part).float()[0, 0].cpu().numpy() for _, part in by_extent(images, extents, step)]
