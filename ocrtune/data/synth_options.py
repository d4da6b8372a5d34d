"""What a synthetic dataset looks like: box granularity, page style, effects, worker count.

Kept apart from the renderer so the CLI and the marker share one typed description, and so
every option is parsed here into one located line (``--workers: ...``) rather than a usage box.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ocrtune.errors import InputError
from ocrtune.procs import available_cores

__all__ = [
    "Granularity",
    "Style",
    "Effect",
    "SynthOptions",
    "available_cores",
    "parse_granularity",
    "parse_style",
    "parse_effects",
    "parse_workers",
]


class Granularity(str, Enum):
    """``word``: one box per word (the competition's convention). ``line``: one box per run of
    words that a reader sees as one phrase, split at wide gaps (SROIE's line segments)."""

    WORD = "word"
    LINE = "line"


class Style(str, Enum):
    """``plain``: the original generator (byte-identical to earlier versions). ``real``:
    receipt layouts with item/qty/price columns, graphic rules, logos and barcodes, shot
    either as a flat scan or as a photo."""

    PLAIN = "plain"
    REAL = "real"


class Effect(str, Enum):
    """Degradations drawn on top of either style, each from its own random stream."""

    FADING = "fading"  # thermal print fading and print-head streaks
    SMUDGES = "smudges"  # dirt and smeared ink
    CREASES = "creases"  # fold lines
    MARKS = "marks"  # pen strokes that are not text: ticks, circles, scribbles
    STAMP = "stamp"  # an ink stamp (rings and a star, no letters)
    SHADOW = "shadow"  # a shadow cast across the page
    LIGHT = "light"  # uneven illumination


#: ``--effects all`` and the default of ``--style real``.
ALL_EFFECTS = tuple(Effect)


@dataclass(frozen=True)
class SynthOptions:
    """``tight_segments`` (``real`` style): also print what SROIE boxes apart at a single space
    (tax codes after amounts, values right after labels, compact number columns)."""

    granularity: Granularity = Granularity.WORD
    style: Style = Style.PLAIN
    effects: frozenset[Effect] = field(default_factory=frozenset)
    tight_segments: bool = False

    def __post_init__(self) -> None:
        if self.tight_segments and self.style is not Style.REAL:
            raise InputError("needs --style real (the plain receipts have no columns to set apart)",
                             key="--tight-segments")

    def to_dict(self) -> dict[str, object]:
        return {
            "granularity": self.granularity.value,
            "style": self.style.value,
            "effects": [e.value for e in ALL_EFFECTS if e in self.effects],
            **({"tight_segments": True} if self.tight_segments else {}),  # earlier sets' records unchanged
        }


def _choice(text: str, enum: type[Enum], key: str) -> Enum:
    try:
        return enum(text.strip().lower())
    except ValueError:
        names = "|".join(e.value for e in enum)  # type: ignore[attr-defined]
        raise InputError(f"must be one of {names}, got {text!r}", key=key) from None


def parse_granularity(text: str) -> Granularity:
    return _choice(text, Granularity, "--granularity")  # type: ignore[return-value]


def parse_style(text: str) -> Style:
    return _choice(text, Style, "--style")  # type: ignore[return-value]


def parse_effects(text: str | None, style: Style) -> frozenset[Effect]:
    """Comma-separated effect names, ``all`` or ``none``; unset: all for ``real``, none for
    ``plain`` (so the default output never changes)."""
    if text is None:
        return frozenset(ALL_EFFECTS) if style is Style.REAL else frozenset()
    words = [w.strip().lower() for w in text.split(",") if w.strip()]
    if words == ["all"]:
        return frozenset(ALL_EFFECTS)
    if words == ["none"] or not words:
        return frozenset()
    names = ",".join(e.value for e in ALL_EFFECTS)
    chosen = set()
    for w in words:
        try:
            chosen.add(Effect(w))
        except ValueError:
            raise InputError(
                f"unknown effect {w!r} (choose from {names}, or all, or none)", key="--effects"
            ) from None
    return frozenset(chosen)


def parse_workers(text: str | int | None) -> int:
    """``N`` processes (1 = render in this process) or ``all`` / unset = every usable core."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "all"):
        return available_cores()
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InputError(f"must be a whole number of processes or 'all', got {text!r}", key="--workers") from None
    if value < 1:
        raise InputError(f"must be at least 1, got {value}", key="--workers")
    return value
