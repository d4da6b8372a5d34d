"""The best postprocess settings as a new preset that ``extends`` the run's own preset.

Like ``presets new NAME --from RUN``: the preset the run trained from is the base (when it is
found by name) and the new file sets only what differs from it, each value commented: the
settings the run trained with (so the preset reproduces the model the postprocess was tuned
for; the run's epochs and data are left to the base, as there) and the tuned postprocess keys.
Without a base (a checkpoint outside a run, a preset no longer found) every setting is
written. Checked by loading it where it lies; a preset that does not load leaves nothing.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ocrtune.errors import InputError
from ocrtune.presets.compare import flatten
from ocrtune.presets.load import SUFFIXES, find_preset, load_preset, show_path
from ocrtune.presets.schema import Preset
from ocrtune.presets.sources import NOT_COPIED, PER_RUN_KEYS, Source, read_run
from ocrtune.presets.write import derived_preset
from ocrtune.tune.settings import NAMES, full_key

Value = tuple[str, Any, str]  # (key, value, comment)


@dataclass(frozen=True)
class WrittenPreset:
    path: Path
    extends: str | None
    values: list[Value]


def default_name(run_path: Path | None, checkpoint: Path, runs_dir: Path, dirs: Sequence[str | Path]) -> str:
    """``<the run's preset>-post``, else ``<run folder>-post``, else ``<checkpoint stem>-post``."""
    src = _source(run_path, runs_dir, dirs)
    if src is not None and src.preset:
        return f"{src.preset}-post"
    return f"{run_path.name if run_path is not None else checkpoint.stem}-post"


def check_free(name: str, out_dir: Path, dirs: Sequence[str | Path], force: bool) -> Path:
    """Where the preset goes; refused before any work when the name is taken (as ``presets new``)."""
    stem = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
    path = out_dir / f"{stem}.yaml"
    if force:
        return path
    if path.exists():
        raise InputError("already exists (pass --force to overwrite, or --name another)", file=show_path(path),
                         key="--name")
    try:
        other = find_preset(stem, dirs)
    except InputError:
        return path
    raise InputError(f"a preset of that name already exists: {show_path(other)} (pass --name another, or --force)",
                     key="--name")


def write_preset(path: Path, preset: Preset, run_path: Path | None, best: dict[str, Any], current: dict[str, Any],
                 header: Sequence[str], runs_dir: Path, dirs: Sequence[str | Path], force: bool) -> WrittenPreset:
    """``preset`` (what the checkpoint trained with) with the postprocess ``best``, extending
    the run's preset where it is found. ``current`` holds the checkpoint's postprocess values."""
    src = _source(run_path, runs_dir, dirs)
    base_name = src.preset if src is not None else None
    base: dict[str, Any] | None = None
    if base_name is not None:
        try:
            base = _flat(load_preset(base_name, (), dirs).preset)
        except InputError:
            base_name = None
    label = f"run {run_path.name}" if run_path is not None else "the checkpoint"
    target = _flat(preset)
    notes: dict[str, str] = {}
    for name in NAMES:
        key = full_key(name)
        if best[name] != current[name]:
            target[key] = best[name]
            notes[key] = f"tuned; was {_show(current[name])} in {label}"
    values: list[Value] = []
    left: list[str] = []
    for key, value in target.items():
        if base is not None and key in PER_RUN_KEYS:
            if not _same(base.get(key), value):
                left.append(f"{key}={_show(value)}")
            continue
        if base is not None and key in base and _same(base[key], value):
            continue
        note = notes.get(key) or (f"as {label} trained" if base is not None else "")
        if base is not None:
            note += f"; {base_name} has {_show(base[key])}" if key in base else ""
        values.append((key, value, note))
    values.append(("reported", None, ""))  # scores it reaches when trained are not yet measured
    lines = list(header)
    if src is not None:
        lines += src.header
    if base is None:
        lines.append("Its preset is not found by name: every resolved setting is written.")
    if left:
        lines.append(f"Not copied from {label} (the base keeps its own): {', '.join(left)}.")
    derived_preset(path, base_name, values, "\n".join(lines), f"{base_name or label} with postprocess "
                             "tuned by ocrtune tune-postprocess", dirs, overwrite=force)
    return WrittenPreset(path, base_name, values)


def _source(run_path: Path | None, runs_dir: Path, dirs: Sequence[str | Path]) -> Source | None:
    if run_path is None:
        return None
    try:
        return read_run(str(run_path), runs_dir, dirs)
    except InputError:
        return None


def _flat(preset: Preset) -> dict[str, Any]:
    flat = flatten(preset.model_dump(mode="json"))
    return {k: v for k, v in flat.items() if not any(k == n or k.startswith(n + ".") for n in NOT_COPIED)}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=0.0)
        except (TypeError, ValueError):
            return False
    return a == b


def _show(v: Any) -> str:
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    return repr(v) if isinstance(v, str) else str(v)


def today() -> str:
    return _dt.date.today().isoformat()


__all__ = ["WrittenPreset", "check_free", "default_name", "today", "write_preset"]
