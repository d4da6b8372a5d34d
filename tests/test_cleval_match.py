"""CLEval's matching and counting rules (ocrtune.metrics.cleval_match) against a literal reading
of spec sections 7-8 on random pair matrices, and both scorers calling that one implementation."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import ocrtune.metrics.cleval as cleval
import ocrtune.tune.cleval_table as cleval_table
from ocrtune.metrics import cleval_match
from ocrtune.metrics.cleval_match import CentrePairs, CLEvalCounts, matched_pairs, tally

# Area precisions around the thresholds: exactly 0.3 (passes), the float32 just below it, and
# values whose sums land on either side of 0.3 (0.2 + the float32 below 0.1 misses it by 3e-9).
APS = [0.0, float(np.nextafter(np.float32(0.1), np.float32(0))), 0.1, 0.15, 0.2,
       float(np.nextafter(np.float32(0.3), np.float32(0))), 0.3, 0.5, 1.0]


@st.composite
def images(draw: st.DrawFn) -> tuple:
    n_gt = draw(st.integers(1, 5))
    n_det = draw(st.integers(1, 6))
    n_char = draw(st.lists(st.integers(1, 4), min_size=n_gt, max_size=n_gt))
    # For every (g, d): which of g's PCCs d contains, and the pair's area precision.
    inside = [[draw(st.lists(st.booleans(), min_size=n, max_size=n)) for _ in range(n_det)] for n in n_char]
    ap = np.array([[draw(st.sampled_from(APS)) for _ in range(n_det)] for _ in range(n_gt)], dtype=np.float32)
    fp = np.array(draw(st.lists(st.integers(1, 100), min_size=n_det, max_size=n_det)), dtype=np.int64)
    return n_char, inside, ap, fp


def literal(n_char: list[int], inside: list, ap: np.ndarray, fp: np.ndarray) -> CLEvalCounts:
    """Spec sections 7-8 as written, one matrix cell at a time."""
    n_gt, n_det = ap.shape
    c = np.array([[sum(inside[g][d]) for d in range(n_det)] for g in range(n_gt)])
    cand = (ap >= np.float32(0.3)) & (c > 0)
    match = np.zeros((n_gt, n_det), dtype=bool)
    for g in range(n_gt):
        for d in range(n_det):
            if cand[g, d] and cand[g].sum() == 1 and cand[:, d].sum() == 1:
                match[g, d] = True
        if cand[g].sum() >= 2:
            match[g] |= cand[g]
    for d in range(n_det):
        s = [g for g in range(n_gt) if c[g, d] > 0]
        if len(s) >= 2 and sum(float(ap[g, d]) for g in s) >= 0.3:
            match[s, d] = True
    tp = sum(any(inside[g][d][i] and match[g, d] for d in range(n_det)) for g in range(n_gt) for i in range(n_char[g]))
    lone = sum(int(fp[d]) for d in range(n_det) if not match[:, d].any())
    return CLEvalCounts(
        num_char_gt=sum(n_char),
        num_char_det=int(c[match].sum()) + lone,
        tp=tp,
        gran_recall=sum(max(0, int(match[g].sum()) - 1) for g in range(n_gt)),
        gran_precision=sum(max(0, int(match[:, d].sum()) - 1) for d in range(n_det)),
        num_char_fp=lone,
    )


def as_pairs(n_char: list[int], inside: list) -> CentrePairs:
    """The pairs with C > 0 in ``centre_pairs``' order (by GT word, then prediction)."""
    first = np.concatenate([[0], np.cumsum(n_char)])
    g, d, c, centre, pair = [], [], [], [], []
    for gi, rows in enumerate(inside):
        for di, row in enumerate(rows):
            hits = [first[gi] + i for i, v in enumerate(row) if v]
            if hits:
                centre += hits
                pair += [len(g)] * len(hits)
                g.append(gi), d.append(di), c.append(len(hits))
    arr = [np.array(v, dtype=np.int64) for v in (g, d, c, centre, pair)]
    return CentrePairs(*arr)


@settings(max_examples=300, deadline=None)
@given(images())
def test_rules_match_the_spec_read_literally(image: tuple) -> None:
    n_char, inside, ap_matrix, fp = image
    n_gt, n_det = ap_matrix.shape
    pairs = as_pairs(n_char, inside)
    ap = ap_matrix[pairs.g, pairs.d]
    matched = np.flatnonzero(matched_pairs(ap, pairs.g, pairs.d, n_gt, n_det))
    got = tally(pairs, matched, sum(n_char), n_gt, n_det, lambda lone: fp[lone])
    assert got == literal(n_char, inside, ap_matrix, fp)


def test_exact_thresholds() -> None:
    """AP exactly 0.3 (float32) makes a candidate; a merge sums float32 values in double."""
    g, d = np.array([0]), np.array([0])
    assert matched_pairs(np.array([0.3], np.float32), g, d, 1, 1).all()
    below = np.nextafter(np.float32(0.3), np.float32(0))
    assert not matched_pairs(np.array([below], np.float32), g, d, 1, 1).any()
    # Two words in one prediction, no AP condition on either: 0.2f + 0.1f is 0.3000000045 in
    # double and merges; with the float32 just below 0.1f the double sum is 0.29999999702, which
    # does not, though a float32 sum would round it up to 0.3f.
    g2, d2 = np.array([0, 1]), np.array([0, 0])
    assert matched_pairs(np.array([0.2, 0.1], np.float32), g2, d2, 2, 1).all()
    just_below = np.nextafter(np.float32(0.1), np.float32(0))
    assert np.float32(0.2) + just_below >= np.float32(0.3)
    assert not matched_pairs(np.array([0.2, just_below], np.float32), g2, d2, 2, 1).any()


def test_one_implementation_of_the_rules() -> None:
    """The metric and the postprocess tuner use the same matching and counting functions."""
    for module in (cleval, cleval_table):
        for name in ("centre_pairs", "area_precisions", "matched_pairs", "tally", "no_matches", "CLEvalCounts"):
            assert getattr(module, name) is getattr(cleval_match, name), (module.__name__, name)
