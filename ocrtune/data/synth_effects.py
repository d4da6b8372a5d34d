"""Degradations of real receipts, each a small deterministic function of its own generator.

Three hooks follow the renderer's stages: ink coverage (thermal fading), the flat paper
(smudges, creases, pen marks, stamps: they move with the paper when it is placed), and the
photographed scene (cast shadows, uneven light). None moves a pixel of text, so the word
polygons stay exact; pen marks and stamps go where there is no ink, as distractors that a
detector must learn not to box. Each effect draws from ``default_rng([seed, index, 2, k])``:
switching one on or off changes nothing else in the image.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from ocrtune.data.synth_draw import noise_field
from ocrtune.data.synth_options import ALL_EFFECTS, Effect

__all__ = ["effect_rng", "on_ink", "on_paper", "on_scene"]

_PENS = ((40, 60, 170), (30, 30, 45), (175, 40, 40))  # blue, black, red ballpoint
_STAMP_INKS = ((190, 40, 50), (50, 70, 170), (120, 50, 140))


def effect_rng(seed: int, index: int, effect: Effect) -> np.random.Generator:
    return np.random.default_rng([seed, index, 2, ALL_EFFECTS.index(effect)])


# ------------------------------------------------------------------------------ ink stage

def fading(rng: np.random.Generator, ink: np.ndarray) -> np.ndarray:
    """Thermal paper fades unevenly and a weak print-head dot leaves a pale streak along the
    feed direction; ink never drops below 45% so every word stays readable."""
    h, w = ink.shape
    low = rng.uniform(0.5, 0.85)
    field = np.clip(0.5 + 0.35 * noise_field(rng, w, h, max(8, min(w, h) // int(rng.integers(2, 6)))), 0, 1)
    factor = 1 - (1 - low) * field
    for _ in range(int(rng.integers(0, 6))):
        x, width = int(rng.integers(w)), int(rng.integers(1, 4))
        factor[:, x:x + width] *= np.float32(rng.uniform(0.6, 0.85))
    return ink.astype(np.float32) * np.maximum(factor, np.float32(0.45))


def on_ink(ink: np.ndarray, effects: frozenset[Effect], seed: int, index: int) -> np.ndarray:
    if Effect.FADING in effects:
        return fading(effect_rng(seed, index, Effect.FADING), ink)
    return ink


# ---------------------------------------------------------------------------- paper stage

def _blend(paper: np.ndarray, mask: np.ndarray, colour: tuple[float, ...] | np.ndarray) -> None:
    """``paper`` moves towards ``colour`` by ``mask`` (H, W in [0, 1]), in place."""
    a = mask[..., None].astype(np.float32)
    paper -= a * (paper - np.asarray(colour, np.float32))


def smudges(rng: np.random.Generator, paper: np.ndarray, scale: float) -> None:
    """Dirt and smeared ink: faint, soft-edged blotches (they may cross text, as on receipts)."""
    h, w = paper.shape[:2]
    for _ in range(int(rng.integers(1, 4))):
        mask = np.zeros((h, w), np.float32)
        centre = (int(rng.integers(w)), int(rng.integers(h)))
        axes = (int(w * rng.uniform(0.04, 0.2)) + 1, int(max(scale, h * rng.uniform(0.01, 0.05))) + 1)
        cv2.ellipse(mask, centre, axes, float(rng.uniform(-30, 30)), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), max(axes) / 3)
        mask *= np.clip(0.7 + 0.5 * noise_field(rng, w, h, max(4, int(scale))), 0, 1)
        _blend(paper, mask * np.float32(rng.uniform(0.08, 0.2)), rng.uniform(70, 130, size=3))


def creases(rng: np.random.Generator, paper: np.ndarray) -> None:
    """Fold lines: a thin dark valley with a highlight beside it, one side a shade darker."""
    h, w = paper.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(int(rng.integers(1, 3))):
        across = rng.random() < 0.75  # receipts are mostly folded across their length
        angle = np.deg2rad(rng.uniform(-8, 8) + (0 if across else 90))
        px, py = rng.uniform(0.15, 0.85) * w, rng.uniform(0.15, 0.85) * h
        d = (xx - px) * np.float32(-np.sin(angle)) + (yy - py) * np.float32(np.cos(angle))
        sigma = np.float32(rng.uniform(0.7, 1.6))
        shade = 1 - np.float32(rng.uniform(0.02, 0.06)) * (d > 0)
        valley = np.float32(rng.uniform(0.1, 0.22)) * np.exp(-(d / sigma) ** 2)
        ridge = np.float32(rng.uniform(0.03, 0.07)) * np.exp(-((d + 2.5 * sigma) / sigma) ** 2)
        paper *= (shade * (1 - valley) * (1 + ridge))[..., None]


def _free_spot(
    rng: np.random.Generator, occupied: np.ndarray, bw: int, bh: int, tries: int = 40
) -> tuple[int, int] | None:
    """Top-left corner of a ``bw`` x ``bh`` box where ``occupied`` (H, W uint8) is all zero,
    then marked occupied so later marks keep off it; None when no place is found."""
    h, w = occupied.shape
    if bw >= w or bh >= h:
        return None
    total = cv2.integral(occupied)
    for _ in range(tries):
        x, y = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        if total[y + bh, x + bw] - total[y, x + bw] - total[y + bh, x] + total[y, x] == 0:
            occupied[y:y + bh, x:x + bw] = 1
            return x, y
    return None


def _stroke(pts: np.ndarray, w: int, h: int, thickness: int) -> np.ndarray:
    """Antialiased polyline coverage (H, W float32 in [0, 1])."""
    canvas = np.zeros((h, w), np.uint8)
    shifted = np.round(pts * 16).astype(np.int32)  # 4 fractional bits: smooth curves
    cv2.polylines(canvas, [shifted], False, 255, thickness, cv2.LINE_AA, shift=4)
    return canvas.astype(np.float32) / 255


def _mark_path(rng: np.random.Generator, kind: int, bw: int, bh: int) -> np.ndarray:
    t = np.linspace(0, 1, 80)
    if kind == 0:  # tick
        return np.array([[0, 0.55], [0.35, 1.0], [1.0, 0.0]]) * [bw, bh]
    if kind == 1:  # loop, as drawn around a total
        a = np.linspace(0, 2 * np.pi * rng.uniform(1.05, 1.25), 90)
        return np.c_[0.5 + 0.48 * np.cos(a), 0.5 + 0.45 * np.sin(a) * rng.uniform(0.8, 1)] * [bw, bh]
    if kind == 2:  # wavy underline
        return np.c_[t, 0.5 + 0.4 * np.sin(t * np.pi * rng.uniform(2, 5))] * [bw, bh]
    # signature-like scribble: a running pen with loops, no letters
    f1, f2 = rng.uniform(4, 9), rng.uniform(7, 14)
    x = t + 0.06 * np.sin(2 * np.pi * f2 * t)
    y = 0.5 + 0.35 * np.sin(2 * np.pi * f1 * t + rng.uniform(0, 6)) * np.sin(np.pi * t)
    return np.c_[(x - x.min()) / np.ptp(x), y] * [bw, bh]


def marks(rng: np.random.Generator, paper: np.ndarray, occupied: np.ndarray, scale: float) -> None:
    """Handwriting-like pen marks that are not text (ticks, loops, underlines, scribbles), in
    places with no ink."""
    h, w = paper.shape[:2]
    pen = np.asarray(_PENS[int(rng.integers(len(_PENS)))], np.float32)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(4))
        bw = int(scale * (rng.uniform(1.2, 2.2) if kind == 0 else rng.uniform(3, 8)))
        bh = int(scale * rng.uniform(1.0, 2.0))
        spot = _free_spot(rng, occupied, bw + 4, bh + 4)
        if spot is None:
            continue
        pts = _mark_path(rng, kind, bw, bh) + [spot[0] + 2, spot[1] + 2]
        thick = max(1, int(round(scale * rng.uniform(0.06, 0.14))))
        _blend(paper, _stroke(pts, w, h, thick) * np.float32(rng.uniform(0.7, 0.95)), pen)


def stamp(rng: np.random.Generator, paper: np.ndarray, occupied: np.ndarray, scale: float) -> None:
    """An ink stamp with rings, bars and a star but no letters, blotchy as real stamps are."""
    h, w = paper.shape[:2]
    r = int(scale * rng.uniform(2.2, 3.8))
    side = 2 * r + 4
    spot = _free_spot(rng, occupied, side, side)
    if spot is None:
        return
    patch = np.zeros((side, side), np.uint8)
    c = (side // 2, side // 2)
    thick = max(1, r // 12)
    if rng.random() < 0.6:
        cv2.circle(patch, c, r, 255, thick + 1, cv2.LINE_AA)
        cv2.circle(patch, c, int(r * 0.72), 255, thick, cv2.LINE_AA)
    else:
        cv2.rectangle(patch, (2, side // 4), (side - 3, side - side // 4), 255, thick + 1, cv2.LINE_AA)
        cv2.rectangle(patch, (2 + r // 6, side // 4 + r // 6), (side - 3 - r // 6, side - side // 4 - r // 6),
                      255, thick, cv2.LINE_AA)
    a = np.linspace(-np.pi / 2, 1.5 * np.pi, 11)[:-1]
    radii = np.where(np.arange(10) % 2 == 0, r * 0.32, r * 0.13)
    star = np.c_[c[0] + radii * np.cos(a), c[1] + radii * np.sin(a)].round().astype(np.int32)
    cv2.fillPoly(patch, [star], 255, cv2.LINE_AA)
    for k in (-1, 1):
        y = int(c[1] + k * r * 0.48)
        cv2.line(patch, (int(c[0] - r * 0.4), y), (int(c[0] + r * 0.4), y), 255, thick, cv2.LINE_AA)
    rot = cv2.getRotationMatrix2D((side / 2, side / 2), float(rng.uniform(-35, 35)), 1.0)
    patch = cv2.warpAffine(patch, rot, (side, side)).astype(np.float32) / 255
    patch *= np.clip(0.75 + 0.45 * noise_field(rng, side, side, 3), 0.15, 1)  # uneven inking
    mask = np.zeros((h, w), np.float32)
    x, y = spot
    mask[y:y + side, x:x + side] = patch * np.float32(rng.uniform(0.5, 0.85))
    _blend(paper, mask, _STAMP_INKS[int(rng.integers(len(_STAMP_INKS)))])


def on_paper(
    paper: np.ndarray, ink: np.ndarray, effects: frozenset[Effect], seed: int, index: int,
    scale: float,
) -> np.ndarray:
    """Paper-stage effects in a fixed order; ``scale`` is the body text height in pixels."""
    if not effects & {Effect.SMUDGES, Effect.CREASES, Effect.MARKS, Effect.STAMP}:
        return paper
    paper = paper.copy()
    pad = max(2, int(scale * 0.4))
    occupied = cv2.dilate((np.asarray(ink) > 0).astype(np.uint8), np.ones((2 * pad + 1,) * 2, np.uint8))
    steps: list[tuple[Effect, Callable[[np.random.Generator], None]]] = [
        (Effect.CREASES, lambda r: creases(r, paper)),
        (Effect.SMUDGES, lambda r: smudges(r, paper, scale)),
        (Effect.STAMP, lambda r: stamp(r, paper, occupied, scale)),
        (Effect.MARKS, lambda r: marks(r, paper, occupied, scale)),
    ]
    for effect, step in steps:
        if effect in effects:
            step(effect_rng(seed, index, effect))
    return paper


# ---------------------------------------------------------------------------- scene stage

def shadow(rng: np.random.Generator, scene: np.ndarray) -> None:
    """A shadow (a hand, a phone) falling across part of the photo from one edge."""
    h, w = scene.shape[:2]
    side = int(rng.integers(4))
    depth = rng.uniform(0.2, 0.55)
    t = np.sort(rng.uniform(0, 1, size=2))
    if side in (0, 2):  # from the left or right edge
        x_edge = 0 if side == 0 else w
        x_in = w * depth if side == 0 else w * (1 - depth)
        poly = [[x_edge, t[0] * h], [x_in, t[0] * h + rng.uniform(-0.1, 0.1) * h],
                [x_in + rng.uniform(-0.1, 0.1) * w, t[1] * h + 0.3 * h], [x_edge, t[1] * h + 0.3 * h]]
    else:  # from the top or bottom edge
        y_edge = 0 if side == 1 else h
        y_in = h * depth if side == 1 else h * (1 - depth)
        poly = [[t[0] * w, y_edge], [t[0] * w + rng.uniform(-0.1, 0.1) * w, y_in],
                [t[1] * w + 0.3 * w, y_in + rng.uniform(-0.1, 0.1) * h], [t[1] * w + 0.3 * w, y_edge]]
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [np.round(np.array(poly)).astype(np.int32)], 1.0)
    mask = cv2.GaussianBlur(mask, (0, 0), rng.uniform(0.005, 0.04) * max(h, w) + 1)
    dark = np.float32(rng.uniform(0.2, 0.42))
    tint = np.array([1.0, 1.0, rng.uniform(1.0, 1.08)], np.float32)  # shadows run a little blue
    scene *= 1 - dark * mask[..., None] * (2 - tint)


def light(rng: np.random.Generator, scene: np.ndarray) -> None:
    """Uneven illumination: a lamp's falloff, a gradient across the page, sometimes a glare."""
    h, w = scene.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h
    d2 = np.minimum(((xx - cx) ** 2 + (yy - cy) ** 2) / np.float32(w * w + h * h), 1)
    gx, gy = rng.uniform(-0.15, 0.15, size=2)
    factor = (1 - np.float32(rng.uniform(0.1, 0.35)) * d2) * (1 + gx * (xx / w - 0.5) + gy * (yy / h - 0.5))
    scene *= factor[..., None]
    if rng.random() < 0.3:
        gx0, gy0 = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        r = rng.uniform(0.05, 0.15) * max(h, w)
        glare = np.exp(-((xx - gx0) ** 2 + (yy - gy0) ** 2) / np.float32(2 * r * r))
        scene += (np.float32(rng.uniform(20, 50)) * glare)[..., None]


def on_scene(
    scene: np.ndarray, effects: frozenset[Effect], seed: int, index: int, photo: bool = True
) -> None:
    """Scene-stage effects, in place, before the camera's blur and noise; a scanner's lid
    casts no shadow, so scans get none."""
    if Effect.SHADOW in effects and photo:
        shadow(effect_rng(seed, index, Effect.SHADOW), scene)
    if Effect.LIGHT in effects:
        light(effect_rng(seed, index, Effect.LIGHT), scene)
