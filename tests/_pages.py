"""Small labelled pages for tests that need images on disk in the competition layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def receipt_pages(root: Path, split: str, shapes: list[tuple[int, int]]) -> None:
    """A split of pages of ``shapes`` (width, height): dark text lines every 60 px on noise, the
    last page's lines reaching its right edge; competition JSON beside them."""
    (root / "images" / split).mkdir(parents=True)
    (root / "jsons").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    images = {}
    for i, (w, h) in enumerate(shapes):
        pixels = rng.integers(150, 256, (h, w, 3), dtype=np.uint8)
        words = {}
        for j, y in enumerate(range(20, h - 40, 60)):
            x1 = w if i == len(shapes) - 1 else w - 10  # the last image's text touches its right edge
            pixels[y : y + 20, 10:x1] = 20
            words[f"{j:04d}"] = {"points": [[10, y], [x1, y], [x1, y + 20], [10, y + 20]]}
        Image.fromarray(pixels).save(root / "images" / split / f"r{i}.png")
        images[f"r{i}.png"] = {"words": words}
    (root / "jsons" / f"{split}.json").write_text(json.dumps({"images": images}))
