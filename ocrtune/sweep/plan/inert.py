"""Swept keys that cannot change what a trial trains: refused before the study exists.

A key the preset never reads (the EMA's decay while no EMA is kept, the polygon unclip ratio
of a box-output model, the cosine's T_max under a constant schedule, the schedule's interval
when the rate never moves) would give N identical trials and a ranking of noise: the
sweep-key-that-never-reaches-the-model failure. Each rule says which switches make the key
count (any one of them) and where they are set. A switch counts as on when the space varies it
or fixes it on, else the preset decides. Pure: names and values only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from ocrtune.presets.schema import Preset
    from ocrtune.sweep.plan.space import Dim

POST = "models.head.postprocess."


@dataclass(frozen=True)
class Switch:
    key: str
    reads: Callable[[Any], bool]  # the switch's values under which the rule's keys are read
    needs: str  # a setting that makes them count, as --set writes it


@dataclass(frozen=True)
class Rule:
    keys: tuple[str, ...]  # keys read while any of ``switches`` has a value it accepts
    switches: tuple[Switch, ...]


def _rule(keys: tuple[str, ...], *switches: tuple[str, Callable[[Any], bool], str]) -> Rule:
    return Rule(keys, tuple(Switch(*s) for s in switches))


SCHED = "models.scheduler."
RULES = (
    _rule(("trainer.ema.decay", "trainer.ema.warmup"),
          ("trainer.ema.enabled", lambda v: v is True, "trainer.ema.enabled=true")),
    _rule((POST + "polygon_unclip_ratio",), (POST + "use_polygon", lambda v: v is True, POST + "use_polygon=true")),
    _rule((POST + "box_unclip_ratio",), (POST + "use_polygon", lambda v: v is False, POST + "use_polygon=false")),
    _rule((SCHED + "T_max", SCHED + "eta_min"), (SCHED + "name", lambda v: v == "cosine", SCHED + "name=cosine")),
    # stepping every step instead of every epoch moves a cosine, or a warm-up; a constant rate
    # with no warm-up never changes, however often it is stepped
    _rule((SCHED + "interval",), (SCHED + "name", lambda v: v == "cosine", SCHED + "name=cosine"),
          (SCHED + "warmup_epochs", lambda v: isinstance(v, (int, float)) and v > 0, SCHED + "warmup_epochs=1")),
)


def inert_keys(preset: Preset, dims: Sequence[Dim]) -> dict[str, str]:
    """Varied keys of ``dims`` that no trial reads -> why, in one phrase."""
    by_key = {d.key: d for d in dims}
    out: dict[str, str] = {}
    for rule in RULES:
        swept = [k for k in rule.keys if k in by_key and _varies(by_key[k])]
        if not swept or any(_can_read(sw, by_key.get(sw.key), preset) for sw in rule.switches):
            continue
        why = _where(rule.switches, by_key, preset)
        needs = " or ".join(f"--set {sw.needs}" for sw in rule.switches)
        sweep_too = " or ".join(sw.key for sw in rule.switches)
        for k in swept:
            out[k] = f"no trial reads it: {why}; add {needs} (or sweep {sweep_too} too)"
    return out


def _where(switches: Sequence[Switch], by_key: dict[str, Dim], preset: Preset) -> str:
    """``the space sets K to v`` / ``the preset has K=v and L=w``: where each switch is off."""
    space = [f"the space sets {sw.key} to {', '.join(_yaml(v) for v in by_key[sw.key].values)}"
             for sw in switches if sw.key in by_key]
    held = [f"{sw.key}={_yaml(_value(preset, sw.key))}" for sw in switches if sw.key not in by_key]
    return " and ".join(space + ([f"the preset has {' and '.join(held)}"] if held else []))


def _varies(d: Dim) -> bool:
    return not (d.kind == "fixed" or (d.kind == "choice" and len(set(map(repr, d.values))) < 2))


def _can_read(switch: Switch, dim: Dim | None, preset: Preset) -> bool:
    if dim is None:
        return switch.reads(_value(preset, switch.key))
    if dim.kind in ("fixed", "choice"):
        return any(switch.reads(v) for v in dim.values)
    return True  # a numeric range: never guess "inert"


def _value(preset: Preset, key: str) -> Any:
    node: Any = preset
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _yaml(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)
