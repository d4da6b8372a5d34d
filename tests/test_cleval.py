"""Competition CLEval: the shared reference vectors, the fast paths against the literal ones,
properties, numpy inputs and the JSON loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocrtune.errors import InputError
from ocrtune.metrics import CLEvalAccumulator, evaluate_cleval, load_words_json
from ocrtune.metrics._clip import clip_convex_areas, convex_ccw
from ocrtune.metrics._cleval_shape import (
    _pccs_general,
    _pccs_quads,
    _qhull_ar,
    char_count,
    fp_cost,
    gt_char_counts,
    pred_fp_costs,
    points_in_polygons,
)
from ocrtune.metrics._polys import PolyBatch

CASES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "metric-cases"
MANIFEST = CASES_DIR / "manifest.json"
CASES = [c["dir"] for c in json.loads(MANIFEST.read_text())["cases"]] if MANIFEST.exists() else []
needs_cases = pytest.mark.skipif(not CASES, reason=f"shared metric cases not found at {CASES_DIR}")
METRICS = ("recall", "precision", "hmean")
TOL = 1e-6


def _load_case(case: str) -> tuple[dict, dict, dict]:
    d = CASES_DIR / case
    exp = json.loads((d / "expected.json").read_text())
    return load_words_json(d / "gt.json"), load_words_json(d / "pred.json"), exp


def _assert_matches(got: dict, exp: dict, case: str) -> None:
    assert list(got["per_image"]) == list(exp["per_image"]), case
    for name, e in exp["per_image"].items():
        g = got["per_image"][name]
        for m in METRICS:
            assert abs(g[m] - e[m]) <= TOL, (case, name, m, g[m], e[m])
        for k, v in e["counts"].items():
            assert g["counts"][k] == v, (case, name, k, g["counts"][k], v)
    for agg in ("image_mean", "global"):
        for m in METRICS:
            assert abs(got[agg][m] - exp[agg][m]) <= TOL, (case, agg, m, got[agg][m], exp[agg][m])


# ------------------------------------------------------------------ reference vectors
@needs_cases
@pytest.mark.parametrize("case", CASES or ["<none>"])
def test_metric_case(case: str) -> None:
    gt, pred, exp = _load_case(case)
    _assert_matches(evaluate_cleval(gt, pred), exp, case)


@needs_cases
@pytest.mark.parametrize("case", CASES or ["<none>"])
def test_metric_case_numpy_inputs(case: str) -> None:
    """The training loop passes arrays: (N, K, 2) when uniform, else a list of (n, 2) arrays."""
    gt, pred, exp = _load_case(case)

    def arrays(words: list) -> object:
        if words and len({len(w) for w in words}) == 1 and len(words[0]):
            return np.asarray(words, dtype=np.float64)
        return [np.asarray(w, dtype=np.float64) for w in words]

    got = evaluate_cleval({k: arrays(v) for k, v in gt.items()}, {k: arrays(v) for k, v in pred.items()})
    _assert_matches(got, exp, case)


@needs_cases
def test_accumulator_matches_manifest_aggregates() -> None:
    """Accumulating case by case reproduces the manifest's per-case aggregates."""
    for entry in json.loads(MANIFEST.read_text())["cases"]:
        gt, pred, _ = _load_case(entry["dir"])
        acc = CLEvalAccumulator()
        for name, words in gt.items():
            acc.update(name, words, pred.get(name))
        s = acc.summary()
        for agg in ("image_mean", "global"):
            for m in METRICS:
                assert abs(s[agg][m] - entry[agg][m]) <= TOL, (entry["dir"], agg, m)


