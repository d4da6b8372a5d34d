"""Geometry checks that report instead of raising: one bad word must not sink a dataset.

``sanitize`` returns a cleaned copy of an image's annotation plus one ``DataProblem`` per
word it changed or dropped, so ``ocrtune data check`` can list them and training can go on
with the usable words.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import shapely
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient

from ocrtune.data.formats.competition_json import KeyIndex, locate_key
from ocrtune.data.formats.records import ImageAnnotation, Word
from ocrtune.errors import Problem

#: Kinds ``sanitize`` reports. ``degenerate`` words are dropped; the others are kept, fixed.
PROBLEM_KINDS = ("degenerate", "repaired", "clipped")

_AREA_EPS = 1e-9
_EDGE_EPS = 1e-6


@dataclass(frozen=True)
class DataProblem:
    """One located data problem: which file, image and word, what kind, what happened."""

    kind: str
    message: str
    file: str | None = None
    image: str | None = None
    word: str | None = None
    dropped: bool = False
    line: int | None = None  # 1-based, in ``file`` (set by ``located``)
    column: int | None = None

    @property
    def key(self) -> str | None:
        if self.image is None:
            return None
        return f"images.{self.image}" + (f".words.{self.word}" if self.word is not None else "")

    def located(self, where: str | KeyIndex) -> DataProblem:
        """Copy with the line/column of its image or word in the JSON of ``file``: its text, or
        a ``KeyIndex`` of it when many problems are located (one pass over the text in all)."""
        if self.image is None:
            return self
        keys = ["images", self.image] + (["words", self.word] if self.word is not None else [])
        line, column = locate_key(where, keys) if isinstance(where, str) else where.locate(keys)
        return replace(self, line=line, column=column)

    def to_problem(self) -> Problem:
        return Problem(f"{self.kind}: {self.message}", self.file, self.line, self.column, self.key)

    def __str__(self) -> str:
        return str(self.to_problem())


def _largest_polygon(geom: BaseGeometry) -> Polygon | None:
    best: Polygon | None = None
    for part in shapely.get_parts(geom):
        if part.geom_type in ("MultiPolygon", "GeometryCollection"):
            part = _largest_polygon(part)
        if part is None or part.geom_type != "Polygon" or part.is_empty:
            continue
        if best is None or part.area > best.area:
            best = part
    return best if best is not None and best.area > _AREA_EPS else None


def _ring(poly: Polygon) -> np.ndarray:
    """Exterior ring, clockwise on screen (y down), starting at the top-left-most point."""
    ring = np.asarray(orient(poly, sign=1.0).exterior.coords, dtype=np.float64)[:-1]
    start = int(np.argmin(ring[:, 0] + ring[:, 1]))
    return np.roll(ring, -start, axis=0)


def _check_word(
    word: Word, width: float | None, height: float | None
) -> tuple[Word | None, list[tuple[str, str]]]:
    """Return the usable word (or None) and ``(kind, message)`` pairs describing changes."""
    pts = word.points
    if len(pts) < 3:
        return None, [("degenerate", f"polygon has {len(pts)} point(s); at least 3 are needed")]
    if not np.isfinite(pts).all():
        return None, [("degenerate", "polygon has non-finite coordinates")]
    notes: list[tuple[str, str]] = []
    shape = Polygon(pts)
    if not shape.is_valid:
        fixed = _largest_polygon(shapely.make_valid(shape))
        if fixed is None:
            return None, [("degenerate", "polygon has zero area")]
        shape, pts = fixed, _ring(fixed)
        notes.append(("repaired", f"self-intersecting polygon repaired to {len(pts)} points"))
    elif shape.area <= _AREA_EPS:
        return None, [("degenerate", "polygon has zero area")]
    if width is not None and height is not None:
        frame = f"the {width}x{height} image"
        outside = (
            (pts[:, 0] < -_EDGE_EPS)
            | (pts[:, 0] > width + _EDGE_EPS)
            | (pts[:, 1] < -_EDGE_EPS)
            | (pts[:, 1] > height + _EDGE_EPS)
        )
        if outside.any():
            inside = _largest_polygon(shape.intersection(shapely.box(0, 0, width, height)))
            if inside is None:
                return None, [*notes, ("degenerate", f"polygon lies outside {frame}")]
            pts = _ring(inside)
            notes.append(
                ("clipped", f"{int(outside.sum())} point(s) outside {frame}; clipped")
            )
    return (word.replace_points(pts) if notes else word), notes


def sanitize(
    annotation: ImageAnnotation,
    width: int | None = None,
    height: int | None = None,
    *,
    file: str | None = None,
) -> tuple[ImageAnnotation, list[DataProblem]]:
    """Drop degenerate words, repair self-intersections, clip to the image; report each change.

    ``width``/``height`` default to the annotation's ``img_w``/``img_h``; with neither known,
    nothing is clipped.
    """
    width = annotation.width if width is None else width
    height = annotation.height if height is None else height
    kept: list[Word] = []
    problems: list[DataProblem] = []
    for word in annotation.words:
        clean, notes = _check_word(word, width, height)
        if clean is not None:
            kept.append(clean)
        for kind, message in notes:
            problems.append(
                DataProblem(kind, message, file, annotation.name, word.id, dropped=clean is None)
            )
    return annotation.with_words(kept), problems
