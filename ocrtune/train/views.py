"""Test-time views of an image and the average of probability maps in the image's own frame
(numpy + cv2, no torch).

A view is what the model is shown: the image, optionally mirrored left-right, at ``scale``
times the model's input size. Every map is brought back before it is averaged: cropped to the
image (the padding of ``resize_and_pad`` dropped), mirrored back when the view mirrored it and
resized onto one shared frame. Maps of different models, input sizes and views then describe
the same image pixels, and one postprocess runs on their average. Averaging maps, not voting on
boxes, keeps the postprocess's own scoring of each region.

The shared frame covers the image exactly and is sampled at the first model's resolution (the
image resized as that model's plain view resizes it): the postprocess settings, ``min_size`` in
map pixels among them, keep the meaning they have for that model, and an ensemble of one model
and one view gets that model's map.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from ocrtune.errors import InputError

STRIDE = 32  # model inputs are multiples of this (the encoder's deepest stride)
_KNOWN = "known: flip, scale:S (S > 0), or both joined with '+', e.g. flip+scale:1.25"


@dataclass(frozen=True)
class View:
    """The image mirrored left-right when ``flip``, shown at ``scale`` times the model's size."""

    flip: bool = False
    scale: float = 1.0

    @property
    def name(self) -> str:
        parts = (["flip"] if self.flip else []) + ([f"scale:{self.scale:g}"] if self.scale != 1.0 else [])
        return "+".join(parts) or "plain"

    def input_size(self, image_size: int) -> int:
        """The model's input side for this view: ``image_size * scale`` on the model's stride.

        A scaled view changes the input size, not the image: ``resize_and_pad`` fits the longest
        side to the input size, so resizing the image itself would be undone.
        """
        return max(STRIDE, math.floor(image_size * self.scale / STRIDE + 0.5) * STRIDE)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The image as this view shows it, before the model's resize and pad."""
        return np.ascontiguousarray(image[:, ::-1]) if self.flip else image

    def invert(self, prob: np.ndarray, frame: tuple[int, int]) -> np.ndarray:
        """A map covering the viewed image exactly (see ``crop_to_image``) -> the same map in
        the original image's orientation, resized to ``frame`` = (height, width) pixels."""
        out = resize_map(prob, frame)
        return np.ascontiguousarray(out[:, ::-1]) if self.flip else out


PLAIN = View()


def parse_views(text: str | None) -> list[View]:
    """``--tta flip,scale:1.25`` -> [plain, flip, scale 1.25]: the plain view always comes first;
    each comma-separated item adds one view, whose parts are joined with ``+``."""
    views = [PLAIN]
    if text is None:
        return views
    if not text.strip():
        raise InputError(f"no views given; {_KNOWN}", key="--tta")
    for item in text.split(","):
        view = _parse_view(item.strip())
        if view in views:
            why = "is the plain view, always used" if view == PLAIN else "is listed twice"
            raise InputError(f"{item.strip()!r} {why}", key="--tta")
        views.append(view)
    return views


def _parse_view(item: str) -> View:
    flip, scale = False, None
    for part in item.split("+"):
        word = part.strip().lower()
        if word == "flip" and not flip:
            flip = True
        elif word.startswith("scale:") and scale is None:
            value = word.split(":", 1)[1]
            try:
                scale = float(value)
            except ValueError:
                raise InputError(f"scale must be a number, got {value!r} in {item!r}", key="--tta") from None
            if not (math.isfinite(scale) and scale > 0):
                raise InputError(f"scale must be > 0, got {value} in {item!r}", key="--tta")
        else:
            raise InputError(f"unknown view {item!r}; {_KNOWN}", key="--tta")
    return View(flip, 1.0 if scale is None else scale)


def parse_weights(text: str | None, n: int) -> list[float]:
    """``--weights 2,1`` for ``n`` models -> weights summing to 1 (none given: equal weights)."""
    if text is None:
        return [1.0 / n] * n
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != n:
        raise InputError(f"{len(parts)} weights for {n} model{'' if n == 1 else 's'}; give one for REF and one per "
                         "--ensemble, in order (a k-fold folder counts once)", key="--weights")
    values = []
    for p in parts:
        try:
            w = float(p)
        except ValueError:
            raise InputError(f"not a number: {p!r}", key="--weights") from None
        if not (math.isfinite(w) and w >= 0):
            raise InputError(f"weights must be >= 0, got {p}", key="--weights")
        values.append(w)
    total = sum(values)
    if total <= 0:
        raise InputError("at least one weight must be > 0", key="--weights")
    return [w / total for w in values]


def image_area(image_hw: tuple[int, int], scale_xy: Sequence[float]) -> tuple[int, int]:
    """(height, width) in map pixels of an image of ``image_hw`` resized by ``scale_xy``
    (the exact ratios of ``resize_and_pad``: ``Inverse.xy``)."""
    (h, w), (sx, sy) = image_hw, scale_xy
    return max(1, round(h * sy)), max(1, round(w * sx))


def crop_to_image(prob: np.ndarray, image_hw: tuple[int, int], scale_xy: Sequence[float]) -> np.ndarray:
    """The part of a padded model map that covers the image (``resize_and_pad`` pads at the
    bottom and right)."""
    vh, vw = image_area(image_hw, scale_xy)
    return prob[: min(vh, prob.shape[0]), : min(vw, prob.shape[1])]


def resize_map(prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A probability map resized to ``size`` = (height, width), float32 (area-averaged when
    shrinking, bilinear when growing, as images are)."""
    src = np.asarray(prob, dtype=np.float32)
    h, w = size
    if src.shape == (h, w):
        return src
    interp = cv2.INTER_AREA if h * w < src.shape[0] * src.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(src, (w, h), interpolation=interp)


class MapAverage:
    """Weighted running mean of maps on one frame: one image's maps are added as they come, so
    no more than one image's maps are ever held."""

    def __init__(self, frame: tuple[int, int]) -> None:
        self.frame = frame
        self._sum = np.zeros(frame, dtype=np.float32)
        self._weight = 0.0

    def add(self, prob: np.ndarray, weight: float) -> None:
        if prob.shape != self.frame:
            raise ValueError(f"map of shape {prob.shape} added to a frame of {self.frame}")
        if weight > 0:
            self._sum += np.float32(weight) * prob
            self._weight += weight

    def result(self) -> np.ndarray:
        if self._weight <= 0:
            raise ValueError("no map with a weight > 0 was added")
        return self._sum if self._weight == 1.0 else self._sum / np.float32(self._weight)
