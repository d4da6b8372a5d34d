"""Tests for ocrtune.geometry: areas, offsets, unclip, repair, clipping, IoU."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocrtune.errors import InputError
from ocrtune.geometry import (
    as_polygon,
    clamp_to_image,
    clip_polygon_to_image,
    is_valid,
    min_side,
    offset_polygon,
    perimeter,
    polygon_area,
    polygon_iou,
    repair_polygon,
    signed_area,
    unclip,
)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def test_area_and_perimeter_of_rectangle() -> None:
    r = rect(10, 20, 40, 30)
    assert polygon_area(r) == pytest.approx(300.0)
    assert perimeter(r) == pytest.approx(80.0)
    # Clockwise on screen (y down) is positive; reversing flips the sign.
    assert signed_area(r) == pytest.approx(300.0)
    assert signed_area(r[::-1]) == pytest.approx(-300.0)


def test_area_of_triangle_and_degenerate_inputs() -> None:
    assert polygon_area(np.array([[0, 0], [4, 0], [0, 3]], float)) == pytest.approx(6.0)
    assert polygon_area(np.array([[0, 0], [1, 1]], float)) == 0.0
    assert polygon_area(np.array([[0, 0], [1, 1], [2, 2]], float)) == 0.0
    assert perimeter(np.zeros((1, 2))) == 0.0


def test_offset_dilates_and_shrinks_by_distance() -> None:
    r = rect(0, 0, 100, 20)
    (grown,) = offset_polygon(r, 5)
    # Round joins: area = A + L*d + pi*d^2 (up to arc approximation).
    assert polygon_area(grown) == pytest.approx(2000 + 240 * 5 + math.pi * 25, rel=0.01)
    (shrunk,) = offset_polygon(r, -5)
    assert polygon_area(shrunk) == pytest.approx(90 * 10, rel=0.01)
    assert shrunk[:, 0].min() == pytest.approx(5, abs=0.01)
    assert shrunk[:, 1].max() == pytest.approx(15, abs=0.01)


def test_offset_can_vanish_or_split() -> None:
    assert offset_polygon(rect(0, 0, 100, 8), -5) == []
    # Dumbbell: two 20x20 squares joined by a 4 px bar; shrinking by 3 splits it.
    dumbbell = np.array(
        [[0, 0], [20, 0], [20, 8], [40, 8], [40, 0], [60, 0], [60, 20], [40, 20], [40, 12],
         [20, 12], [20, 20], [0, 20]],
        dtype=np.float64,
    )
    parts = offset_polygon(dumbbell, -3)
    assert len(parts) == 2
    assert polygon_area(parts[0]) == pytest.approx(196, rel=0.02)


def test_offset_drops_holes_when_dilating() -> None:
    # A square frame with a slit: dilating closes the slit, leaving an inner hole.
    frame = np.array(
        [(0, 0), (100, 0), (100, 100), (0, 100), (0, 55), (10, 55), (10, 90), (90, 90),
         (90, 10), (10, 10), (10, 45), (0, 45)],
        dtype=np.float64,
    )
    parts = offset_polygon(frame, 8)
    assert len(parts) == 1
    assert polygon_area(parts[0]) > 100 * 100


def test_unclip_grows_area_by_ratio() -> None:
    r = rect(0, 0, 50, 10)
    grown = unclip(r, 1.5)
    assert grown is not None
    d = 500 * 1.5 / 120
    assert polygon_area(grown) == pytest.approx(500 + 120 * d + math.pi * d * d, rel=0.01)
    assert unclip(np.array([[0, 0], [1, 1], [2, 2]], float), 1.5) is None


def test_repair_bow_tie_keeps_largest_part() -> None:
    bow = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], dtype=np.float64)
    assert not is_valid(bow)
    fixed = repair_polygon(bow)
    assert fixed is not None and is_valid(fixed)
    assert polygon_area(fixed) == pytest.approx(25.0)
    # Unequal lobes: the bigger one wins.
    uneven = np.array([[0, 0], [30, 10], [30, 0], [0, 4]], dtype=np.float64)
    big = repair_polygon(uneven)
    assert big is not None and big[:, 0].max() == pytest.approx(30)
    assert polygon_area(big) == pytest.approx(0.5 * 10 * (30 - 60 / 7))


def test_repair_rejects_unusable_and_keeps_valid() -> None:
    assert repair_polygon(np.array([[0, 0], [5, 5]], float)) is None
    assert repair_polygon(np.array([[0, 0], [5, 5], [10, 10]], float)) is None
    r = rect(0, 0, 3, 4)
    np.testing.assert_array_equal(repair_polygon(r), r)


def test_clip_and_clamp_to_image() -> None:
    sticking_out = rect(-10, -10, 20, 5)
    clipped = clip_polygon_to_image(sticking_out, 100, 50)
    assert clipped is not None and polygon_area(clipped) == pytest.approx(100.0)
    assert clip_polygon_to_image(rect(200, 200, 210, 210), 100, 50) is None
    clamped = clamp_to_image(sticking_out, 100, 50)
    assert clamped.min() == 0 and polygon_area(clamped) == pytest.approx(100.0)


def test_min_side_of_rotated_rectangle() -> None:
    theta = math.radians(30)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    r = rect(0, 0, 40, 6) @ rot.T + 100
    assert min_side(r) == pytest.approx(6.0, abs=0.05)


def test_polygon_iou_known_values() -> None:
    a, b = rect(0, 0, 2, 2), rect(1, 0, 3, 2)
    assert polygon_iou(a, b) == pytest.approx(1 / 3)
    assert polygon_iou(a, a) == pytest.approx(1.0)
    assert polygon_iou(a, rect(5, 5, 6, 6)) == 0.0
    assert polygon_iou(a, np.array([[0, 0], [1, 1]], float)) == 0.0


def test_as_polygon_validates() -> None:
    assert as_polygon([1, 2, 3, 4, 5, 6]).shape == (3, 2)
    with pytest.raises(InputError, match="shape"):
        as_polygon(np.zeros((3, 3)), where="polygons[2]")
    with pytest.raises(InputError, match=r"polygons\[0\].*non-finite"):
        as_polygon([[0, 0], [1, np.nan], [2, 2]], where="polygons[0]")


coord = st.floats(0, 100, allow_nan=False)
quad = st.lists(st.tuples(coord, coord), min_size=4, max_size=4)


@settings(max_examples=60, deadline=None)
@given(quad, quad)
def test_iou_symmetric_and_bounded(a: list, b: list) -> None:
    pa, pb = np.array(a), np.array(b)
    iou = polygon_iou(pa, pb)
    assert 0.0 <= iou <= 1.0
    assert iou == pytest.approx(polygon_iou(pb, pa), abs=1e-9)
