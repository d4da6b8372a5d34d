"""Inference on each image's own extent instead of the whole padded square.

``resize_and_pad`` fits the long side to ``image_size`` and pads the rest of the square at the
bottom and right; a receipt at 1024 px is about half padding, which the network would compute
on all the same. Validation, ``evaluate``, ``predict``, ensembles and the tuning cache run the
model on each image cut to its resized extent rounded up to ``PAD_STEP`` instead. An image's map
therefore depends on the image alone, not on the batch it was loaded with (up to float rounding
where images of one extent run together; ``dataloader.pad: batch`` cuts training batches to
their largest image instead, which is fine for a loss and wrong for a score).

How many images one forward takes is the device's: on a GPU one (each new input shape, images x
height x width, costs seconds of kernel set-up once per process, and one image at 1024 px costs
about what two do); on the CPU the images of one extent together up to ``CPU_GROUP_PIXELS``
(small images batched save the per-call cost, large ones run faster alone). Figures:
docs/benchmarks.md, "Inference on each image's own extent" and "Inference: how many images a
forward takes".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

__all__ = ["CPU_GROUP_PIXELS", "PAD_STEP", "by_extent", "group_pixels", "padded_extent", "prob_maps"]

# Sides are rounded up to this: a multiple of the network's stride (32), coarse enough that few
# distinct shapes occur. With 32 px steps, freed activations of one shape rarely fit the next,
# and on the CPU (where ``cpu_malloc`` keeps them in the heap) a training process at 1024 px grew
# by 3 GB over 30 steps; with 128 px it stays flat. On a GPU each new shape costs seconds of
# kernel set-up once per process (2 to 3 s a forward of EfficientNet-B4 at 1024 px on an H200).
PAD_STEP = 128
# On the CPU, images of one extent run together up to this many pixels a forward: at 256 px
# that is the whole batch (0.89x the time of one image a forward), at 1024 px one image (0.91x
# the time of the whole batch's images of one extent); at 320 and 512 px all ways cost the same
# (bench/bench_infer_grouping.py, docs/benchmarks.md).
CPU_GROUP_PIXELS = 2**18


def padded_extent(extent: Sequence[int], limit: Sequence[int], step: int = PAD_STEP) -> tuple[int, int]:
    """(height, width) ``extent`` rounded up to ``step``, at most the input's (height, width) ``limit``."""
    h, w = (min(int(m), -(-int(n) // step) * step) for n, m in zip(extent, limit))
    return h, w


def group_pixels(device: torch.device | str) -> int:
    """Pixels one forward takes at most on ``device`` (0: one image at a time)."""
    return 0 if torch.device(device).type == "cuda" else CPU_GROUP_PIXELS


def by_extent(images: torch.Tensor, extents: Sequence[Sequence[int]], step: int = PAD_STEP,
              max_pixels: int | None = None) -> Iterator[tuple[list[int], torch.Tensor]]:
    """The batch's images cut to their own padded extents, those of one extent together up to
    ``max_pixels`` a forward (at least one image; default ``group_pixels`` of their device):
    ``(indices into the batch, (n, C, h, w) tensor)``, in the order each extent first occurs."""
    if len(extents) != images.shape[0]:
        raise ValueError(f"{len(extents)} extents for a batch of {images.shape[0]} images")
    budget = group_pixels(images.device) if max_pixels is None else max_pixels
    limit = tuple(images.shape[-2:])
    groups: dict[tuple[int, int], list[int]] = {}
    for i, extent in enumerate(extents):
        groups.setdefault(padded_extent(extent, limit, step), []).append(i)
    for (h, w), members in groups.items():
        per = max(1, budget // max(1, h * w))
        for k in range(0, len(members), per):
            idx = members[k : k + per]
            part = images[idx[0] : idx[0] + 1] if len(idx) == 1 else images[idx]
            yield idx, part[..., :h, :w].contiguous()


def prob_maps(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
              extents: Sequence[Sequence[int]], step: int = PAD_STEP,
              max_pixels: int | None = None) -> list[np.ndarray]:
    """Each image's ``(h, w)`` probability map (float32, numpy) over its padded extent, in
    batch order; ``model`` maps ``(n, C, h, w)`` inputs to ``(n, 1, h, w)`` probabilities."""
    out: list[np.ndarray | None] = [None] * len(extents)
    for idx, part in by_extent(images, extents, step, max_pixels):
        prob = model(part).float().squeeze(1).cpu().numpy()
        for k, i in enumerate(idx):
            out[i] = prob[k]
    return out  # type: ignore[return-value]
