"""ICDAR2015 ground truth: one ``gt_<image>.txt`` per image, ``x1,y1,...,x4,y4,transcript``.

The transcript may itself contain commas (split at most 8 times) and may be left out (no
trailing comma, read as ``None``); ``###`` marks don't-care regions; a UTF-8 BOM (common in
the official files) is skipped.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ocrtune.data.formats.records import (
    DONT_CARE,
    MAX_PROBLEMS,
    Annotations,
    ImageAnnotation,
    Word,
    _Layout,
    format_number,
    read_text,
)
from ocrtune.errors import InputError, Problem

_ICDAR_COORDS = 8


def read_icdar_txt(path: str | Path, image_name: str | None = None) -> ImageAnnotation:
    """Read one ``gt_img_N.txt``: ``x1,y1,...,x4,y4,transcript`` (commas allowed in text)."""
    path = Path(path)
    text = read_text(path, "ICDAR file")
    name = image_name or _icdar_image_name(path)
    words: list[Word] = []
    problems: list[Problem] = []
    for lineno, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):  # not splitlines: U+2028 is text
        if not line.strip():
            continue
        parts = line.split(",", _ICDAR_COORDS)
        if len(parts) < _ICDAR_COORDS:
            problems.append(
                Problem(f"expected 8 coordinates and an optional transcript, got {len(parts)} fields",
                        str(path), lineno)
            )
            continue
        try:
            values = [float(p) for p in parts[:_ICDAR_COORDS]]
        except ValueError:
            values = [math.nan]
        if not all(math.isfinite(v) for v in values):
            problems.append(Problem("coordinates must be finite numbers", str(path), lineno))
            continue
        # "x1,...,y4" has no transcript (None); "x1,...,y4," an empty one: both round-trip
        transcript = parts[_ICDAR_COORDS] if len(parts) > _ICDAR_COORDS else None
        int_coords = all(re.fullmatch(r"\s*[-+]?\d+\s*", p) for p in parts[:_ICDAR_COORDS])
        words.append(
            Word(f"{len(words) + 1:04d}", np.asarray(values).reshape(4, 2), transcript,
                 transcript == DONT_CARE, layout=_Layout((), bool(int_coords)))
        )
    if problems:
        raise InputError(problems=problems[:MAX_PROBLEMS])
    return ImageAnnotation(name, words)


def _icdar_image_name(path: Path, ext: str = ".jpg") -> str:
    stem = path.stem
    return (stem[3:] if stem.startswith("gt_") else stem) + ext


def dumps_icdar_txt(annotation: ImageAnnotation) -> str:
    lines = []
    for w in annotation.words:
        if len(w.points) != 4:
            raise InputError(
                f"ICDAR2015 needs 4 points per word, word has {len(w.points)}",
                key=f"{annotation.name}.words.{w.id}",
            )
        text = w.text if w.text is not None else (DONT_CARE if w.ignore else None)
        coords = ",".join(format_number(v) for v in w.points.ravel())
        lines.append(coords if text is None else f"{coords},{text}")
    return "".join(line + "\n" for line in lines)


def write_icdar_txt(annotation: ImageAnnotation, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(dumps_icdar_txt(annotation), encoding="utf-8")
    return path


def read_icdar_dir(directory: str | Path, image_ext: str = ".jpg") -> Annotations:
    """Read every ``gt_*.txt`` in a directory, sorted by name, as one ``Annotations``."""
    directory = Path(directory)
    files = sorted(directory.glob("gt_*.txt"))
    if not files:
        raise InputError("no gt_*.txt files found", file=directory)
    images = [read_icdar_txt(f, _icdar_image_name(f, image_ext)) for f in files]
    return Annotations(images, source=directory)


def write_icdar_dir(annotations: Annotations, directory: str | Path) -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return [
        write_icdar_txt(im, directory / f"gt_{Path(name).stem}.txt")
        for name, im in annotations.items()
    ]
