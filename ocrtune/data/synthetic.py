"""Seeded synthetic receipts with exact word polygons: the data every command falls back to.

Words are drawn on a flat paper image whose tight ink boxes are known exactly; the paper is
then placed in a photo-like scene with one homography, and the same homography moves the
boxes, so polygons stay exact whatever the rotation or perspective. Each image draws from
its own ``default_rng([seed, index])`` stream: image ``i`` is identical whatever ``n`` is,
and the same seed gives byte-identical files on the same machine (fonts included).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ocrtune.data.formats import Annotations, ImageAnnotation, Word, write_json
from ocrtune.data.layout import cache_root
from ocrtune.data.receipt_text import FontSet, find_fonts, load_font, receipt_lines
from ocrtune.errors import InputError

__all__ = ["GENERATOR_VERSION", "MARKER", "SynthResult", "render_receipt", "synthesize", "default_dataset"]

#: Bump when the renderer's output changes, so cached default datasets are rebuilt.
GENERATOR_VERSION = 2
_INK_THRESHOLD = 32  # coverage (0-255) that counts as ink when tightening word boxes


@dataclass(frozen=True)
class SynthResult:
    root: Path
    n_train: int
    n_val: int
    n_words: int


def _choose_font(rng: np.random.Generator, pool: tuple[str, ...], bold: bool) -> str | None:
    if not pool:
        return None
    bolds = tuple(p for p in pool if "bold" in Path(p).name.lower() or Path(p).stem.endswith("B"))
    regular = tuple(p for p in pool if p not in bolds) or pool
    choices = bolds if bold and bolds else regular
    return choices[int(rng.integers(len(choices)))]


def _text_width(font: object, text: str) -> float:
    return float(font.getlength(text))  # type: ignore[attr-defined]


def _line_height(font: object) -> int:
    if hasattr(font, "getmetrics"):
        ascent, descent = font.getmetrics()
        return int(ascent + descent)
    box = font.getbbox("Ag")  # type: ignore[attr-defined]
    return int(box[3] - box[1])


def _tight_box(
    ink: Image.Image, font: object, text: str, x: int, y: int
) -> tuple[int, int, int, int] | None:
    """Pixel-exact ink box (x0, y0, x1, y1; pixel edges) of a word just drawn at (x, y)."""
    left, top, right, bottom = font.getbbox(text)  # type: ignore[attr-defined]
    w, h = ink.size
    x0, y0 = max(0, x + int(left)), max(0, y + int(top))
    x1, y1 = min(w, x + int(np.ceil(right))), min(h, y + int(np.ceil(bottom)))
    if x1 <= x0 or y1 <= y0:
        return None
    region = np.asarray(ink.crop((x0, y0, x1, y1))) >= _INK_THRESHOLD
    cols, rows = np.flatnonzero(region.any(axis=0)), np.flatnonzero(region.any(axis=1))
    if cols.size == 0:
        return None
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def _render_paper(
    rng: np.random.Generator, pw: int, ph: int, fonts: FontSet
) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Ink coverage (H, W uint8) of a receipt and its words as (text, 4x2 edge-coordinate box)."""
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
    words: list[tuple[str, np.ndarray]] = []
    y = margin
    for line in receipt_lines(rng, n_lines, korean, rule):
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
                 "mid": pw * 0.62 - total / 2}[align]
            for part, wdt in zip(parts, widths):
                xi = int(round(x))
                draw.text((xi, y), part, fill=fill, font=font)
                if not line.rule:
                    box = _tight_box(ink, font, part, xi, y)
                    if box is not None:
                        x0, y0, x1, y1 = box
                        quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
                        words.append((part, quad))
                x += wdt + space
        y += int(round(height * spacing))
    return np.asarray(ink), words


