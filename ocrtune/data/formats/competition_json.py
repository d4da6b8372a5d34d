"""Competition JSON: ``{"images": {name: {"words": {id: {"points": [[x, y], ...]}}}}}``.

Unknown keys (``orientation``, ``language``, ``img_w``...) are tolerated and written back.
Structural errors are collected and raised together as one ``InputError`` whose problems
name the file, a best-effort line/column and the key path (``images.a.jpg.words.0003.points``).
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ocrtune.data.formats.records import (
    DONT_CARE,
    MAX_PROBLEMS,
    Annotations,
    ImageAnnotation,
    Word,
    _Layout,
    read_text,
)
from ocrtune.errors import InputError, Problem

_TEXT_KEYS = ("text", "transcription")


def _is_number(v: Any) -> bool:
    """A finite JSON number (huge integers that overflow a float are not)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


# A JSON string token; keys are the ones followed by a colon (the same blanks JSON allows).
_STRING = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"[ \t\r\n]*(:)?', re.DOTALL)


class KeyIndex:
    """Offsets of every object key in a JSON text, found in one pass over it.

    ``locate_key`` searches the text for each problem, so a file with 20,000 bad words was
    read 20,000 times; built once, the index answers each lookup by binary search, with the
    same line and column.
    """

    def __init__(self, text: str) -> None:
        self._keys: dict[str, list[int]] = {}
        for m in _STRING.finditer(text):
            if m.group(2) is None:
                continue
            key = m.group(1)
            if "\\" in key:
                try:
                    key = json.loads(f'"{key}"')
                except json.JSONDecodeError:
                    pass
            self._keys.setdefault(key, []).append(m.start())  # in file order, so sorted
        self._newlines = [m.start() for m in re.finditer("\n", text)]

    def find(self, key: str, start: int = 0) -> int:
        """Offset of the first ``"key":`` at or after ``start``, or -1."""
        offsets = self._keys.get(key, ())
        i = bisect_left(offsets, start)
        return offsets[i] if i < len(offsets) else -1

    def locate(self, keys: Sequence[str]) -> tuple[int | None, int | None]:
        """1-based line/column of a key path, as ``locate_key`` gives it."""
        pos, found = 0, None
        for key in keys:
            hit = self.find(key, pos)
            if hit < 0:
                break
            pos = found = hit
        if found is None:
            return None, None
        before = bisect_left(self._newlines, found)  # newlines ahead of the key
        line_start = self._newlines[before - 1] + 1 if before else 0
        return before + 1, found - line_start + 1


def _find_key(text: str, key: str, start: int) -> int:
    """Offset of ``"key"`` used as an object key (followed by ``:``) at or after ``start``."""
    for quoted in dict.fromkeys((json.dumps(key, ensure_ascii=False), json.dumps(key))):
        pos = start
        while (hit := text.find(quoted, pos)) >= 0:
            after = hit + len(quoted)
            while after < len(text) and text[after] in " \t\r\n":
                after += 1
            if after < len(text) and text[after] == ":":
                return hit
            pos = hit + 1
    return -1


def locate_key(text: str, keys: Sequence[str]) -> tuple[int | None, int | None]:
    """Best-effort 1-based line/column of a key path in JSON text, for located errors.

    Each key is looked for after the previous one; when a key is not found (a missing key),
    the deepest key that was found is given, so the line still points at the right object.
    Each call reads the text up to the key: to locate many problems, use one ``KeyIndex``.
    """
    pos, found = 0, None
    for key in keys:
        hit = _find_key(text, key, pos)
        if hit < 0:
            break
        pos = found = hit
    if found is None:
        return None, None
    line = text.count("\n", 0, found) + 1
    return line, found - (text.rfind("\n", 0, found) + 1) + 1


