"""Synthetic receipts: determinism, exact polygons on ink, layout, styles and effects, and the
cached default set."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from ocrtune.data.formats import read_json, sanitize
from ocrtune.data.images import load_image
from ocrtune.data.layout import list_images, resolve_split
from ocrtune.data.receipt_text import FontSet, find_fonts
from ocrtune.data.synth_options import Effect, Style, SynthOptions
from ocrtune.data.synthetic import default_dataset, render_receipt, synthesize
from ocrtune.errors import InputError

HANGUL = re.compile("[\uac00-\ud7a3]")


def _ink_stats(image: np.ndarray, points: np.ndarray) -> tuple[float, float, float]:
    """(dark fraction inside the polygon, dark fraction in a 3 px ring around it, contrast of
    the darkest pixel inside against the surrounding paper)."""
    pad = 16
    x0, y0 = np.floor(points.min(axis=0)).astype(int) - pad
    x0, y0 = max(0, x0), max(0, y0)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + pad
    gray = image[y0:y1, x0:x1].mean(axis=2)
    inside = np.zeros(gray.shape, np.uint8)
    # polygons use pixel-edge coordinates; fillPoly uses pixel centres
    cv2.fillPoly(inside, [np.round(points - [x0 + 0.5, y0 + 0.5]).astype(np.int32)], 1)
    ring = cv2.dilate(inside, np.ones((7, 7), np.uint8)) - inside
    paper = float(np.median(gray[cv2.dilate(inside, np.ones((31, 31), np.uint8)) > 0]))
    dark = gray < paper - 40
    contrast = paper - float(gray[inside > 0].min())
    return float(dark[inside > 0].mean()), float(dark[ring > 0].mean()), contrast


def _check_polygons_on_ink(image: np.ndarray, ann, tight: bool = True) -> None:  # noqa: ANN001
    """Every polygon covers ink; with ``tight`` (images >= 480 px, where neighbouring words
    are more than 3 px apart) the ring around each polygon is also nearly ink-free."""
    h, w = image.shape[:2]
    assert (ann.width, ann.height) == (w, h) and len(ann.words) >= 15
    inside_fracs, ring_fracs, contrasts = [], [], []
    for word in ann.words:
        pts = word.points
        assert pts.shape == (4, 2)
        assert pts.min() >= 0 and pts[:, 0].max() <= w and pts[:, 1].max() <= h
        x, y = pts[:, 0], pts[:, 1]
        assert np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y) > 0  # clockwise on screen
        inside, ring, contrast = _ink_stats(image, pts)
        # blank paper varies by < 25 grey levels; thin tiny glyphs after blur still exceed 30
        assert contrast > 30, f"word {word.id} {word.text!r} covers no ink"
        contrasts.append(contrast)
        inside_fracs.append(inside)
        ring_fracs.append(ring)
    assert np.median(contrasts) > 80
    # tight, aligned boxes: a 3 px ring around each box is almost ink-free (a 1 px shift of
    # every polygon already puts ~3% of the ring on ink)
    assert np.median(inside_fracs) > 0.2
    if tight:
        assert np.mean(ring_fracs) < 0.015
    else:
        assert np.median(inside_fracs) > 5 * np.median(ring_fracs)


@pytest.mark.parametrize(("seed", "index"), [(5, 0), (5, 1), (2, 2), (9, 3)])
def test_polygons_lie_on_ink(seed: int, index: int) -> None:
    image, ann = render_receipt(seed=seed, index=index, size=640)
    assert image.dtype == np.uint8 and image.shape[0] == 640
    _check_polygons_on_ink(image, ann)
    assert all(w.text for w in ann.words)
    clean, problems = sanitize(ann)
    assert problems == [] and len(clean.words) == len(ann.words)


def test_fallback_to_pil_default_font_still_exact() -> None:
    image, ann = render_receipt(seed=3, index=0, size=560, fonts=FontSet((), ()))
    _check_polygons_on_ink(image, ann)
    assert not any(HANGUL.search(w.text or "") for w in ann.words)


def test_hangul_words_when_a_hangul_font_is_installed() -> None:
    fonts = find_fonts()
    texts = [w.text or "" for i in range(6) for w in render_receipt(1, i, 400, fonts)[1].words]
    if fonts.hangul:
        assert any(HANGUL.search(t) for t in texts)
    else:
        assert not any(HANGUL.search(t) for t in texts)


def test_render_is_deterministic_per_seed_and_index() -> None:
    a_img, a_ann = render_receipt(7, 2, 320)
    b_img, b_ann = render_receipt(7, 2, 320)
    assert np.array_equal(a_img, b_img) and a_ann == b_ann
    c_img, c_ann = render_receipt(8, 2, 320)
    assert c_img.shape != a_img.shape or not np.array_equal(c_img, a_img)
    assert c_ann != a_ann


def test_synthesize_same_seed_gives_identical_files(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", n=5, seed=11, size=256, val_fraction=0.2)
    b = synthesize(tmp_path / "b", n=5, seed=11, size=256, val_fraction=0.2)
    synthesize(tmp_path / "c", n=5, seed=12, size=256, val_fraction=0.2)
    assert (a.n_train, a.n_val) == (4, 1) and a.n_words == b.n_words > 0
    for split in ("train", "val"):
        ja = (tmp_path / "a" / "jsons" / f"{split}.json").read_bytes()
        assert ja == (tmp_path / "b" / "jsons" / f"{split}.json").read_bytes()
        assert ja != (tmp_path / "c" / "jsons" / f"{split}.json").read_bytes()
        files_a = list_images(tmp_path / "a" / "images" / split)
        files_b = list_images(tmp_path / "b" / "images" / split)
        assert [f.name for f in files_a] == [f.name for f in files_b]
        for fa, fb in zip(files_a, files_b):
            assert fa.read_bytes() == fb.read_bytes()
            assert np.array_equal(load_image(fa)[0], load_image(fb)[0])


def test_synthesize_writes_competition_layout_that_loads(tmp_path: Path) -> None:
    synthesize(tmp_path, n=4, seed=0, size=320, val_fraction=0.25)
    total = 0
    for split, count in (("train", 3), ("val", 1)):
        image_dir, ann_path = resolve_split(tmp_path, split)
        assert ann_path == tmp_path / "jsons" / f"{split}.json"
        anns = read_json(ann_path)
        files = list_images(image_dir)
        assert [f.name for f in files] == list(anns) and len(files) == count
        for f in files:
            image, size = load_image(f)  # after JPEG: still exact enough to sit on ink
            assert size == (anns[f.name].width, anns[f.name].height)
            _check_polygons_on_ink(image, anns[f.name], tight=False)
            total += len(anns[f.name].words)
    assert total > 40


def test_synthesize_refuses_to_clobber_unless_asked(tmp_path: Path) -> None:
    synthesize(tmp_path, n=3, seed=0, size=200)
    with pytest.raises(InputError, match="already holds a dataset"):
        synthesize(tmp_path, n=2, seed=0, size=200)
    result = synthesize(tmp_path, n=2, seed=0, size=200, val_fraction=0.0, overwrite=True)
    assert (result.n_train, result.n_val) == (2, 0)
    assert len(list_images(tmp_path / "images" / "train")) == 2
    # no empty val split (data check would report it), and the old one is gone
    assert not (tmp_path / "images" / "val").exists()
    assert not (tmp_path / "jsons" / "val.json").exists()


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"n": 0}, "at least 1"),
    ({"n": 2, "val_fraction": 1.0}, "--val-fraction: must be in"),
    ({"n": 2, "val_fraction": 1.5}, "--val-fraction: must be in"),
    ({"n": 2, "size": 10}, "at least 64"),
    ({"n": 2, "seed": -1}, "--seed: must be a non-negative integer"),
])
def test_synthesize_bad_arguments(tmp_path: Path, kwargs: dict, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        synthesize(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()  # validated before anything is written


def test_failed_render_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ocrtune.data.synthetic as synthetic

    real = synthetic.render_receipt

    def flaky(seed: int, index: int, *args: object) -> object:
        if index == 2:
            raise RuntimeError("boom")
        return real(seed, index, *args)

    monkeypatch.setattr(synthetic, "render_receipt", flaky)
    with pytest.raises(RuntimeError):
        synthesize(tmp_path / "new", n=3, size=96)
    assert not (tmp_path / "new").exists()  # a folder it created is removed again

    monkeypatch.setattr(synthetic, "render_receipt", real)
    old = synthesize(tmp_path / "old", n=2, size=96, val_fraction=0.5)
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "old").rglob("*"))
    stamp = (tmp_path / "old" / "jsons" / "train.json").read_bytes()
    monkeypatch.setattr(synthetic, "render_receipt", flaky)
    with pytest.raises(RuntimeError):
        synthesize(tmp_path / "old", n=3, size=96, overwrite=True)
    after = sorted(p.relative_to(tmp_path) for p in (tmp_path / "old").rglob("*"))
    assert after == before and old.n_train == 1  # no hidden staging folder left either
    assert (tmp_path / "old" / "jsons" / "train.json").read_bytes() == stamp


def test_overwrite_replaces_only_synthetic_sets(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "images" / "train").mkdir(parents=True)
    (real / "images" / "train" / "scan.jpg").write_bytes(b"precious")
    (real / "jsons").mkdir()
    (real / "jsons" / "train.json").write_text('{"images": {}}')
    with pytest.raises(InputError, match="did not synthesise"):
        synthesize(real, n=2, size=96, overwrite=True)
    assert (real / "images" / "train" / "scan.jpg").read_bytes() == b"precious"
    assert sorted(p.name for p in real.iterdir()) == ["images", "jsons"]

    sroie_style = tmp_path / "sroie"  # annotations/ layout: the images alone are not ours
    (sroie_style / "annotations").mkdir(parents=True)
    (sroie_style / "annotations" / "train.json").write_text('{"images": {}}')
    with pytest.raises(InputError, match="did not synthesise"):
        synthesize(sroie_style, n=2, size=96, overwrite=True)


def _pre_marker_set(root: Path) -> Path:
    """A set as synth wrote it before ``ocrtune-synth.json``: an empty val split too."""
    synthesize(root, n=2, size=96, val_fraction=0.0)
    (root / "ocrtune-synth.json").unlink()
    (root / "images" / "val").mkdir()
    (root / "jsons" / "val.json").write_text('{"images": {}}')
    return root


def test_overwrite_refuses_a_set_made_before_the_marker(tmp_path: Path) -> None:
    """File names that look synthetic say nothing about whose data it is: without a marker
    holding content hashes, a set is never replaced, however synthetic its names look."""
    old = _pre_marker_set(tmp_path / "old")
    before = {p: p.read_bytes() for p in old.rglob("*") if p.is_file()}
    for overwrite in (False, True):
        with pytest.raises(InputError, match="did not synthesise .*delete this one yourself"):
            synthesize(old, n=3, size=96, val_fraction=0.0, overwrite=overwrite)
    assert {p: p.read_bytes() for p in old.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("change", [
    "notes.txt", "images/train/scan.jpg", "images/train/receipt_00000.png", "images/test/",
    "jsons/test.json", "images/train/receipt_00000.jpg.bak", "annotations/",
])
def test_overwrite_refuses_a_marker_less_set_with_anything_else(tmp_path: Path, change: str) -> None:
    near = _pre_marker_set(tmp_path / "near")
    extra = near / change
    if change.endswith("/"):
        extra.mkdir()
    else:
        extra.write_bytes(b"precious")
    before = sorted(p.relative_to(near) for p in near.rglob("*"))
    with pytest.raises(InputError, match="delete this one yourself"):
        synthesize(near, n=2, size=96, overwrite=True)
    assert sorted(p.relative_to(near) for p in near.rglob("*")) == before


def test_synthesize_into_a_file_is_a_located_error(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("keep")
    with pytest.raises(InputError, match="not a directory") as err:
        synthesize(target, n=1, size=96)
    assert err.value.problems[0].file == str(target) and target.read_text() == "keep"
    with pytest.raises(InputError, match="cannot create"):
        synthesize(target / "sub", n=1, size=96)


def test_default_dataset_is_cached_and_atomic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCRTUNE_CACHE", str(tmp_path / "cache"))
    first = default_dataset(n=3, seed=0, size=192)
    assert first.parent == tmp_path / "cache" and first.name.startswith("synthetic-")
    assert (first / "params.json").is_file()
    stamp = (first / "jsons" / "train.json").stat().st_mtime_ns
    again = default_dataset(n=3, seed=0, size=192)
    assert again == first and (first / "jsons" / "train.json").stat().st_mtime_ns == stamp
    other = default_dataset(n=3, seed=1, size=192)
    assert other != first
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    image_dir, ann = resolve_split(first, "train")
    assert ann is not None and len(read_json(ann)) == len(list_images(image_dir)) == 2


@pytest.mark.parametrize(("seed", "index"), [(3, 0), (3, 1), (8, 2), (8, 5)])
def test_real_style_polygons_lie_on_ink(seed: int, index: int) -> None:
    """Columns, graphic rules, logos and barcodes, scans and photos: the boxes stay tight."""
    image, ann = render_receipt(seed, index, 640, options=SynthOptions(style=Style.REAL))
    _check_polygons_on_ink(image, ann)
    assert sanitize(ann)[1] == []


@pytest.mark.parametrize("index", [0, 1, 2])
def test_real_style_with_every_effect_keeps_words_readable_and_boxed(index: int) -> None:
    options = SynthOptions(style=Style.REAL, effects=frozenset(Effect))
    image, ann = render_receipt(4, index, 640, options=options)
    _check_polygons_on_ink(image, ann, tight=False)
    again, ann_again = render_receipt(4, index, 640, options=options)
    assert np.array_equal(image, again) and ann == ann_again
    plain_img, plain_ann = render_receipt(4, index, 640, options=SynthOptions(style=Style.REAL))
    assert ann == plain_ann and not np.array_equal(image, plain_img)  # effects move no box


def _word_mask(ann, shape: tuple[int, ...]) -> np.ndarray:  # noqa: ANN001
    mask = np.zeros(shape[:2], np.uint8)
    for w in ann.words:
        cv2.fillPoly(mask, [np.round(w.points - 0.5).astype(np.int32)], 1)
    return mask.astype(bool)


@pytest.mark.parametrize("effect", list(Effect))
def test_each_effect_is_deterministic_changes_pixels_and_moves_no_box(effect: Effect) -> None:
    options = SynthOptions(effects=frozenset({effect}))
    changed = 0
    for index in range(3):
        base, base_ann = render_receipt(6, index, 480)
        image, ann = render_receipt(6, index, 480, options=options)
        assert np.array_equal(image, render_receipt(6, index, 480, options=options)[0])
        assert ann == base_ann
        diff = np.abs(image.astype(int) - base.astype(int)).max(axis=2)
        changed += int((diff > 12).mean() > 0.001)
        if effect in (Effect.MARKS, Effect.STAMP):  # distractors keep off the text
            assert np.percentile(diff[_word_mask(ann, image.shape)], 99) < 12
    assert changed >= 2


def test_without_effects_plain_is_what_it_always_was() -> None:
    """The options' defaults take the original code path: same pixels, same boxes."""
    for index in range(2):
        a_img, a_ann = render_receipt(2, index, 320)
        b_img, b_ann = render_receipt(2, index, 320, options=SynthOptions(style=Style.PLAIN, effects=frozenset()))
        assert np.array_equal(a_img, b_img) and a_ann == b_ann
