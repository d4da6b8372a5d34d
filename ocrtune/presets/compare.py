"""Parameter diffs between presets, and blend arithmetic.

Both work on flattened dotted keys of fully resolved presets (defaults filled in), so a value
left implicit in one file still compares against an explicit one in another. Parameters change
by a percentage (``pct_change``, also the sweep report's); scores (``SCORE_KEYS``) differ in
percentage points whatever unit they are stated in, and identifiers such as ``seed``
(``NO_PERCENT_KEYS``) have no % change at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Sequence

from ocrtune.errors import InputError
from ocrtune.presets.schema import Preset

# Keys that describe a preset rather than configure training.
NOT_SETTINGS = ("description", "reported.note")
NOT_BLENDED = ("description", "seed", "reported")
# Integers that must stay on a grid when blended (the schema requires multiples of 32).
BLEND_STEP = {"datasets.image_size": 32}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b.c": value}``; lists stay values."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))
        elif v is None and key == "reported":
            continue
        else:
            out[key] = v
    return out


def settings(preset: Preset) -> dict[str, Any]:
    flat = flatten(preset.model_dump(mode="json"))
    return {k: v for k, v in flat.items() if not any(k == n or k.startswith(n + ".") for n in NOT_SETTINGS)}


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def pct_change(base: Any, value: Any) -> float | None:
    """Relative change in percent; None where it is undefined (non-numeric or base 0)."""
    if not (is_number(base) and is_number(value)) or base == 0:
        return None
    return (value - base) / abs(base) * 100.0


# --- scores and units --------------------------------------------------------------------
#
# Scores are compared in percentage points, never as a % of a percentage. Presets state them in
# percent (``reported.hmean: 96.53``), runs in fractions (``run.best.hmean: 0.9653``, as
# summary.json has them); the key says which.

# Scores stated in percent (a preset's ``reported`` block; the schema's Percent type).
PERCENT_SCORE_KEYS = ("reported.hmean", "reported.precision", "reported.recall")
# Scores stated as fractions (a run's outcome, from summary.json).
FRACTION_SCORE_KEYS = ("run.best.hmean", "run.best.precision", "run.best.recall", "run.best.iou_hmean")
SCORE_KEYS = PERCENT_SCORE_KEYS + FRACTION_SCORE_KEYS
# Numbers that are not quantities (identifiers, positions, machine resources): a % change of
# them means nothing, so they only show the changed value.
NO_PERCENT_KEYS = (
    "seed",
    "dataloader.num_workers",
    "trainer.devices",
    "trainer.num_nodes",
    "reported.epoch",
    "run.best_epoch",
)
# Where a row's reference has no value of its own, the score it is measured against: a run's
# best H-mean against the H-mean a preset reports (``compare baseline RUN``).
SCORE_COUNTERPART = {f"run.best.{m}": f"reported.{m}" for m in ("hmean", "precision", "recall")}


def is_score(key: str) -> bool:
    return key in SCORE_KEYS


def score_fraction(key: str, value: Any) -> float | None:
    """A score of ``key`` as a fraction (0.9653), whichever unit the key states it in; None for
    a missing or non-numeric value or a key that is not a score."""
    if not is_score(key) or not is_number(value):
        return None
    return float(value) / 100.0 if key in PERCENT_SCORE_KEYS else float(value)


def score_percent(key: str, value: Any) -> float | None:
    """A score of ``key`` in percent (96.53), the unit scores are shown in."""
    f = score_fraction(key, value)
    return None if f is None else f * 100.0


def delta_pp(key: str, a: Any, b: Any, key_a: str | None = None) -> float | None:
    """``b - a`` in percentage points; ``a`` is a value of ``key_a`` (default ``key``), so a
    run's fraction compares with a preset's percent. None unless both are scores."""
    pa, pb = score_percent(key_a or key, a), score_percent(key, b)
    if pa is None or pb is None:
        return None
    return round(pb - pa, 10)  # 96.6 - 96.53 is 0.07, not 0.0699999999999932


def change(key: str, base: Any, value: Any) -> float | None:
    """The % change shown for ``key``: ``pct_change``, except for scores (in pp instead) and
    for ``NO_PERCENT_KEYS``, which have none."""
    if is_score(key) or key in NO_PERCENT_KEYS:
        return None
    return pct_change(base, value)


@dataclass(frozen=True)
class DiffRow:
    key: str
    values: tuple[Any, ...]  # one per preset; None where a preset lacks the key
    deltas: tuple[float | None, ...]  # percent vs the first preset (first entry always None; None for scores)
    differs: bool
    # Score rows: the difference vs the first preset in percentage points (first entry None).
    pp: tuple[float | None, ...] = ()
    # Score rows whose first preset has no value of this key: the key and value measured
    # against instead (a preset's ``reported.hmean`` for a run's ``run.best.hmean``).
    reference: tuple[str, Any] | None = None

    @property
    def score(self) -> bool:
        return is_score(self.key)


def diff(named: Sequence[tuple[str, dict[str, Any]]], include_equal: bool = False) -> list[DiffRow]:
    """Rows of flattened settings, in the first preset's key order, new keys after."""
    if len(named) < 2:
        raise InputError("compare needs at least two presets or runs")
    keys: list[str] = []
    seen: set[str] = set()
    for _, flat in named:
        for k in flat:
            if k not in seen:
                seen.add(k)
                keys.append(k)
    rows = []
    for k in keys:
        values = tuple(flat.get(k) for _, flat in named)
        differs = any(_differs(values[0], v) for v in values[1:])
        if not (differs or include_equal):
            continue
        deltas = (None, *(change(k, values[0], v) for v in values[1:]))
        pp: tuple[float | None, ...] = ()
        reference = None
        if is_score(k):
            ref_key, ref = k, values[0]
            other = SCORE_COUNTERPART.get(k)
            if ref is None and other is not None and is_number(named[0][1].get(other)):
                ref_key, ref = other, named[0][1][other]
                reference = (other, ref)
            pp = (None, *(delta_pp(k, ref, v, key_a=ref_key) for v in values[1:]))
        rows.append(DiffRow(k, values, deltas, differs, pp, reference))
    return rows


