"""ICDAR2015-style IoU metric: hand-made cases, don't-care handling, robustness, properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocrtune.errors import InputError
from ocrtune.metrics import IoUAccumulator, evaluate_iou


def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def score(gt: list, pred: list | None, ignore: list[bool] | None = None) -> tuple[float, float, float]:
    s = IoUAccumulator().update("a.jpg", gt, pred, ignore)
    return s.recall, s.precision, s.hmean


def test_perfect_prediction() -> None:
    gt = [box(0, 0, 100, 20), box(0, 30, 50, 50)]
    octagon = [[10, 0], [20, 0], [30, 10], [30, 20], [20, 30], [10, 30], [0, 20], [0, 10]]
    assert score(gt + [octagon], gt + [octagon]) == (1.0, 1.0, 1.0)


def test_shift_below_half_iou_is_a_miss() -> None:
    gt = [box(0, 0, 100, 20)]
    assert score(gt, [box(40, 0, 140, 20)]) == (0.0, 0.0, 0.0)  # IoU 60/140
    assert score(gt, [box(33, 0, 133, 20)]) == (1.0, 1.0, 1.0)  # IoU 67/133


def test_threshold_is_inclusive() -> None:
    assert score([box(0, 0, 30, 10)], [box(10, 0, 40, 10)]) == (1.0, 1.0, 1.0)  # IoU exactly 0.5


def test_matching_is_one_to_one() -> None:
    r, p, h = score([box(0, 0, 100, 20)], [box(0, 0, 100, 20), box(1, 0, 101, 20)])
    assert (r, p) == (1.0, 0.5) and h == pytest.approx(2 / 3)


def test_dont_care_gt_and_absorbed_predictions() -> None:
    gt = [box(0, 0, 100, 20), box(0, 40, 100, 60)]
    ignore = [False, True]
    # A prediction inside the don't-care word is neither a hit nor a false positive.
    assert score(gt, [box(0, 0, 100, 20), box(10, 42, 60, 58)], ignore) == (1.0, 1.0, 1.0)
    # Even an exact prediction of the don't-care word does not count.
    assert score(gt, [box(0, 0, 100, 20), box(0, 40, 100, 60)], ignore) == (1.0, 1.0, 1.0)
    # Only 40% inside the don't-care word: a false positive.
    r, p, _ = score(gt, [box(0, 0, 100, 20), box(0, 52, 100, 72)], ignore)
    assert (r, p) == (1.0, 0.5)
    # The don't-care word does not count toward recall.
    assert score(gt, [], ignore)[0] == 0.0
    assert IoUAccumulator().update("a", gt, [], ignore).counts.num_gt == 1


def test_empty_images_follow_icdar15_convention() -> None:
    assert score([], []) == (1.0, 1.0, 1.0)
    assert score([], [box(0, 0, 10, 10)]) == (1.0, 0.0, 0.0)
    assert score([box(0, 0, 10, 10)], []) == (0.0, 0.0, 0.0)
    assert score([box(0, 0, 10, 10)], None) == (0.0, 0.0, 0.0)
    assert score([[]], [[], []]) == (1.0, 1.0, 1.0)  # empty point lists are not words


def test_degenerate_and_self_intersecting_polygons() -> None:
    gt = [box(0, 0, 10, 10), [[0, 50], [10, 50], [20, 50], [30, 50]]]  # second: zero area
    bowtie = [[0, 0], [10, 10], [10, 0], [0, 10]]  # even-odd: two triangles, area 50, IoU 0.5
    flat = [[0, 0], [5, 0], [5, 0], [0, 0]]
    acc = IoUAccumulator()
    s = acc.update("a", gt, [bowtie, flat, [[1, 1], [2, 2], [3, 3]]])
    assert s.counts.matched == 1 and s.counts.num_gt == 2 and s.counts.num_det == 3
    assert (s.recall, s.precision) == (0.5, 1 / 3)


def test_numpy_inputs_and_global_pooling() -> None:
    gt = np.array([box(0, 0, 100, 20), box(0, 30, 100, 50)], dtype=np.float32)
    acc = IoUAccumulator()
    acc.update("a", gt, gt.copy())
    acc.update("b", gt, [np.asarray(box(0, 0, 100, 20))])
    s = acc.summary()
    assert s["global"]["recall"] == 0.75 and s["global"]["precision"] == 1.0
    assert s["image_mean"]["recall"] == 0.75
    assert s["per_image"]["b"]["counts"] == {"num_gt": 2, "num_det": 1, "matched": 1}


def test_evaluate_iou_uses_gt_order_and_ignore_map() -> None:
    gt = {"x": [box(0, 0, 10, 10)], "y": [box(0, 0, 10, 10), box(20, 0, 30, 10)]}
    pred = {"y": [box(0, 0, 10, 10)], "extra": [box(0, 0, 1, 1)]}
    s = evaluate_iou(gt, pred, gt_ignore={"y": [False, True]})
    assert list(s["per_image"]) == ["x", "y"]
    assert s["per_image"]["y"]["hmean"] == 1.0 and s["per_image"]["x"]["hmean"] == 0.0
    assert s["global"]["recall"] == 0.5


def test_bad_input_raises_input_error() -> None:
    with pytest.raises(InputError, match="gt_ignore has 1 flags for 2 GT words"):
        IoUAccumulator().update("a", [box(0, 0, 1, 1)] * 2, [], [True])
    with pytest.raises(InputError, match=r"a: pred\[0\]"):
        IoUAccumulator().update("a", [], [["x", "y"]])
    acc = IoUAccumulator()
    acc.update("a", [], [])
    with pytest.raises(InputError, match="scored twice"):
        acc.update("a", [], [])


@st.composite
def _grid_boxes(draw: st.DrawFn) -> list[list[list[float]]]:
    cell = st.tuples(st.integers(0, 5), st.integers(0, 9))
    cells = draw(st.lists(cell, min_size=1, max_size=15, unique=True))
    return [
        box(cx * 150, cy * 60, cx * 150 + draw(st.floats(1, 140)), cy * 60 + draw(st.floats(1, 50)))
        for cx, cy in cells
    ]


@settings(max_examples=60, deadline=None)
@given(boxes=_grid_boxes())
def test_perfect_prediction_of_random_boxes(boxes: list) -> None:
    s = evaluate_iou({"a": boxes}, {"a": [b[1:] + b[:1] for b in boxes]})  # other start vertex
    assert s["global"]["hmean"] == 1.0 and s["image_mean"]["hmean"] == 1.0


_poly = st.lists(st.tuples(st.floats(-20, 300), st.floats(-20, 300)), min_size=0, max_size=7)


@settings(max_examples=80, deadline=None)
@given(gt=st.lists(_poly, max_size=8), pred=st.lists(_poly, max_size=10), data=st.data())
def test_scores_stay_in_unit_interval(gt: list, pred: list, data: st.DataObject) -> None:
    ignore = data.draw(st.lists(st.booleans(), min_size=len(gt), max_size=len(gt)))
    s = evaluate_iou({"a": gt}, {"a": pred}, {"a": ignore})
    for block in (s["per_image"]["a"], s["image_mean"], s["global"]):
        for m in ("recall", "precision", "hmean"):
            assert 0.0 <= block[m] <= 1.0
