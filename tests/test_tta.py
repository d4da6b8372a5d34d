"""Test-time views and map averaging (ocrtune.train.views): parsing ``--tta``/``--weights``,
mirrored and scaled maps brought back to the image's frame, weighted averages."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ocrtune.data.transforms import resize_and_pad
from ocrtune.errors import InputError
from ocrtune.geometry import polygon_iou
from ocrtune.model.postprocess import DBPostProcessor
from ocrtune.train.views import (
    PLAIN,
    MapAverage,
    View,
    crop_to_image,
    image_area,
    parse_views,
    parse_weights,
    resize_map,
)

H, W = 240, 400


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def word_map(words: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """A map that is 1 on the words (axis-aligned boxes), softened at the edges; postprocessed
    without unclipping, its boxes are the words."""
    prob = np.zeros(shape, np.float32)
    for w in words:
        (x0, y0), (x1, y1) = w.min(axis=0), w.max(axis=0)
        cv2.rectangle(prob, (round(x0), round(y0)), (round(x1) - 1, round(y1) - 1), 1.0, -1)
    return cv2.GaussianBlur(prob, (3, 3), 0)


# Words in the left half of the image: a map left mirrored puts its boxes where no word is.
WORDS = [rect(20, 20, 150, 48), rect(30, 90, 120, 116), rect(24, 170, 180, 196), rect(130, 60, 190, 80)]


def _model(image: np.ndarray) -> np.ndarray:
    """A perfect "model" for these tests: the image is a grey picture of the map it should give."""
    return image.astype(np.float32) / 255.0


def _predict(view: View, image_size: int, frame_size: int = 320) -> list[np.ndarray]:
    """The boxes of ``view`` through resize-and-pad, the model, crop and inversion, postprocessed
    on the frame of a plain view at ``frame_size`` (as an ensemble's first model)."""
    truth = word_map(WORDS, (H, W))
    image = np.round(truth * 255).astype(np.uint8)
    _, _, frame_inv = resize_and_pad(image, [], frame_size)
    frame = image_area((H, W), frame_inv.xy)
    square, _, inv = resize_and_pad(view.apply(image), [], view.input_size(image_size))
    prob = view.invert(crop_to_image(_model(square), (H, W), inv.xy), frame)
    assert prob.shape == frame
    post = DBPostProcessor(thresh=0.5, box_thresh=0.5, box_unclip_ratio=0.0, min_size=1)
    return [d.polygon for d in post(prob, scale=frame_inv.xy, original_size=(H, W))]


def _matches(found: list[np.ndarray], words: list[np.ndarray]) -> list[float]:
    """Best IoU of each word with any detection."""
    return [max((polygon_iou(w, f) for f in found), default=0.0) for w in words]


@pytest.mark.parametrize(
    "view, image_size",
    [(PLAIN, 320), (View(flip=True), 320), (View(scale=1.5), 320), (View(flip=True, scale=0.8), 320),
     (View(flip=True), 256)],
    ids=["plain", "flip", "scale1.5", "flip+scale0.8", "flip-other-size"],
)
def test_a_view_returns_boxes_where_the_words_are(view, image_size):
    found = _predict(view, image_size)
    assert len(found) == len(WORDS)
    assert min(_matches(found, WORDS)) > 0.8, _matches(found, WORDS)


def test_a_flipped_map_left_mirrored_would_put_the_boxes_elsewhere():
    """What the test above guards against: without flipping the map back, no word is found."""

    class Forgetful(View):
        def invert(self, prob, frame):
            return resize_map(prob, frame)  # resized, but not mirrored back

    mirrored = [np.column_stack([W - w[:, 0], w[:, 1]]) for w in WORDS]
    assert max(_matches(mirrored, WORDS)) < 0.1  # the words are not symmetric
    found = _predict(Forgetful(flip=True), 320)
    assert max(_matches(found, WORDS)) < 0.1
    assert min(_matches(found, mirrored)) > 0.8


def test_views_are_parsed_with_the_plain_view_first():
    assert parse_views(None) == [PLAIN]
    assert parse_views("flip,scale:1.25") == [PLAIN, View(flip=True), View(scale=1.25)]
    assert parse_views(" Flip + scale:0.75 ") == [PLAIN, View(flip=True, scale=0.75)]
    assert [v.name for v in parse_views("flip,scale:1.25,flip+scale:1.25")] == [
        "plain", "flip", "scale:1.25", "flip+scale:1.25"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("rotate", "--tta: unknown view 'rotate'; known: flip, scale:S"),
        ("flip,rotate:90", "--tta: unknown view 'rotate:90'"),
        ("scale:0", "--tta: scale must be > 0, got 0 in 'scale:0'"),
        ("scale:-1.5", "--tta: scale must be > 0, got -1.5"),
        ("scale:nan", "--tta: scale must be > 0"),
        ("scale:big", "--tta: scale must be a number, got 'big'"),
        ("flip+flip", "--tta: unknown view 'flip+flip'"),
        ("flip,flip", "--tta: 'flip' is listed twice"),
        ("scale:1", "--tta: 'scale:1' is the plain view, always used"),
        ("", "--tta: no views given"),
    ],
)
def test_bad_views_are_one_located_error(text, message):
    with pytest.raises(InputError) as e:
        parse_views(text)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_weights_are_normalised_and_checked():
    assert parse_weights(None, 4) == [0.25] * 4
    assert parse_weights("2, 1,1", 3) == [0.5, 0.25, 0.25]
    assert parse_weights("0,3", 2) == [0.0, 1.0]
    for text, n, message in [
        ("1,2,3", 2, "--weights: 3 weights for 2 models"),
        ("1", 2, "--weights: 1 weights for 2 models"),
        ("1,x", 2, "--weights: not a number: 'x'"),
        ("1,-1", 2, "--weights: weights must be >= 0, got -1"),
        ("1,inf", 2, "--weights: weights must be >= 0, got inf"),
        ("0,0", 2, "--weights: at least one weight must be > 0"),
    ]:
        with pytest.raises(InputError) as e:
            parse_weights(text, n)
        assert str(e.value).startswith(message), (text, str(e.value))


