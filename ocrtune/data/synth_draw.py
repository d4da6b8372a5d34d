"""Drawing primitives shared by the synthetic receipt styles: fonts, exact ink boxes, smooth
noise, point transforms. Every function is deterministic given its random generator."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = [
    "INK_THRESHOLD",
    "choose_font",
    "text_width",
    "line_height",
    "tight_box",
    "noise_field",
    "transform",
    "paper_corners",
]

INK_THRESHOLD = 32  # coverage (0-255) that counts as ink when tightening word boxes


def choose_font(rng: np.random.Generator, pool: tuple[str, ...], bold: bool) -> str | None:
    if not pool:
        return None
    bolds = tuple(p for p in pool if "bold" in Path(p).name.lower() or Path(p).stem.endswith("B"))
    regular = tuple(p for p in pool if p not in bolds) or pool
    choices = bolds if bold and bolds else regular
    return choices[int(rng.integers(len(choices)))]


def text_width(font: object, text: str) -> float:
    return float(font.getlength(text))  # type: ignore[attr-defined]


def line_height(font: object) -> int:
    if hasattr(font, "getmetrics"):
        ascent, descent = font.getmetrics()
        return int(ascent + descent)
    box = font.getbbox("Ag")  # type: ignore[attr-defined]
    return int(box[3] - box[1])


def tight_box(
    ink: Image.Image, font: object, text: str, x: int, y: int
) -> tuple[int, int, int, int] | None:
    """Pixel-exact ink box (x0, y0, x1, y1; pixel edges) of a word just drawn at (x, y)."""
    left, top, right, bottom = font.getbbox(text)  # type: ignore[attr-defined]
    w, h = ink.size
    x0, y0 = max(0, x + int(left)), max(0, y + int(top))
    x1, y1 = min(w, x + int(np.ceil(right))), min(h, y + int(np.ceil(bottom)))
    if x1 <= x0 or y1 <= y0:
        return None
    region = np.asarray(ink.crop((x0, y0, x1, y1))) >= INK_THRESHOLD
    cols, rows = np.flatnonzero(region.any(axis=0)), np.flatnonzero(region.any(axis=1))
    if cols.size == 0:
        return None
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def noise_field(rng: np.random.Generator, w: int, h: int, cell: int) -> np.ndarray:
    """Smooth zero-mean noise (H, W float32): coarse random grid, bicubically upscaled."""
    grid = rng.standard_normal((h // cell + 2, w // cell + 2), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def transform(points: np.ndarray, hom: np.ndarray) -> np.ndarray:
    homog = np.c_[points, np.ones(len(points))] @ hom.T
    return homog[:, :2] / homog[:, 2:3]


def paper_corners(pw: int, ph: int) -> np.ndarray:
    return np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], float)
