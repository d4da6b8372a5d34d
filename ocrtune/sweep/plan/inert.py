"""Swept keys that cannot change what a trial trains: refused before the study exists.

A key the preset never reads (the EMA's decay while no EMA is kept, the polygon unclip ratio
of a box-output model, the cosine's T_max under a constant schedule) would give N identical
trials and a ranking of noise: the sweep-key-that-never-reaches-the-model failure. Each rule
says which switch makes the key count and where it is set. The switch counts as on when the
space varies it or fixes it on, else the preset decides. Pure: names and values only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from ocrtune.presets.schema import Preset
    from ocrtune.sweep.plan.space import Dim

POST = "models.head.postprocess."


@dataclass(frozen=True)
class Rule:
    keys: tuple[str, ...]  # keys read only while ``switch`` has a value ``reads`` accepts
    switch: str
    reads: Callable[[Any], bool]
    needs: str  # the setting that makes them count, as --set writes it


RULES = (
    Rule(("trainer.ema.decay", "trainer.ema.warmup"), "trainer.ema.enabled", lambda v: v is True,
         "trainer.ema.enabled=true"),
    Rule((POST + "polygon_unclip_ratio",), POST + "use_polygon", lambda v: v is True, POST + "use_polygon=true"),
    Rule((POST + "box_unclip_ratio",), POST + "use_polygon", lambda v: v is False, POST + "use_polygon=false"),
    Rule(("models.scheduler.T_max", "models.scheduler.eta_min"), "models.scheduler.name",
         lambda v: v == "cosine", "models.scheduler.name=cosine"),
)


def inert_keys(preset: Preset, dims: Sequence[Dim]) -> dict[str, str]:
    """Varied keys of ``dims`` that no trial reads -> why, in one phrase."""
    by_key = {d.key: d for d in dims}
    out: dict[str, str] = {}
    for rule in RULES:
        swept = [k for k in rule.keys if k in by_key and _varies(by_key[k])]
        if not swept or _can_read(rule, by_key.get(rule.switch), preset):
            continue
        if rule.switch in by_key:
            why = f"the space sets {rule.switch} to {', '.join(_yaml(v) for v in by_key[rule.switch].values)}"
        else:
            why = f"the preset has {rule.switch}={_yaml(_value(preset, rule.switch))}"
        for k in swept:
            out[k] = f"no trial reads it: {why}; add --set {rule.needs} (or sweep {rule.switch} too)"
    return out


def _varies(d: Dim) -> bool:
    return not (d.kind == "fixed" or (d.kind == "choice" and len(set(map(repr, d.values))) < 2))


def _can_read(rule: Rule, switch: Dim | None, preset: Preset) -> bool:
    if switch is None:
        return rule.reads(_value(preset, rule.switch))
    if switch.kind in ("fixed", "choice"):
        return any(rule.reads(v) for v in switch.values)
    return True  # a numeric range: not one of these switches, but never guess "inert"


def _value(preset: Preset, key: str) -> Any:
    node: Any = preset
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _yaml(v: Any) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)
