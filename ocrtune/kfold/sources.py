"""The merged train + val images a k-fold splits, and each fold's dataset folder (no torch).

A fold's dataset is the competition layout (``images/{train,val}/``, ``jsons/{train,val}.json``)
with the held-out fold as ``val``. Its images are symbolic links to the source files (hard
links, then copies, only where links cannot be made), so a fold costs no disk; each image's
annotation is copied as written, so the metric sees the ground truth exactly as the source
has it. The train and val source splits may live in different folders: every link points at
the file its own split's folder holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ocrtune.data.formats import read_json
from ocrtune.data.layout import resolve_split
from ocrtune.errors import InputError
from ocrtune.filehash import sha256_file
from ocrtune.kfold.folds import ImageEntry
from ocrtune.kfold.layout import DATA
from ocrtune.train.rundir import write_json_atomic

TRAIN, VAL = "train", "val"  # split names inside a fold's dataset


@dataclass(frozen=True)
class Source:
    """One labelled image: its entry, file, and annotation exactly as its split's JSON holds it."""

    entry: ImageEntry
    path: Path
    annotation: Any


@dataclass(frozen=True)
class Sources:
    root: Path
    splits: tuple[str, ...]
    images: tuple[Source, ...]
    problems: tuple[str, ...] = ()

    @property
    def entries(self) -> tuple[ImageEntry, ...]:
        return tuple(s.entry for s in self.images)


def read_sources(root: Path, splits: Sequence[str]) -> Sources:
    """Every annotated image of ``splits`` (train and val) under ``root``, with its words and
    content hashes. A split or its annotations missing is an InputError; an annotated image
    whose file is missing is left out with a problem line (as training does); a name in two
    splits is refused, since a fold's dataset needs one file per name."""
    root = Path(root).resolve()
    out: dict[str, Source] = {}
    problems: list[str] = []
    for split in splits:
        image_dir, ann_path = resolve_split(root, split)
        if ann_path is None:
            raise InputError(f"split {split!r} has no annotations (jsons/{split}.json); k-fold needs labelled "
                             "train and val splits", file=str(root))
        read_json(ann_path)  # the format check, with located errors
        raw = json.loads(ann_path.read_text(encoding="utf-8-sig"))["images"]
        for name, ann in raw.items():
            if name in out:
                raise InputError(f"image {name!r} is in both the {out[name].entry.split} and the {split} split; "
                                 "rename one (a fold holds one file per name)", file=str(ann_path), key=name)
            path = image_dir / name
            if not path.is_file():
                problems.append(f"{ann_path}: {name}: image file missing; left out")
                continue
            words = (ann or {}).get("words") or {}
            label = hashlib.sha256(json.dumps(ann, sort_keys=True).encode()).hexdigest()
            out[name] = Source(ImageEntry(name, split, len(words), sha256_file(path), label), path.resolve(), ann)
    if not out:
        raise InputError("no labelled image with a file in the train and val splits", file=str(root))
    return Sources(root, tuple(splits), tuple(out[n] for n in sorted(out)), tuple(problems))


def write_fold_data(fold_dir: Path, sources: Sources, assignment: Mapping[str, int], fold: int) -> Path:
    """``fold_dir/data``: the fold's held-out images as ``val``, the others as ``train``.

    The JSONs are written last (atomically), so a folder that has both is complete and is
    kept as it is on resume; one cut short is rebuilt (it holds only links and our JSONs).
    """
    data = fold_dir / DATA
    if (data / "jsons" / f"{TRAIN}.json").is_file() and (data / "jsons" / f"{VAL}.json").is_file():
        return data
    if data.exists():
        shutil.rmtree(data)
    anns: dict[str, dict[str, Any]] = {TRAIN: {}, VAL: {}}
    for src in sources.images:
        split = VAL if assignment[src.entry.name] == fold else TRAIN
        dest = data / "images" / split / src.entry.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        link_image(src.path, dest)
        anns[split][src.entry.name] = src.annotation
    for split in (TRAIN, VAL):
        write_json_atomic(data / "jsons" / f"{split}.json", {"images": anns[split]})
    return data


def link_image(src: Path, dest: Path) -> None:
    """A symbolic link to ``src``; a hard link, then a copy, where the file system has none."""
    try:
        os.symlink(src, dest)
        return
    except OSError:
        pass
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)
