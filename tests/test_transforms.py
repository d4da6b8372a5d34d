"""Transforms move polygons exactly with the pixels; checked by rasterising both."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ocrtune.data.transforms import (
    IMAGENET_MEAN,
    Augment,
    Inverse,
    color_jitter,
    denormalize,
    hflip,
    normalize,
    random_crop,
    resize_and_pad,
    rotate,
    zoom,
)
from ocrtune.model.postprocess import DBPostProcessor
from ocrtune.presets.schema import AugmentConfig


def quad(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Axis-aligned box, clockwise (y down) from the top-left."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def raster(polys, shape) -> np.ndarray:
    """Fill polygons given in corner coordinates (pixel i covers [i, i+1))."""
    mask = np.zeros(shape, np.uint8)
    for p in polys:
        pts = np.round((np.asarray(p, np.float64) - 0.5) * 16).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_8, shift=4)
    return mask > 0


def outside(image: np.ndarray, polys) -> int:
    """Mask pixels farther than 1 px from every polygon (fillPoly's edge pixels are fat)."""
    near = cv2.dilate(raster(polys, image.shape[:2]).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    return int(((image[..., 0] > 127) & ~near).sum())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def signed_area(p: np.ndarray) -> float:
    x, y = p[:, 0], p[:, 1]
    return float((x * np.roll(y, -1) - np.roll(x, -1) * y).sum() / 2)


def scene():
    """A 240x320 image with three text boxes and a slanted quad, plus its mask as the image."""
    polys = [
        quad(20, 20, 140, 50),
        quad(170, 30, 300, 60),
        quad(40, 120, 260, 150),
        np.array([[60, 180], [200, 170], [205, 205], [65, 215]], dtype=np.float64),
    ]
    mask = raster(polys, (240, 320))
    image = np.repeat((mask * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    return image, polys


def assert_follow(image: np.ndarray, polys, min_iou: float = 0.9) -> None:
    """The transformed mask and the re-rasterised transformed polygons agree."""
    moved = image[..., 0] > 127 if image.ndim == 3 else image > 127
    drawn = raster(polys, moved.shape)
    assert iou(moved, drawn) > min_iou
    for p in polys:  # each polygon individually lands on mask pixels
        one = raster([p], moved.shape)
        assert one.sum() > 0
        assert (one & moved).sum() / one.sum() > min_iou


def test_hflip_mirrors_and_keeps_clockwise_from_top_left() -> None:
    image, polys = scene()
    out, flipped = hflip(image, polys)
    assert_follow(out, flipped, 0.98)
    for p in flipped[:3]:
        assert signed_area(p) > 0  # clockwise with y down
        assert np.argmin(p.sum(axis=1)) == 0  # starts at the top-left vertex
    np.testing.assert_allclose(flipped[0], quad(320 - 140, 20, 320 - 20, 50))


@pytest.mark.parametrize("degrees", [-12.0, 7.5, 30.0])
def test_rotate_expands_and_polygons_follow(degrees: float) -> None:
    image, polys = scene()
    out, moved = rotate(image, polys, degrees)
    assert out.shape[0] > 240 and out.shape[1] > 320
    assert_follow(out, moved, 0.93)
    # nothing is cut: all mask pixels survive (up to interpolation at edges)
    assert abs((out[..., 0] > 127).sum() / (image[..., 0] > 127).sum() - 1) < 0.03
    for a, b in zip(polys, moved):
        assert signed_area(b) == pytest.approx(signed_area(a), rel=1e-6)


def test_rotate_zero_is_identity() -> None:
    image, polys = scene()
    out, moved = rotate(image, polys, 0.0)
    assert out.shape == image.shape
    np.testing.assert_array_equal(out, image)
    np.testing.assert_allclose(moved[0], polys[0], atol=1e-4)


def test_random_crop_never_cuts_a_polygon() -> None:
    image, polys = scene()
    rng = np.random.default_rng(0)
    shapes = set()
    for _ in range(40):
        out, moved, kept = random_crop(image, polys, rng)
        shapes.add(out.shape)
        h, w = out.shape[:2]
        assert len(moved) == len(kept) >= 1
        for p, k in zip(moved, kept):
            assert p[:, 0].min() >= 0 and p[:, 1].min() >= 0
            assert p[:, 0].max() <= w and p[:, 1].max() <= h
            # same size as the original polygon: translated, not clipped
            np.testing.assert_allclose(p - p.min(axis=0), polys[k] - polys[k].min(axis=0), atol=1e-4)
        assert_follow(out, moved, 0.98)
        # dropped polygons left no pixels in the crop
        assert outside(out, moved) == 0
    assert len(shapes) > 3  # it really crops


def test_zoom_out_pads_and_zoom_in_cuts_in_gaps() -> None:
    image, polys = scene()
    rng = np.random.default_rng(3)
    out, moved, kept = zoom(image, polys, 0.5, rng)
    assert out.shape[:2] == (480, 640)
    assert list(kept) == [0, 1, 2, 3]
    assert_follow(out, moved, 0.98)
    for _ in range(20):
        out, moved, kept = zoom(image, polys, 1.6, rng)
        h, w = out.shape[:2]
        assert h >= 240 / 1.6 - 1e-9 and w >= 320 / 1.6 - 1e-9
        assert h < 240 or w < 320  # some zoom-in happened
        assert_follow(out, moved, 0.98)
        assert outside(out, moved) == 0


def test_augment_moves_polygons_with_pixels_and_is_seeded() -> None:
    image, polys = scene()
    cfg = AugmentConfig(hflip=0.5, rotate=10.0, scale=(0.7, 1.4), crop=0.5, color_jitter=0.3)
    for seed in range(12):
        res = Augment(cfg, np.random.default_rng(seed))(image, polys)
        assert len(res.polygons) == len(res.kept) >= 1
        assert_follow(res.image, res.polygons, 0.9)
        again = Augment(cfg, np.random.default_rng(seed))(image, polys)
        np.testing.assert_array_equal(res.image, again.image)
        for a, b in zip(res.polygons, again.polygons):
            np.testing.assert_array_equal(a, b)
    a = Augment(cfg, 1)(image, polys).image
    b = Augment(cfg, 2)(image, polys).image
    assert a.shape != b.shape or not np.array_equal(a, b)


def test_augment_disabled_is_identity() -> None:
    image, polys = scene()
    res = Augment(AugmentConfig(enabled=False), 0)(image, polys)
    np.testing.assert_array_equal(res.image, image)
    np.testing.assert_allclose(res.polygons[3], polys[3], atol=1e-5)


def test_color_jitter_changes_colours_not_geometry() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    out = color_jitter(img, 0.4, np.random.default_rng(1))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img.astype(int)).mean() > 1
    np.testing.assert_array_equal(color_jitter(img, 0.0, rng), img)
    grey = color_jitter(img[..., 0], 0.4, np.random.default_rng(1))
    assert grey.shape == (32, 48) and grey.dtype == np.uint8


def test_color_jitter_matches_the_three_step_definition() -> None:
    """The folded colour matrix equals brightness, then contrast, then saturation (+-1 rounding)."""
    img = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    for seed in range(4):
        b, c, s = np.random.default_rng(seed).uniform(0.6, 1.4, size=3)
        x = img.astype(np.float64) * b
        x = (x - x.mean()) * c + x.mean()
        grey = x @ np.array([0.299, 0.587, 0.114])
        x = grey[:, :, None] + (x - grey[:, :, None]) * s
        expected = np.clip(np.rint(x), 0, 255)
        got = color_jitter(img, 0.4, np.random.default_rng(seed)).astype(np.float64)
        assert np.abs(got - expected).max() <= 1


def test_resize_and_pad_and_inverse_round_trip() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (300, 500, 3), dtype=np.uint8)
    poly = np.array([[12.3, 40.0], [480.7, 35.5], [490.0, 290.2], [10.0, 299.0]])
    out, polys, inv = resize_and_pad(image, [poly], 256)
    assert out.shape == (256, 256, 3)
    assert inv.scale == pytest.approx(256 / 500) and (inv.orig_h, inv.orig_w) == (300, 500)
    assert out[154:].max() == 0  # padded at the bottom (300 * 0.512 = 153.6 rows of image)
    back = inv.to_original(polys)[0]
    assert np.abs(back - poly).max() < 1.0
    # clipping to the original image
    np.testing.assert_allclose(inv.points_to_original(np.array([[-5.0, 300.0]])), [[0.0, 300.0]])


def test_resize_and_pad_polygons_follow_pixels() -> None:
    image, polys = scene()
    for size in (128, 512):
        out, moved, inv = resize_and_pad(image, polys, size)
        assert out.shape == (size, size, 3)
        assert_follow(out, moved, 0.9)


def test_resize_and_pad_grey_and_tall() -> None:
    image = np.full((400, 100), 200, np.uint8)
    out, _, inv = resize_and_pad(image, [], 64)
    assert out.shape == (64, 64)
    assert out[:, :16].min() == 200 and out[:, 16:].max() == 0
    assert isinstance(inv, Inverse) and inv.scale == pytest.approx(0.16)


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


def test_normalize_round_trip() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    x = normalize(img)
    assert x.shape == (3, 20, 30) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0, 0], (img[0, 0] / 255.0 - IMAGENET_MEAN) / [0.229, 0.224, 0.225], rtol=1e-5)
    np.testing.assert_array_equal(denormalize(x), img)
    assert normalize(img[..., 0]).shape == (3, 20, 30)


def test_augment_tolerates_empty_and_no_polygons() -> None:
    image, polys = scene()
    cfg = AugmentConfig(hflip=1.0, rotate=5.0, crop=1.0, scale=(1.2, 1.3))
    res = Augment(cfg, 0)(image, polys + [np.zeros((0, 2))])
    assert 4 not in res.kept.tolist() and len(res.polygons) == len(res.kept)
    res = Augment(cfg, 0)(image, [])
    assert res.polygons == [] and res.kept.size == 0 and res.image.ndim == 3
