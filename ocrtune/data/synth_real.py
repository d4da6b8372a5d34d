"""The ``real`` style: receipts laid out like printed ones, then scanned or photographed.

Layout: item / qty / price / amount columns with right-aligned amounts, key/value header
lines, totals, footers, graphic rules (dashed, dotted, solid, double) and logos and barcodes
that are drawn but never annotated. A segment that would run into the next column is cut
short, as receipt printers cut long item names, so columns always stay at least two spaces
apart. Capture: a flat scan (near-white bed, tight crop, barely rotated) or a photo (table,
perspective, cast shadow), chosen per image. Every number comes from the image's generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from ocrtune.data.line_segments import PlacedWord
from ocrtune.data.receipt_text import TIGHT, Col, FontSet, Graphic, Line, load_font, real_receipt_lines
from ocrtune.data.synth_draw import choose_font, line_height, noise_field, paper_corners, text_width, tight_box, transform

__all__ = ["RealPaper", "Shot", "real_paper", "paper_rgb", "frame", "capture", "finish"]

_COLUMN_GAP = 2.0  # spaces kept between two segments of one line


@dataclass
class RealPaper:
    ink: np.ndarray  # (H, W) uint8 coverage
    words: list[PlacedWord]
    scale: float  # body text height in pixels (sizes pen marks and stamps)


def _segment_x(align: str | Col, total: float, left: float, width: float) -> float:
    if isinstance(align, Col):
        stop = left + align.at * width
        return stop - total if align.right else stop
    return {"left": left, "right": left + width - total, "center": left + (width - total) / 2,
            "mid": left + 0.62 * width - total / 2}[align]


def _fit_segments(
    line: Line, font: object, left: float, width: float, space: float
) -> list[tuple[str, float]]:
    """``(text, x)`` per segment, left to right, each cut short where it would run into the
    next one (or past the left margin). A ``TIGHT`` in a text is measured as the space it prints."""

    def wide(text: str) -> float:
        return text_width(font, text.replace(TIGHT, " "))

    placed = []
    for text, align in line.segments:
        while wide(text) > width and (" " in text or TIGHT in text):  # too wide for the paper:
            text = text[:max(text.rfind(" "), text.rfind(TIGHT))]  # whole words go first, then characters
        while text and wide(text) > width:
            text = text[:-1]
        x = _segment_x(align, wide(text), left, width)
        placed.append([text, min(max(left, x), left + width - wide(text))])
    placed.sort(key=lambda p: p[1])
    for a, b in zip(placed, placed[1:]):
        while a[0] and a[1] + wide(a[0]) + _COLUMN_GAP * space > b[1]:
            a[0] = a[0][:-1].rstrip(" " + TIGHT)
    return [(t, x) for t, x in placed if t.replace(TIGHT, " ").strip()]


def _draw_logo(rng: np.random.Generator, draw: ImageDraw.ImageDraw, cx: float, y: int, h: int, fill: int) -> None:
    """A trademark-like emblem without letters."""
    r = h / 2
    box = (cx - r, y, cx + r, y + h)
    kind = int(rng.integers(4))
    t = max(2, int(h / 10))
    if kind == 0:
        draw.ellipse(box, outline=fill, width=t)
        draw.ellipse((cx - r / 2.5, y + r - r / 2.5, cx + r / 2.5, y + r + r / 2.5), fill=fill)
    elif kind == 1:
        draw.rounded_rectangle(box, radius=int(r / 3), outline=fill, width=t)
        draw.polygon([(cx - r * 0.6, y + h * 0.8), (cx + r * 0.2, y + h * 0.2), (cx + r * 0.6, y + h * 0.2),
                      (cx - r * 0.2, y + h * 0.8)], fill=fill)
    elif kind == 2:
        draw.ellipse(box, fill=fill)
        draw.polygon([(cx, y + h * 0.18), (cx + r * 0.62, y + h * 0.75), (cx - r * 0.62, y + h * 0.75)], fill=0)
    else:
        bw = h / 4
        for k, frac in enumerate((0.5, 0.8, 1.0)):
            x0 = cx - 1.5 * bw + k * bw
            draw.rectangle((x0, y + h * (1 - frac), x0 + bw * 0.75, y + h), fill=fill)


def _draw_barcode(
    rng: np.random.Generator, draw: ImageDraw.ImageDraw, cx: float, y: int, h: int, width: float, fill: int
) -> None:
    unit = max(1, int(round(width / 160)))
    n = int(width * rng.uniform(0.55, 0.85) / unit)
    modules = np.concatenate([[1, 1, 1], rng.integers(1, 4, size=max(8, n // 2)), [1, 1, 1]])
    total = int(modules.sum()) * unit
    x = int(cx - total / 2)
    for k, m in enumerate(modules):
        if k % 2 == 0:
            draw.rectangle((x, y, x + int(m) * unit - 1, y + h), fill=fill)
        x += int(m) * unit


def _draw_rule(
    rng: np.random.Generator, draw: ImageDraw.ImageDraw, line: Line, font: object,
    left: float, right: float, y: int, height: int, fill: int,
) -> None:
    mid = y + height // 2
    kind = line.graphic
    if kind is Graphic.RULE_CHARS:
        char = line.segments[0][0]
        count = max(4, int((right - left) / max(1.0, text_width(font, char))))
        draw.text((int(left), y), char * count, fill=fill, font=font)
    elif kind is Graphic.RULE_SOLID:
        draw.line((left, mid, right, mid), fill=fill, width=max(1, height // 12))
    elif kind is Graphic.RULE_DOUBLE:
        gap = max(2, height // 8)
        draw.line((left, mid - gap, right, mid - gap), fill=fill, width=1)
        draw.line((left, mid + gap, right, mid + gap), fill=fill, width=1)
    else:
        dot = kind is Graphic.RULE_DOT
        on, off = (max(1, height // 10), max(2, height // 6)) if dot else (max(3, height // 3), max(2, height // 5))
        x = left
        while x < right:
            if dot:
                r = max(1, height // 14)
                draw.ellipse((x, mid - r, x + 2 * r, mid + r), fill=fill)
            else:
                draw.line((x, mid, min(right, x + on), mid), fill=fill, width=max(1, height // 12))
            x += on + off


def real_paper(
    rng: np.random.Generator, pw: int, ph: int, fonts: FontSet, tight: np.random.Generator | None = None
) -> RealPaper:
    """Ink coverage and placed words of a receipt printed on a ``pw`` x ``ph`` strip; ``tight``:
    also SROIE's single-space splits, drawn from that generator (``real_receipt_lines``)."""
    ink = Image.new("L", (pw, ph), 0)
    draw = ImageDraw.Draw(ink)
    korean = bool(fonts.hangul) and rng.random() < 0.5
    pool = fonts.hangul if korean else fonts.latin
    mono = tuple(p for p in pool if any(k in Path(p).name.lower() for k in ("mono", "coding")))
    pool = mono if mono and rng.random() < 0.5 else pool
    body = choose_font(rng, pool, bold=False)
    margin = int(pw * rng.uniform(0.04, 0.08))
    left, width = float(margin), float(pw - 2 * margin)
    base = max(8, int(width / (int(rng.integers(28, 44)) * 0.6)))
    spacing = float(rng.uniform(1.1, 1.45))
    n_lines = int((ph - 2 * margin) / (base * 1.2 * spacing))
    darkness = rng.uniform(0.85, 1.0)
    words: list[PlacedWord] = []
    y = margin
    segment = 0  # a new number for each run of words that is never merged with its neighbours
    for line_no, line in enumerate(real_receipt_lines(rng, n_lines, korean, tight)):
        fill = int(255 * darkness * rng.uniform(0.9, 1.0))
        if line.graphic in (Graphic.LOGO, Graphic.BARCODE):
            h = int(base * line.scale)
            if y + h > ph - margin // 2:
                break
            centre = left + width / 2 if rng.random() < 0.75 else left + h / 2
            if line.graphic is Graphic.LOGO:
                _draw_logo(rng, draw, centre, y, h, fill)
            else:
                _draw_barcode(rng, draw, left + width / 2, y, h, width, fill)
            y += h + int(base * 0.6)
            continue
        path = choose_font(rng, pool, bold=True) if line.bold else body
        font = load_font(path, max(8, int(round(base * line.scale))))
        height = line_height(font)
        if y + height > ph - margin // 2:
            break
        if line.rule:
            _draw_rule(rng, draw, line, font, left, left + width, y, height, fill)
            y += int(round(height * spacing))
            continue
        space = text_width(font, " ")
        for text, x in _fit_segments(line, font, left, width, space):
            for piece in text.split(TIGHT):
                segment += 1
                for part in piece.split():
                    wdt = text_width(font, part)
                    xi = int(round(x))
                    draw.text((xi, y), part, fill=fill, font=font)
                    box = tight_box(ink, font, part, xi, y)
                    if box is not None:
                        words.append(PlacedWord(part, box, line_no, x, x + wdt, space, segment))
                    x += wdt + space
        y += int(round(height * spacing))
    return RealPaper(np.asarray(ink), words, float(base))


