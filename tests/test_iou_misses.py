"""IoU misses by kind: hand-made cases for each kind, and the counts always adding up to the score's."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ocrtune.metrics.iou import match_iou
from ocrtune.metrics.iou_misses import IoUMisses, iou_misses


def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_perfect_prediction_has_no_misses() -> None:
    gt = [box(0, 0, 100, 20), box(0, 30, 60, 50)]
    assert iou_misses(gt, gt) == IoUMisses(gt_matched=2, det_matched=2)


def test_one_box_over_two_segments_is_a_merge() -> None:
    gt = [box(0, 0, 40, 20), box(50, 0, 90, 20)]
    assert iou_misses(gt, [box(0, 0, 90, 20)]) == IoUMisses(gt_merged=2, det_merged=1)


def test_a_small_word_swallowed_by_its_neighbours_box() -> None:
    # the colon SROIE boxes apart: the label's box still matches, the colon is merged into it
    gt = [box(0, 0, 100, 20), box(102, 4, 106, 16)]
    assert iou_misses(gt, [box(0, 0, 106, 20)]) == IoUMisses(gt_matched=1, gt_merged=1, det_matched=1)


def test_a_word_in_pieces_is_split() -> None:
    gt = [box(0, 0, 100, 20)]
    assert iou_misses(gt, [box(0, 0, 45, 20), box(55, 0, 100, 20)]) == IoUMisses(gt_split=1, det_fragment=2)


def test_too_loose_and_too_tight_boxes_are_misfits() -> None:
    loose = iou_misses([box(0, 0, 100, 10)], [box(0, -10, 100, 20)])  # IoU 1/3, covers all of it
    assert loose == IoUMisses(gt_misfit=1, det_misfit=1)
    tight = iou_misses([box(0, 0, 100, 20)], [box(30, 5, 70, 15)])  # IoU 0.2, inside it
    assert tight == IoUMisses(gt_misfit=1, det_fragment=1)


def test_nothing_there_is_not_found_and_background() -> None:
    gt = [box(0, 0, 100, 20)]
    assert iou_misses(gt, [box(200, 0, 300, 20)]) == IoUMisses(gt_not_found=1, det_background=1)
    assert iou_misses(gt, []) == IoUMisses(gt_not_found=1)
    assert iou_misses([], [box(0, 0, 1, 1)]) == IoUMisses(det_background=1)
    # a sliver of a detection on the word does not make it found
    assert iou_misses(gt, [box(95, 0, 195, 20)]) == IoUMisses(gt_not_found=1, det_background=1)


def test_dont_care_words_and_what_they_absorb_are_left_out() -> None:
    gt = [box(0, 0, 100, 20), box(0, 40, 100, 60)]
    m = iou_misses(gt, [box(0, 0, 100, 20), box(10, 42, 60, 58)], [False, True])
    assert m == IoUMisses(gt_matched=1, det_matched=1)


def test_counts_add_up_over_images() -> None:
    a = IoUMisses(gt_matched=1, gt_merged=2, det_background=1)
    b = IoUMisses(gt_matched=3, gt_split=1, det_fragment=2)
    total = a + b
    assert (total.gt_matched, total.gt_merged, total.gt_split, total.det_fragment, total.det_background) == (4, 2, 1, 2, 1)
    assert (total.gt_total, total.det_total) == (7, 3)


_rect = st.tuples(st.integers(0, 200), st.integers(0, 60), st.integers(2, 120), st.integers(2, 30)).map(
    lambda t: box(t[0], t[1], t[0] + t[2], t[1] + t[3])
)


@settings(max_examples=150, deadline=None)
@given(gt=st.lists(_rect, max_size=8), pred=st.lists(_rect, max_size=10), data=st.data())
def test_every_word_and_detection_gets_one_kind(gt: list, pred: list, data: st.DataObject) -> None:
    ignore = data.draw(st.lists(st.booleans(), min_size=len(gt), max_size=len(gt)))
    m, counts = iou_misses(gt, pred, ignore), match_iou(gt, pred, ignore)
    assert (m.gt_total, m.det_total) == (counts.num_gt, counts.num_det)
    assert m.gt_matched == m.det_matched == counts.matched