def _differs(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return not math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)
    return a != b


@dataclass(frozen=True)
class BlendedValue:
    key: str
    a: Any
    b: Any
    value: Any
    how: Literal["linear", "log", "from-a", "--set"]


def blend_values(
    a: dict[str, Any], b: dict[str, Any], weight: float = 0.5, log: bool = False
) -> list[BlendedValue]:
    """Interpolate every numeric setting that differs: ``a + w (b - a)`` or ``a^(1-w) b^w``.

    Integers stay integers (rounded half away from zero, onto ``BLEND_STEP`` grids). Non-numeric differences keep ``a``'s
    value and are reported so nothing changes silently.
    """
    if not 0.0 <= weight <= 1.0:
        raise InputError(f"must be in [0, 1] (got {weight})", key="--weight")
    out = []
    for key, va in a.items():
        if key.split(".")[0] in NOT_BLENDED or key not in b:
            continue
        vb = b[key]
        if not _differs(va, vb):
            continue
        if is_number(va) and is_number(vb):
            use_log = log and va > 0 and vb > 0
            v = va ** (1 - weight) * vb**weight if use_log else va + weight * (vb - va)
            if isinstance(va, int) and isinstance(vb, int):
                step = BLEND_STEP.get(key, 1)
                v = v / step
                v = step * (int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5)))
            out.append(BlendedValue(key, va, vb, v, "log" if use_log else "linear"))
        else:
            out.append(BlendedValue(key, va, vb, va, "from-a"))
    return out


# Settings that fit a model's architecture or a machine rather than tune training: blending two
# presets built around different encoders mixes values that were sized for each.
STRUCTURAL = ("models.encoder.", "models.decoder.", "datasets.image_size", "dataloader.",
              "trainer.precision", "trainer.devices", "trainer.strategy", "trainer.num_nodes",
              "trainer.accumulate_grad_batches")
ENCODER = "models.encoder.model_name"


def is_structural(key: str) -> bool:
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in STRUCTURAL)


@dataclass(frozen=True)
class BlendCaveats:
    """What a blend did not interpolate, or should not have: said aloud, never silent.

    ``encoder``: the encoder setting where the two presets' encoders differ (None when the same);
    ``taken``: non-numeric settings that differ, and structural ones set by ``--set``, written
    from one side (``how`` ``from-a``: preset ``a``; ``--set``) rather than blended;
    ``mixed``: structural numbers interpolated between two different encoders' settings.
    """

    a: str
    b: str
    encoder: BlendedValue | None
    taken: list[BlendedValue]
    mixed: list[BlendedValue]

    def lines(self) -> list[str]:
        """One line each: a warning when the encoders differ, then what was taken from which side."""
        out = []
        if self.encoder is not None:
            enc = self.encoder
            kept = f"{self.a}'s" if enc.how == "from-a" else f"{_text(enc.value)} (--set)"
            mixed = ", ".join(f"{v.key} {_text(v.value)} ({self.a} {_text(v.a)}, {self.b} {_text(v.b)})"
                              for v in self.mixed)
            out.append(f"warning: {self.a} and {self.b} use different encoders ({_text(enc.a)}, {_text(enc.b)}); the"
                       f" blend uses {kept}" + (f" and interpolates sizes tuned for each: {mixed}" if mixed else ""))
        from_a = [f"{v.key}={_text(v.value)} ({self.b} has {_text(v.b)})" for v in self.taken if v.how == "from-a"]
        from_set = [f"{v.key}={_text(v.value)} ({self.a} {_text(v.a)}, {self.b} {_text(v.b)})"
                    for v in self.taken if v.how == "--set"]
        if from_a:
            out.append(f"taken from {self.a}, not blended: " + ", ".join(from_a))
        if from_set:
            out.append("taken from --set, not blended: " + ", ".join(from_set))
        return out


def blend_caveats(values: Sequence[BlendedValue], a: str, b: str) -> BlendCaveats:
    """The caveats of a blend, from its values as written (``how`` ``--set`` included)."""
    enc = next((v for v in values if v.key == ENCODER and v.a != v.b), None)
    taken, mixed = [], []
    for v in values:
        numeric = is_number(v.a) and is_number(v.b)
        if v.how == "from-a" or (v.how == "--set" and _differs(v.a, v.b) and (not numeric or is_structural(v.key))):
            taken.append(v)
        elif enc is not None and is_structural(v.key) and v.how in ("linear", "log"):
            mixed.append(v)
    return BlendCaveats(a, b, enc, taken, mixed)


def _text(v: Any) -> str:
    """A value as YAML spells it."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    return str(v)
