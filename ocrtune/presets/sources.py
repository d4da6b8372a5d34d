"""What ``presets new --from`` can start from besides a preset: a run directory or a sweep trial.

``read_source`` turns either into a ``Source``: the settings it trained with (flattened, fully
resolved), the preset it started from when that is recorded, the values that were set for that
run only (``PER_RUN_KEYS``: the epochs of ``--epochs``, the data of ``--data``) with what the
preset itself has there, and the lines of a header saying where it all came from.
``ocrtune.presets.write.preset_from_source`` writes it. Pure: no torch; Optuna only to read a
study (below).

A run's ``config.yaml`` is the resolved preset it trained with, per-run values included
(``fit`` records the data root it resolved and the ``--epochs`` it was given); its
``summary.json`` names the preset (``"NAME (PATH)"``) and the best scores. A sweep trial's
``spec.json`` (a ``TrialSpec``) holds the sweep's base preset as it was resolved, the trial's
swept and coupled values, and the sweep's ``--epochs`` and ``--data`` apart from the base;
``result.json`` its status and score. A run directory inside a trial folder is read as that
trial, whose spec says what the sweep set per trial.

A trial with no folder (every trial of an imported sweep, ``sweep import``; a trial not yet
started) is read from the study (``runs/sweeps/NAME/study.db``, opened read-only): the stored
``SweepConfig`` is the spec's base, preset, epochs, metric and data, the stored trial its
values, status and score. That path (and only it, or a ``seed`` param to tell a replicate's
seed from a swept one) imports Optuna.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Sequence

from ocrtune.errors import InputError
from ocrtune.presets.compare import flatten
from ocrtune.presets.load import Origin, find_preset, load_preset, set_value, show_path, validate
from ocrtune.presets.schema import Preset
from ocrtune.sweep.types import Coupling, TrialResult, TrialSpec
from ocrtune.train.rundir import CONFIG, RunDir, find_run, shown_epoch

SPEC = "spec.json"  # ocrtune.sweep.run.trial's names for a trial folder's files
RESULT = "result.json"
# Set for one run or trial, not a property of the preset: not copied unless asked.
EPOCHS, DATA = "trainer.max_epochs", "datasets.root"
PER_RUN_KEYS = (EPOCHS, DATA)
# Keys a derived preset writes itself (its own description; scores it has not yet measured).
NOT_COPIED = ("description", "reported")
TRIAL_REF = re.compile(r"(?P<sweep>[^:/\\\s]+):(?P<trial>\d+)")


@dataclass(frozen=True)
class Source:
    """A run or a trial, as ``presets new --from`` reads it."""

    ref: str
    kind: Literal["run", "trial"]
    label: str  # "run 2024-05-01-baseline", "sweep lr-b4 trial 7"
    preset: str | None  # the preset it started from, by name (None: not recorded)
    settings: dict[str, Any]  # flat, fully resolved, as it trained (per-run values included)
    own: dict[str, Any]  # PER_RUN_KEYS -> the preset's own value (None where unknown)
    per_run: dict[str, str]  # PER_RUN_KEYS it set for itself -> what set it
    notes: dict[str, str] = field(default_factory=dict)  # key -> why the source sets it
    header: list[str] = field(default_factory=list)
    description: str = ""
    own_from: str = "its preset"  # whose values ``own`` holds ("cpu-demo", "the schema's default")
    recorded: str | None = None  # the preset name it records, found or not
    other_note: str = ""  # why it differs from its preset where ``notes`` says nothing


def kind_of(ref: str, runs_dir: Path, dirs: Sequence[str | Path] = ()) -> Literal["preset", "run", "trial"]:
    """What ``--from ref`` names: ``SWEEP:TRIAL``, a directory (a run), a preset (by name or
    path, as before), else a run under ``runs_dir``. Raises a one-line error if none fits."""
    p = Path(ref)
    if TRIAL_REF.fullmatch(ref) and not p.exists():
        return "trial"
    if p.is_dir():
        return "run"
    try:
        find_preset(ref, dirs)
        return "preset"
    except InputError as e:
        not_preset = e
    if p.suffix in (".yaml", ".yml") or p.exists():
        raise not_preset
    try:
        find_run(ref, runs_dir)
    except InputError:
        raise InputError(
            f"not a preset, a run directory or SWEEP:TRIAL (no preset of that name, no run under {runs_dir})",
            key=ref,
        ) from None
    return "run"


def read_source(ref: str, runs_dir: Path = Path("runs"), dirs: Sequence[str | Path] = ()) -> Source:
    """The run directory or ``SWEEP:TRIAL`` ``ref`` (missing ones: one located line)."""
    m = TRIAL_REF.fullmatch(ref)
    if m and not Path(ref).exists():
        return read_trial(runs_dir, m["sweep"], int(m["trial"]), ref)
    return read_run(ref, runs_dir, dirs)


# --- sweep trials ---------------------------------------------------------------------------


def trial_dir(runs_dir: Path, sweep: str, number: int) -> Path:
    """``runs/sweeps/NAME/trials/NNNN``, checked: a missing sweep or trial is one located line."""
    sweep_dir = runs_dir / "sweeps" / sweep
    if not sweep_dir.is_dir():
        raise InputError(f"no sweep named {sweep!r} under {runs_dir / 'sweeps'}", file=show_path(sweep_dir))
    d = sweep_dir / "trials" / f"{number:04d}"
    if not (d / SPEC).is_file():
        raise InputError(f"sweep {sweep!r} has no trial {number} ({_folder_span(sweep_dir)})", file=show_path(d / SPEC))
    return d


def _folder_span(sweep_dir: Path) -> str:
    have = sorted(int(t.name) for t in (sweep_dir / "trials").glob("[0-9]*")
                  if t.name.isdigit() and (t / SPEC).is_file())
    return f"it has trials {have[0]}..{have[-1]}" if have else "it has no trials yet"


def read_trial(runs_dir: Path, sweep: str, number: int, ref: str | None = None, run: RunDir | None = None) -> Source:
    """Trial ``number`` of sweep ``sweep``: from its folder's ``spec.json`` (and
    ``result.json``), or, where the trial has no folder (an imported sweep, a trial not yet
    started, a folder deleted), from the study itself."""
    sweep_dir = runs_dir / "sweeps" / sweep
    if sweep_dir.is_dir() and not (sweep_dir / "trials" / f"{number:04d}" / SPEC).is_file():
        return _read_stored_trial(runs_dir, sweep, number, ref)
    d = trial_dir(runs_dir, sweep, number)
    try:
        spec = TrialSpec.read(d / SPEC)
    except (OSError, ValueError, TypeError) as e:
        raise InputError(f"unreadable trial spec ({e})", file=show_path(d / SPEC)) from None
    result = _read_result(d / RESULT)
    replicate = "seed" in spec.params and _is_replicate(runs_dir, sweep, number, spec.params)
    where = f"sweep {sweep} trial {number}"
    first = (f"From {where} ({show_path(d)}): base preset {spec.preset or '(not recorded)'}, "
             f"{spec.epochs} epoch(s) per trial, metric {spec.metric}"
             + (f", data {spec.data}" if spec.data else "") + ".")
    return _trial_source(spec, sweep, number, ref, replicate, None, first, show_path(d / SPEC),
                         _trial_outcome(result, spec), run)


def _trial_source(spec: TrialSpec, sweep: str, number: int, ref: str | None,
                  replicate: bool, couplings: Sequence[Coupling] | None, first: str, file: str, outcome: str,
                  run: RunDir | None = None, epochs_from: str = "the sweep's --epochs") -> Source:
    """The ``Source`` of a trial, whether its spec came from ``spec.json`` or from the study.
    ``replicate``: its ``seed`` param is a replicate's seed (not swept); ``couplings``: the
    sweep's, or None to work them out from the base preset and the swept keys; ``first`` and
    ``outcome``: the header's lines on where it comes from and how it ended; ``file``: where
    a value the preset rules refuse is located."""
    data = copy.deepcopy(dict(spec.base))
    origins: dict[Any, Origin] = {}
    for key, value in spec.settings.items():
        set_value(data, origins, key, value, Origin(f"sweep {sweep} trial {number}"), where=f"{sweep}:{number}")
    base_preset = validate(copy.deepcopy(dict(spec.base)), {}, default_file=file)
    base = _flat(base_preset)
    settings = _flat(validate(data, origins, default_file=file))
    own = {EPOCHS: base.get(EPOCHS), DATA: base.get(DATA)}
    per_run = {EPOCHS: epochs_from}
    settings[EPOCHS] = spec.epochs
    if spec.data is not None:
        settings[DATA] = spec.data
        per_run[DATA] = "the sweep's --data"
    where = f"sweep {sweep} trial {number}"
    swept = [k for k in spec.params if not (replicate and k == "seed")]
    notes = {k: f"{where} (replicate seed)" if k not in swept else f"{where} (swept)" for k in spec.params}
    if couplings is None:
        from ocrtune.sweep.plan.coupling import couplings_for

        couplings = couplings_for(base_preset, swept)
    for k in spec.derived:
        sources = [c.source for c in couplings if c.key == k] or swept
        notes[k] = f"{where} (coupled to {', '.join(sources) or 'the swept value'})"
    values = ", ".join(f"{k}={v!r}" for k, v in spec.params.items()) or "none"
    header = [first]
    header.append(f"Trial values: {values}" + (
        "; coupled: " + ", ".join(f"{k}={v!r}" for k, v in spec.derived.items()) if spec.derived else "") + ".")
    header.append(outcome)
    if spec.init:
        header.append(_init_line(spec.init))
    if run is not None:
        header.append(f"Its run directory: {show_path(run.path)}.")
    return Source(
        ref=ref or f"{sweep}:{number}",
        kind="trial",
        label=where,
        preset=spec.preset,
        settings=settings,
        own=own,
        per_run=per_run,
        notes=notes,
        header=header,
        description=f"from {where}" + (f" ({values})" if spec.params else ""),
        own_from=f"{spec.preset}'s" if spec.preset else "the sweep base's",
        recorded=spec.preset,
        other_note="the sweep's base preset (its --set)",
    )


def _init_line(source: str) -> str:
    """A preset holds no weights: say where the run started from, and how to start there again."""
    return f"Fine-tuned from {show_path(Path(source))}: the preset alone trains from scratch; add --init {source}."


def _is_replicate(runs_dir: Path, sweep: str, number: int, params: dict[str, Any]) -> bool:
    """Whether trial ``number``'s ``seed`` param is a replicate's seed (``--replicates``) rather
    than a swept key: the study says so where it can be read; else a ``seed`` beside another
    value is taken for one (a replicate re-runs one swept value with a new seed)."""
    try:
        found = _stored_trial(runs_dir, sweep, number)
    except Exception:  # noqa: BLE001 - the study is only asked; the spec stands on its own
        found = None
    if found is not None and found[1] is not None:
        cfg, trial, _ = found
        return trial.kind == "replicate" or (cfg is not None and "seed" not in cfg.keys)
    return len(params) > 1


def _stored_trial(runs_dir: Path, sweep: str, number: int) -> tuple[Any, Any, list[int]] | None:
    """``(config, trial or None, the study's trial numbers)`` from the study of ``sweep`` in
    its default place (``runs/sweeps/NAME/study.db``), opened read-only; None when there is
    no such file."""
    from ocrtune.sweep.store import Store

    store = Store.open_here(sweep, runs_dir)
    if store is None:
        return None
    try:
        cfg = store.config()
        trials = store.trials()
    finally:
        store.close()
    trial = next((t for t in reversed(trials) if t.number == number), None)
    return cfg, trial, sorted(t.number for t in trials)


def _read_stored_trial(runs_dir: Path, sweep: str, number: int, ref: str | None) -> Source:
    """A trial that has no folder, from the study: its settings (``SweepConfig``: the resolved
    base preset, epochs, metric, data) and the trial's values, status and score, read as
    ``spec.json`` and ``result.json`` would give them."""
    from ocrtune.sweep.store.backends import resolve_storage

    sweep_dir = runs_dir / "sweeps" / sweep
    spec_file = show_path(sweep_dir / "trials" / f"{number:04d}" / SPEC)
    try:
        _, target = resolve_storage(sweep, None, runs_dir)
        found = _stored_trial(runs_dir, sweep, number)
    except InputError:  # a name a study cannot have, a study.db of another name (a copied folder)
        target, found = None, None
    if found is None or found[0] is None:  # no study here (another --storage), or not an ocrtune sweep
        raise InputError(f"sweep {sweep!r} has no trial {number} ({_folder_span(sweep_dir)})", file=spec_file)
    cfg, trial, numbers = found
    study = show_path(Path(str(target)))
    if trial is None:
        span = f"it has trials {numbers[0]}..{numbers[-1]}" if numbers else "it has no trials yet"
        raise InputError(f"sweep {sweep!r} has no trial {number} ({span})", file=study)
    imported = cfg.search.kind == "imported"
    attrs = trial.attrs
    epochs = int(attrs["epochs"]) if imported and isinstance(attrs.get("epochs"), int) else int(cfg.epochs)
    spec = TrialSpec(name=f"{sweep}-t{number:04d}", params=dict(trial.params), epochs=epochs, metric=cfg.metric,
                     base=dict(cfg.base), preset=cfg.preset or None, data=cfg.data, objective=cfg.objective,
                     derived=trial.derived, init=cfg.init)
    result = (TrialResult(trial.status, trial.score, attrs.get("run_dir"), attrs.get("error"))
              if trial.is_result else None)
    replicate = "seed" in spec.params and (trial.kind == "replicate" or "seed" not in cfg.keys)
    where = f"sweep {sweep} trial {number}"
    if imported:
        row = ", ".join(x for x in (f"line {attrs['imported_line']}" if attrs.get("imported_line") else "",
                                    f"run {attrs['imported_name']!r}" if attrs.get("imported_name") else "") if x)
        source = attrs.get("imported_from") or cfg.search.source
        first = (f"From {where} (study {study}; imported from {source}" + (f", {row}" if row else "")
                 + f"): base preset {spec.preset or '(not recorded)'}, {epochs} epoch(s), metric {spec.metric}.")
        error = f" ({attrs['error']})" if attrs.get("error") else ""
        score = (f", score {trial.score:.6g} ({spec.metric}, as imported)" if trial.score is not None
                 else ", no score")
        outcome = f"Result: {trial.status.value}{error}{score}."
        epochs_from = "the epochs the imported run trained"
    else:
        first = (f"From {where} (study {study}; the trial has no folder): base preset "
                 f"{spec.preset or '(not recorded)'}, {epochs} epoch(s) per trial, metric {spec.metric}"
                 + (f", data {spec.data}" if spec.data else "") + ".")
        outcome = (_trial_outcome(result, spec) if result is not None
                   else f"Result: none yet (the trial is {trial.status.value}).")
        epochs_from = "the sweep's --epochs"
    return _trial_source(spec, sweep, number, ref, replicate, cfg.couplings, first, study, outcome,
                         epochs_from=epochs_from)


def _read_result(path: Path) -> TrialResult | None:
    try:
        return TrialResult.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as e:
        raise InputError(f"unreadable trial result ({e})", file=show_path(path)) from None


def _trial_outcome(result: TrialResult | None, spec: TrialSpec) -> str:
    if result is None:
        return "Result: none yet (no result.json: the trial has not finished)."
    score = f", score {result.score:.6g} ({spec.metric} of a {spec.epochs}-epoch trial, not a full run)" if result.score is not None else ", no score"
    return f"Result: {result.status.value}{score}."


# --- run directories ------------------------------------------------------------------------


def read_run(ref: str, runs_dir: Path = Path("runs"), dirs: Sequence[str | Path] = ()) -> Source:
    p = Path(ref)
    if p.is_dir() and not (p / CONFIG).is_file():
        raise InputError(f"not a run directory (no {CONFIG})", file=show_path(p))
    try:
        run = find_run(ref, runs_dir)
    except InputError:
        raise InputError(f"run not found (looked for a run directory and under {runs_dir})", key=ref) from None
    if not run.config.is_file():
        raise InputError(f"not a run directory (no {CONFIG})", file=show_path(run.path))
    trial = _trial_of(run)
    if trial is not None:  # a sweep trial's run: its spec says what the sweep set per trial
        sweep_dir, number = trial
        src = read_trial(sweep_dir.parent.parent, sweep_dir.name, number, ref, run)
        return replace(src, ref=ref)
    loaded = load_preset(run.config, (), dirs)
    settings = _flat(loaded.preset)
    summary = _summary(run)
    name, recorded = _recorded_preset(summary, run.config)
    preset = None
    own: dict[str, Any] = {}
    own_from = "the schema's default"
    if name is not None:
        try:
            original = load_preset(name, (), dirs)
            preset, own_from = name, f"{name}'s"
            theirs = _flat(original.preset)
            own = {k: theirs.get(k) for k in PER_RUN_KEYS}
        except InputError:
            preset = None
    if not own:  # the preset is gone: its own values are unknown, the defaults stand in
        defaults = _flat(Preset())
        own = {k: defaults.get(k) for k in PER_RUN_KEYS}
    per_run = {EPOCHS: "the epochs the run trained", DATA: "the data the run trained on"}
    trained = f"trained from {name}" + (f" ({recorded})" if recorded else "") if name else "its preset not recorded"
    header = [f"From run {run.path.name} ({show_path(run.path)}), {trained}; " + _run_outcome(summary)]
    best = summary.get("best") or {}
    if isinstance(best.get("hmean"), (int, float)):
        parts = [f"{label} {100 * best[k]:.2f}" for k, label in
                 (("hmean", "H-mean"), ("precision", "P"), ("recall", "R"), ("iou_hmean", "IoU H-mean"))
                 if isinstance(best.get(k), (int, float))]
        epoch = shown_epoch(summary.get("best_epoch"))
        header.append("Best val " + " / ".join(parts) + (f" at epoch {epoch}" if epoch is not None else "") + ".")
    init = summary.get("init")
    if isinstance(init, dict) and init.get("source"):
        header.append(_init_line(str(init["source"])))
    return Source(
        ref=ref,
        kind="run",
        label=f"run {run.path.name}",
        preset=preset,
        settings=settings,
        own=own,
        per_run=per_run,
        header=header,
        description=f"from run {run.path.name}",
        own_from=own_from,
        recorded=name,
        other_note=f"as run {run.path.name} trained",
    )


def _trial_of(run: RunDir) -> tuple[Path, int] | None:
    """``(sweep_dir, number)`` for a run in ``sweeps/NAME/trials/NNNN/runs/``, else None."""
    parent = run.path.resolve().parent
    trial = parent.parent
    if parent.name != "runs" or not trial.name.isdigit() or not (trial / SPEC).is_file():
        return None
    if trial.parent.name != "trials":
        return None
    return trial.parent.parent, int(trial.name)


def _summary(run: RunDir) -> dict[str, Any]:
    try:
        return run.read_summary()
    except InputError:
        return {}


_PRESET_NOTE = re.compile(r"(?P<name>.+?) \((?P<path>.*)\)")


def _recorded_preset(summary: dict[str, Any], config: Path) -> tuple[str | None, str | None]:
    """The preset a run trained from, ``(name, path)``, from summary.json's ``preset`` or
    config.yaml's ``# resolved from NAME (PATH)`` header."""
    note = summary.get("preset")
    if not isinstance(note, str):
        try:
            first = config.read_text(encoding="utf-8").partition("\n")[0]
        except OSError:
            first = ""
        note = first[len("# resolved from "):] if first.startswith("# resolved from ") else None
    if not note or note == "preset":
        return None, None
    m = _PRESET_NOTE.fullmatch(note.strip())
    return (m["name"], m["path"]) if m else (note.strip(), None)


def _run_outcome(summary: dict[str, Any]) -> str:
    if not summary:
        return "no summary.json."
    epochs = summary.get("epochs_completed")
    return f"status {summary.get('status', 'unknown')}" + (f", {epochs} epoch(s)" if epochs is not None else "") + "."


def _flat(preset: Preset) -> dict[str, Any]:
    flat = flatten(preset.model_dump(mode="json"))
    return {k: v for k, v in flat.items() if not any(k == n or k.startswith(n + ".") for n in NOT_COPIED)}
