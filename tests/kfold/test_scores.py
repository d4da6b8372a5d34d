"""Out-of-fold scoring: the pooled score is CLEval over all held-out images at once, not the
mean of the folds' scores, and the two differ when folds differ in size."""

from __future__ import annotations

import pytest

from ocrtune.kfold.scores import HeldOut, mean_of, pooled, score


def _box(x: float, y: float, w: float = 60, h: float = 16) -> list[list[float]]:
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


def _image(i: int) -> list[list[list[float]]]:
    return [_box(10, 10 + 30 * i), _box(100, 10 + 30 * i)]


def test_pooled_is_every_held_out_image_together_not_the_mean_of_folds():
    # fold A: 1 image, found perfectly; fold B: 3 images, one found, two missed entirely
    a = HeldOut({"a0.jpg": _image(0)}, {"a0.jpg": _image(0)})
    b = HeldOut({f"b{i}.jpg": _image(i) for i in range(3)}, {"b0.jpg": _image(0), "b1.jpg": [], "b2.jpg": []})
    fa, _ = score(a)
    fb, _ = score(b)
    assert fa.hmean == pytest.approx(1.0)
    assert fb.hmean == pytest.approx(1 / 3) and fb.recall == pytest.approx(1 / 3)
    mean = mean_of([fa, fb])
    assert mean is not None and mean.hmean == pytest.approx(2 / 3)
    p, glob, n = pooled([a, b])
    assert n == 4
    assert p.hmean == pytest.approx(0.5) and p.recall == pytest.approx(0.5)  # 2 of 4 images found
    assert glob.recall == pytest.approx(0.5)  # half the characters found
    assert glob.precision == pytest.approx(1.0)  # and nothing false


def test_an_image_missing_from_the_predictions_scores_zero():
    held = HeldOut({"x.jpg": _image(0), "y.jpg": _image(1)}, {"x.jpg": _image(0)})
    mean, _ = score(held)
    assert mean.hmean == pytest.approx(0.5)
    assert mean_of([]) is None
