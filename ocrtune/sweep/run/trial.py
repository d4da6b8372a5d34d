"""One sweep trial in its own process: ``python -m ocrtune.sweep.run.trial TRIAL_DIR/spec.json``.

The worker writes ``spec.json`` (a ``TrialSpec``: base preset, this trial's values, epochs,
metric, data, or an ``--objective``), starts this module, watches ``progress.jsonl`` / the run's ``metrics.csv``
while it runs, and reads ``result.json`` (a ``TrialResult``) when it exits. This process never touches the sweep
store, so a crash here (segfault, OOM killer) can only lose this trial, never the study.

Training mode sets the trial's values (swept and coupled) on the base preset, validates it
like any preset, and calls ``fit`` (from the sweep's ``--init`` checkpoint when it has one),
the same code ``ocrtune train`` runs, into ``TRIAL_DIR/runs/<date>-<name>/``. A few preset keys
never reach it from the params (``reserved_keys``): the coordinator refuses to sweep them. In a
GPU slot (``$OCRTUNE_SLOT_GPU``) it trains on the GPU or fails; it never falls back to the CPU.
Objective mode imports ``module:function`` and calls it with the params dict; see
``call_objective``.

SIGTERM (the worker pruning or stopping the trial, or the parent dying) becomes Ctrl-C, so
``fit`` records the run as interrupted before the process exits.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import math
import os
import signal
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping

from ocrtune.errors import InputError
from ocrtune.procs import die_with_parent
from ocrtune.sweep.run.guards import disk_trouble
from ocrtune.sweep.run.launcher import SLOT_GPU_ENV
from ocrtune.sweep.run.records import PROGRESS, score_of
from ocrtune.sweep.types import COLUMN, Status, TrialResult, TrialSpec
from ocrtune.train.rundir import write_json_atomic

EXIT_DISK = 75  # a trial process that could not write its files (a full disk): the sweep stops
SPEC = "spec.json"
RESULT = "result.json"
LOG = "trial.log"
Report = Callable[..., None]


def reserved_keys(data_given: bool) -> dict[str, str]:
    """Preset keys (or sections) a training trial sets itself or never reads, with the reason:
    sweeping one would train the same model for every value. ``run_training`` is why."""
    keys = {
        "trainer.max_epochs": "set for every trial by --epochs",
        "datasets.test": "names the test split, which training never reads",
        "reported": "a record of scores the preset reached; it never reaches training",
        "description": "a note for people; it never reaches training",
    }
    if data_given:
        keys["datasets.root"] = "set for every trial by --data (drop --data to sweep it)"
    return keys


def load_objective(ref: str) -> Callable[..., Any]:
    """``module:function`` -> the callable (located InputError if it cannot be imported)."""
    mod_name, sep, attr = ref.partition(":")
    if not sep or not mod_name or not attr:
        raise InputError(f"expected module:function (got {ref!r})", key="--objective")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules next to where you run
    try:
        module = importlib.import_module(mod_name)
    except Exception as e:
        raise InputError(f"cannot import {mod_name!r}: {type(e).__name__}: {e}", key="--objective") from None
    fn: Any = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
    if not callable(fn):
        raise InputError(f"{mod_name!r} has no callable {attr!r}", key="--objective")
    return fn


def call_objective(fn: Callable[..., Any], params: Mapping[str, Any], epochs: int, report: Report, trial_dir: Path) -> Any:
    """Call ``fn(params, *, epochs=, report=, trial_dir=)``, passing only the keywords it takes.

    ``report(epoch, value, **columns)`` records epoch ``epoch`` (1-based) with the metric's
    value (and optional columns such as ``train_loss``) for pruning and the live view.
    """
    offered = {"epochs": epochs, "report": report, "trial_dir": trial_dir}
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return fn(dict(params))
    takes_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    kwargs = {k: v for k, v in offered.items() if takes_any or k in sig.parameters}
    return fn(dict(params), **kwargs)


def run_objective(spec: TrialSpec, trial_dir: Path) -> TrialResult:
    fn = load_objective(spec.objective or "")
    col = COLUMN[spec.metric]
    path = trial_dir / PROGRESS
    last = [time.perf_counter()]

    def report(epoch: int, value: float, **columns: Any) -> None:
        # An epoch's time is the time since the previous report (or the start), unless given.
        now = time.perf_counter()
        row = {"epoch": int(epoch) - 1, col: _plain(value), "epoch_time_s": round(now - last[0], 6),
               **{k: _plain(v) for k, v in columns.items()}}
        last[0] = now
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    try:
        value = call_objective(fn, spec.settings, spec.epochs, report, trial_dir)
    except MemoryError as e:
        return TrialResult(Status.OOM, error=_tail(e))
    except Exception as e:
        status = Status.OOM if "OutOfMemory" in type(e).__name__ else Status.FAILED
        return TrialResult(status, error=_tail(e))
    score = _plain(value)
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        return TrialResult(Status.FAILED, error=f"objective returned {type(value).__name__}, not a number")
    if score is None:  # None, NaN or inf: the run blew up
        return TrialResult(Status.DIVERGED, error=f"objective returned {value!r}")
    return TrialResult(Status.COMPLETED, float(score))


def build_preset(spec: TrialSpec, spec_path: Path) -> Any:
    """The base preset with this trial's values set (typed, not parsed from text) and validated;
    a bad value is a located error naming the trial's values."""
    from ocrtune.presets.load import LoadedPreset, Origin, set_value, validate

    data = copy.deepcopy(dict(spec.base))
    origins: dict[tuple[str, ...], Origin] = {}
    for key, value in spec.settings.items():
        set_value(data, origins, key, value, Origin("sweep trial params"), where="sweep trial params")
    preset = validate(data, origins, default_file=f"{spec.preset or 'preset'} (sweep base)")
    return LoadedPreset(spec.name, spec_path, preset, data)


