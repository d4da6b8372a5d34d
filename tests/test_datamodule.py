"""Loading a split for training and validation: the metric scores the raw ground truth, and
words are clipped to the image as displayed (EXIF), not to its declared size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ocrtune.metrics.cleval import evaluate_cleval
from ocrtune.presets.schema import DatasetsConfig
from ocrtune.train.datamodule import DetectionDataset, load_split


def _dataset(root: Path, size: tuple[int, int], words: dict, exif_orientation: int | None = None, decl=None) -> None:
    (root / "images" / "val").mkdir(parents=True)
    (root / "jsons").mkdir()
    img = Image.new("RGB", size, "white")
    exif = None
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
    img.save(root / "images" / "val" / "a.jpg", exif=exif) if exif else img.save(root / "images" / "val" / "a.jpg")
    entry = {"words": {k: {"points": v} for k, v in words.items()}}
    if decl:
        entry["img_w"], entry["img_h"] = decl
    (root / "jsons" / "val.json").write_text(json.dumps({"images": {"a.jpg": entry}}))


def test_validation_scores_the_raw_ground_truth(tmp_path):
    good = [[10, 10], [110, 10], [110, 30], [10, 30]]
    flat = [[10, 50], [110, 50], [110, 50], [10, 50]]  # zero area: 100 unmatched characters
    outside = [[150, 180], [320, 180], [320, 200], [150, 200]]  # reaches past a 300 px wide image
    _dataset(tmp_path, (300, 200), {"1": good, "2": flat, "3": outside})
    items, problems = load_split(tmp_path, "val")
    assert any("degenerate" in p for p in problems) and any("clipped" in p for p in problems)
    sample = DetectionDataset(items, DatasetsConfig(image_size=256), with_targets=True)[0]
    assert [g.tolist() for g in sample["gt"]] == [good, flat, outside]  # what the metric sees
    assert len(items[0].annotation.words) == 2  # what the targets see: flat dropped, outside clipped
    perfect = {"a.jpg": [good, outside]}
    raw = evaluate_cleval({"a.jpg": sample["gt"]}, perfect)
    assert raw["image_mean"]["recall"] < 0.2  # the degenerate word's 100 characters count, as in the competition


def test_words_are_clipped_to_the_displayed_image_not_declared_size(tmp_path):
    # stored 400x200 with EXIF "rotate 90": displayed 200x400, words in displayed pixels
    word = [[20, 300], [180, 300], [180, 330], [20, 330]]
    _dataset(tmp_path, (400, 200), {"1": word}, exif_orientation=6, decl=(400, 200))
    items, problems = load_split(tmp_path, "val")
    assert problems == []
    assert np.array_equal(items[0].annotation.words[0].points, np.asarray(word, float))
