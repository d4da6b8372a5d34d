"""What the synthetic receipts say, and which installed fonts can say it.

Kept apart from the renderer so the vocabulary and the font search can change without
touching geometry. Hangul appears only when an installed font really draws it (checked by
rendering, not by file name alone), so output never contains tofu boxes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ImageFont

__all__ = ["FontSet", "Line", "find_fonts", "load_font", "receipt_lines"]

_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
_FONT_EXTS = (".ttf", ".otf", ".ttc")
_HANGUL_HINTS = ("nanum", "cjk", "unbatang", "undotum", "baekmuk", "malgun", "gulim", "batang")
_SKIP_HINTS = ("math", "extralight", "oblique", "italic", "brush", "pen", "emoji", "symbol")


@dataclass(frozen=True)
class FontSet:
    """Usable font files; an empty set means PIL's built-in font (Latin only)."""

    latin: tuple[str, ...]
    hangul: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        return [Path(p).name for p in (*self.latin, *self.hangul)]


@functools.lru_cache(maxsize=512)
def load_font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Cached font; BASIC layout so glyph placement does not depend on libraqm being present."""
    if path is None:
        try:
            return ImageFont.load_default(size)
        except (TypeError, OSError):  # old Pillow or no FreeType: fixed-size bitmap font
            return ImageFont.load_default()
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


def _draws(path: str, text: str) -> bool:
    """True when the font renders ``text`` with distinct real glyphs (not .notdef boxes)."""
    try:
        font = load_font(path, 24)
        masks = [bytes(font.getmask(ch)) for ch in text]
    except OSError:
        return False
    return all(masks) and len(set(masks)) == len(masks)


@functools.lru_cache(maxsize=4)
def find_fonts(extra_dirs: tuple[str, ...] = ()) -> FontSet:
    """Scan the usual font folders once; sorted so font choice is the same on every run."""
    files: set[str] = set()
    for d in (*extra_dirs, *_FONT_DIRS):
        base = Path(os.path.expanduser(d))
        if base.is_dir():
            files.update(str(p) for p in base.rglob("*") if p.suffix.lower() in _FONT_EXTS)
    latin, hangul = [], []
    for path in sorted(files, key=lambda p: (Path(p).name, p)):
        low = Path(path).name.lower()
        if any(h in low for h in _SKIP_HINTS):
            continue
        if any(h in low for h in _HANGUL_HINTS):
            if _draws(path, "가영수증AZ09"):
                hangul.append(path)
        elif _draws(path, "AZaz09"):
            latin.append(path)
    return FontSet(tuple(latin), tuple(hangul))


# ----------------------------------------------------------------------------- vocabulary

_STORES = ("GREEN MART", "DAILY FRESH", "CAFE LUNA", "CORNER STORE", "SUNNY BAKERY",
           "CITY PHARMACY", "BLUE OCEAN SUSHI", "MEGA MARKET", "HAPPY NOODLE", "PARK BOOKS")
_STORES_KO = ("이마트24", "행복마트", "카페 모카", "김밥천국", "우리약국", "동네편의점",
              "한솔서점", "맛나분식", "초록마트", "스타커피")
_ITEMS = ("COFFEE", "LATTE", "BAGEL", "MILK 1L", "WATER", "BREAD", "APPLE", "GREEN TEA",
          "SANDWICH", "COOKIE", "RAMEN", "RICE 5KG", "EGGS 10P", "ORANGE JUICE", "CHOCOLATE",
          "SHAMPOO", "TISSUE", "BANANA", "YOGURT", "CHIPS")
_ITEMS_KO = ("아메리카노", "카페라떼", "삼각김밥", "생수 500ml", "우유", "라면", "바나나",
             "샌드위치", "컵라면", "초코우유", "과자", "커피 원두", "김치", "두부", "계란 10구",
             "떡볶이", "볶음밥", "아이스크림")
_HEAD = ("TEL {tel}", "NO. {num}", "CASHIER {num}", "POS {pos}  #{num}", "{date}  {time}")
_HEAD_KO = ("사업자번호 {biz}", "대표 홍길동", "주소 서울시 강남구 {num}", "전화 {tel}",
            "{date} {time}", "영수증번호 {num}")
# Index 2 is the grand-total label (printed first, bold); the rest follow in random order.
_TOTALS = ("SUBTOTAL", "TAX", "TOTAL", "CASH", "CHANGE", "CARD", "DISCOUNT", "POINTS")
_TOTALS_KO = ("부가세", "할인", "합계", "받은금액", "거스름돈", "총 구매액", "카드결제", "포인트")
_FOOT = ("THANK YOU", "PLEASE COME AGAIN", "HAVE A NICE DAY", "NO REFUND WITHOUT RECEIPT")
_FOOT_KO = ("감사합니다", "교환 환불은 영수증 지참", "또 오세요", "좋은 하루 되세요")


@dataclass(frozen=True)
class Line:
    """One printed line: ``(text, align)`` segments; ``scale`` sizes the font; ``rule``
    lines (dashes) are drawn but not annotated, like separators in real ground truth."""

    segments: tuple[tuple[str, str], ...]
    scale: float = 1.0
    bold: bool = False
    rule: bool = False


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _fill(rng: np.random.Generator, template: str) -> str:
    return template.format(
        tel=f"0{rng.integers(2, 70)}-{rng.integers(100, 9999)}-{rng.integers(1000, 9999)}",
        num=str(rng.integers(10, 99999)),
        pos=str(rng.integers(1, 9)),
        biz=f"{rng.integers(100, 999)}-{rng.integers(10, 99)}-{rng.integers(10000, 99999)}",
        date=f"20{rng.integers(18, 26)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}",
        time=f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}",
    )


def _money(value: int, won: bool) -> str:
    return f"{value:,}" if won else f"{value / 100:.2f}"


def _distinct(rng: np.random.Generator, options: tuple[str, ...], k: int) -> list[str]:
    return [options[i] for i in rng.permutation(len(options))[:k]]


def receipt_lines(
    rng: np.random.Generator, n_lines: int, korean: bool, rule: str
) -> Iterator[Line]:
    """About ``n_lines`` lines: header, items with prices, totals, footer, with ``rule`` lines
    (a full-width separator such as ``-----``) between the blocks."""
    ko = (lambda: bool(rng.random() < 0.7)) if korean else (lambda: False)
    won = korean or bool(rng.random() < 0.5)
    n_head = int(rng.integers(2, 5))
    n_tot = int(rng.integers(2, 5))
    n_items = max(1, n_lines - n_head - n_tot - 5)
    yield Line(((_pick(rng, _STORES_KO if ko() else _STORES), "center"),),
               scale=float(rng.uniform(1.3, 1.9)), bold=True)
    for template in _distinct(rng, _HEAD_KO if ko() else _HEAD, n_head):
        yield Line(((_fill(rng, template), "left"),), scale=float(rng.uniform(0.8, 1.0)))
    yield Line(((rule, "left"),), rule=True)
    total = 0
    for _ in range(n_items):
        qty = int(rng.integers(1, 5))
        price = int(rng.integers(5, 300)) * 100
        total += qty * price
        name = _pick(rng, _ITEMS_KO if ko() else _ITEMS)
        amount = _money(qty * price, won)
        if rng.random() < 0.5:
            yield Line(((name, "left"), (f"{qty}", "mid"), (amount, "right")))
        else:
            yield Line(((f"{name} x{qty}", "left"), (amount, "right")))
    yield Line(((rule, "left"),), rule=True)
    labels = _TOTALS_KO if ko() else _TOTALS
    for k, label in enumerate([labels[2], *_distinct(rng, labels[:2] + labels[3:], n_tot - 1)]):
        amount = _money(total if k == 0 else total // (k + 1), won)
        yield Line(((label, "left"), (amount, "right")), bold=k == 0, scale=1.15 if k == 0 else 1.0)
    yield Line(((rule, "left"),), rule=True)
    yield Line(((_pick(rng, _FOOT_KO if ko() else _FOOT), "center"),))
