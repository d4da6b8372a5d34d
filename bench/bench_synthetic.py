"""Bench: synthetic receipt rendering, image loading and dataset scanning.

Reference in the same process: encoding the rendered image as JPEG with PIL (what every
written image costs anyway) and ``cv2.imread`` (a loader that skips EXIF handling).

Goals: render <= 50 ms per 640 px receipt (single core); ``load_image`` within 1.5x of
``cv2.imread``; ``scan_split`` (header sizes + geometry checks) >= 200 images/s.
Run: .venv/bin/python bench/bench_synthetic.py
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

import cv2
from PIL import Image

from ocrtune.data.images import load_image
from ocrtune.data.layout import list_images
from ocrtune.data.receipt_text import find_fonts
from ocrtune.data.stats import scan_split
from ocrtune.data.synthetic import render_receipt, synthesize

N = 30


def _per_item_ms(fn, items) -> float:  # noqa: ANN001
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) * 1000 / len(items)


def main() -> None:
    fonts = find_fonts()
    print(f"fonts: {len(fonts.latin)} latin, {len(fonts.hangul)} hangul")
    render_receipt(0, 0, 640, fonts)  # warm font cache
    images = []
    render_ms = _per_item_ms(lambda i: images.append(render_receipt(1, i, 640, fonts)[0]), range(N))
    jpeg_ms = _per_item_ms(
        lambda im: Image.fromarray(im).save(io.BytesIO(), "JPEG", quality=90), images
    )
    words = sum(len(render_receipt(1, i, 640, fonts)[1].words) for i in range(5)) / 5
    print(f"render_receipt 640px: {render_ms:6.1f} ms/image (~{words:.0f} words)  goal <= 50")
    print(f"reference JPEG encode: {jpeg_ms:6.1f} ms/image  "
          f"ratio render/encode = {render_ms / jpeg_ms:.1f}x")

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synthesize(tmp, n=N, seed=2, size=640)
        synth_ms = (time.perf_counter() - start) * 1000 / N
        print(f"synthesize (render + JPEG + JSON): {synth_ms:6.1f} ms/image")
        files = list_images(Path(tmp) / "images" / "train")
        load_ms = _per_item_ms(load_image, files)
        cv_ms = _per_item_ms(lambda p: cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), files)
        print(f"load_image: {load_ms:6.2f} ms  cv2.imread+cvtColor: {cv_ms:6.2f} ms  "
              f"ratio = {load_ms / cv_ms:.2f}x  goal <= 1.5x")
        start = time.perf_counter()
        stats = scan_split(tmp, "train")
        rate = stats.n_images / (time.perf_counter() - start)
        print(f"scan_split: {rate:7.0f} images/s ({stats.n_words} words)  goal >= 200")

    sroie = Path("/work/shared/data/sroie")
    if sroie.is_dir():
        start = time.perf_counter()
        stats = scan_split(sroie, "train")
        elapsed = time.perf_counter() - start
        print(f"scan_split SROIE train: {stats.n_images} images, {stats.n_words} words in "
              f"{elapsed:.2f} s ({stats.n_images / elapsed:.0f} images/s)")


if __name__ == "__main__":
    main()
