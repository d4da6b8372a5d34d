"""Image transforms that move text polygons exactly with the pixels (numpy + cv2, no torch).

Coordinates are continuous with pixel ``i`` covering ``[i, i + 1)``: scaling is then a plain
multiply and a flip is ``w - x``. cv2 works on pixel centres, so affine matrices for
``warpAffine`` are shifted by half a pixel (``_to_pixel_centres``); without that shift polygons
drift half a pixel per transform.

Polygons are ``(N, 2)`` float arrays of ``(x, y)``, clockwise (in image coordinates) from the
top-left vertex, as competition annotations are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from ocrtune.presets.schema import AugmentConfig

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_NORM_SCALE = (1.0 / (255.0 * IMAGENET_STD)).astype(np.float32)
_NORM_BIAS = (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)

_MIN_CROP_SIDE = 0.3  # random crops keep at least this fraction of each side
_CROP_TRIES = 10

Polygons = list[np.ndarray]


def _as_polys(polygons: Sequence[np.ndarray]) -> Polygons:
    return [np.asarray(p, dtype=np.float64).reshape(-1, 2).copy() for p in polygons]


def _out(polygons: Polygons) -> Polygons:
    return [p.astype(np.float32) for p in polygons]


# --------------------------------------------------------------------------- resize and pad


@dataclass(frozen=True)
class Inverse:
    """Maps model-input coordinates back to the original image (undo ``resize_and_pad``).

    ``scale`` is the nominal ratio (longest side); ``scale_x``/``scale_y`` are the exact ratios
    of the resized pixels, which differ on the short side by the rounding to whole pixels. Labels
    move with the exact ratios, so they stay on the pixels they describe.
    """

    scale: float
    orig_h: int
    orig_w: int
    scale_x: float = 0.0  # 0: same as ``scale`` (for callers that only know one ratio)
    scale_y: float = 0.0

    @property
    def xy(self) -> tuple[float, float]:
        return (self.scale_x or self.scale, self.scale_y or self.scale)

    @property
    def extent(self) -> tuple[int, int]:
        """(height, width) of the resized image in the model input: the rest is padding."""
        sx, sy = self.xy
        return max(1, round(self.orig_h * sy)), max(1, round(self.orig_w * sx))

    def points_to_original(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2) / np.asarray(self.xy)
        pts[:, 0] = np.clip(pts[:, 0], 0, self.orig_w)
        pts[:, 1] = np.clip(pts[:, 1], 0, self.orig_h)
        return pts

    def to_original(self, polygons: Sequence[np.ndarray]) -> Polygons:
        return [self.points_to_original(p) for p in polygons]


def resize_and_pad(
    image: np.ndarray, polygons: Sequence[np.ndarray], image_size: int
) -> tuple[np.ndarray, Polygons, Inverse]:
    """Scale the longest side to ``image_size``, pad bottom/right to a square of that size."""
    h, w = image.shape[:2]
    scale = image_size / max(h, w)
    nh, nw = min(image_size, max(1, round(h * scale))), min(image_size, max(1, round(w * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    out = np.zeros((image_size, image_size) + image.shape[2:], dtype=image.dtype)
    out[:nh, :nw] = resized.reshape((nh, nw) + image.shape[2:])
    inv = Inverse(scale=scale, orig_h=h, orig_w=w, scale_x=nw / w, scale_y=nh / h)
    ratio = np.asarray(inv.xy)
    polys = [p * ratio for p in _as_polys(polygons)]
    return out, _out(polys), inv


# --------------------------------------------------------------------------- normalisation


def normalize(image: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) or grey (H, W) -> float32 (3, H, W) with ImageNet mean/std.

    One fused multiply-add per channel straight into the CHW output (no float HWC temporaries):
    5-10x faster than the textbook ``(x / 255 - mean) / std`` then transpose on a 1024^2 page.
    """
    if image.ndim == 2:
        image = image[:, :, None]
    h, w = image.shape[:2]
    out = np.empty((3, h, w), dtype=np.float32)
    for ch in range(3):
        src = image[:, :, ch if image.shape[2] == 3 else 0]
        np.multiply(src, _NORM_SCALE[ch], out=out[ch], dtype=np.float32)
        out[ch] += _NORM_BIAS[ch]
    return out


