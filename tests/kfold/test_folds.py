"""The fold builder: copies stay together, folds are balanced and stratified by words per image,
the same seed gives the same folds, and impossible fold counts are one located error."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from ocrtune.errors import InputError
from ocrtune.kfold.folds import ImageEntry, build_folds, fold_counts


def _images(words: list[int], copies: dict[int, int] | None = None) -> list[ImageEntry]:
    """One image per word count; ``copies[i] = j`` makes image i a byte-identical copy of image j."""
    copies = copies or {}
    return [ImageEntry(f"img{i:03d}.jpg", "train" if i % 5 else "val", w, f"hash{copies.get(i, i)}")
            for i, w in enumerate(words)]


def test_byte_identical_images_share_a_fold():
    rng = random.Random(1)
    words = [rng.randint(1, 120) for _ in range(40)]
    # a group of four copies, two pairs, and a pair across the source splits (img005 is val)
    copies = {1: 0, 2: 0, 3: 0, 11: 10, 21: 20, 6: 5}
    images = _images(words, copies)
    for seed in range(5):
        folds = build_folds(images, 4, seed)
        by_hash = defaultdict(set)
        for im in images:
            by_hash[im.sha256].add(folds[im.name])
        assert all(len(f) == 1 for f in by_hash.values()), by_hash
        assert folds["img000.jpg"] == folds["img003.jpg"] and folds["img005.jpg"] == folds["img006.jpg"]


def test_folds_balance_images_and_words():
    rng = random.Random(7)
    words = [rng.randint(1, 200) for _ in range(53)]
    images = _images(words)
    counts = fold_counts(images, build_folds(images, 5, seed=3), 5)
    n = [c.images for c in counts]
    w = [c.words for c in counts]
    assert sum(n) == 53 and max(n) - min(n) <= 1
    assert max(w) - min(w) <= max(words)  # within one image's words of each other
    assert max(w) - min(w) < 0.05 * sum(words) / 5


def test_folds_with_a_copy_group_stay_balanced():
    rng = random.Random(3)
    words = [rng.randint(1, 80) for _ in range(30)]
    images = _images(words, {1: 0, 2: 0, 3: 0, 4: 0})  # five copies of one receipt
    counts = fold_counts(images, build_folds(images, 3, seed=0), 3)
    n = [c.images for c in counts]
    assert sum(n) == 30 and max(n) - min(n) <= 1


def test_every_fold_holds_out_dense_and_sparse_receipts():
    # 20 receipts with 2 words and 20 with 150: each of 4 folds gets 5 of each
    images = _images([2] * 20 + [150] * 20)
    folds = build_folds(images, 4, seed=11)
    per_fold = Counter((folds[im.name], im.words) for im in images)
    assert all(per_fold[(k, w)] == 5 for k in range(1, 5) for w in (2, 150)), per_fold


def test_same_seed_same_folds_other_seed_other_folds():
    rng = random.Random(5)
    images = _images([rng.randint(1, 50) for _ in range(30)])
    a = build_folds(images, 3, seed=0)
    assert build_folds(list(reversed(images)), 3, seed=0) == a  # input order does not matter
    assert build_folds(images, 3, seed=1) != a
    assert sorted(set(a.values())) == [1, 2, 3] and set(a) == {im.name for im in images}


@pytest.mark.parametrize("folds, words, copies, message", [
    (1, [3, 4, 5], {}, "--folds: must be at least 2 (got 1)"),
    (0, [3, 4, 5], {}, "--folds: must be at least 2 (got 0)"),
    (4, [3, 4, 5], {}, "--folds: 4 folds but only 3 labelled images; every fold needs one held-out image"),
    (3, [3, 4, 5], {2: 1}, "--folds: 3 folds but only 3 labelled images (2 distinct: byte-identical copies "
                           "share a fold); every fold needs one held-out image"),
])
def test_impossible_fold_counts_are_one_located_error(folds, words, copies, message):
    with pytest.raises(InputError) as e:
        build_folds(_images(words, copies), folds)
    assert e.value.lines == [message]


def test_the_kfold_core_and_status_load_no_framework():
    import subprocess
    import sys

    mods = ["ocrtune.kfold.layout", "ocrtune.kfold.folds", "ocrtune.kfold.types", "ocrtune.kfold.scores",
            "ocrtune.kfold.sources", "ocrtune.kfold.status", "ocrtune.kfold.api"]
    code = ("import importlib, sys\n"
            f"for m in {mods!r}: importlib.import_module(m)\n"
            "print(sorted(h for h in ('torch', 'lightning', 'optuna', 'timm') if h in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
