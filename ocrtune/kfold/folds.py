"""Which fold each image is held out in (pure: no torch, no files).

Images are stratified by words per image, so that every fold holds out dense and sparse
receipts alike, and byte-identical copies (same sha256) are one group that always lands in
one fold: a copy in training and its twin held out would score memory, not detection.

The rule, deterministic for a seed: groups are taken largest first (copies), then by words
per image from most to fewest (ties in a seeded random order); each goes to the fold with the
fewest images so far, ties to the one with the fewest words, then to a seeded fold order.
Taken in that order, every run of ``folds`` similar images is dealt one per fold (the
stratification), image counts differ by at most the largest copy group, and word totals by
about one image's words.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Mapping, Sequence

from ocrtune.errors import InputError


@dataclass(frozen=True)
class ImageEntry:
    """One labelled image of the merged train and val splits."""

    name: str
    split: str  # the split it came from
    words: int
    sha256: str  # of the image file's bytes
    label_sha256: str = ""  # of its annotation (detects relabelled images on resume)


@dataclass(frozen=True)
class FoldCount:
    fold: int
    images: int
    words: int


def duplicate_groups(images: Sequence[ImageEntry]) -> list[list[ImageEntry]]:
    """Images grouped by content hash, each group sorted by name, groups by first name."""
    by_hash: dict[str, list[ImageEntry]] = defaultdict(list)
    for im in images:
        by_hash[im.sha256].append(im)
    groups = [sorted(g, key=lambda im: im.name) for g in by_hash.values()]
    return sorted(groups, key=lambda g: g[0].name)


def check_folds(folds: int, images: Sequence[ImageEntry]) -> None:
    """``folds`` must be at least 2 and at most the number of distinct images."""
    if folds < 2:
        raise InputError(f"must be at least 2 (got {folds})", key="--folds")
    n = len(images)
    distinct = len({im.sha256 for im in images})
    if folds > distinct:
        copies = f" ({distinct} distinct: byte-identical copies share a fold)" if distinct != n else ""
        raise InputError(f"{folds} folds but only {n} labelled images{copies}; every fold needs one held-out image",
                         key="--folds")


def build_folds(images: Sequence[ImageEntry], folds: int, seed: int = 0) -> dict[str, int]:
    """``{image name: fold}`` with folds numbered 1..``folds`` (see the module's rule)."""
    names = [im.name for im in images]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InputError(f"image {dup!r} is listed twice", key=dup)
    check_folds(folds, images)
    rng = random.Random(seed)
    groups = duplicate_groups(images)
    rng.shuffle(groups)
    groups.sort(key=lambda g: (-len(g), -sum(im.words for im in g) / len(g)))  # stable: ties stay shuffled
    order = list(range(folds))
    rng.shuffle(order)
    tie = {k: i for i, k in enumerate(order)}
    n_images = [0] * folds
    n_words = [0] * folds
    out: dict[str, int] = {}
    for g in groups:
        k = min(range(folds), key=lambda f: (n_images[f], n_words[f], tie[f]))
        n_images[k] += len(g)
        n_words[k] += sum(im.words for im in g)
        for im in g:
            out[im.name] = k + 1
    return {n: out[n] for n in sorted(out)}


def fold_counts(images: Sequence[ImageEntry], assignment: Mapping[str, int], folds: int) -> list[FoldCount]:
    """Images and words held out in each fold, in fold order."""
    n_images = [0] * folds
    n_words = [0] * folds
    for im in images:
        k = assignment[im.name] - 1
        n_images[k] += 1
        n_words[k] += im.words
    return [FoldCount(k + 1, n_images[k], n_words[k]) for k in range(folds)]