# ------------------------------------------------------------------ spec examples
def test_spec_pcc_examples() -> None:
    tl = np.array([[10, 10], [160, 10], [160, 35], [10, 35]], float)
    n = int(gt_char_counts(PolyBatch.from_arrays([tl]))[0])
    assert n == 6
    pcc = _pccs_quads(tl[None], np.array([n]))
    assert pcc.tolist() == [[22.5 + 25 * i, 22.5] for i in range(6)]
    vertical = np.array([[100, 100], [124, 100], [124, 260], [100, 260]], float)
    assert int(gt_char_counts(PolyBatch.from_arrays([vertical]))[0]) == 7
    pcc = _pccs_quads(vertical[None], np.array([7]))
    assert pcc[:, 0].tolist() == [101.5, 104.5, 108, 111.5, 115, 118.5, 122]
    assert set(pcc[:, 1].tolist()) == {180.0}
    odd = np.array([[0, 0], [100, 0], [100, 10], [50, 10], [0, 10]], float)
    assert int(gt_char_counts(PolyBatch.from_arrays([odd]))[0]) == 10
    xs = _pccs_general(odd, 10)[:, 0]
    assert xs[0] == 3.75 and xs[1] == 11.25 and xs[-2] == 63.75 and xs[-1] == 83.75


def test_spec_fp_cost_depends_on_first_vertex() -> None:
    x0, y0, x1, y1 = 0.0, 0.0, 150.0, 25.0
    tl, tr, br, bl = [x0, y0], [x1, y0], [x1, y1], [x0, y1]
    boxes = [[tl, tr, br, bl], [tr, br, bl, tl], [br, bl, tl, tr], [bl, tl, tr, br]]
    costs = pred_fp_costs(PolyBatch.from_arrays([np.array(b) for b in boxes]))
    assert costs.tolist() == [6, 6, 6, 1]
    flat = PolyBatch.from_arrays([np.array([[0, 0], [10, 0], [20, 0], [30, 0.0]])])
    assert pred_fp_costs(flat).tolist() == [100]
    assert char_count(np.array([0.0])).tolist() == [100]
    assert fp_cost(np.array([1 / 50])).tolist() == [50]


# ------------------------------------------------------------------ fast paths == literal paths
_coord = st.integers(min_value=-30, max_value=60)
_quad = st.lists(st.tuples(_coord, _coord), min_size=4, max_size=4)


@settings(max_examples=400, deadline=None)
@given(quads=st.lists(_quad, min_size=1, max_size=20), scale=st.sampled_from([1.0, 0.37, 13.0]))
def test_aspect_integers_match_qhull(quads: list, scale: float) -> None:
    """The vectorised caliper scan + tie detection gives what Qhull's order gives, word by word."""
    arrays = [np.array(q, dtype=np.float64) * scale for q in quads]
    batch = PolyBatch.from_arrays(arrays)
    ref_ar = np.array([_qhull_ar(a.astype(np.float32)) for a in arrays])
    assert gt_char_counts(batch).tolist() == char_count(ref_ar).tolist()
    assert pred_fp_costs(batch).tolist() == fp_cost(ref_ar).tolist()


@settings(max_examples=300, deadline=None)
@given(
    x0=st.floats(-2000, 5000), y0=st.floats(-2000, 5000),
    w=st.floats(0.01, 900), h=st.floats(0.01, 900),
    order=st.sampled_from([(0, 1, 2, 3), (1, 2, 3, 0), (2, 3, 0, 1), (3, 0, 1, 2),
                           (0, 3, 2, 1), (3, 2, 1, 0), (2, 1, 0, 3), (1, 0, 3, 2)]),
)
def test_rectangle_rule_matches_qhull(x0: float, y0: float, w: float, h: float, order: tuple) -> None:
    """Axis-aligned rectangles skip Qhull via the first-edge rule; it must agree with Qhull."""
    c = np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]])[list(order)]
    ref = _qhull_ar(c.astype(np.float32))
    batch = PolyBatch.from_arrays([c])
    assert pred_fp_costs(batch).tolist() == fp_cost(np.array([ref])).tolist()
    assert gt_char_counts(batch).tolist() == char_count(np.array([ref])).tolist()