def _noise_field(rng: np.random.Generator, w: int, h: int, cell: int) -> np.ndarray:
    """Smooth zero-mean noise (H, W float32): coarse random grid, bicubically upscaled."""
    grid = rng.standard_normal((h // cell + 2, w // cell + 2), dtype=np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


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


def _transform(points: np.ndarray, hom: np.ndarray) -> np.ndarray:
    homog = np.c_[points, np.ones(len(points))] @ hom.T
    return homog[:, :2] / homog[:, 2:3]


def render_receipt(
    seed: int, index: int = 0, size: int = 640, fonts: FontSet | None = None
) -> tuple[np.ndarray, ImageAnnotation]:
    """One receipt photo (RGB uint8, height ``size``) and its exact word polygons."""
    if size < 64:
        raise InputError(f"synthetic image size must be at least 64, got {size}", key="--size")
    rng = np.random.default_rng([seed, index])
    fonts = find_fonts() if fonts is None else fonts
    h, w = size, int(round(size * rng.uniform(0.68, 1.0)))
    ph = int(h * rng.uniform(0.82, 0.97))
    pw = min(int(ph / rng.uniform(1.25, 2.0)), int(w * 0.92))
    ink, words = _render_paper(rng, pw, ph, fonts)
    paper = _paper_rgb(rng, ink)
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
    out = scene
    light = np.linspace(rng.uniform(0.82, 1.0), rng.uniform(0.9, 1.05), h).astype(np.float32)
    out *= light[:, None, None]
    sigma = rng.uniform(0.0, 0.9)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    out += rng.standard_normal((h, w, 1), dtype=np.float32) * rng.uniform(1.5, 5.0)
    image = np.clip(out, 0, 255).astype(np.uint8)
    records = [
        Word(f"{k + 1:04d}", np.round(_transform(box, hom), 2), text)
        for k, (text, box) in enumerate(words)
    ]
    return image, ImageAnnotation(f"receipt_{index:05d}.jpg", records, w, h)


def _split_counts(n: int, val_fraction: float) -> tuple[int, int]:
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"must be in [0, 1), got {val_fraction}", key="--val-fraction")
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(1, n_val), n - 1)
    return n - n_val, n_val


#: Written by ``synthesize`` into every dataset it makes: ``overwrite`` replaces only those.
MARKER = "ocrtune-synth.json"
_SPLITS = ("train", "val")
_RECEIPT = re.compile(r"receipt_\d{5}\.jpg")  # the image names ``render_receipt`` gives
_STAGING = ".synth-"  # prefix of the hidden folder a run renders into, inside ``out``


def _ours(root: Path) -> list[Path]:
    """What ``synthesize`` writes into a dataset folder (and so what ``overwrite`` replaces)."""
    return [
        *(root / "images" / s for s in _SPLITS),
        *(root / "jsons" / f"{s}.json" for s in _SPLITS),
        root / MARKER,
    ]


def _made_by_synth(out: Path) -> bool:
    """``out`` carries ``MARKER``, or predates it and holds exactly what synth wrote then:
    ``images/{train,val}/receipt_NNNNN.jpg`` and the matching ``jsons/{train,val}.json``,
    nothing else (a folder of anyone's data differs in some name)."""
    if (out / MARKER).is_file():
        return True
    try:
        names = sorted(p.name for p in out.iterdir() if not p.name.startswith(_STAGING))
        if names != ["images", "jsons"]:
            return False
        splits = {p.name for p in (out / "images").iterdir()}
        if not splits or not splits <= set(_SPLITS):
            return False
        if {p.name for p in (out / "jsons").iterdir()} != {f"{s}.json" for s in splits}:
            return False
        return all(
            (out / "jsons" / f"{s}.json").is_file()
            and all(p.is_file() and _RECEIPT.fullmatch(p.name) for p in (out / "images" / s).iterdir())
            for s in splits
        )
    except OSError:  # not a folder where one belongs, or unreadable: not ours
        return False