class _Object(dict):
    """A JSON object that remembers keys it saw more than once (``json`` keeps the last)."""

    duplicates: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = _Object(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        obj.duplicates = tuple(dict.fromkeys(k for k, _ in pairs if k in seen or seen.add(k)))
    return obj


class ProblemCollector:
    """Gathers structural problems so one run reports them all: the first ``MAX_PROBLEMS``
    located (a search of the text each), the rest only counted (``dropped``)."""

    def __init__(self, file: str, text: str) -> None:
        self.file, self.text, self.problems, self.dropped = file, text, [], 0

    def add(self, keys: Sequence[str], message: str) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.dropped += 1
            return
        line, col = locate_key(self.text, keys)
        self.problems.append(Problem(message, self.file, line, col, ".".join(keys)))

    def raise_if_any(self) -> None:
        if self.problems:
            raise InputError(problems=self.problems)


def _type_name(v: Any) -> str:
    for kind, name in ((bool, "boolean"), (dict, "object"), (list, "array"), (str, "string")):
        if isinstance(v, kind):
            return name
    return "null" if v is None else "number"


def _parse_points(raw: Any, keys: list[str], col: ProblemCollector) -> tuple[np.ndarray, bool] | None:
    if not isinstance(raw, list):
        col.add(keys, f"expected an array of [x, y] points, got {_type_name(raw)}")
        return None
    for i, p in enumerate(raw):
        if not (isinstance(p, list) and len(p) == 2 and all(_is_number(c) for c in p)):
            col.add(keys, f"point {i} must be [x, y] numbers, got {json.dumps(p)[:40]}")
            return None
    int_coords = all(isinstance(c, int) for p in raw for c in p)
    return np.asarray(raw, dtype=np.float64).reshape(-1, 2), int_coords


def _parse_word(wid: str, raw: Any, keys: list[str], col: ProblemCollector) -> Word | None:
    if not isinstance(raw, dict):
        col.add(keys, f"expected a word object, got {_type_name(raw)}")
        return None
    if "points" not in raw:
        col.add(keys, "missing key 'points'")
        return None
    parsed = _parse_points(raw["points"], [*keys, "points"], col)
    if parsed is None:
        return None
    points, int_coords = parsed
    text_key = next((k for k in _TEXT_KEYS if k in raw), "text")
    text = raw.get(text_key)
    if text is not None and not isinstance(text, str):
        col.add([*keys, text_key], f"expected a string, got {_type_name(text)}")
        return None
    dropped = ("points", text_key) if text is not None else ("points",)
    extra = {k: v for k, v in raw.items() if k not in dropped}
    ignore = extra.get("ignore") is True or text == DONT_CARE
    layout = _Layout(tuple(raw), int_coords, text_key)
    return Word(wid, points, text, ignore, extra, layout)


def _parse_image(name: str, raw: Any, col: ProblemCollector) -> ImageAnnotation | None:
    keys = ["images", name]
    if not isinstance(raw, dict):
        col.add(keys, f"expected an image object, got {_type_name(raw)}")
        return None
    if "words" not in raw:
        col.add(keys, "missing key 'words'")
        return None
    words_raw = raw["words"]
    if not isinstance(words_raw, dict):
        col.add([*keys, "words"], f"'words' must be an object, got {_type_name(words_raw)}")
        return None
    for wid in getattr(words_raw, "duplicates", ()):
        col.add([*keys, "words", wid], "duplicate word id (a JSON reader keeps only the last)")
    words = [
        w
        for wid, wr in words_raw.items()
        if (w := _parse_word(wid, wr, [*keys, "words", wid], col)) is not None
    ]
    size: dict[str, int | None] = {}
    for key in ("img_w", "img_h"):
        v = raw.get(key)
        if v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            col.add([*keys, key], f"expected a positive integer, got {json.dumps(v)}")
            v = None
        size[key] = v
    extra = {k: v for k, v in raw.items() if k not in ("words", "img_w", "img_h")}
    return ImageAnnotation(
        name, words, size["img_w"], size["img_h"], extra, _Layout(tuple(raw))
    )


def loads_json(text: str, source: str | Path = "<string>") -> Annotations:
    """Parse competition JSON text; all structural problems are raised together."""
    file = str(source)
    try:
        data = json.loads(text, object_pairs_hook=_object_pairs)
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", file=file, line=exc.lineno, column=exc.colno)
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict):
        if not isinstance(data, dict):
            what = "top level must be an object"
        else:
            what = "'images' must be an object" if "images" in data else "missing key 'images'"
        raise InputError(what, file=file, line=1, key="images" if isinstance(data, dict) else None)
    col = ProblemCollector(file, text)
    for name in getattr(data["images"], "duplicates", ()):
        col.add(["images", name], "duplicate image name (a JSON reader keeps only the last)")
    parsed = (_parse_image(name, raw, col) for name, raw in data["images"].items())
    images = [im for im in parsed if im is not None]
    col.raise_if_any()
    extra = {k: v for k, v in data.items() if k != "images"}
    return Annotations(images, extra=extra, source=file)


def read_json(path: str | Path) -> Annotations:
    """Read a competition-format JSON file (``{"images": {name: {"words": ...}}}``)."""
    path = Path(path)
    return loads_json(read_text(path, "annotation file"), path)


def _points_out(word: Word, decimals: int | None) -> list[list[Any]]:
    as_int = word.layout is not None and word.layout.int_coords
    pts = word.points if decimals is None else np.round(word.points, decimals)
    if as_int and np.all(np.mod(pts, 1.0) == 0):
        return [[int(x), int(y)] for x, y in pts.tolist()]
    return [[float(x), float(y)] for x, y in pts.tolist()]


def _ordered(
    known: dict[str, Any], extra: dict[str, Any], layout: _Layout | None
) -> dict[str, Any]:
    """Merge fields back in on-disk key order, appending keys the file did not have."""
    merged = {**extra, **known}
    order = [k for k in (layout.keys if layout else ()) if k in merged]
    order += [k for k in merged if k not in order]
    return {k: merged[k] for k in order}


def _word_out(word: Word, decimals: int | None) -> dict[str, Any]:
    text_key = word.layout.text_key if word.layout else "text"
    known: dict[str, Any] = {"points": _points_out(word, decimals)}
    if word.text is not None:
        known[text_key] = word.text
    extra = dict(word.extra)
    if word.ignore and word.text != DONT_CARE and "ignore" not in extra:
        extra["ignore"] = True
    if word.layout is None or not word.layout.keys:  # new: points, text, then the rest
        return {**known, **extra}
    return _ordered(known, extra, word.layout)


def to_json_obj(annotations: Annotations, decimals: int | None = None) -> dict[str, Any]:
    images: dict[str, Any] = {}
    for name, im in annotations.items():
        known: dict[str, Any] = {"words": {w.id: _word_out(w, decimals) for w in im.words}}
        if im.width is not None:
            known["img_w"] = int(im.width)
        if im.height is not None:
            known["img_h"] = int(im.height)
        images[name] = _ordered(known, im.extra, im.layout) if im.layout else {**known, **im.extra}
    return {"images": images, **annotations.extra}


def dumps_json(
    annotations: Annotations, *, indent: int | None = None, decimals: int | None = None
) -> str:
    """Serialise to competition JSON; ``decimals`` rounds coordinates for compact files."""
    return json.dumps(to_json_obj(annotations, decimals), ensure_ascii=False, indent=indent)


def write_json(
    annotations: Annotations,
    path: str | Path,
    *,
    indent: int | None = None,
    decimals: int | None = None,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dumps_json(annotations, indent=indent, decimals=decimals), encoding="utf-8")
    return path
