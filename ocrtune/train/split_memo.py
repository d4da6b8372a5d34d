"""Annotations read once per warm sweep worker: ``load_split``'s result kept in memory and
reused while the files it read are unchanged.

A warm sweep worker (``ocrtune.sweep.run.zygote``) reads the sweep's dataset once, then forks
one process per trial; each trial's ``fit`` finds the split here instead of parsing the JSON
and every image header again. The memo is off unless ``enable()`` is called, so ``ocrtune
train`` and every other command read their data as before. An entry is reused only while the
annotation files, the image folder and every image it lists keep their size and mtime (ns):
an edited annotation, an added or removed image or a replaced one is read again.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from ocrtune.data.layout import ANNOTATION_DIRS, resolve_split
from ocrtune.errors import InputError

Stamp = tuple[tuple[str, int, int] | tuple[str, None, None], ...]
F = TypeVar("F", bound=Callable[..., Any])

_enabled = False
_entries: dict[tuple[str, str, bool], _Entry] = {}


@dataclass(frozen=True)
class _Entry:
    paths: tuple[str, ...]
    stamp: Stamp
    items: list[Any]
    problems: list[str]


def enable(on: bool = True) -> None:
    """Keep splits from now on (a warm worker before it forks trials); ``False`` forgets them."""
    global _enabled
    _enabled = on
    if not on:
        _entries.clear()


def stamp(paths: Sequence[str]) -> Stamp:
    """Size and mtime (ns) of each path; a missing one is ``(path, None, None)``."""
    out: list[Any] = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out.append((p, None, None))
            continue
        out.append((p, st.st_size, st.st_mtime_ns))
    return tuple(out)


def remembered(load: F) -> F:
    """Wrap ``load_split(root, split, require_labels=True)``: the same result, read once per
    set of unchanged files while the memo is enabled."""

    @functools.wraps(load)
    def wrapper(root: Path, split: str, require_labels: bool = True) -> Any:
        if not _enabled:
            return load(root, split, require_labels)
        try:
            image_dir, _ = resolve_split(Path(root), split)
        except InputError:
            return load(root, split, require_labels)  # the loader says what is wrong
        key = (str(Path(root).resolve()), split, require_labels)
        hit = _entries.get(key)
        if hit is not None and stamp(hit.paths) == hit.stamp:
            return list(hit.items), list(hit.problems)
        # every place an annotation may be (one appearing earlier in the lookup order wins)
        candidates = [str(Path(root) / d / f"{split}.json") for d in ANNOTATION_DIRS]
        before = stamp([str(image_dir), *candidates])
        items, problems = load(root, split, require_labels)
        item_paths = [str(i.path) for i in items]
        # the folder and annotation as they were before reading: a change while reading is read again
        _entries[key] = _Entry((*(p for p, _, _ in before), *item_paths), (*before, *stamp(item_paths)),
                               list(items), list(problems))
        return items, problems

    return wrapper  # type: ignore[return-value]