def _check_destination(out: Path, overwrite: bool) -> None:
    """Refuse a file, a foreign dataset, or (without ``overwrite``) one of our own."""
    if out.exists() and not out.is_dir():
        raise InputError("not a directory; give a folder for the dataset", file=out)
    foreign = [out / "annotations" / f"{s}.json" for s in _SPLITS]
    if not any(p.exists() for p in [*_ours(out), *foreign]):
        return
    if not _made_by_synth(out):
        raise InputError(
            f"folder holds a dataset that ocrtune did not synthesise (no {MARKER}), which "
            "synth never replaces, even with --force: choose another folder, or delete this one yourself",
            file=out,
        )
    if not overwrite:
        raise InputError("folder already holds a dataset (overwrite it with --force)", file=out)


def _render(
    root: Path, seed: int, size: int, splits: dict[str, range],
    on_image: Callable[[int], None] | None,
) -> int:
    """Render every split into ``root``; returns the number of words."""
    fonts = find_fonts()
    n_words = 0
    for split, indices in splits.items():
        image_dir = root / "images" / split
        image_dir.mkdir(parents=True)
        records = []
        for i in indices:
            image, ann = render_receipt(seed, i, size, fonts)
            quality = int(np.random.default_rng([seed, i, 1]).integers(82, 96))
            Image.fromarray(image).save(image_dir / ann.name, quality=quality)
            records.append(ann)
            n_words += len(ann.words)
            if on_image is not None:
                on_image(i)
        write_json(Annotations(records), root / "jsons" / f"{split}.json", decimals=2)
    return n_words


def _move_into_place(staged: Path, out: Path) -> None:
    """Swap the rendered files into ``out``; the old ones wait in ``staged/.old`` and are put
    back if any move fails, so ``out`` ends up either fully old or fully new."""
    old = staged / ".old"
    moved: list[tuple[Path, Path]] = []  # (from, to), in order, to undo
    try:
        for dst in _ours(out):
            if dst.exists():
                keep = old / dst.relative_to(out)
                keep.parent.mkdir(parents=True, exist_ok=True)
                os.replace(dst, keep)
                moved.append((dst, keep))
        for dst in _ours(out):
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
) -> SynthResult:
    """Write ``n`` receipts in the competition layout: ``images/{train,val}``, ``jsons/*.json``.

    Everything is rendered into a hidden temporary folder and moved into place at the end, so
    a failure (or Ctrl-C) leaves ``out`` as it was. An existing dataset in ``out`` is an error
    unless ``overwrite``, and even then only one this function wrote (it carries ``MARKER``, or
    is exactly what it wrote before the marker existed) is replaced: its train/val folders and
    JSONs, nothing else. An empty split is not written.
    """
    if n < 1:
        raise InputError(f"must be at least 1, got {n}", key="--n")
    if seed < 0:
        raise InputError(f"must be a non-negative integer, got {seed}", key="--seed")
    if size < 64:
        raise InputError(f"must be at least 64, got {size}", key="--size")
    out = Path(out)
    n_train, n_val = _split_counts(n, val_fraction)
    _check_destination(out, overwrite)
    splits = {"train": range(0, n_train), "val": range(n_train, n)}
    splits = {s: r for s, r in splits.items() if len(r)}
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        # staged inside ``out`` (hidden): the same file system, so the final moves are renames
        staged = Path(tempfile.mkdtemp(prefix=_STAGING, dir=out))
    except OSError as exc:
        raise InputError(f"cannot create the dataset folder: {exc.strerror or exc}", file=out) from None
    done = False
    try:
        n_words = _render(staged, seed, size, splits, on_image)
        params = {"n": n, "seed": seed, "size": size, "val_fraction": val_fraction,
                  "version": GENERATOR_VERSION}
        (staged / MARKER).write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
        _check_destination(out, overwrite)  # nothing appeared there while rendering
        _move_into_place(staged, out)
        done = True
    finally:
        shutil.rmtree(staged, ignore_errors=True)
        if created and not done:
            shutil.rmtree(out, ignore_errors=True)
    return SynthResult(out, n_train, n_val, n_words)


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
