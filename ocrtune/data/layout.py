"""Where a dataset's images and annotations live, and where cached default data goes.

Two layouts exist in the wild: the competition's ``DIR/images/<split>/`` +
``DIR/jsons/<split>.json`` and the SROIE copy's ``DIR/annotations/<split>.json``. Every
command resolves splits through ``resolve_split`` so both work everywhere, and a missing
split fails with one message that lists what was looked for.
"""

from __future__ import annotations

import os
from pathlib import Path

from ocrtune.data.images import IMAGE_EXTENSIONS
from ocrtune.errors import InputError

__all__ = [
    "SPLITS",
    "ANNOTATION_DIRS",
    "resolve_split",
    "available_splits",
    "list_images",
    "cache_root",
]

SPLITS = ("train", "val", "test")
#: Folder names that may hold ``<split>.json``, in lookup order.
ANNOTATION_DIRS = ("jsons", "annotations")


def _annotation_candidates(root: Path, split: str) -> list[Path]:
    return [root / d / f"{split}.json" for d in ANNOTATION_DIRS]


def resolve_split(root: str | Path, split: str) -> tuple[Path, Path | None]:
    """``(image_dir, annotation_json or None)`` for ``split`` under ``root``.

    The annotation may be absent (an unlabelled test split); the image folder may not.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError("dataset directory not found", file=root)
    image_dir = root / "images" / split
    annotation = next((p for p in _annotation_candidates(root, split) if p.is_file()), None)
    if not image_dir.is_dir():
        looked = [str(image_dir), *(str(p) for p in _annotation_candidates(root, split))]
        found = available_splits(root)
        hint = f"; splits found: {', '.join(found)}" if found else "; no split found"
        raise InputError(
            f"split {split!r} not found (looked for {', '.join(looked)}){hint}", file=root
        )
    return image_dir, annotation


def available_splits(root: str | Path) -> list[str]:
    """Splits that have an image folder, standard ones first, then any others by name."""
    images = Path(root) / "images"
    if not images.is_dir():
        return []
    names = {p.name for p in images.iterdir() if p.is_dir()}
    return [s for s in SPLITS if s in names] + sorted(names.difference(SPLITS))


def list_images(image_dir: str | Path) -> list[Path]:
    """Image files directly inside ``image_dir``, sorted by name (hidden files skipped)."""
    return sorted(
        p
        for p in Path(image_dir).iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def cache_root() -> Path:
    """``$OCRTUNE_CACHE``, else ``$XDG_CACHE_HOME/ocrtune``, else ``~/.cache/ocrtune``."""
    return cache_root_and_source()[0]


def cache_root_and_source() -> tuple[Path, str]:
    """``cache_root`` and the setting that chose it (``$OCRTUNE_CACHE``, ``$XDG_CACHE_HOME`` or
    ``default``), for ``ocrtune data cache`` to say why the cache is where it is."""
    env = os.environ.get("OCRTUNE_CACHE")
    if env:
        return Path(env).expanduser(), "$OCRTUNE_CACHE"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "ocrtune", "$XDG_CACHE_HOME"
    return Path.home() / ".cache" / "ocrtune", "default"
