"""IoU misses by kind: hand-made cases for each kind, and the counts always adding up to the score's."""

from __future__ import annotations

import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from ocrtune.cli._misses import misses_lines
from ocrtune.metrics.iou import match_iou, match_iou_pairs
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


def test_overlapping_pieces_count_once() -> None:
    # two near-identical boxes cover 31 % of the word together, not 60 %: not a split
    m = iou_misses([box(0, 0, 100, 20)], [box(0, 0, 30, 20), box(1, 0, 31, 20)])
    assert m.gt_split == 0 and m.gt_misfit == 1 and m.det_fragment == 2


def test_a_second_box_on_a_matched_word_is_a_duplicate() -> None:
    m = iou_misses([box(0, 0, 100, 20)], [box(0, 0, 100, 20), box(1, 0, 101, 20)])
    assert m == IoUMisses(gt_matched=1, det_matched=1, det_duplicate=1)


def test_a_dont_care_neighbour_does_not_make_a_merge() -> None:
    m = iou_misses([box(0, 0, 40, 20), box(50, 0, 90, 20)], [box(0, 0, 90, 20)], [False, True])
    assert m == IoUMisses(gt_misfit=1, det_misfit=1)


def test_empty_words_are_skipped_with_their_flags() -> None:
    m = iou_misses([[], box(0, 0, 100, 20), box(0, 40, 100, 60)], [box(0, 0, 100, 20), box(0, 42, 50, 58)],
                   [True, False, True])
    assert m == IoUMisses(gt_matched=1, det_matched=1)


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
    # a sliver of a detection on the word does not make it found, nor does a speck inside it
    assert iou_misses(gt, [box(95, 0, 195, 20)]) == IoUMisses(gt_not_found=1, det_background=1)
    assert iou_misses(gt, [box(10, 5, 12, 7)]) == IoUMisses(gt_not_found=1, det_fragment=1)
    # a detection on a tenth of two words, on neither by a tenth of itself: background
    two = [box(0, 0, 100, 10), box(0, 20, 100, 30)]
    assert iou_misses(two, [box(80, 5, 180, 25)]) == IoUMisses(gt_not_found=2, det_background=1)
    # a big box over a small word covers it: the word is a misfit, the box too, never background
    assert iou_misses([box(0, 0, 10, 10)], [box(0, 0, 200, 200)]) == IoUMisses(gt_misfit=1, det_misfit=1)


def test_dont_care_words_and_what_they_absorb_are_left_out() -> None:
    gt = [box(0, 0, 100, 20), box(0, 40, 100, 60)]
    m = iou_misses(gt, [box(0, 0, 100, 20), box(10, 42, 60, 58)], [False, True])
    assert m == IoUMisses(gt_matched=1, det_matched=1)


def test_lines_say_no_words_and_no_misses_plainly() -> None:
    assert misses_lines(vars(IoUMisses())) == ["IoU misses: no words", "unmatched detections: no detections"]
    lines = misses_lines(vars(IoUMisses(gt_matched=2, det_matched=2)))
    assert lines == ["IoU misses: 0 of 2 words, -0.00 pp of the global recall",
                     "unmatched detections: 0 of 2 detections, -0.00 pp of the global precision"]


def test_counts_add_up_over_images() -> None:
    a = IoUMisses(gt_matched=1, gt_merged=2, det_background=1)
    b = IoUMisses(gt_matched=3, gt_split=1, det_fragment=2)
    total = a + b
    assert (total.gt_matched, total.gt_merged, total.gt_split, total.det_fragment, total.det_background) == (4, 2, 1, 2, 1)
    assert (total.gt_total, total.det_total) == (7, 3)


_rect = st.tuples(st.integers(0, 200), st.integers(0, 60), st.integers(2, 120), st.integers(2, 30)).map(
    lambda t: box(t[0], t[1], t[0] + t[2], t[1] + t[3])
)


def _reference(gt: list, pred: list, ignore: list[bool]) -> IoUMisses:
    """The module docstring's definitions, one pair at a time with shapely (slow, obvious)."""
    m = match_iou_pairs(gt, pred, ignore)
    G = [shapely.Polygon(p) for p in gt]
    D = [shapely.Polygon(p) for p in pred]
    care = [i for i in range(len(G)) if not ignore[i]]
    live = [j for j in range(len(D)) if m.live[j]]

    def inter(i: int, j: int) -> float:
        return G[i].intersection(D[j]).area

    def covers(j: int, i: int) -> bool:
        return inter(i, j) >= 0.5 * G[i].area

    def inside(j: int, i: int) -> bool:
        return inter(i, j) >= 0.5 * D[j].area

    kinds: dict[str, int] = {}
    for i in care:
        if m.matched_g[i]:
            kind = "gt_matched"
        elif any(covers(j, i) and any(covers(j, k) for k in care if k != i) for j in live):
            kind = "gt_merged"
        elif len(pieces := [j for j in live if inside(j, i)]) >= 2 and (
                G[i].intersection(shapely.union_all([D[j] for j in pieces])).area >= 0.5 * G[i].area):
            kind = "gt_split"
        elif any(covers(j, i) or (inside(j, i) and inter(i, j) >= 0.1 * G[i].area) for j in live):
            kind = "gt_misfit"
        else:
            kind = "gt_not_found"
        kinds[kind] = kinds.get(kind, 0) + 1
    for j in live:
        iou = [inter(i, j) / G[i].union(D[j]).area for i in care]
        if m.matched_d[j]:
            kind = "det_matched"
        elif sum(covers(j, i) for i in care) >= 2:
            kind = "det_merged"
        elif any(x >= 0.5 and m.matched_g[i] for x, i in zip(iou, care)):
            kind = "det_duplicate"
        elif any(inside(j, i) for i in care):
            kind = "det_fragment"
        elif any(covers(j, i) or inter(i, j) >= 0.1 * D[j].area for i in care):
            kind = "det_misfit"
        else:
            kind = "det_background"
        kinds[kind] = kinds.get(kind, 0) + 1
    return IoUMisses(**kinds)


@settings(max_examples=200, deadline=None)
@given(gt=st.lists(_rect, max_size=8), pred=st.lists(_rect, max_size=10), data=st.data())
def test_kinds_follow_their_definitions(gt: list, pred: list, data: st.DataObject) -> None:
    ignore = data.draw(st.lists(st.booleans(), min_size=len(gt), max_size=len(gt)))
    m, counts = iou_misses(gt, pred, ignore), match_iou(gt, pred, ignore)
    assert (m.gt_total, m.det_total) == (counts.num_gt, counts.num_det)
    assert m.gt_matched == m.det_matched == counts.matched
    assert m == _reference(gt, pred, ignore)
