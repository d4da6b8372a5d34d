"""Image loading with EXIF orientation applied exactly once.

Annotations refer to the image *as displayed*: a phone JPEG stored landscape with EXIF
orientation 6 is annotated in portrait. PIL does not rotate on decode and cv2.imread
rotates on its own, so mixing loaders (or transposing twice) silently misaligns every
polygon. Every image in ocrtune goes through ``load_image``; stats use ``image_size``,
which reads only the header.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ocrtune.errors import InputError

__all__ = ["IMAGE_EXTENSIONS", "load_image", "image_size", "exif_orientation"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

_EXIF_ORIENTATION = 0x0112
# Orientations 5-8 swap width and height (they include a 90/270 degree turn).
_SWAPS_AXES = frozenset({5, 6, 7, 8})
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError)


def _open(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise InputError("image not found", file=path) from None
    except _DECODE_ERRORS as exc:
        raise InputError(f"cannot read image: {_reason(exc)}", file=path) from None


def _reason(exc: BaseException) -> str:
    text = str(exc).split("\n")[0]
    return text if text else type(exc).__name__


def exif_orientation(img: Image.Image) -> int:
    """EXIF orientation tag (1..8), 1 when absent or unreadable."""
    try:
        value = img.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the image unusable
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def load_image(path: str | Path) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode ``path`` as RGB uint8 ``(H, W, 3)`` as displayed; returns ``(array, (w, h))``.

    Corrupt, truncated or unsupported files raise ``InputError`` naming the file.
    """
    path = Path(path)
    img = _open(path)
    try:
        with img, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about odd EXIF; the file still loads
            img.load()
            # exif_transpose also drops the tag from the result, so it cannot apply twice.
            upright = ImageOps.exif_transpose(img) if exif_orientation(img) != 1 else img
            rgb = upright if upright.mode == "RGB" else upright.convert("RGB")
            arr = np.asarray(rgb, dtype=np.uint8)
    except _DECODE_ERRORS as exc:
        raise InputError(f"cannot decode image: {_reason(exc)}", file=path) from None
    return arr, (int(arr.shape[1]), int(arr.shape[0]))


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` as displayed, from the header and EXIF only (no pixel decode)."""
    path = Path(path)
    img = _open(path)
    with img:
        width, height = img.size
        if exif_orientation(img) in _SWAPS_AXES:
            width, height = height, width
    return int(width), int(height)