@settings(max_examples=200, deadline=None)
@given(quads=st.lists(_quad, min_size=1, max_size=10), n_char=st.integers(1, 30))
def test_quad_pccs_match_general(quads: list, n_char: int) -> None:
    pts = np.array(quads, dtype=np.float64)
    fast = _pccs_quads(pts, np.full(len(pts), n_char))
    slow = np.concatenate([_pccs_general(p, n_char) for p in pts])
    assert np.array_equal(fast, slow)


def _contains_scalar(poly: np.ndarray, x: float, y: float) -> bool:
    inside = False
    for i in range(len(poly)):
        (ax, ay), (bx, by) = poly[i], poly[i - 1]
        if (ay <= y < by or by <= y < ay) and x < (bx - ax) * (y - ay) / (by - ay) + ax:
            inside = not inside
    return inside


@settings(max_examples=200, deadline=None)
@given(
    polys=st.lists(st.lists(st.tuples(_coord, _coord), min_size=3, max_size=7), min_size=1, max_size=6),
    pts=st.lists(st.tuples(st.integers(-130, 250), st.integers(-130, 250)), min_size=1, max_size=12),
)
def test_points_in_polygons_matches_scalar(polys: list, pts: list) -> None:
    arrays = [np.array(p, dtype=np.float64) for p in polys]
    batch = PolyBatch.from_arrays(arrays)
    xy = np.array(pts, dtype=np.float64) / 4.0  # PCCs are multiples of 0.25
    pi, ki = np.meshgrid(np.arange(len(xy)), np.arange(len(arrays)), indexing="ij")
    got = points_in_polygons(xy[pi.ravel()], batch.pts[ki.ravel()])
    want = [_contains_scalar(arrays[k], *xy[p]) for p, k in zip(pi.ravel(), ki.ravel())]
    assert got.tolist() == want


@st.composite
def _convex_quad(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Integer quads near rotated rectangles (the metric's real inputs), in either orientation."""
    cx, cy = draw(st.integers(0, 80)), draw(st.integers(0, 80))
    w, h = draw(st.floats(2, 60)), draw(st.floats(2, 40))
    ang = draw(st.floats(0, np.pi))
    c, s = np.cos(ang), np.sin(ang)
    corners = [(-w, -h), (w, -h), (w, h), (-w, h)]
    pts = [
        (round(cx + c * x - s * y + draw(st.integers(-2, 2))), round(cy + s * x + c * y))
        for x, y in corners
    ]
    return pts[::-1] if draw(st.booleans()) else pts


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(_convex_quad(), _convex_quad()), min_size=1, max_size=8))
def test_convex_clip_matches_shapely(pairs: list) -> None:
    pa = np.array([a for a, _ in pairs], float)
    pb = np.array([b for _, b in pairs], float)
    ok_a, ccw_a = convex_ccw(pa)
    ok_b, ccw_b = convex_ccw(pb)
    ok = ok_a & ok_b
    got = clip_convex_areas(ccw_a[ok], ccw_b[ok])
    want = [shapely.Polygon(x).intersection(shapely.Polygon(y)).area for x, y in zip(pa[ok], pb[ok])]
    assert np.allclose(got, want, rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------ properties
@st.composite
def _grid_boxes(draw: st.DrawFn) -> list[list[list[int]]]:
    """Non-overlapping axis-aligned boxes, one per cell of a 150x60 grid, listed TL-first."""
    cell = st.tuples(st.integers(0, 5), st.integers(0, 9))
    cells = draw(st.lists(cell, min_size=1, max_size=15, unique=True))
    boxes = []
    for cx, cy in cells:
        w = draw(st.integers(4, 140))
        h = draw(st.integers(4, 50))
        x, y = cx * 150, cy * 60
        boxes.append([[x, y], [x + w, y], [x + w, y + h], [x, y + h]])
    return boxes


@settings(max_examples=60, deadline=None)
@given(boxes=_grid_boxes())
def test_perfect_prediction_scores_one(boxes: list) -> None:
    s = evaluate_cleval({"a": boxes}, {"a": [np.array(b, float) for b in boxes]})
    for agg in ("image_mean", "global"):
        assert s[agg] == {**s[agg], "recall": 1.0, "precision": 1.0, "hmean": 1.0}


_fpoly = st.lists(st.tuples(st.floats(-20, 300), st.floats(-20, 300)), min_size=0, max_size=7)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gt=st.lists(_fpoly, max_size=8), pred=st.lists(_fpoly, max_size=10))
def test_scores_stay_in_unit_interval(gt: list, pred: list) -> None:
    s = evaluate_cleval({"a": gt}, {"a": pred})
    for block in (s["per_image"]["a"], s["image_mean"], s["global"]):
        for m in METRICS:
            assert 0.0 <= block[m] <= 1.0


