"""Tests for ocrtune.data.targets: DB probability/threshold maps and masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon

from ocrtune.data.targets import build_db_targets, distance_to_edges, shrink_distance
from ocrtune.errors import InputError


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def pixel_centres(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.stack([xs, ys], axis=1).astype(np.float64)


def test_shapes_dtypes_and_far_field() -> None:
    t = build_db_targets([rect(20, 20, 120, 50)], [False], (100, 200))
    for m in t.as_dict().values():
        assert m.shape == (100, 200) and m.dtype == np.float32
    assert t.prob_map[90, 190] == 0.0
    assert t.thresh_map[90, 190] == pytest.approx(0.3)
    assert t.thresh_mask[90, 190] == 0.0
    assert t.prob_mask.min() == 1.0
    assert not t.ignored.any()


def test_prob_map_is_the_shrunk_polygon() -> None:
    poly = rect(20, 20, 120, 50)
    d = shrink_distance(poly, 0.4)
    assert d == pytest.approx(3000 * 0.84 / 260)
    t = build_db_targets([poly], None, (100, 200))
    inside = pixel_centres(t.prob_map == 1)
    assert inside[:, 0].min() >= 20 + d - 0.5 and inside[:, 0].max() <= 120 - d + 0.5
    assert inside[:, 1].min() >= 20 + d - 0.5 and inside[:, 1].max() <= 50 - d + 0.5
    assert t.prob_map[35, 70] == 1.0
    assert set(np.unique(t.prob_map)) == {0.0, 1.0}
    # Shrunk area: (100 - 2d) x (30 - 2d) pixels, within rasterisation slack.
    assert len(inside) == pytest.approx((100 - 2 * d) * (30 - 2 * d), rel=0.1)


def test_thresh_map_values_and_mask() -> None:
    poly = rect(40, 40, 140, 70)
    d = shrink_distance(poly, 0.4)
    t = build_db_targets([poly], None, (120, 200))
    tm = t.thresh_map
    assert tm.min() >= 0.3 - 1e-6 and tm.max() <= 0.7 + 1e-6
    # On an edge the distance is 0: thresh_max. Half-way to D: the mid value.
    assert tm[40, 90] == pytest.approx(0.7)
    assert tm[55, 40] == pytest.approx(0.7)
    assert tm[round(40 - d / 2), 90] == pytest.approx(0.5, abs=0.4 / d)
    # Centre of the polygon is further than D from every edge: thresh_min.
    assert tm[55, 90] == pytest.approx(0.3)
    # Mask covers the dilated polygon: a pixel d - 1 outside is in, d + 1 outside is out.
    assert t.thresh_mask[55, math.floor(140 + d - 1)] == 1.0
    assert t.thresh_mask[55, math.ceil(140 + d + 1)] == 0.0
    assert t.thresh_mask[55, 90] == 1.0
    assert tm[t.thresh_mask == 0].max() == pytest.approx(0.3)


def test_thresh_map_matches_exact_distance() -> None:
    poly = np.array([[30, 30], [110, 40], [105, 70], [28, 60]], dtype=np.float64)
    d = shrink_distance(poly, 0.4)
    t = build_db_targets([poly], None, (100, 140))
    ring = Polygon(poly).exterior
    ys, xs = np.nonzero(t.thresh_mask)
    pick = np.random.default_rng(0).choice(len(ys), 200, replace=False)
    for y, x in zip(ys[pick], xs[pick]):
        dist = ring.distance(shapely.Point(float(x), float(y)))
        expect = 0.3 + 0.4 * (1 - min(dist / d, 1.0))
        assert t.thresh_map[y, x] == pytest.approx(expect, abs=1e-5)


def test_distance_to_edges_against_shapely_and_chunking(monkeypatch) -> None:
    poly = np.array([[3, 2], [17, 5], [12, 14], [5, 11], [2, 7]], dtype=np.float64)
    xs, ys = np.arange(-2, 20), np.arange(-1, 17)
    full = distance_to_edges(poly, xs, ys)
    ring = Polygon(poly).exterior
    expect = np.array([[ring.distance(shapely.Point(x, y)) for x in xs] for y in ys])
    np.testing.assert_allclose(full, expect, atol=1e-9)
    monkeypatch.setattr("ocrtune.data.targets._MAX_PAIRS", 50)  # one edge per chunk
    np.testing.assert_allclose(distance_to_edges(poly, xs, ys), full)


def test_overlapping_polygons_max_merge() -> None:
    a, b = rect(20, 20, 100, 45), rect(60, 35, 150, 60)
    both = build_db_targets([a, b], None, (100, 200))
    only_a = build_db_targets([a], None, (100, 200))
    only_b = build_db_targets([b], None, (100, 200))
    np.testing.assert_array_equal(both.thresh_map, np.maximum(only_a.thresh_map, only_b.thresh_map))
    np.testing.assert_array_equal(both.prob_map, np.maximum(only_a.prob_map, only_b.prob_map))


def test_ignored_polygon_zeroes_prob_mask_only_there() -> None:
    keep, drop = rect(10, 10, 90, 40), rect(110, 10, 190, 40)
    t = build_db_targets([keep, drop], [False, True], (60, 220))
    assert t.ignored.tolist() == [False, True]
    assert t.prob_mask[25, 150] == 0.0 and t.prob_mask[25, 50] == 1.0
    assert t.prob_map[25, 150] == 0.0 and t.prob_map[25, 50] == 1.0
    # Ignored polygons do not draw threshold borders either.
    assert t.thresh_mask[:, 100:].sum() == 0
    assert t.prob_mask.sum() == pytest.approx(60 * 220 - 81 * 31, rel=0.02)


def test_tiny_text_is_ignored() -> None:
    t = build_db_targets([rect(10, 10, 60, 16)], None, (40, 80), min_text_size=8)
    assert t.ignored.tolist() == [True]
    assert t.prob_map.sum() == 0 and t.prob_mask[13, 30] == 0.0
    kept = build_db_targets([rect(10, 10, 60, 16)], None, (40, 80), min_text_size=4)
    assert kept.ignored.tolist() == [False] and kept.prob_map.sum() > 0


@pytest.mark.parametrize(
    "bad",
    [
        np.array([[5, 5], [50, 5], [50, 5], [5, 5]], float),  # zero area
        np.array([[5, 5], [25, 15], [45, 25]], float),  # collinear
        np.array([[5, 5], [40, 30]], float),  # two points
        np.array([[5, 5]], float),  # one point
        np.zeros((0, 2)),  # empty
    ],
)
def test_degenerate_polygons_are_ignored_without_crashing(bad: np.ndarray) -> None:
    good = rect(60, 40, 110, 70)
    t = build_db_targets([bad, good], None, (100, 120))
    assert t.ignored.tolist() == [True, False]
    assert t.prob_map[:, :58].sum() == 0
    assert t.prob_map[55, 85] == 1.0


def test_needle_polygon_with_sub_pixel_shrink_is_ignored() -> None:
    # Two needles: big bounding box, tiny area/perimeter, so D < 1 px. Its kernel would be a
    # rasterised line spilling outside the polygon; it must be don't-care instead.
    arrow = np.array([[10, 10], [110, 50], [13, 13], [50, 110]], dtype=np.float64)
    assert shrink_distance(arrow, 0.4) < 1.0
    t = build_db_targets([arrow], None, (128, 128))
    assert t.ignored.tolist() == [True]
    assert t.prob_map.sum() == 0 and t.prob_mask[11, 11] == 0.0


def test_bow_tie_is_repaired_not_dropped() -> None:
    bow = np.array([[10, 10], [70, 50], [70, 10], [10, 50]], dtype=np.float64)
    t = build_db_targets([bow], None, (60, 80))
    assert t.ignored.tolist() == [False]
    assert t.prob_map.sum() > 0


def test_polygons_outside_or_across_the_border() -> None:
    t = build_db_targets([rect(-30, -10, 40, 30), rect(500, 500, 600, 540)], None, (50, 60))
    assert t.prob_map[10, 10] == 1.0
    assert t.thresh_map[29, 20] > 0.6
    assert t.ignored.tolist() == [False, False]


def test_bad_arguments_raise_input_error() -> None:
    with pytest.raises(InputError, match="ignore"):
        build_db_targets([rect(0, 0, 10, 10)], [False, True], (20, 20))
    with pytest.raises(InputError, match="shape"):
        build_db_targets([], None, (0, 20))
    with pytest.raises(InputError, match="thresh_min"):
        build_db_targets([], None, (20, 20), thresh_min=0.8, thresh_max=0.7)
    with pytest.raises(InputError, match=r"polygons\[1\]"):
        build_db_targets([rect(0, 0, 10, 10), np.zeros((4, 3))], None, (20, 20))


coord = st.floats(0, 127, allow_nan=False)
quads = st.lists(st.lists(st.tuples(coord, coord), min_size=4, max_size=4), max_size=5)


@settings(max_examples=60, deadline=None)
@given(quads)
def test_prob_support_stays_inside_polygons(raw: list) -> None:
    polys = [np.array(q, dtype=np.float64) for q in raw]
    t = build_db_targets(polys, None, (128, 128))
    assert t.thresh_map.min() >= 0.3 - 1e-6 and t.thresh_map.max() <= 0.7 + 1e-6
    assert set(np.unique(t.prob_mask)) <= {0.0, 1.0}
    if not t.prob_map.any():
        return
    kept = [shapely.make_valid(Polygon(p)) for p, ign in zip(polys, t.ignored) if not ign]
    union = shapely.union_all(kept)
    centres = pixel_centres(t.prob_map > 0)
    inside = shapely.contains_xy(union, centres[:, 0], centres[:, 1])
    assert inside.all(), centres[~inside][:5]
    # The positive region is also covered by the threshold mask.
    assert (t.thresh_mask[t.prob_map > 0] == 1).all()