def denormalize(chw: np.ndarray) -> np.ndarray:
    """Inverse of ``normalize`` for looking at model inputs: float (3, H, W) -> uint8 (H, W, 3)."""
    x = np.asarray(chw, dtype=np.float32).transpose(1, 2, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- geometric augmentations


def hflip(image: np.ndarray, polygons: Sequence[np.ndarray]) -> tuple[np.ndarray, Polygons]:
    """Mirror left-right. Mirroring reverses orientation, so vertex order is rebuilt: the first
    half of the vertices is taken to trace the top edge (quads and 2k-point curved annotations),
    and the mirrored top-right vertex becomes the new top-left."""
    w = image.shape[1]
    out = []
    for p in _as_polys(polygons):
        m = p.copy()
        m[:, 0] = w - m[:, 0]
        n = len(m)
        start = max(n // 2 - 1, 0)
        out.append(m[[(start - i) % n for i in range(n)]])
    return cv2.flip(image, 1), _out(out)


def _to_pixel_centres(m: np.ndarray) -> np.ndarray:
    """Affine map on corner coordinates -> the same map on cv2's pixel-centre coordinates."""
    a, b = m[:, :2], m[:, 2]
    return np.hstack([a, (b + a @ np.array([0.5, 0.5]) - 0.5)[:, None]])


def _apply(m: np.ndarray, polygons: Polygons) -> Polygons:
    return [p @ m[:, :2].T + m[:, 2] for p in polygons]


def rotate(
    image: np.ndarray, polygons: Sequence[np.ndarray], degrees: float, border: int = 0
) -> tuple[np.ndarray, Polygons]:
    """Rotate counter-clockwise by ``degrees`` on an expanded canvas so no pixel is cut."""
    h, w = image.shape[:2]
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    nw = int(math.ceil(abs(w * c) + abs(h * s) - 1e-6))
    nh = int(math.ceil(abs(w * s) + abs(h * c) - 1e-6))
    a = np.array([[c, s], [-s, c]])  # y points down: this turns content counter-clockwise on screen
    b = np.array([nw / 2, nh / 2]) - a @ np.array([w / 2, h / 2])
    m = np.hstack([a, b[:, None]])
    out = cv2.warpAffine(
        image,
        _to_pixel_centres(m),
        (nw, nh),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(border,) * 4,
    )
    return out, _out(_apply(m, _as_polys(polygons)))


def _free_boundaries(polygons: Polygons, size: int, axis: int) -> np.ndarray:
    """Cut positions 0..size along ``axis`` that cross no polygon (image edges always allowed)."""
    blocked = np.zeros(size + 2, dtype=np.int64)
    for p in polygons:
        if not len(p):
            continue
        lo = max(int(math.floor(p[:, axis].min())) + 1, 1)
        hi = min(int(math.ceil(p[:, axis].max())) - 1, size - 1)
        if lo <= hi:
            blocked[lo] += 1
            blocked[hi + 1] -= 1
    free = np.cumsum(blocked)[: size + 1] == 0
    free[0] = free[size] = True
    return np.flatnonzero(free)


def _crop(
    image: np.ndarray, polygons: Polygons, x0: int, y0: int, x1: int, y1: int
) -> tuple[np.ndarray, Polygons, np.ndarray]:
    kept, out = [], []
    for i, p in enumerate(polygons):
        if not len(p):  # nothing to place; dropped like text outside the crop
            continue
        cx = (p[:, 0].min() + p[:, 0].max()) / 2
        cy = (p[:, 1].min() + p[:, 1].max()) / 2
        if x0 <= cx <= x1 and y0 <= cy <= y1:
            kept.append(i)
            out.append(p - np.array([x0, y0], dtype=np.float64))
    return image[y0:y1, x0:x1].copy(), out, np.array(kept, dtype=np.int64)


def random_crop(
    image: np.ndarray, polygons: Sequence[np.ndarray], rng: np.random.Generator, min_side: float = _MIN_CROP_SIDE
) -> tuple[np.ndarray, Polygons, np.ndarray]:
    """Crop with every boundary in a gap between texts, so no polygon is ever cut.

    Returns the crop, the polygons inside it and their indices in the input. When text exists, a
    crop keeping none of it is rejected; after a few failed tries the image is returned whole.
    """
    h, w = image.shape[:2]
    polys = _as_polys(polygons)
    free_x, free_y = _free_boundaries(polys, w, 0), _free_boundaries(polys, h, 1)
    for _ in range(_CROP_TRIES):
        x0, x1 = np.sort(rng.choice(free_x, 2, replace=len(free_x) < 2))
        y0, y1 = np.sort(rng.choice(free_y, 2, replace=len(free_y) < 2))
        if x1 - x0 < min_side * w or y1 - y0 < min_side * h:
            continue
        crop, out, kept = _crop(image, polys, int(x0), int(y0), int(x1), int(y1))
        if polys and not len(kept):
            continue
        return crop, _out(out), kept
    return image, _out(polys), np.arange(len(polys), dtype=np.int64)


def zoom(
    image: np.ndarray, polygons: Sequence[np.ndarray], factor: float, rng: np.random.Generator, border: int = 0
) -> tuple[np.ndarray, Polygons, np.ndarray]:
    """Change text size relative to the final frame by ``factor``.

    A plain resize would be undone by ``resize_and_pad`` (it rescales the longest side), so
    zoom-out pads onto a ``1/factor`` larger canvas at a random place, and zoom-in cuts a window of
    about ``1/factor`` of each side whose edges lie in gaps between texts (never cutting one).
    """
    h, w = image.shape[:2]
    polys = _as_polys(polygons)
    if factor < 1:
        nh, nw = round(h / factor), round(w / factor)
        ox, oy = int(rng.integers(0, nw - w + 1)), int(rng.integers(0, nh - h + 1))
        canvas = np.full((nh, nw) + image.shape[2:], border, dtype=image.dtype)
        canvas[oy : oy + h, ox : ox + w] = image
        moved = [p + np.array([ox, oy], dtype=np.float64) for p in polys]
        return canvas, _out(moved), np.arange(len(polys), dtype=np.int64)
    if factor == 1:
        return image, _out(polys), np.arange(len(polys), dtype=np.int64)

    def window(free: np.ndarray, size: int) -> tuple[int, int]:
        target = size / factor
        starts = free[free <= size - target]
        start = int(rng.choice(starts))
        end = int(free[free >= start + target][0])
        return start, end

    x0, x1 = window(_free_boundaries(polys, w, 0), w)
    y0, y1 = window(_free_boundaries(polys, h, 1), h)
    crop, out, kept = _crop(image, polys, x0, y0, x1, y1)
    return crop, _out(out), kept


# --------------------------------------------------------------------------- photometric


def color_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast and saturation, each a factor in ``[1 - s, 1 + s]``.

    The three are linear in the pixel values, so they fold into one 3x3 colour matrix plus an
    offset applied in a single ``cv2.transform`` pass (uint8 in, saturated uint8 out): about 15x
    faster than three float passes over a page-sized image.
    """
    if strength <= 0:
        return image
    b, c, s = rng.uniform(1 - strength, 1 + strength, size=3)
    mean = float(np.mean(cv2.mean(image)[: image.shape[2] if image.ndim == 3 else 1]))
    offset = (1 - c) * b * mean  # contrast pulls towards the (brightened) global mean
    if image.ndim == 2 or image.shape[2] != 3:
        lut = np.clip(np.rint(np.arange(256) * (b * c) + offset), 0, 255).astype(np.uint8)
        return cv2.LUT(image, lut)
    grey = np.array([0.299, 0.587, 0.114])
    sat = s * np.eye(3) + (1 - s) * np.outer(np.ones(3), grey)  # blend with the grey value
    m = np.hstack([b * c * sat, np.full((3, 1), offset)])  # grey weights sum to 1: offset passes
    return cv2.transform(image, m)


# --------------------------------------------------------------------------- pipeline


class Augmented(NamedTuple):
    image: np.ndarray
    polygons: Polygons
    kept: np.ndarray  # index in the input of each output polygon (crops drop some)


class Augment:
    """Training augmentation applied before ``resize_and_pad``; deterministic for a seeded rng.

    Order: colour jitter, flip, rotation, random crop, zoom.
    """

    def __init__(self, cfg: AugmentConfig, rng: np.random.Generator | int | None = None) -> None:
        self.cfg = cfg
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def __call__(self, image: np.ndarray, polygons: Sequence[np.ndarray]) -> Augmented:
        cfg, rng = self.cfg, self.rng
        polys = _out(_as_polys(polygons))
        kept = np.arange(len(polys), dtype=np.int64)
        if not cfg.enabled:
            return Augmented(image, polys, kept)
        image = color_jitter(image, cfg.color_jitter, rng)
        if rng.random() < cfg.hflip:
            image, polys = hflip(image, polys)
        if cfg.rotate > 0:
            image, polys = rotate(image, polys, float(rng.uniform(-cfg.rotate, cfg.rotate)))
        if rng.random() < cfg.crop:
            image, polys, idx = random_crop(image, polys, rng)
            kept = kept[idx]
        lo, hi = cfg.scale
        if (lo, hi) != (1.0, 1.0):
            image, polys, idx = zoom(image, polys, float(rng.uniform(lo, hi)), rng)
            kept = kept[idx]
        return Augmented(image, polys, kept)