def run_training(spec: TrialSpec, spec_path: Path) -> TrialResult:
    loaded = build_preset(spec, spec_path)  # a bad value fails here, before torch is imported
    from ocrtune.sweep.run.gpu_share import limit_gpu_memory
    from ocrtune.train.fit import TrainOptions, fit

    # What overrides the preset here (max_epochs, data) is in ``reserved_keys``.
    opts = TrainOptions(
        data=Path(spec.data) if spec.data else None,
        name=spec.name,
        runs_dir=spec_path.parent / "runs",
        progress=False,
        val_loss=spec.metric == "val_loss",
        max_epochs=spec.epochs,
        accelerator="gpu" if os.environ.get(SLOT_GPU_ENV) else "auto",  # a GPU slot never trains on the CPU
        init=spec.init,  # the sweep's --init: fit loads, checks and records it as train --init does
        on_init=lambda report: print(report.headline(), flush=True),  # into trial.log
    )
    limit_gpu_memory()  # a GPU shared with other trials (--trials-per-gpu): only this trial's share
    res = fit(loaded, opts)
    # Only a completed run has a score: one that diverged after a good epoch must not rank.
    score = score_of(res.rows, spec.metric) if res.status == "completed" else None
    out = TrialResult(Status(res.status), score, str(Path(res.run_dir).resolve()), res.error, res.hint, res.device)
    if res.status == "completed" and score is None:
        out = replace(out, status=Status.FAILED,
                      error=f"no finite {COLUMN[spec.metric]} in any epoch (is there a val split?)")
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ocrtune.sweep.run.trial TRIAL_DIR/spec.json", file=sys.stderr)
        return 2
    spec_path = Path(args[0])
    die_with_launcher()
    signal.signal(signal.SIGTERM, _interrupt)
    start = time.perf_counter()
    try:
        spec = TrialSpec.read(spec_path)
        if spec.objective:
            result = run_objective(spec, spec_path.parent)
        else:
            result = run_training(spec, spec_path)
    except KeyboardInterrupt:
        result = TrialResult(Status.INTERRUPTED)
    except InputError as e:
        result = TrialResult(Status.FAILED, error="\n".join(e.lines))
    except Exception as e:
        result = TrialResult(Status.FAILED, error=_tail(e))
    result = replace(result, wall_time_s=round(time.perf_counter() - start, 3))
    return write_result(spec_path.parent, result, failed=result.status == Status.FAILED)


def write_result(trial_dir: Path, result: Any, failed: bool) -> int:
    """``result.json`` (exit 0), or ``EXIT_DISK`` without one when the disk is the cause: the
    machine's fault, not the values', so the trial (or fold) runs again after a resume."""
    if failed and disk_trouble(result.error):
        print(f"{trial_dir}: {(result.error or '').strip().splitlines()[-1]}", file=sys.stderr)
        return EXIT_DISK
    try:
        write_json_atomic(trial_dir / RESULT, result.to_json())
    except OSError as e:
        print(f"{trial_dir / RESULT}: {e.strerror or e}", file=sys.stderr)
        return EXIT_DISK
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def die_with_launcher() -> None:
    """Linux: get SIGTERM when the worker that started us dies (no orphaned training); SIGTERM,
    not SIGKILL, so the run is recorded as interrupted on the way out."""
    parent = os.environ.get("OCRTUNE_PARENT_PID")
    if parent and parent.isdigit():
        die_with_parent(signal.SIGTERM, int(parent))


def _plain(v: Any) -> Any:
    if hasattr(v, "item") and not isinstance(v, (int, float)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _tail(e: BaseException, n: int = 8) -> str:
    lines = "".join(traceback.format_exception(type(e), e, e.__traceback__)).strip().splitlines()
    return "\n".join(lines[-n:])


if __name__ == "__main__":
    sys.exit(main())
