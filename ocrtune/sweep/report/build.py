"""``ocrtune sweep report``: read a sweep, find its baseline, analyse, and write the report
folder (Markdown, self-contained HTML, JSON, figures, recommended presets, methods text).

The folder is written beside its final place and swapped in whole, so a report is never
half-written and a failed run leaves the previous report as it was.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from ocrtune.errors import InputError
from ocrtune.presets.compare import flatten, settings
from ocrtune.presets.load import find_preset, load_preset
from ocrtune.presets.schema import Preset
from ocrtune.sweep.report.analysis import ReportInput, build_report, fmt_value, short
from ocrtune.sweep.report.model import Baseline, Importance, Recommendation, Report
from ocrtune.sweep.report.write import write_files
from ocrtune.sweep.store import Store, check_name
from ocrtune.sweep.summary import summarize
from ocrtune.sweep.types import SweepConfig

REPORT_DIR = "report"
MARKER = ".ocrtune-report"  # in every report folder: the only kind of folder a report replaces


@dataclass(frozen=True)
class ReportRequest:
    """``sweep report`` options: a sweep by name (in ``runs_dir`` or ``storage``) or by its
    folder, a baseline preset or run (default: the sweep's own preset), where to write."""

    target: str
    baseline: str | None = None
    out: Path | None = None
    storage: str | None = None
    runs_dir: Path = Path("runs")
    presets_dirs: Sequence[str | Path] = ()


def make_report(req: ReportRequest) -> tuple[Report, Path]:
    """Build and write the report; returns it and its folder."""
    name, storage, sweep_dir = _locate(req)
    store = Store.open(name, storage, runs_dir=req.runs_dir, read_only=True, key="NAME|DIR")
    try:
        cfg = store.config()
        if cfg is None:
            raise InputError("this study was not created by ocrtune sweep (no settings stored)", key=name)
        summary = summarize(store, cfg, observe=True)
        curves = store.curves()
        values, note = store.importance()
    finally:
        store.close()
    baseline = resolve_baseline(req.baseline, cfg, req.runs_dir, req.presets_dirs)
    base_preset = Preset.model_validate(cfg.base)
    report = build_report(ReportInput(cfg, summary, baseline, Importance(values, note), curves,
                                      max_epochs=base_preset.trainer.max_epochs))
    out = (req.out or sweep_dir / REPORT_DIR).resolve()
    _check_replaceable(out, "--out" if req.out else None)
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}-{int(time.time())}")
    try:
        staging.mkdir(parents=True)
        (staging / MARKER).write_text(f"written by ocrtune sweep report {name}\n", encoding="utf-8")
        report = _with_presets(report, cfg, staging / "presets", out / "presets", req.presets_dirs)
        from ocrtune.sweep.report.figures import draw_figures

        drawn = draw_figures(report, curves, staging / "figures")
        report = replace(report, figures={k: str(Path("figures") / Path(p).name) for k, p in drawn.items()})
        write_files(report, staging)
        _swap(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report, out


def _check_replaceable(out: Path, option: str | None) -> None:
    """A report replaces only an earlier report: never a sweep, a run, or a folder of the user's."""
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"{out} exists and is not a folder; pick another place for the report", key=option)
    if not (out / MARKER).is_file():
        raise InputError(f"{out} exists and is not an ocrtune report folder ({MARKER} missing): a report replaces only "
                         "an earlier report; pick another --out or remove the folder yourself", key=option)


def _locate(req: ReportRequest) -> tuple[str, str | None, Path]:
    """(name, storage, sweep folder) for ``NAME`` or a sweep folder holding ``study.db``."""
    p = Path(req.target)
    if req.storage is None and (p / "study.db").is_file():
        return check_name(p.resolve().name, key="NAME|DIR"), f"sqlite:///{p / 'study.db'}", p
    if os.sep in req.target:  # a bare name is a sweep name, even where a folder of that name exists
        raise InputError("not a sweep folder (no study.db in it)", key=req.target)
    name = check_name(req.target, key="NAME|DIR")
    return name, req.storage, req.runs_dir / "sweeps" / name


def resolve_baseline(ref: str | None, cfg: SweepConfig, runs_dir: Path, dirs: Sequence[str | Path]) -> Baseline:
    """The sweep's own preset (its resolved settings, its ``reported`` score), or ``--baseline``:
    a run directory (its settings and measured best score) or another preset."""
    from ocrtune.comparable import is_run_ref
    from ocrtune.train.rundir import find_run

    if ref is None:  # the preset as written (its reported score is its own), not with the sweep's --set
        try:
            preset = load_preset(cfg.preset, (), dirs).preset
        except InputError:  # not here (a sweep made elsewhere): the settings the sweep stored
            preset = Preset.model_validate(cfg.base)
        score, source, epochs = _reported(preset, cfg.metric, cfg.preset)
        return Baseline(cfg.preset, "preset", settings(preset), score, source, epochs)
    if is_run_ref(ref, runs_dir):
        run = find_run(ref, runs_dir)
        flat = settings(load_preset(run.config, (), dirs).preset)
        summary = run.read_summary()
        best = summary.get("best") or {}
        col = "hmean" if cfg.metric == "hmean" else "val_loss"
        score = best.get(col)
        epochs = summary.get("epochs_completed")
        source = f"measured by run {run.path.name} (its best epoch of {epochs})" if score is not None else None
        return Baseline(run.path.name, "run", flat, float(score) if isinstance(score, (int, float)) else None, source,
                        epochs if isinstance(epochs, int) else None)
    try:
        preset = load_preset(ref, (), dirs).preset
    except InputError as e:
        why = e.problems[0].message if e.problems else "not found"
        raise InputError(f"{ref!r} is neither a preset nor a run directory ({why})", key="--baseline") from None
    score, source, epochs = _reported(preset, cfg.metric, ref)
    return Baseline(ref, "preset", settings(preset), score, source, epochs)


