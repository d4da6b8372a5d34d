"""Annotation records shared by every format: ``Annotations`` -> ``ImageAnnotation`` -> ``Word``.

Records remember how they looked on disk (``_Layout``: key order, integer coordinates,
which transcript key) so writers can round-trip a file without reformatting it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ocrtune.errors import InputError

DONT_CARE = "###"
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class _Layout:
    """How a record looked on disk, so writing it back changes nothing the user did not."""

    keys: tuple[str, ...]
    int_coords: bool = False
    text_key: str = "text"


@dataclass(eq=False)
class Word:
    """One annotated text region; ``points`` is an (N, 2) float64 array in image pixels."""

    id: str
    points: np.ndarray
    text: str | None = None
    ignore: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    layout: _Layout | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float64).reshape(-1, 2)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Word):
            return NotImplemented
        return (
            self.id == other.id
            and self.text == other.text
            and self.ignore == other.ignore
            and self.extra == other.extra
            and np.array_equal(self.points, other.points)
        )

    def replace_points(self, points: np.ndarray) -> Word:
        """Copy with new geometry (ints are written back as ints only while still integral)."""
        return Word(self.id, points, self.text, self.ignore, dict(self.extra), self.layout)


@dataclass(eq=False)
class ImageAnnotation:
    """All words of one image; ``width``/``height`` come from ``img_w``/``img_h`` when present."""

    name: str
    words: list[Word] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    layout: _Layout | None = field(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImageAnnotation):
            return NotImplemented
        return (self.name, self.width, self.height, self.extra, self.words) == (
            other.name,
            other.width,
            other.height,
            other.extra,
            other.words,
        )

    def with_words(self, words: list[Word]) -> ImageAnnotation:
        return ImageAnnotation(
            self.name, words, self.width, self.height, dict(self.extra), self.layout
        )


class Annotations(Mapping[str, ImageAnnotation]):
    """Ordered mapping image name -> ``ImageAnnotation`` (file order is kept)."""

    def __init__(
        self,
        images: Mapping[str, ImageAnnotation] | Sequence[ImageAnnotation] = (),
        *,
        extra: Mapping[str, Any] | None = None,
        source: str | Path | None = None,
    ) -> None:
        if isinstance(images, Mapping):
            self.images: dict[str, ImageAnnotation] = dict(images)
        else:
            self.images = {im.name: im for im in images}
        self.extra: dict[str, Any] = dict(extra or {})
        self.source = str(source) if source is not None else None

    def __getitem__(self, name: str) -> ImageAnnotation:
        return self.images[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.images)

    def __len__(self) -> int:
        return len(self.images)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Annotations):
            return NotImplemented
        return list(self.images.items()) == list(other.images.items()) and self.extra == other.extra

    def __repr__(self) -> str:
        return f"Annotations({len(self)} images, source={self.source!r})"

    @property
    def n_words(self) -> int:
        return sum(len(im.words) for im in self.images.values())


def format_number(value: float, decimals: int | None = None) -> str:
    """Shortest text for a coordinate: ``12`` for integral values, else the float repr."""
    v = float(value)
    if decimals is not None:
        v = round(v, decimals)
    if v.is_integer() and abs(v) < 2**53:
        return str(int(v))
    return repr(v)


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file (a BOM tolerated) or one located ``InputError`` saying what failed."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{what} not found", file=path) from None
    except OSError as exc:
        raise InputError(f"cannot read {what}: {exc.strerror or exc}", file=path) from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} is not UTF-8 text: {exc.reason} at byte {exc.start}", file=path) from None
