"""Choosing settings (grid with a cap, random, TPE) and scoring them as evaluate does."""

from __future__ import annotations

import numpy as np
import pytest

from ocrtune.errors import InputError
from ocrtune.metrics.cleval import CLEvalAccumulator, score_image
from ocrtune.metrics.iou import IoUAccumulator, match_iou
from ocrtune.metrics.iou_misses import IoUMisses, iou_misses
from ocrtune.presets.schema import Preset
from ocrtune.tune.pool import Scorer
from ocrtune.tune.search import grid_params, search, summarise
from ocrtune.tune.settings import PostSettings, full_key
from ocrtune.tune.space import parse_postprocess_space
from ocrtune.tune.stages import Floors

from .helpers import dont_care, synthetic_cache, words

CURRENT = PostSettings(0.3, 0.5, 300, False, 1.5, 2.0, 3.0)


def space(doc: dict) -> object:
    return parse_postprocess_space(doc, Preset())


def test_summarise_is_the_accumulators_image_mean_and_global():
    rng = np.random.default_rng(0)
    acc, iou = CLEvalAccumulator(), IoUAccumulator()
    rows = []
    for i in range(7):
        gt = words(i) if i != 5 else []  # an image without words: IoU's empty-image rule
        pred = [g + rng.normal(0, 2 + 2 * (i % 3), g.shape) for g in gt if rng.random() < 0.8]
        acc.update(f"{i}", gt, pred)
        iou.update(f"{i}", gt, pred, dont_care(gt))
        c, m = score_image(gt, pred), match_iou(gt, pred, dont_care(gt))
        rows.append([c.num_char_gt, c.num_char_det, c.tp, c.gran_recall, c.gran_precision, c.num_char_fp,
                     m.num_gt, m.num_det, m.matched])
    h, p, r, gh, gp, gr, ih, ip, ir, igh = summarise(np.array(rows))
    s, t = acc.summary(), iou.summary()
    assert (h, p, r) == (s["image_mean"]["hmean"], s["image_mean"]["precision"], s["image_mean"]["recall"])
    assert (gh, gp, gr) == (s["global"]["hmean"], s["global"]["precision"], s["global"]["recall"])
    assert (ih, ip, ir, igh) == (t["image_mean"]["hmean"], t["image_mean"]["precision"], t["image_mean"]["recall"],
                                 t["global"]["hmean"])
    assert 0.3 < ih < 0.99 and ih != h  # the noise moves boxes off IoU 0.5 and the two metrics differ


def test_grid_is_capped_by_fewer_points_then_an_even_subset():
    sp = space({"thresh": {"min": 0.2, "max": 0.4}, "box_thresh": {"min": 0.3, "max": 0.7},
                "box_unclip_ratio": {"min": 1.0, "max": 2.0}})
    full, notes = grid_params(sp, 5, None)
    assert len(full) == 125 and notes == []
    capped, notes = grid_params(sp, 5, 100)
    assert len(capped) == 64 and "4 values per range" in notes[0]
    listed = space({"thresh": {"values": [0.2, 0.3, 0.4]}, "min_size": {"values": [1.0, 2.0, 3.0, 4.0]}})
    some, notes = grid_params(listed, 5, 5)
    assert len(some) == 5 and some[0] == {full_key("thresh"): 0.2, full_key("min_size"): 1.0}
    assert some[-1] == {full_key("thresh"): 0.4, full_key("min_size"): 4.0} and "evenly spread" in notes[0]


def test_bad_strategy_or_trials_are_bad_input():
    sp = space({"thresh": {"values": [0.3]}})
    with pytest.raises(InputError, match="grid, random, tpe"):
        search(lambda s: np.zeros((len(s), 1, 9), np.int64), CURRENT, sp, "bayes")
    with pytest.raises(InputError, match=">= 1"):
        search(lambda s: np.zeros((len(s), 1, 9), np.int64), CURRENT, sp, "grid", trials=0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory):
    return synthetic_cache(tmp_path_factory.mktemp("tune") / "maps-val", n=6)


SPACE = {"thresh": {"values": [0.25, 0.4]}, "box_thresh": {"values": [0.3, 0.5, 0.7]},
         "box_unclip_ratio": {"values": [1.2, 1.8]}, "max_candidates": {"values": [5, 300]},
         "use_polygon": {"values": [False, True]}}


def test_results_do_not_depend_on_the_number_of_processes(cache):
    sp = space(SPACE)
    floors = Floors(3.0, 0.3)
    with Scorer(cache, floors, 1) as one, Scorer(cache, floors, 2) as two:
        a = search(one.counts, CURRENT, sp, "grid")
        b = search(two.counts, CURRENT, sp, "grid")
    assert two.jobs == 2 and len(a.tried) == 48
    assert [s.as_dict() for s in a.tried] == [s.as_dict() for s in b.tried]
    assert a.current.as_dict() == b.current.as_dict()
    assert len({round(s.hmean, 9) for s in a.tried}) > 10  # the settings matter on these maps


