"""Word boxes or line-segment boxes, from where the renderer put each word.

The competition annotates words; SROIE annotates line segments: the runs of words a reader
takes as one phrase, split where a wide gap opens (an item name and its price column are two
boxes, the words of the item name one). The rule works on pen positions, which the renderer
knows exactly: words one space apart belong together; a gap of at least ``WIDE_GAP`` spaces
(two spaces' worth of blank, what separates columns on printed receipts) starts a new segment.
SROIE also splits some runs a single space apart (a tax code after an amount, a value right
after its label); the renderer marks those words with a new ``segment`` number, and words of
different segments are never merged. Pure geometry, no image: the merged box is the union of
the words' ink boxes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocrtune.data.synth_options import Granularity

__all__ = ["PlacedWord", "WIDE_GAP", "segments", "boxes_for"]

#: A gap between pen positions of at least this many space widths separates two segments.
WIDE_GAP = 1.5


@dataclass(frozen=True)
class PlacedWord:
    """A word as drawn on the paper: ink box (x0, y0, x1, y1; pixel edges), the printed line
    it belongs to, where the pen started and ended (advance, not ink), the font's space and
    the segment it was printed in (words of different segments are never merged)."""

    text: str
    box: tuple[int, int, int, int]
    line: int
    pen_start: float
    pen_end: float
    space: float
    segment: int = 0


def segments(words: list[PlacedWord], wide_gap: float = WIDE_GAP) -> list[PlacedWord]:
    """Merge each printed line's words of one segment into runs separated by less than
    ``wide_gap`` spaces; order is kept (by line, then left to right)."""
    out: list[PlacedWord] = []
    by_line: dict[int, list[PlacedWord]] = {}
    for w in words:
        by_line.setdefault(w.line, []).append(w)
    for line in sorted(by_line):
        run: PlacedWord | None = None
        for w in sorted(by_line[line], key=lambda w: w.pen_start):
            if (run is not None and w.segment == run.segment
                    and w.pen_start - run.pen_end < wide_gap * max(run.space, w.space)):
                run = PlacedWord(
                    f"{run.text} {w.text}",
                    (min(run.box[0], w.box[0]), min(run.box[1], w.box[1]),
                     max(run.box[2], w.box[2]), max(run.box[3], w.box[3])),
                    line, run.pen_start, max(run.pen_end, w.pen_end), max(run.space, w.space), run.segment,
                )
            else:
                if run is not None:
                    out.append(run)
                run = w
        if run is not None:
            out.append(run)
    return out


def boxes_for(words: list[PlacedWord], granularity: Granularity) -> list[PlacedWord]:
    """The annotated regions: every word, or every line segment."""
    return list(words) if granularity is Granularity.WORD else segments(words)