def paper_rgb(rng: np.random.Generator, ink: np.ndarray) -> np.ndarray:
    """Thermal paper: near-white, faint grain; print dark grey rather than black."""
    h, w = ink.shape
    tint = (rng.uniform(234, 252) + rng.uniform(-5, 3, size=3)).astype(np.float32)
    paper = tint + (noise_field(rng, w, h, 8) * np.float32(rng.uniform(1, 4)))[..., None]
    ink_rgb = (rng.uniform(12, 60) + rng.uniform(-6, 6, size=3)).astype(np.float32)
    paper -= ink[..., None] * np.float32(1 / 255) * (paper - ink_rgb)
    return paper


def _homography(
    rng: np.random.Generator, pw: int, ph: int, w: int, h: int, max_angle: float, jitter: float
) -> np.ndarray:
    """Paper -> canvas (edge coordinates), rotated, corners jittered, fully inside."""
    angle = np.deg2rad(rng.uniform(-max_angle, max_angle))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = (paper_corners(pw, ph) - [pw / 2, ph / 2]) @ rot.T
    dst += rng.normal(0, jitter * max(w, h), size=(4, 2))
    span = dst.max(axis=0) - dst.min(axis=0)
    margin = 0.015 * max(w, h)
    dst *= min(1.0, (w - 2 * margin) / span[0], (h - 2 * margin) / span[1])
    lo, hi = dst.min(axis=0), dst.max(axis=0)
    room_lo, room_hi = margin - lo, np.array([w, h]) - margin - hi
    shift = np.array([rng.uniform(room_lo[i], max(room_lo[i], room_hi[i])) for i in range(2)])
    src = paper_corners(pw, ph).astype(np.float32)
    return cv2.getPerspectiveTransform(src, (dst + shift).astype(np.float32)).astype(np.float64)