def test_the_scores_are_those_of_the_live_postprocessor(cache):
    """Image by image, DBPostProcessor + CLEvalAccumulator on the cached maps, as evaluate runs."""
    from ocrtune.model.postprocess import DBPostProcessor

    sp = space(SPACE)
    with Scorer(cache, Floors(3.0, 0.3), 2) as scorer:
        result = search(scorer.counts, CURRENT, sp, "grid")
    for scored in (result.current, result.best, *result.tried[::7]):
        post = DBPostProcessor(**scored.settings.values())
        acc = CLEvalAccumulator()
        iou = IoUAccumulator()
        for i, im in enumerate(cache.images):
            dets = post(cache.prob16(i).astype(np.float32), scale=im.scale, original_size=im.orig_size)
            acc.update(im.name, im.gt, [d.polygon for d in dets])
            iou.update(im.name, im.gt, [d.polygon for d in dets], im.gt_ignore)
        s, t = acc.summary(), iou.summary()
        assert scored.hmean == s["image_mean"]["hmean"] and scored.recall == s["image_mean"]["recall"]
        assert scored.precision == s["image_mean"]["precision"] and scored.global_hmean == s["global"]["hmean"]
        assert (scored.iou_hmean, scored.iou_precision, scored.iou_recall, scored.iou_global_hmean) == (
            t["image_mean"]["hmean"], t["image_mean"]["precision"], t["image_mean"]["recall"], t["global"]["hmean"])


def test_misses_are_those_of_the_live_postprocessor_whatever_the_processes(cache):
    """The breakdown shown beside the picked setting: iou_misses of DBPostProcessor's detections,
    added up over the images, the same from one process or two."""
    from ocrtune.model.postprocess import DBPostProcessor

    settings = [CURRENT, CURRENT.with_params({"thresh": 0.25, "box_thresh": 0.3}),
                CURRENT.with_params({"box_unclip_ratio": 2.5})]
    floors = Floors(3.0, 0.3)
    with Scorer(cache, floors, 1) as one, Scorer(cache, floors, 2) as two:
        a, b = one.misses(settings), two.misses(settings)
    assert a == b
    for s, got in zip(settings, a):
        post = DBPostProcessor(**s.values())
        want = IoUMisses()
        for i, im in enumerate(cache.images):
            dets = post(cache.prob16(i).astype(np.float32), scale=im.scale, original_size=im.orig_size)
            want += iou_misses(im.gt, [d.polygon for d in dets], im.gt_ignore)
        assert got == want
    assert a[0].gt_total == sum(len(im.gt) - sum(im.gt_ignore) for im in cache.images)
    assert len({m.gt_matched for m in a}) > 1, a  # the settings change what is missed


def test_tpe_and_random_are_reproducible_and_capped(cache):
    sp = space({"thresh": {"distribution": "q_uniform", "min": 0.2, "max": 0.45, "q": 0.01},
                "box_thresh": {"distribution": "q_uniform", "min": 0.3, "max": 0.7, "q": 0.01}})
    with Scorer(cache, Floors(3.0, 0.3), 1) as scorer:
        done: list[int] = []
        a = search(scorer.counts, CURRENT, sp, "tpe", trials=12, seed=3, progress=lambda d, t: done.append(d))
        b = search(scorer.counts, CURRENT, sp, "tpe", trials=12, seed=3)
        r = search(scorer.counts, CURRENT, sp, "random", trials=9, seed=3)
    assert len(a.tried) == 12 and len(r.tried) == 9
    assert [s.params for s in a.tried] == [s.params for s in b.tried]
    assert done[0] == 0 and done[-1] == 12
    assert len({tuple(s.params.values()) for s in a.tried}) > 8  # rounds do not repeat the random start


def test_a_best_value_at_the_end_of_its_range_is_pointed_out():
    from ocrtune.tune.api import _edges
    from ocrtune.tune.search import Scored

    sp = space({"thresh": {"min": 0.2, "max": 0.4}, "box_thresh": {"values": [0.3, 0.5, 0.7]},
                "use_polygon": {"values": [False, True]}})
    best = Scored(1, CURRENT.with_params({full_key("thresh"): 0.3, full_key("box_thresh"): 0.7,
                                          full_key("use_polygon"): True}), {}, *[0.9] * 10)
    assert _edges(sp, best) == ["box_thresh 0.7 is the highest value searched: the best may lie beyond it (widen --space)"]
