"""Bench: synthetic receipt rendering, image loading and dataset scanning.

Reference in the same process: encoding the rendered image as JPEG with PIL (what every
written image costs anyway) and ``cv2.imread`` (a loader that skips EXIF handling).

Parallel synthesis is timed against serial synthesis of the same set in the same process
(and the two sets are compared byte for byte); the ``real`` style with every effect against
the plain renderer.

Goals: render <= 50 ms per 640 px receipt (single core); ``load_image`` within 1.5x of
``cv2.imread``; ``scan_split`` (header sizes + geometry checks) >= 200 images/s; parallel
synthesis >= 0.8 x cores times serial images/s.
Run: .venv/bin/python bench/bench_synthetic.py
"""

from __future__ import annotations

import io
import os
import resource
import tempfile
import time
from pathlib import Path

import cv2
from PIL import Image

from ocrtune.data.images import load_image
from ocrtune.data.layout import list_images
from ocrtune.data.receipt_text import find_fonts
from ocrtune.data.stats import scan_split
from ocrtune.data.synth_options import Effect, Granularity, Style, SynthOptions, available_cores
from ocrtune.data.synthetic import render_receipt, synthesize

N = 30
N_PARALLEL = 96


def _cpu_s() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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

    real = SynthOptions(Granularity.WORD, Style.REAL, frozenset(Effect))
    render_receipt(0, 0, 640, fonts, real)
    real_ms = _per_item_ms(lambda i: render_receipt(1, i, 640, fonts, real), range(N))
    print(f"render_receipt 640px --style real, all effects: {real_ms:6.1f} ms/image  "
          f"ratio real/plain = {real_ms / render_ms:.2f}x")

    cores = available_cores()
    with tempfile.TemporaryDirectory() as tmp:
        cpu0 = _cpu_s()
        serial = synthesize(Path(tmp) / "serial", n=N_PARALLEL, seed=3, size=640, workers=1)
        cpu1 = _cpu_s()
        parallel = synthesize(Path(tmp) / "parallel", n=N_PARALLEL, seed=3, size=640, workers=cores)
        cpu2 = _cpu_s()
        same = all(
            p.read_bytes() == (Path(tmp) / "parallel" / p.relative_to(Path(tmp) / "serial")).read_bytes()
            for p in (Path(tmp) / "serial").rglob("*") if p.is_file()
        )
        ratio = parallel.images_per_s / serial.images_per_s
        print(f"synthesize {N_PARALLEL} x 640px: serial {serial.images_per_s:6.1f} images/s, "
              f"{parallel.workers} processes {parallel.images_per_s:6.1f} images/s = {ratio:.2f}x "
              f"on {cores} cores (goal >= {0.8 * cores:.1f}x); byte-identical: {same}")
        # CPU time (this process and its reaped workers) does not depend on the machine's load
        serial_cpu, parallel_cpu = (cpu1 - cpu0) / N_PARALLEL * 1000, (cpu2 - cpu1) / N_PARALLEL * 1000
        print(f"  CPU per image: serial {serial_cpu:.1f} ms, parallel {parallel_cpu:.1f} ms "
              f"(overhead {parallel_cpu / serial_cpu:.2f}x); load average {os.getloadavg()[0]:.1f}")

    sroie = Path("/work/shared/data/sroie")
    if sroie.is_dir():
        start = time.perf_counter()
        stats = scan_split(sroie, "train")
        elapsed = time.perf_counter() - start
        print(f"scan_split SROIE train: {stats.n_images} images, {stats.n_words} words in "
              f"{elapsed:.2f} s ({stats.n_images / elapsed:.0f} images/s)")


if __name__ == "__main__":
    main()
