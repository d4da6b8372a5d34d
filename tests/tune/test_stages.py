"""Staged postprocess + CLEval: every setting gives exactly what DBPostProcessor and score_image give."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from ocrtune.metrics.cleval import load_words_json, score_image
from ocrtune.metrics.iou import match_iou
from ocrtune.model.postprocess import DBPostProcessor, as_float16, quantize
from ocrtune.tune.cleval_table import PairTable
from ocrtune.tune.settings import PostSettings
from ocrtune.tune.stages import Floors, ImageStages, thresh_class

from .helpers import dont_care, model_map, words

CASES = Path(__file__).resolve().parents[2].parent / "shared" / "metric-cases"


def test_float16_storage_changes_no_detection():
    """A map stored as float16 and read back postprocesses exactly like the live float32 map."""
    gt = words(1)
    live = model_map(gt, (192, 256), seed=5, scale=0.8)
    stored = as_float16(live)
    assert stored.dtype == np.float16
    assert np.array_equal(quantize(live), stored.astype(np.float32))
    assert np.array_equal(quantize(live), live.astype(np.float16).astype(np.float32))  # numpy's rounding
    post = DBPostProcessor(thresh=0.3, box_thresh=0.4)
    a, b = post(live, scale=0.8, original_size=(240, 320)), post(stored, scale=0.8, original_size=(240, 320))
    assert len(a) == len(b) > 5
    for x, y in zip(a, b):
        assert x.score == y.score and np.array_equal(x.polygon, y.polygon)


def test_thresholds_that_split_the_float16_grid_alike_share_contours():
    assert thresh_class(0.3) == thresh_class(0.30001)  # no float16 value between them
    assert thresh_class(0.3) != thresh_class(0.301)
    assert thresh_class(0.2) > thresh_class(0.3)  # more values above a lower threshold


@pytest.mark.parametrize("use_polygon", [False, True])
def test_every_setting_matches_the_live_postprocessor(use_polygon):
    gt = words(2)
    prob = model_map(gt, (192, 256), seed=7, scale=0.8)
    ignore = dont_care(gt)
    st = ImageStages(as_float16(prob), (0.8, 0.8), (240, 320), gt, ignore, Floors(min_size=0.0, box_thresh=0.2))
    grid = itertools.product((0.2, 0.35, 0.5), (0.2, 0.45, 0.7), (1.2, 1.8), (0.0, 3.0, 6.0), (4, 300))
    seen, ious = set(), set()
    for t, b, r, m, k in grid:
        s = PostSettings(t, b, k, use_polygon, r, r, m)
        post = DBPostProcessor(**s.values())
        live = post(prob, scale=0.8, original_size=(240, 320))
        staged = st.detections(s)
        assert [d.score for d in live] == [sc for _, sc in staged], s
        for d, (poly, _) in zip(live, staged):
            assert np.array_equal(d.polygon, poly), s
        counts = st.counts(s)
        assert counts.cleval == score_image(gt, [d.polygon for d in live]), s
        assert counts.iou == match_iou(gt, [d.polygon for d in live], ignore), s
        seen.add(len(live))
        ious.add(counts.iou.matched)
    assert len(seen) > 3 and len(ious) > 3  # the settings really change the detections and their IoU matches
    # contours once per threshold, unclipping once per (threshold, ratio)
    assert st.misses == {"contours": 3, "unclip": 6}


def test_settings_below_the_floors_are_refused():
    gt = words(0)
    st = ImageStages(as_float16(model_map(gt, (192, 256), 1, 0.8)), (0.8, 0.8), (240, 320), gt, dont_care(gt),
                     Floors(3.0, 0.4))
    with pytest.raises(ValueError, match="floors"):
        st.counts(PostSettings(0.3, 0.3, 100, False, 1.5, 2.0, 3.0))


def test_pair_table_scores_every_subset_like_score_image():
    rng = np.random.default_rng(0)
    for seed in range(3):
        gt = words(seed)
        prob = model_map(gt, (192, 256), seed=seed, scale=0.8)
        for use_polygon in (False, True):
            dets = DBPostProcessor(thresh=0.25, box_thresh=0.0, min_size=0, max_candidates=10**6, use_polygon=use_polygon,
                                   polygon_unclip_ratio=1.6)(prob, scale=0.8, original_size=(240, 320))
            polys = [d.polygon for d in dets]
            table = PairTable(gt, polys)
            for trial in range(25):
                sel = np.arange(len(polys)) if trial == 0 else np.flatnonzero(rng.random(len(polys)) < rng.uniform(0.05, 1))
                assert table.counts(sel) == score_image(gt, [polys[i] for i in sel])


def test_pair_table_on_the_shared_metric_cases():
    """The reference vectors (splits, merges, polygons, misses): every case, a few subsets each."""
    manifest = CASES / "manifest.json"
    if not manifest.exists():
        pytest.skip(f"shared metric cases not found at {CASES}")
    rng = np.random.default_rng(1)
    checked = 0
    for case in json.loads(manifest.read_text())["cases"]:
        gt = load_words_json(CASES / case["dir"] / "gt.json")
        pred = load_words_json(CASES / case["dir"] / "pred.json")
        for name, words_gt in gt.items():
            preds = [np.asarray(p, dtype=np.float64) for p in pred.get(name, []) if len(p) >= 4]
            table = PairTable(words_gt, preds)
            for trial in range(6):
                sel = np.arange(len(preds)) if trial == 0 else np.flatnonzero(rng.random(len(preds)) < 0.6)
                assert table.counts(sel) == score_image(words_gt, [preds[i] for i in sel]), (case["dir"], name)
                checked += 1
    assert checked > 50


def test_decisions_near_the_threshold_are_settled_by_score_images_own_areas(monkeypatch):
    """With the summation-noise bound blown up, every near decision takes the recomputation path;
    the counts stay score_image's."""
    import ocrtune.tune.cleval_table as ct

    monkeypatch.setattr(ct, "_SUM_ORDER", 1.0)
    rng = np.random.default_rng(2)
    gt = words(4)
    prob = model_map(gt, (192, 256), seed=4, scale=0.8)
    dets = DBPostProcessor(thresh=0.2, box_thresh=0.0, min_size=0, max_candidates=10**6)(prob, scale=0.8,
                                                                                         original_size=(240, 320))
    polys = [d.polygon for d in dets]
    table = ct.PairTable(gt, polys)
    for _ in range(20):
        sel = np.flatnonzero(rng.random(len(polys)) < 0.7)
        assert table.counts(sel) == score_image(gt, [polys[i] for i in sel])
    assert table.recomputed > 0