# ------------------------------------------------------------------ accumulator behaviour
BOX = [[0, 0], [100, 0], [100, 20], [0, 20]]


def test_missing_image_scores_zero_but_counts_globally() -> None:
    acc = CLEvalAccumulator()
    missing = acc.update("m.jpg", [BOX], None)
    assert (missing.recall, missing.precision, missing.hmean) == (0.0, 0.0, 0.0)
    assert missing.counts.num_char_gt == 5
    acc.update("p.jpg", [BOX], [BOX])
    s = acc.summary()
    assert s["image_mean"]["recall"] == 0.5
    assert s["global"]["recall"] == 0.5 and s["global"]["precision"] == 1.0
    with pytest.raises(InputError, match="scored twice"):
        acc.update("p.jpg", [BOX], [BOX])


def test_bad_polygon_input_is_located() -> None:
    with pytest.raises(InputError, match=r"x.jpg: pred\[1\]"):
        CLEvalAccumulator().update("x.jpg", [BOX], [BOX, [[0, 0, 1], [1, 1, 1]]])
    with pytest.raises(InputError, match="non-finite"):
        CLEvalAccumulator().update("x.jpg", [BOX], np.array([BOX], float) * np.nan)


# ------------------------------------------------------------------ loader
def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "words.json"
    p.write_text(text)
    return p


def test_load_words_json_keeps_file_order(tmp_path: Path) -> None:
    doc = {"images": {
        "b.jpg": {"words": {"9": {"points": [[1, 2], [3, 4]]}, "1": {"points": [], "text": "x"}}},
        "a.jpg": {"words": None},
        "c.jpg": {"words": {}},
    }}
    got = load_words_json(_write(tmp_path, json.dumps(doc)))
    assert list(got) == ["b.jpg", "a.jpg", "c.jpg"]
    assert got["b.jpg"] == [[[1.0, 2.0], [3.0, 4.0]], []]
    assert got["a.jpg"] == [] and got["c.jpg"] == []


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            '{"images": {"a.jpg": {"words": {"1": {"points": [[1, "x"]]}}}}}',
            r"images\.a\.jpg\.words\.1\.points",
        ),
        ('{"images": {"a.jpg": {"words": {"1": {"pts": []}}}}}', r"images\.a\.jpg\.words\.1\.points"),
        ('{"images": {"a.jpg": {}}}', r'images\.a\.jpg: expected an object with "words"'),
        ('{"images": {"a.jpg": {"words": [1]}}}', r"images\.a\.jpg\.words"),
        ('{"imgs": {}}', r"images"),
        ('{"images": {\n  "a.jpg": ,}}', r"words\.json:2:\d+: invalid JSON"),
    ],
)
def test_load_words_json_rejects_malformed(tmp_path: Path, text: str, pattern: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=pattern) as info:
        load_words_json(path)
    assert all(p.file == str(path) for p in info.value.problems)


def test_load_words_json_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        load_words_json(tmp_path / "nope.json")


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


def test_metrics_import_without_torch() -> None:
    """The metrics are core modules: importing them must not pull in torch."""
    import subprocess
    import sys

    code = "import sys, ocrtune.metrics; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
