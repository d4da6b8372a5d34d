"""Regressions found in review: raw GT for scoring, EXIF-sized clipping, exact per-axis resize,
and file readers that must never crash on odd input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ocrtune.data.formats import read_submission_csv, write_submission_csv
from ocrtune.data.transforms import resize_and_pad
from ocrtune.errors import InputError
from ocrtune.metrics.cleval import evaluate_cleval, load_words_json
from ocrtune.model.postprocess import DBPostProcessor
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


@pytest.mark.parametrize("w, h", [(1281, 97), (97, 1281), (1000, 3), (4001, 3001)])
def test_resize_uses_the_exact_ratio_on_each_axis(w, h):
    image = np.zeros((h, w, 3), np.uint8)
    box = np.array([[0.2 * w, 0.25 * h], [0.9 * w, 0.25 * h], [0.9 * w, h], [0.2 * w, h]])
    out, (moved,), inv = resize_and_pad(image, [box], 256)
    assert moved[:, 0].max() == pytest.approx(round(w * 256 / max(w, h)) * 0.9, rel=1e-9)
    assert moved[:, 1].max() == pytest.approx(round(h * 256 / max(w, h)), rel=1e-9)
    np.testing.assert_allclose(inv.points_to_original(moved), box, atol=1e-6)
    # a map drawn from the moved box comes back to original pixels with per-axis scale
    prob = np.zeros((256, 256), np.float32)
    x0, y0 = moved.min(0)
    x1, y1 = moved.max(0)
    prob[int(np.ceil(y0)): int(y1), int(np.ceil(x0)): int(x1)] = 1.0
    post = DBPostProcessor(thresh=0.5, box_thresh=0.5, box_unclip_ratio=0.0001, min_size=0)
    dets = post(prob, scale=inv.xy, original_size=(h, w))
    if dets:  # a 3-pixel-tall image may leave nothing detectable at 256 px
        got = dets[0].polygon
        assert got[:, 1].max() == pytest.approx(h, abs=2.0 / inv.xy[1])


def test_submission_csv_with_huge_rows_reads_back(tmp_path):
    rng = np.random.default_rng(0)
    preds = {"a.jpg": [rng.uniform(0, 1000, (24, 2)) for _ in range(600)]}
    path = tmp_path / "big.csv"
    write_submission_csv(preds, path)
    assert path.stat().st_size > 131072
    back = read_submission_csv(path)
    assert len(back["a.jpg"].words) == 600


@pytest.mark.parametrize(
    "body, message",
    [
        ("filename,polygons\na.jpg,0 0 nan 0 1 1 0 1\n", "finite"),
        ("filename,polygons\na.jpg,0 0 1e400 0 1 1 0 1\n", "finite"),
    ],
)
def test_submission_csv_bad_numbers_are_located(tmp_path, body, message):
    path = tmp_path / "p.csv"
    path.write_text(body)
    with pytest.raises(InputError) as e:
        read_submission_csv(path)
    assert "p.csv:2" in e.value.lines[0] and message in e.value.lines[0]


def test_utf16_csv_is_an_input_error(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("filename,polygons\na.jpg,\n", encoding="utf-16")
    with pytest.raises(InputError, match="not UTF-8"):
        read_submission_csv(path)


def test_huge_integers_and_bom_in_json(tmp_path, cli):
    huge = "1" + "0" * 400
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": {"a.jpg": {"words": {"1": {"points": [[%s, 0], [1, 0], [1, 1], [0, 1]]}}}}}' % huge)
    with pytest.raises(InputError, match="images.a.jpg.words.1.points"):
        load_words_json(bad)
    code, _, err = cli("data", "check", tmp_path / "nowhere")
    assert code == 2
    bom = tmp_path / "bom.json"
    bom.write_text('\ufeff{"images": {"a.jpg": {"words": {}}}}', encoding="utf-8")
    assert load_words_json(bom) == {"a.jpg": []}
