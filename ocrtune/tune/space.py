"""The settings a postprocess search may try: the sweep's space format and checks, limited to
``models.head.postprocess``, plus a default space around the checkpoint's own settings (pure).

A space file may name keys in full (``models.head.postprocess.thresh``) or, when every key is a
postprocess one, by their short names (``thresh``); either way a typo is a located error with
a suggestion, as in ``ocrtune sweep``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ocrtune.presets.load import show_path
from ocrtune.presets.schema import Preset
from ocrtune.sweep.plan.space import Space, leaf_keys, parse_space, read_space_file
from ocrtune.tune.settings import SECTION, PostSettings, full_key

_TOP = set(Preset.model_fields)


def _reserved() -> dict[str, str]:
    """Every schema key outside the postprocess section: changing it needs training."""
    why = "is not a postprocess setting; tune-postprocess re-runs only the postprocess (train or sweep for it)"
    return {k: why for k in leaf_keys() if not k.startswith(SECTION + ".")}


def load_space(path: Path, base: Preset) -> Space:
    """A space file, validated against ``base`` (range ends must pass its validation)."""
    return parse_postprocess_space(read_space_file(path, "search space file", key="--space"), base, show_path(path))


def parse_postprocess_space(doc: Any, base: Preset, file: str | None = None) -> Space:
    if isinstance(doc, Mapping) and "parameters" in doc and isinstance(doc["parameters"], Mapping):
        doc["parameters"] = _expand_short(doc["parameters"])  # type: ignore[index]
    elif isinstance(doc, Mapping) and doc:
        doc = _expand_short(doc)
    return parse_space(doc, base=base, file=file, reserved=_reserved())


def _expand_short(params: Mapping[str, Any]) -> Any:
    """Short names (``thresh``) under the postprocess section; kept as they are when any key
    names a preset section, so full keys and their errors read as in a sweep space. The
    original mapping stays inside, so errors keep their lines."""
    if any(str(k).split(".")[0] in _TOP for k in params):
        return params
    node: Any = params
    for part in reversed(SECTION.split(".")):
        node = {part: node}
    return node


def default_space(current: PostSettings, base: Preset) -> Space:
    """Around the checkpoint's settings: ``thresh`` +/- 0.1, ``box_thresh`` +/- 0.2 (steps of
    0.01) and the output mode's unclip ratio +/- 0.5 (steps of 0.05), clipped to sensible
    bounds. ``use_polygon``, ``min_size`` and ``max_candidates`` stay as they are unless a
    space file names them."""
    ratio_key = "polygon_unclip_ratio" if current.use_polygon else "box_unclip_ratio"
    r = current.ratio

    def span(v: float, half: float, lo: float, hi: float, q: float) -> dict[str, Any]:
        low, high = max(lo, round(v - half, 2)), min(hi, round(v + half, 2))
        return {"distribution": "q_uniform", "min": low, "max": high, "q": q}

    doc = {
        full_key("thresh"): span(current.thresh, 0.1, 0.05, 0.95, 0.01),
        full_key("box_thresh"): span(current.box_thresh, 0.2, 0.05, 0.95, 0.01),
        full_key(ratio_key): span(r, 0.5, 0.5, max(r + 0.5, 1.0), 0.05),
    }
    return parse_space(doc, base=base, file="the default space", reserved=_reserved())