def test_a_scaled_view_runs_the_model_at_a_larger_input_on_its_stride():
    assert View(scale=1.25).input_size(320) == 416  # 400 rounds up to 13 x 32
    assert View(scale=1.5).input_size(1024) == 1536
    assert View(scale=0.01).input_size(320) == 32
    assert PLAIN.input_size(256) == 256


def test_the_average_is_weighted_and_exact_for_copies():
    a = np.random.default_rng(0).random((5, 7), dtype=np.float32)
    b = np.zeros((5, 7), np.float32)
    avg = MapAverage((5, 7))
    avg.add(a, 0.75)
    avg.add(b, 0.25)
    np.testing.assert_allclose(avg.result(), 0.75 * a, rtol=1e-6)
    copies = MapAverage((5, 7))
    copies.add(a, 0.5)
    copies.add(a, 0.5)
    assert np.array_equal(copies.result(), a)  # two copies of a model give exactly its map
    with pytest.raises(ValueError):
        avg.add(np.zeros((4, 7), np.float32), 1.0)


def test_crop_keeps_the_image_area_of_a_padded_map():
    _, _, inv = resize_and_pad(np.zeros((100, 300, 3), np.uint8), [], 256)
    square = np.ones((256, 256), np.float32)
    assert crop_to_image(square, (100, 300), inv.xy).shape == (85, 256)


def test_views_load_no_framework():
    """The views are part of the pure core: usable on saved maps without torch."""
    import subprocess
    import sys

    code = "import sys, ocrtune.train.views; print(sorted(m for m in ('torch', 'lightning', 'typer') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
