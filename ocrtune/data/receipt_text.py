"""What the synthetic receipts say, and which installed fonts can say it.

Kept apart from the renderer so the vocabulary and the font search can change without
touching geometry. Hangul appears only when an installed font really draws it (checked by
rendering, not by file name alone), so output never contains tofu boxes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
from PIL import ImageFont

__all__ = ["Col", "FontSet", "Graphic", "Line", "TIGHT", "find_fonts", "load_font", "receipt_lines",
           "real_receipt_lines"]

#: Inside a segment's text: printed as one space, annotated as two segments (SROIE boxes a tax
#: code after its amount, or a value right after its label, apart at a single space).
TIGHT = "\x1f"

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
class Col:
    """A column stop at a fraction ``at`` of the printable width: the text ends there
    (``right``, as amounts do) or starts there."""

    at: float
    right: bool = True


class Graphic(str, Enum):
    """Non-text lines of the ``real`` style: drawn, never annotated."""

    LOGO = "logo"
    BARCODE = "barcode"
    RULE_DASH = "rule-dash"
    RULE_DOT = "rule-dot"
    RULE_SOLID = "rule-solid"
    RULE_DOUBLE = "rule-double"
    RULE_CHARS = "rule-chars"  # a character repeated across the width (its ``segments[0]``)


@dataclass(frozen=True)
class Line:
    """One printed line: ``(text, align)`` segments, align ``left|right|center|mid`` or a
    ``Col`` (a ``TIGHT`` in a text splits it where it prints one space); ``scale`` sizes the
    font; ``rule`` lines (dashes) and ``graphic`` lines are drawn but not annotated, like
    separators, logos and barcodes in real ground truth."""

    segments: tuple[tuple[str, str | Col], ...]
    scale: float = 1.0
    bold: bool = False
    rule: bool = False
    graphic: Graphic | None = None


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


# ----------------------------------------------------------------- the ``real`` style's text

_TITLES = ("TAX INVOICE", "CASH BILL", "RECEIPT", "SIMPLIFIED TAX INVOICE", "OFFICIAL RECEIPT")
_TITLES_KO = ("영수증", "신용카드 매출전표", "현금영수증", "간이영수증")
_COMPANY = ("SDN BHD", "CO., LTD.", "ENTERPRISE", "TRADING", "(M) SDN BHD")
_STREETS = ("JALAN SAGU", "MAIN STREET", "JALAN PERMAS", "HARBOUR ROAD", "TAMAN DAYA", "KING AVE")
_CITIES = ("JOHOR BAHRU", "KUALA LUMPUR", "PETALING JAYA", "SEOUL", "BUSAN", "SPRINGFIELD")
_ADDRESS = ("NO. {num}, {street} {small},", "{zip} {city}", "TEL: {tel}", "GST REG NO: {biz}",
            "CO. REG: {biz}", "FAX: {tel}")
_ADDRESS_KO = ("주소 서울시 강남구 {num}", "사업자번호 {biz}", "대표 홍길동", "전화 {tel}",
               "부산시 해운대구 {small}번길")
_META = ("DATE", "TIME", "CASHIER", "BILL NO", "TABLE", "MEMBER", "INVOICE NO", "TERMINAL")
_META_KO = ("일시", "계산원", "영수증번호", "테이블", "단말기", "회원번호")
_COLUMNS = (("ITEM", "QTY", "PRICE", "AMOUNT"), ("DESCRIPTION", "QTY", "U/PRICE", "TOTAL"),
            ("CODE/DESC", "QTY", "PRICE", "AMOUNT"))
_COLUMNS_KO = (("품명", "수량", "단가", "금액"), ("상품명", "수량", "단가", "금액"))
_TOTALS_REAL = ("TOTAL", "SUBTOTAL", "GST 6%", "ROUNDING ADJ", "CASH", "CHANGE", "DISCOUNT",
                "SERVICE CHARGE 10%", "TOTAL QTY")
_FOOT_REAL = ("THANK YOU", "PLEASE COME AGAIN", "GOODS SOLD ARE NOT RETURNABLE",
              "THANK YOU. PLEASE COME AGAIN!", "KEEP THIS RECEIPT FOR EXCHANGE", "HAVE A NICE DAY")
_RULES = (Graphic.RULE_DASH, Graphic.RULE_DOT, Graphic.RULE_SOLID, Graphic.RULE_DOUBLE,
          Graphic.RULE_CHARS)


def _value(rng: np.random.Generator, label: str) -> str:
    return _fill(rng, {"DATE": "{date}", "TIME": "{time}", "일시": "{date} {time}"}.get(
        label, "{num}" if rng.random() < 0.6 else "CS{pos}-{num}"))


TAX_CODES = ("SR", "S", "Z", "ZR", "T", "E", "*")


@dataclass(frozen=True)
class TightPairs:
    """Which of SROIE's single-space splits one receipt prints (``TIGHT``): a tax code after
    each item's amount (and after the totals'), values right after their labels, and the qty /
    price / amount of an item row (and their headings) as one compact right-aligned block."""

    code: str | None
    totals_coded: bool
    values_follow: bool
    compact: bool
    rng: np.random.Generator = field(repr=False, compare=False)  # the codes' own draws

    @classmethod
    def draw(cls, rng: np.random.Generator) -> TightPairs:
        code = _pick(rng, TAX_CODES) if rng.random() < 0.6 else None
        return cls(code, bool(rng.random() < 0.5), bool(rng.random() < 0.5), bool(rng.random() < 0.5), rng)

    def coded(self, amount: str, totals: bool = False) -> str:
        if self.code is None or (totals and not self.totals_coded):
            return amount
        code = self.code if self.rng.random() < 0.85 else _pick(self.rng, TAX_CODES)  # mostly one rate a receipt
        return f"{amount}{TIGHT}{code}"


def real_receipt_lines(
    rng: np.random.Generator, n_lines: int, korean: bool, tight: np.random.Generator | None = None
) -> Iterator[Line]:
    """About ``n_lines`` lines of a printed receipt: logo, store, address, title, key/value
    meta data, a column header and item rows (item / qty / price / amount columns, amounts
    right-aligned), totals, footer and a barcode, with graphic or character rules between.

    ``tight``: a generator of its own for SROIE's single-space splits (``TightPairs``), so
    the receipt drawn from ``rng`` is otherwise the one drawn without them."""
    pairs = TightPairs.draw(tight) if tight is not None else None
    ko = (lambda: bool(rng.random() < 0.7)) if korean else (lambda: False)
    won = korean or bool(rng.random() < 0.4)
    titled = bool(rng.random() < 0.35)  # "Date :" rather than "DATE:"
    case = (lambda t: t.title()) if titled else (lambda t: t)
    colon = (":", "")[int(rng.integers(2))]  # no lone ":" word: too small to box well
    rule_kind = _RULES[int(rng.integers(len(_RULES)))]
    rule_char = "-=*.~"[int(rng.integers(5))]

    def rule() -> Line:
        kind = rule_kind if rng.random() < 0.7 else _RULES[int(rng.integers(len(_RULES)))]
        return Line(((rule_char, "left"),), rule=True, graphic=kind)

    logo, barcode = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    n_addr, n_meta, n_tot = int(rng.integers(1, 4)), int(rng.integers(2, 5)), int(rng.integers(2, 6))
    layout = ("4col", "3col", "2line")[int(rng.integers(3))]
    fixed = 1.6 + n_addr + 1 + 1 + n_meta + 1 + 1 + 1 + n_tot + 1 + 2 + 3 * logo + 3.5 * barcode
    n_items = max(1, int((n_lines - fixed) / (2 if layout == "2line" else 1)))

    if logo:
        yield Line((), scale=float(rng.uniform(2.2, 3.6)), graphic=Graphic.LOGO)
    name = _pick(rng, _STORES_KO if ko() else _STORES)
    if not korean and rng.random() < 0.5:
        name = f"{name} {_pick(rng, _COMPANY)}"
    yield Line(((name, "center"),), scale=float(rng.uniform(1.1, 1.6)), bold=True)
    for template in _distinct(rng, _ADDRESS_KO if ko() else _ADDRESS, n_addr):
        text = template.format(num=rng.integers(1, 300), street=_pick(rng, _STREETS),
                               small=rng.integers(1, 40), zip=rng.integers(10000, 99999),
                               city=_pick(rng, _CITIES), tel=_fill(rng, "{tel}"), biz=_fill(rng, "{biz}"))
        yield Line(((text, "center"),), scale=float(rng.uniform(0.8, 0.95)))
    yield rule()
    if rng.random() < 0.6:
        yield Line(((_pick(rng, _TITLES_KO if ko() else _TITLES), "center"),), bold=True)
    value_at = Col(float(rng.uniform(0.28, 0.4)), right=False)
    for label in _distinct(rng, _META_KO if ko() else _META, n_meta):
        if pairs is not None and pairs.values_follow:
            yield Line(((f"{case(label)}{colon}{TIGHT}{_value(rng, label)}", "left"),))
        else:
            yield Line(((case(label) + colon, "left"), (_value(rng, label), value_at)))
    yield rule()
    stops = {"4col": (0.52, 0.76, 1.0), "3col": (0.62, 1.0), "2line": (0.5, 0.76, 1.0)}[layout]
    heads = _pick_row(rng, _COLUMNS_KO if ko() else _COLUMNS)
    bold_head = bool(rng.random() < 0.5)
    if layout == "3col":  # no unit price
        heads = (heads[0], heads[1], heads[3])
    compact = pairs is not None and pairs.compact and layout != "2line"
    if compact:  # the numbers' headings a space apart, right-aligned over the rows' numbers
        yield Line(((case(heads[0]), "left"), (TIGHT.join(case(h) for h in heads[1:]), Col(1.0))), bold=bold_head)
    elif layout == "2line":  # as the item rows: code and name, then qty, unit price and amount
        yield Line(((case(heads[0]), "left"), (case(heads[2]), Col(stops[1])), (case(heads[3]), Col(1.0))),
                   bold=bold_head)
        yield Line(((case(heads[1]), Col(0.22)),), bold=bold_head)
    else:
        yield Line(((case(heads[0]), "left"), *((case(h), Col(s)) for h, s in zip(heads[1:], stops))),
                   bold=bold_head)
    yield rule()
    total = qty_total = 0
    for _ in range(n_items):
        qty = int(rng.integers(1, 6))
        price = int(rng.integers(5, 300)) * (100 if won else 10)
        total += qty * price
        qty_total += qty
        item = _pick(rng, _ITEMS_KO if ko() else _ITEMS)
        unit, amount = _money(price, won), _money(qty * price, won)
        if pairs is not None:
            amount = pairs.coded(amount)
        if compact:
            numbers = (str(qty), unit, amount) if layout == "4col" else (str(qty), amount)
            yield Line(((item, "left"), (TIGHT.join(numbers), Col(1.0))))
        elif layout == "4col":
            yield Line(((item, "left"), (str(qty), Col(stops[0])), (unit, Col(stops[1])), (amount, Col(1.0))))
        elif layout == "3col":
            yield Line(((item, "left"), (str(qty), Col(stops[0])), (amount, Col(1.0))))
        else:
            code = "".join(str(d) for d in rng.integers(0, 10, size=13))
            yield Line(((code, "left"), (item, Col(0.4, right=False))))
            yield Line(((f"{qty} PC" if not korean else f"{qty}개", Col(0.22)), (unit, Col(stops[1])),
                        (amount, Col(1.0))))
    yield rule()
    label_at: str | Col = "left" if rng.random() < 0.5 else Col(float(rng.uniform(0.58, 0.7)))
    korean_totals = ko()
    others = _TOTALS_KO[:2] + _TOTALS_KO[3:] if korean_totals else _TOTALS_REAL[1:]
    labels = _distinct(rng, others, n_tot - 1)
    for k, label in enumerate([_TOTALS_KO[2] if korean_totals else "TOTAL", *labels]):
        amount = _money(total if k == 0 else max(1, total // (k + 2)), won)
        if label in ("TOTAL QTY",):
            amount = str(qty_total)
        elif pairs is not None:
            amount = pairs.coded(amount, totals=True)
        yield Line(((case(label) + colon, label_at), (amount, Col(1.0))), bold=k == 0,
                   scale=float(rng.uniform(1.0, 1.3)) if k == 0 else 1.0)
    yield rule()
    for text in _distinct(rng, _FOOT_KO if ko() else _FOOT_REAL, int(rng.integers(1, 3))):
        yield Line(((text, "center"),), scale=0.9)
    if barcode:
        yield Line((), scale=float(rng.uniform(2.0, 3.0)), graphic=Graphic.BARCODE)
        if rng.random() < 0.7:
            yield Line((("".join(str(d) for d in rng.integers(0, 10, size=12)), "center"),), scale=0.85)


def _pick_row(rng: np.random.Generator, rows: tuple[tuple[str, ...], ...]) -> tuple[str, ...]:
    return rows[int(rng.integers(len(rows)))]