def _reported(preset: Preset, metric: str, label: str) -> tuple[float | None, str | None, int | None]:
    """A preset states its scores in percent; runs and sweeps in fractions: one unit here. The
    epochs its score was measured after: ``reported.epoch``, else its full ``max_epochs``."""
    rep = preset.reported
    value = getattr(rep, "hmean", None) if rep is not None and metric == "hmean" else None
    if value is None:
        return None, None, None
    frac = float(value) / 100 if float(value) > 1 else float(value)
    epochs = rep.epoch if rep is not None and rep.epoch is not None else preset.trainer.max_epochs
    note = f"; {rep.note}" if rep is not None and rep.note else ""
    return frac, f"{label}'s reported H-mean {float(value):g}{' %' if float(value) > 1 else ''}{note}", epochs


def _with_presets(report: Report, cfg: SweepConfig, staging: Path, final: Path, dirs: Sequence[str | Path]) -> Report:
    """Write each recommendation as a preset extending the sweep's preset (validated where it
    lies) and give it a ready train command."""
    from ocrtune.presets.write import derived_preset

    staging.mkdir(parents=True, exist_ok=True)
    try:
        find_preset(cfg.preset, dirs)
        extends: str | None = str(Path(cfg.preset).resolve()) if Path(cfg.preset).is_file() else cfg.preset
        sets = _sweep_sets(cfg, dirs)
    except InputError:  # the preset is not here (a sweep made elsewhere): the preset stands alone
        extends, sets = None, [(k, v, "the sweep's preset") for k, v in flatten(cfg.base).items()
                               if v is not None and not k.startswith(("reported", "description"))]
    sets.append(("reported", None, ""))  # the base's scores were measured on the base, not on this
    out = []
    for rec in report.recommended:
        name = f"{report.name}-{rec.kind.value}"
        against = f" --baseline {report.baseline.label}" if report.baseline.label != cfg.preset else ""
        header = (f"Written by `ocrtune sweep report {report.name}{against}`: the {rec.kind.value} configuration of "
                  f"sweep {report.name}\n({report.strategy} over {', '.join(report.keys)}, {report.epochs} epoch(s) a "
                  f"trial).\nRule: {rec.rule}.\nScore: {_score_text(rec, report)}. Risk: {rec.risk}.")
        keys = [(k, v, f"{rec.kind.value}: {_was(k, report)}") for k, v in rec.values.items()]
        path = staging / f"{name}.yaml"
        derived_preset(path, extends, [*sets, *keys], header,
                       f"{rec.kind.value} configuration of sweep {report.name}", dirs)
        where = final / path.name
        command = f"ocrtune train --preset {_shown(where)}" + (f" --data {cfg.data}" if cfg.data else "")
        command += f" --init {shlex.quote(cfg.init)}" if cfg.init else ""  # the preset alone starts elsewhere
        out.append(replace(rec, preset=str(where), command=command))
    return replace(report, recommended=out)


def _sweep_sets(cfg: SweepConfig, dirs: Sequence[str | Path]) -> list[tuple[str, Any, str]]:
    """Settings the sweep changed with ``--set`` (its stored preset vs the preset file)."""
    plain = flatten(load_preset(cfg.preset, (), dirs).preset.model_dump(mode="json"))
    base = flatten(cfg.base)
    return [(k, v, "set for the sweep (--set)") for k, v in base.items()
            if plain.get(k) != v and not k.startswith(("reported", "description"))]


def _was(key: str, r: Report) -> str:
    b = r.baseline.values.get(key)
    return f"{r.baseline.label} has {fmt_value(b)}" if b is not None else f"not set in {r.baseline.label}"


def _score_text(rec: Recommendation, r: Report) -> str:
    if rec.score is None:
        return "not measured"
    text = f"{r.metric} {rec.score:.4f}"
    if rec.spread is not None and rec.n > 1:
        text += f" +- {rec.spread:.4f} over {rec.n} runs"
    return text + f" (trial {rec.trial}, {r.epochs} epoch(s))" if rec.trial is not None else text


def _shown(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _swap(staging: Path, out: Path) -> None:
    """Put the new report in place; the old one is removed only once the new one is there."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{int(time.time())}")
        os.replace(out, old)
    try:
        os.replace(staging, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["ReportRequest", "make_report", "resolve_baseline", "short"]
