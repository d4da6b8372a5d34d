"""``--granularity line``: words of one phrase merge, columns split at wide gaps stay apart."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from ocrtune.data.line_segments import WIDE_GAP, PlacedWord, segments
from ocrtune.data.synth_options import Granularity, Style, SynthOptions
from ocrtune.data.synthetic import render_receipt

SPACE = 6.0


def _word(text: str, x: float, line: int = 0, width: float = 30.0) -> PlacedWord:
    return PlacedWord(text, (int(x) + 1, 10 + 20 * line, int(x + width) - 1, 24 + 20 * line),
                      line, x, x + width, SPACE)


def test_one_space_merges_and_a_wide_gap_splits() -> None:
    milk, one_l = _word("MILK", 10), _word("1L", 10 + 30 + SPACE, width=12)
    qty = _word("2", 58 + 2 * SPACE, width=6)  # two spaces after "1L" (ends at 58): a column
    price = _word("3.20", 200)
    out = segments([price, qty, one_l, milk])  # any input order
    assert [w.text for w in out] == ["MILK 1L", "2", "3.20"]
    assert out[0].box == (11, 10, 57, 24)  # union of both ink boxes
    assert (out[0].pen_start, out[0].pen_end) == (10, 58)


def test_the_threshold_is_in_spaces() -> None:
    just_under = segments([_word("A", 0), _word("B", 30 + WIDE_GAP * SPACE - 0.01)])
    at = segments([_word("A", 0), _word("B", 30 + WIDE_GAP * SPACE)])
    assert [w.text for w in just_under] == ["A B"] and [w.text for w in at] == ["A", "B"]


def test_words_of_different_segments_never_merge_even_a_space_apart() -> None:
    amount, code = _word("3.40", 10), _word("SR", 10 + 30 + SPACE, width=12)
    assert [w.text for w in segments([amount, code])] == ["3.40 SR"]  # the gap rule alone merges them
    split = segments([replace(amount, segment=1), replace(code, segment=2)])
    assert [(w.text, w.segment) for w in split] == [("3.40", 1), ("SR", 2)]


def test_words_of_different_lines_never_merge() -> None:
    out = segments([_word("TOTAL", 10, line=3), _word("CASH", 10, line=4), _word("9.00", 46, line=3)])
    assert [(w.text, w.line) for w in out] == [("TOTAL 9.00", 3), ("CASH", 4)]


def _inside(inner: np.ndarray, outer: np.ndarray) -> bool:
    (ix0, iy0), (ix1, iy1) = inner.min(axis=0), inner.max(axis=0)
    (ox0, oy0), (ox1, oy1) = outer.min(axis=0), outer.max(axis=0)
    return ix0 >= ox0 - 0.05 and iy0 >= oy0 - 0.05 and ix1 <= ox1 + 0.05 and iy1 <= oy1 + 0.05


@pytest.mark.parametrize("style", [Style.PLAIN, Style.REAL])
def test_line_boxes_cover_their_words_on_the_same_pixels(style: Style) -> None:
    for index in range(3):
        w_img, words = render_receipt(4, index, 480, options=SynthOptions(Granularity.WORD, style))
        l_img, lines = render_receipt(4, index, 480, options=SynthOptions(Granularity.LINE, style))
        assert np.array_equal(w_img, l_img)  # granularity changes the boxes only
        assert len(lines.words) < len(words.words)
        # the words, in reading order, are the line segments' words
        assert " ".join(w.text for w in lines.words).split() == [w.text for w in words.words]
        for word in words.words:  # each word lies inside exactly one segment that says it
            holders = [seg for seg in lines.words if _inside(word.points, seg.points)
                       and word.text in seg.text.split()]
            assert len(holders) >= 1, word.text
        assert any(len(seg.text.split()) > 1 for seg in lines.words)


_AMOUNT = re.compile(r"\d{1,3}(,\d{3})+|\d+\.\d{2}")


def test_real_receipts_keep_item_and_price_columns_apart() -> None:
    """In the ``real`` layout an amount is its own segment: never merged with the item name
    or quantity printed on the same line, while the words of a multi-word name do merge."""
    amounts = merged_names = 0
    for index in range(6):
        _, ann = render_receipt(2, index, 640, options=SynthOptions(Granularity.LINE, Style.REAL))
        for seg in ann.words:
            found = _AMOUNT.search(seg.text)
            if found and "-" not in seg.text:  # dates and phone numbers aside
                assert _AMOUNT.fullmatch(seg.text), seg.text
                amounts += 1
            if seg.text in ("MILK 1L", "GREEN TEA", "ORANGE JUICE", "RICE 5KG", "EGGS 10P", "커피 원두"):
                merged_names += 1
    assert amounts > 30 and merged_names > 0


def test_word_granularity_is_the_default_and_unchanged() -> None:
    default_img, default_ann = render_receipt(1, 2, 320)
    img, ann = render_receipt(1, 2, 320, options=SynthOptions(granularity=Granularity.WORD))
    assert np.array_equal(default_img, img) and ann == default_ann
    assert all(" " not in (w.text or "") for w in ann.words)


def _tight_paper(index: int):
    from ocrtune.data.receipt_text import find_fonts
    from ocrtune.data.synth_real import frame, real_paper

    rng = np.random.default_rng([5, index])
    shot = frame(rng, 640)
    return real_paper(rng, shot.pw, shot.ph, find_fonts(), np.random.default_rng([5, index, 3])).words


def test_tight_segments_print_sroie_single_space_splits_as_their_own_boxes() -> None:
    """``--tight-segments``: tax codes after amounts and values after labels are printed one
    space from their neighbour (what the gap rule alone merges) and boxed apart."""
    from ocrtune.data.receipt_text import TAX_CODES

    codes = follows = 0
    for index in range(10):
        words = _tight_paper(index)
        for left, right in zip(words, words[1:]):
            if left.line != right.line or left.segment == right.segment:
                continue
            one_space = right.pen_start - left.pen_end < WIDE_GAP * left.space
            if right.text in TAX_CODES and _AMOUNT.fullmatch(left.text):
                assert one_space, (left.text, right.text)
                codes += 1
            elif one_space:
                follows += 1
        boxes = segments(words)
        for code in (w for w in words if w.text in TAX_CODES):
            assert any(b.text == code.text and b.box == code.box for b in boxes)  # a box of its own
    assert codes > 10 and follows > 10


def test_tight_segments_need_the_real_style_and_leave_the_rest_of_the_receipt() -> None:
    from ocrtune.errors import InputError

    with pytest.raises(InputError, match="needs --style real"):
        SynthOptions(Granularity.LINE, Style.PLAIN, tight_segments=True)
    plain = tight = 0
    for index in range(4):
        img, ann = render_receipt(6, index, 480, options=SynthOptions(Granularity.LINE, Style.REAL))
        t_img, t_ann = render_receipt(6, index, 480, options=SynthOptions(Granularity.LINE, Style.REAL,
                                                                          tight_segments=True))
        assert img.shape == t_img.shape and ann.words[0] == t_ann.words[0]  # the same receipt, its first box
        plain, tight = plain + len(ann.words), tight + len(t_ann.words)
    assert tight > plain
