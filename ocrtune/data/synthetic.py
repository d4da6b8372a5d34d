"""Seeded synthetic receipts with exact word polygons: the data every command falls back to.

Words are drawn on a flat paper image whose tight ink boxes are known exactly; the paper is
then placed in a photo-like scene with one homography, and the same homography moves the
boxes, so polygons stay exact whatever the rotation or perspective. Each image draws from
its own ``default_rng([seed, index])`` stream: image ``i`` is identical whatever ``n`` is and
however many processes render the set, and the same seed gives byte-identical files on the
same machine (fonts included). ``SynthOptions`` add line-segment boxes, the ``real`` style
(``synth_real``) and effects (``synth_effects``); the defaults draw exactly what they always did.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ocrtune.data import synth_effects, synth_real
from ocrtune.data.formats import ImageAnnotation, Word
from ocrtune.data.layout import cache_root
from ocrtune.data.line_segments import PlacedWord, boxes_for
from ocrtune.data.receipt_text import FontSet, find_fonts, load_font, receipt_lines
from ocrtune.data.synth_draw import (
    choose_font as _choose_font,
    line_height as _line_height,
    noise_field as _noise_field,
    text_width as _text_width,
    tight_box as _tight_box,
    transform as _transform,
)
from ocrtune.data.synth_marker import MARKER, check_destination, marker_text, ours
from ocrtune.data.synth_options import Style, SynthOptions, available_cores
from ocrtune.data.synth_pool import ImageJob, Renderer, SplitJson, render_all
from ocrtune.errors import InputError

__all__ = ["GENERATOR_VERSION", "MARKER", "SynthResult", "render_receipt", "synthesize", "default_dataset"]

#: Bump when the renderer's default output changes, so cached default datasets are rebuilt.
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class SynthResult:
    root: Path
    n_train: int
    n_val: int
    n_words: int
    workers: int = 1
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return (self.n_train + self.n_val) / self.seconds if self.seconds > 0 else float("inf")


def _render_paper(
    rng: np.random.Generator, pw: int, ph: int, fonts: FontSet
) -> tuple[np.ndarray, list[PlacedWord], float]:
    """Ink coverage (H, W uint8) of a receipt, its words as placed, and the body text size."""
    ink = Image.new("L", (pw, ph), 0)
    draw = ImageDraw.Draw(ink)
    korean = bool(fonts.hangul) and rng.random() < 0.7
    pool = fonts.hangul if korean else fonts.latin
    body = _choose_font(rng, pool, bold=False)
    margin = int(pw * rng.uniform(0.05, 0.09))
    chars = int(rng.integers(24, 38))
    base = max(9, int((pw - 2 * margin) / (chars * 0.6)))
    spacing = float(rng.uniform(1.05, 1.35))
    n_lines = int((ph - 2 * margin) / (base * 1.2 * spacing))
    rule_char = "-=*"[int(rng.integers(3))]
    rule_width = max(1.0, _text_width(load_font(body, base), rule_char))
    rule = rule_char * max(4, int((pw - 2 * margin) / rule_width))
    words: list[PlacedWord] = []
    y = margin
    for line_no, line in enumerate(receipt_lines(rng, n_lines, korean, rule)):
        path = _choose_font(rng, pool, bold=True) if line.bold else body
        font = load_font(path, max(8, int(round(base * line.scale))))
        height = _line_height(font)
        if y + height > ph - margin // 2:
            break
        fill = int(255 * rng.uniform(0.75, 1.0))
        space = _text_width(font, " ")
        for text, align in line.segments:
            parts = text.split()
            widths = [_text_width(font, p) for p in parts]
            total = sum(widths) + space * (len(parts) - 1)
            x = {"left": margin, "right": pw - margin - total, "center": (pw - total) / 2,
                 "mid": pw * 0.62 - total / 2}[align]  # type: ignore[index]
            for part, wdt in zip(parts, widths):
                xi = int(round(x))
                draw.text((xi, y), part, fill=fill, font=font)
                if not line.rule:
                    box = _tight_box(ink, font, part, xi, y)
                    if box is not None:
                        words.append(PlacedWord(part, box, line_no, x, x + wdt, space))
                x += wdt + space
        y += int(round(height * spacing))
    return np.asarray(ink), words, float(base)


def _paper_rgb(rng: np.random.Generator, ink: np.ndarray) -> np.ndarray:
    h, w = ink.shape
    tint = (rng.uniform(228, 250) + rng.uniform(-6, 4, size=3)).astype(np.float32)
    grain = _noise_field(rng, w, h, 12) * np.float32(rng.uniform(2, 6))
    paper = tint + grain[..., None]
    ink_rgb = (rng.uniform(10, 60) + rng.uniform(-8, 8, size=3)).astype(np.float32)
    alpha = ink[..., None] * np.float32(1 / 255)
    paper -= alpha * (paper - ink_rgb)
    return paper


def _placement(rng: np.random.Generator, pw: int, ph: int, w: int, h: int) -> np.ndarray:
    """Homography (edge coordinates) from the paper onto the canvas, fully inside it."""
    angle = np.deg2rad(rng.uniform(-8, 8))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = np.array([[-pw, -ph], [pw, -ph], [pw, ph], [-pw, ph]], float) / 2
    dst = corners @ rot.T + rng.normal(0, 0.012 * max(w, h), size=(4, 2))
    span = dst.max(axis=0) - dst.min(axis=0)
    margin = 0.02 * max(w, h)
    dst *= min(1.0, (w - 2 * margin) / span[0], (h - 2 * margin) / span[1])
    lo, hi = dst.min(axis=0), dst.max(axis=0)
    room_lo, room_hi = margin - lo, np.array([w, h]) - margin - hi
    shift = np.array([rng.uniform(room_lo[i], max(room_lo[i], room_hi[i])) for i in range(2)])
    src = np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], np.float32)
    return cv2.getPerspectiveTransform(src, (dst + shift).astype(np.float32)).astype(np.float64)


def _plain(
    rng: np.random.Generator, size: int, fonts: FontSet, options: SynthOptions, seed: int, index: int
) -> tuple[np.ndarray, list[PlacedWord], np.ndarray]:
    """The original generator (its random draws untouched), with optional effects drawn from
    their own streams: without effects the bytes are those of every earlier version."""
    effects = options.effects
    h, w = size, int(round(size * rng.uniform(0.68, 1.0)))
    ph = int(h * rng.uniform(0.82, 0.97))
    pw = min(int(ph / rng.uniform(1.25, 2.0)), int(w * 0.92))
    ink, words, scale = _render_paper(rng, pw, ph, fonts)
    paper = _paper_rgb(rng, synth_effects.on_ink(ink, effects, seed, index))
    paper = synth_effects.on_paper(paper, ink, effects, seed, index, scale)
    hom = _placement(rng, pw, ph, w, h)
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])  # pixel centres -> edges
    hom_centres = np.linalg.inv(shift) @ hom @ shift
    base = rng.uniform(35, 190, size=3).astype(np.float32)
    scene = base + (_noise_field(rng, w, h, 24) * np.float32(rng.uniform(6, 20)))[..., None]
    # soft shadow: the paper's footprint, offset down a little and blurred
    offset = np.array([rng.integers(-4, 5), rng.integers(2, 8)], float)
    quad = _transform(np.array([[0, 0], [pw, 0], [pw, ph], [0, ph]], float), hom) + offset
    footprint = np.zeros((h, w), np.float32)
    cv2.fillConvexPoly(footprint, np.round(quad - 0.5).astype(np.int32), 1.0)
    scene *= 1 - 0.4 * cv2.GaussianBlur(footprint, (0, 0), 5)[..., None]
    cv2.warpPerspective(paper, hom_centres, (w, h), dst=scene, flags=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_TRANSPARENT)
    synth_effects.on_scene(scene, effects, seed, index)
    out = scene
    light = np.linspace(rng.uniform(0.82, 1.0), rng.uniform(0.9, 1.05), h).astype(np.float32)
    out *= light[:, None, None]
    sigma = rng.uniform(0.0, 0.9)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    out += rng.standard_normal((h, w, 1), dtype=np.float32) * rng.uniform(1.5, 5.0)
    return np.clip(out, 0, 255).astype(np.uint8), words, hom


def _real(
    rng: np.random.Generator, size: int, fonts: FontSet, options: SynthOptions, seed: int, index: int
) -> tuple[np.ndarray, list[PlacedWord], np.ndarray]:
    effects = options.effects
    shot = synth_real.frame(rng, size)
    # SROIE's single-space splits draw from a stream of their own (as each effect does), so the
    # receipt is otherwise the one drawn without them
    tight = np.random.default_rng([seed, index, 3]) if options.tight_segments else None
    paper = synth_real.real_paper(rng, shot.pw, shot.ph, fonts, tight)
    rgb = synth_real.paper_rgb(rng, synth_effects.on_ink(paper.ink, effects, seed, index))
    rgb = synth_effects.on_paper(rgb, paper.ink, effects, seed, index, paper.scale)
    scene, hom = synth_real.capture(rng, rgb, shot)
    synth_effects.on_scene(scene, effects, seed, index, photo=shot.photo)
    return synth_real.finish(rng, scene, shot.photo), paper.words, hom


def render_receipt(
    seed: int, index: int = 0, size: int = 640, fonts: FontSet | None = None,
    options: SynthOptions | None = None,
) -> tuple[np.ndarray, ImageAnnotation]:
    """One receipt photo (RGB uint8, height ``size``) and its exact word (or line-segment)
    polygons."""
    if size < 64:
        raise InputError(f"synthetic image size must be at least 64, got {size}", key="--size")
    options = SynthOptions() if options is None else options
    rng = np.random.default_rng([seed, index])
    fonts = find_fonts() if fonts is None else fonts
    draw = _real if options.style is Style.REAL else _plain
    image, words, hom = draw(rng, size, fonts, options, seed, index)
    records = []
    for k, region in enumerate(boxes_for(words, options.granularity)):
        x0, y0, x1, y1 = region.box
        quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
        records.append(Word(f"{k + 1:04d}", np.round(_transform(quad, hom), 2), region.text))
    h, w = image.shape[:2]
    return image, ImageAnnotation(f"receipt_{index:05d}.jpg", records, w, h)


def _split_counts(n: int, val_fraction: float) -> tuple[int, int]:
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"must be in [0, 1), got {val_fraction}", key="--val-fraction")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(1, n_val), n - 1)
    return n - n_val, n_val


_STAGING = ".synth-"  # prefix of the hidden folder a run renders into, inside ``out``


def _render(
    root: Path, seed: int, size: int, splits: dict[str, range], options: SynthOptions,
    workers: int, on_image: Callable[[int], None] | None,
) -> tuple[int, dict[str, str]]:
    """Render every split into ``root``; returns the number of words and each written file's
    sha256 by path relative to ``root``."""
    for split in splits:
        (root / "images" / split).mkdir(parents=True)
    jobs = [ImageJob(split, i) for split, indices in splits.items() for i in indices]
    renderer = Renderer(root, seed, size, options, render_receipt)
    hashes: dict[str, str] = {}
    n_words = 0
    writers = {s: SplitJson(root / "jsons" / f"{s}.json") for s in splits}
    try:
        for done in render_all(renderer, jobs, workers):
            hashes[done.relpath] = done.sha256
            writers[done.split].add(done.entry)
            n_words += done.n_words
            if on_image is not None:
                on_image(done.index)
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise
    for split, writer in writers.items():
        hashes[f"jsons/{split}.json"] = writer.close()
    return n_words, hashes


def _move_into_place(staged: Path, out: Path) -> None:
    """Swap the rendered files into ``out``; the old ones wait in ``staged/.old`` and are put
    back if any move fails, so ``out`` ends up either fully old or fully new."""
    old = staged / ".old"
    moved: list[tuple[Path, Path]] = []  # (from, to), in order, to undo
    try:
        for dst in ours(out):
            if dst.exists():
                keep = old / dst.relative_to(out)
                keep.parent.mkdir(parents=True, exist_ok=True)
                os.replace(dst, keep)
                moved.append((dst, keep))
        for dst in ours(out):
            src = staged / dst.relative_to(out)
            if src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                moved.append((src, dst))
    except OSError:
        for src, dst in reversed(moved):
            os.replace(dst, src)
        raise


def synthesize(
    out: str | Path,
    n: int,
    seed: int = 0,
    size: int = 640,
    val_fraction: float = 0.2,
    *,
    overwrite: bool = False,
    on_image: Callable[[int], None] | None = None,
    options: SynthOptions | None = None,
    workers: int = 1,
) -> SynthResult:
    """Write ``n`` receipts in the competition layout: ``images/{train,val}``, ``jsons/*.json``,
    rendered by ``workers`` processes (the files do not depend on how many).

    Everything is rendered into a hidden temporary folder and moved into place at the end, so
    a failure (or Ctrl-C) leaves ``out`` as it was. An existing dataset in ``out`` is an error
    unless ``overwrite``, and even then only one this function wrote and nobody changed since
    (``synth_marker``) is replaced: its train/val folders and JSONs, nothing else. An empty
    split is not written.
    """
    if n < 1:
        raise InputError(f"must be at least 1, got {n}", key="--n")
    if seed < 0:
        raise InputError(f"must be a non-negative integer, got {seed}", key="--seed")
    if size < 64:
        raise InputError(f"must be at least 64, got {size}", key="--size")
    if workers < 1:
        raise InputError(f"must be at least 1, got {workers}", key="--workers")
    options = SynthOptions() if options is None else options
    out = Path(out)
    n_train, n_val = _split_counts(n, val_fraction)
    check_destination(out, overwrite)
    splits = {"train": range(0, n_train), "val": range(n_train, n)}
    splits = {s: r for s, r in splits.items() if len(r)}
    # more processes than images or usable cores only costs memory and start-up; the result
    # line says how many rendered
    workers = min(workers, n, available_cores())
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        # staged inside ``out`` (hidden): the same file system, so the final moves are renames
        staged = Path(tempfile.mkdtemp(prefix=_STAGING, dir=out))
    except OSError as exc:
        raise InputError(f"cannot create the dataset folder: {exc.strerror or exc}", file=out) from None
    done = False
    start = time.perf_counter()
    try:
        n_words, hashes = _render(staged, seed, size, splits, options, workers, on_image)
        params = {"n": n, "seed": seed, "size": size, "val_fraction": val_fraction,
                  "version": GENERATOR_VERSION, **options.to_dict()}
        (staged / MARKER).write_text(marker_text(params, hashes), encoding="utf-8")
        check_destination(out, overwrite)  # nothing appeared or changed there while rendering
        _move_into_place(staged, out)
        done = True
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        if created and not done:
            shutil.rmtree(out, ignore_errors=True)
    return SynthResult(out, n_train, n_val, n_words, workers, time.perf_counter() - start)


def _params_key(params: dict[str, object]) -> str:
    blob = json.dumps(params, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def default_dataset(
    n: int = 64, seed: int = 0, size: int = 640, val_fraction: float = 0.2
) -> Path:
    """Cached synthetic dataset for commands given no data; built once, atomically."""
    params = {"n": n, "seed": seed, "size": size, "val_fraction": val_fraction,
              "version": GENERATOR_VERSION, "fonts": find_fonts().names}
    root = cache_root()
    final = root / f"synthetic-{_params_key(params)}"
    if (final / "params.json").is_file():
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=root))
    try:
        synthesize(tmp, n, seed, size, val_fraction)
        (tmp / "params.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first; its copy is identical
            if not (final / "params.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
