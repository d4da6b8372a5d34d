"""Parameter diffs between presets, and blend arithmetic.

Both work on flattened dotted keys of fully resolved presets (defaults filled in), so a value
left implicit in one file still compares against an explicit one in another.
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


@dataclass(frozen=True)
class DiffRow:
    key: str
    values: tuple[Any, ...]  # one per preset; None where a preset lacks the key
    deltas: tuple[float | None, ...]  # percent vs the first preset (first entry always None)
    differs: bool


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
        deltas = (None, *(pct_change(values[0], v) for v in values[1:]))
        rows.append(DiffRow(k, values, deltas, differs))
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