@dataclass
class Shot:
    """Canvas size and paper size of one capture, and whether it is a photo."""

    w: int
    h: int
    pw: int
    ph: int
    photo: bool


def frame(rng: np.random.Generator, size: int) -> Shot:
    """A scan is cropped tightly around the strip; a photo shows the table around it."""
    photo = bool(rng.random() < 0.5)
    ratio = rng.uniform(0.32, 0.66)  # receipts are long strips
    if photo:
        w = int(round(size * rng.uniform(0.62, 0.95)))
        ph = int(size * rng.uniform(0.8, 0.95))
        pw = min(int(ph * ratio), int(w * 0.9))
    else:
        ph = int(size * rng.uniform(0.9, 0.97))
        pw = int(ph * ratio)
        w = int(pw + 2 * size * rng.uniform(0.02, 0.07))
    return Shot(w, size, pw, ph, photo)


def capture(rng: np.random.Generator, paper: np.ndarray, shot: Shot) -> tuple[np.ndarray, np.ndarray]:
    """The scene (H, W, 3 float32) with the paper placed in it, and the homography used."""
    w, h, pw, ph = shot.w, shot.h, shot.pw, shot.ph
    if shot.photo:
        hom = _homography(rng, pw, ph, w, h, max_angle=10, jitter=0.015)
        base = rng.uniform(30, 180, size=3).astype(np.float32)
        texture = noise_field(rng, w, h, int(rng.integers(6, 30))) * np.float32(rng.uniform(5, 22))
        streaks = noise_field(rng, w, 2, 3)[:1] * np.float32(rng.uniform(0, 10))  # wood-like grain
        scene = base + (texture + streaks)[..., None]
        drop, blur = rng.uniform(0.3, 0.55), rng.uniform(3, 9)
        offset = np.array([rng.integers(-6, 7), rng.integers(2, 12)], float)
    else:
        hom = _homography(rng, pw, ph, w, h, max_angle=1.5, jitter=0.0)
        dark_lid = rng.random() < 0.15
        level = rng.uniform(15, 60) if dark_lid else rng.uniform(228, 252)
        scene = np.full((h, w, 3), level, np.float32)
        scene += (noise_field(rng, w, h, 4) * np.float32(rng.uniform(0.5, 2.0)))[..., None]
        drop, blur = rng.uniform(0.05, 0.2), rng.uniform(0.8, 2.0)
        offset = np.array([0.0, 0.0])
    quad = transform(paper_corners(pw, ph), hom) + offset
    footprint = np.zeros((h, w), np.float32)
    cv2.fillConvexPoly(footprint, np.round(quad - 0.5).astype(np.int32), 1.0)
    scene *= 1 - np.float32(drop) * cv2.GaussianBlur(footprint, (0, 0), blur)[..., None]
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])  # pixel centres -> edges
    cv2.warpPerspective(paper, np.linalg.inv(shift) @ hom @ shift, (w, h), dst=scene,
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    return scene, hom


def finish(rng: np.random.Generator, scene: np.ndarray, photo: bool) -> np.ndarray:
    """The camera or scanner: gentle light falloff, blur, sensor noise; uint8 RGB."""
    h = scene.shape[0]
    if photo:
        scene *= np.linspace(rng.uniform(0.8, 1.0), rng.uniform(0.9, 1.05), h, dtype=np.float32)[:, None, None]
        sigma, noise = rng.uniform(0.0, 1.1), rng.uniform(2.0, 6.0)
    else:
        sigma, noise = rng.uniform(0.2, 0.7), rng.uniform(0.5, 2.5)
    if sigma > 0.3:
        scene = cv2.GaussianBlur(scene, (0, 0), sigma)
    scene += rng.standard_normal((h, scene.shape[1], 1), dtype=np.float32) * np.float32(noise)
    return np.clip(scene, 0, 255).astype(np.uint8)
