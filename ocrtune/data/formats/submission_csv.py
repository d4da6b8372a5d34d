"""Submission CSV: ``filename,polygons``; ``x1 y1 x2 y2 ...`` per polygon, joined by ``|``.

Images without detections keep a row with an empty polygons field, because the scorer
counts a missing row differently from "nothing found".
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ocrtune.data.formats.records import (
    MAX_PROBLEMS,
    Annotations,
    ImageAnnotation,
    Word,
    _Layout,
    format_number,
    read_text,
)
from ocrtune.errors import InputError, Problem

CSV_HEADER = ("filename", "polygons")


def read_submission_csv(path: str | Path) -> Annotations:
    """Read ``filename,polygons`` (``x1 y1 x2 y2 ...`` per polygon, polygons joined by ``|``)."""
    path = Path(path)
    text = read_text(path, "CSV")
    # Polygon-mode submissions have rows far over csv's default 128 KiB field limit.
    csv.field_size_limit(max(csv.field_size_limit(), len(text) + 1))
    # strict: an unterminated quote or text after a closing quote is an error, not a guess
    return _parse(csv.reader(io.StringIO(text, newline=""), strict=True), path)


def _rows(reader: Any, path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line the row starts on, fields)``; a malformed row is an error located there."""
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            what = "unterminated quoted field" if "end of data" in str(exc) else str(exc)
            raise InputError(f"malformed CSV: {what}", file=path, line=start) from None
        yield start, row


def _parse(reader: Any, path: Path) -> Annotations:
    rows = _rows(reader, path)
    header = next(rows, (1, None))[1]
    if header is None or tuple(h.strip() for h in header) != CSV_HEADER:
        raise InputError(
            f"header must be 'filename,polygons', got {','.join(header or []) or 'nothing'!r}",
            file=path,
            line=1,
        )
    images: dict[str, ImageAnnotation] = {}
    problems: list[Problem] = []
    for line, row in rows:
        if not row:
            continue
        if len(row) != 2:
            problems.append(Problem(f"expected 2 fields, got {len(row)}", str(path), line))
            continue
        name, field_text = row[0].strip(), row[1]
        if name in images:
            problems.append(Problem(f"duplicate filename {name!r}", str(path), line))
            continue
        words = []
        for k, poly in enumerate(p for p in field_text.split("|") if p.strip()):
            try:
                values = [float(v) for v in poly.split()]
            except ValueError:
                values = [math.nan]
            if not all(math.isfinite(v) for v in values):
                msg = f"polygon {k}: coordinates must be finite numbers"
                problems.append(Problem(msg, str(path), line))
                continue
            if len(values) % 2:
                msg = f"polygon {k}: odd number of coordinates ({len(values)})"
                problems.append(Problem(msg, str(path), line))
                continue
            int_coords = all(re.fullmatch(r"[-+]?\d+", v) for v in poly.split())
            words.append(Word(f"{len(words) + 1:04d}", np.asarray(values).reshape(-1, 2),
                              layout=_Layout((), bool(int_coords))))
        images[name] = ImageAnnotation(name, words)
    if problems:
        raise InputError(problems=problems[:MAX_PROBLEMS])
    return Annotations(images, source=path)


def _polygon_text(points: np.ndarray, decimals: int | None) -> str:
    return " ".join(format_number(v, decimals) for v in np.asarray(points, dtype=float).ravel())


def dumps_submission_csv(
    predictions: Annotations | Mapping[str, Sequence[np.ndarray]], decimals: int | None = None
) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for name, value in predictions.items():
        polys = [w.points for w in value.words] if isinstance(value, ImageAnnotation) else value
        writer.writerow([name, "|".join(_polygon_text(p, decimals) for p in polys)])
    return out.getvalue()


def write_submission_csv(
    predictions: Annotations | Mapping[str, Sequence[np.ndarray]],
    path: str | Path,
    decimals: int | None = None,
) -> Path:
    """Write a submission; images with no detections still get a row with empty polygons."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_submission_csv(predictions, decimals), encoding="utf-8", newline="")
    return path
