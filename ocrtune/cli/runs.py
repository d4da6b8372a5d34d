"""`ocrtune runs list|show`: what has been trained, with status and best scores.

``runs list --sweep NAME`` lists a sweep's trial runs (``runs/sweeps/NAME/trials/*/runs/*``)
with each trial's number and swept values.

Tables count epochs from 1, as training prints them; ``--json`` gives the run's files as they
are (``epoch`` and ``best_epoch`` from 0, as ``summary.json`` says with ``epoch_base``).

The status shown is derived (``run_state``): a run recorded as ``running`` whose process is
gone shows ``killed`` (this host) or ``lost`` (another machine, silent), with the command that
resumes it. Nothing here writes to a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ocrtune.cli._options import JsonOption
from ocrtune.cli._output import console, fmt, info, print_json, table
from ocrtune.errors import InputError
from ocrtune.model.init_from import headline_of
from ocrtune.sweep.types import TrialResult, TrialSpec
from ocrtune.train.rundir import RunDir, RunState, find_run, list_runs, list_trial_runs, run_state, shown_epoch

app = typer.Typer(help="List and inspect training runs.", no_args_is_help=True)
RunsDirOption = Annotated[Path, typer.Option("--runs-dir", help="Where run directories live.")]


@app.command("list")
def list_(
    runs_dir: RunsDirOption = Path("runs"),
    sweep: Annotated[
        Optional[str],
        typer.Option("--sweep", help="List this sweep's trial runs (runs/sweeps/NAME/trials/*/runs/*) instead."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Runs with status, epochs and best validation scores.

    With --sweep NAME: the sweep's trial runs, each with its trial number and swept values;
    its status is the trial's (result.json) once it has one, else the run's.
    """
    if sweep is not None:
        _list_sweep(runs_dir, sweep, as_json)
        return
    records = [_record(run) for run in list_runs(runs_dir)]
    if as_json:
        print_json(records)
        return
    if not records:
        console.print(f"no runs in {runs_dir}", markup=False)
        return
    cols = ["run", "status", "epochs", "best epoch", "H-mean", "precision", "recall", "time (s)"]
    rows = [[r["run"], r["status"], r["epochs"], shown_epoch(r["best_epoch"]), r["hmean"], r["precision"], r["recall"], r["wall_time_s"]] for r in records]
    console.print(table(None, cols, rows))
    _resume_hints(records)


def _resume_hints(records: list[dict[str, Any]], most: int = 5) -> None:
    """How to continue the runs that stopped before their last epoch (killed, lost, interrupted,
    failed), on stderr under the table."""
    stopped = [r for r in records if r.get("resume")]
    for r in stopped[:most]:
        info(f"{r['run']} ({r['status']}): continue with: {r['resume']}")
    if len(stopped) > most:
        info(f"... and {len(stopped) - most} more; `ocrtune runs show RUN` says how to continue each")


def _record(run: RunDir) -> dict[str, Any]:
    """One run as ``runs list`` shows it (its summary's status, epochs and best scores)."""
    try:
        s = run.read_summary()
        state = run_state(run, s)
        status, reason, resume = state.status, state.reason, state.resume
    except InputError as e:  # one broken run does not hide the others
        s = {}
        status, reason, resume = f"unreadable summary ({e.problems[0].message})", None, None
    best = s.get("best") or {}
    return {
        "run": run.path.name,
        "status": status,
        "recorded_status": s.get("status"),
        "status_reason": reason,
        "resume": resume,
        "preset": s.get("preset"),
        "epochs": s.get("epochs_completed"),
        "best_epoch": s.get("best_epoch"),
        "hmean": best.get("hmean"),
        "precision": best.get("precision"),
        "recall": best.get("recall"),
        "wall_time_s": s.get("wall_time_s"),
    }


def _list_sweep(runs_dir: Path, name: str, as_json: bool) -> None:
    sweep_dir = runs_dir / "sweeps" / name
    if not sweep_dir.is_dir():
        raise InputError(f"no sweep named {name!r} under {runs_dir / 'sweeps'}", file=str(sweep_dir))
    records = []
    for number, run in list_trial_runs(sweep_dir):
        trial = run.path.parent.parent
        spec, result = _trial_files(trial)
        rec = _record(run)
        records.append(
            {
                "trial": number,
                **rec,
                "run_dir": str(run.path),
                "params": spec.params if spec else None,
                "derived": spec.derived if spec else None,
                "run_status": rec["status"],
                "status": result.status.value if result else rec["status"],
                "score": result.score if result else None,
            }
        )
    if as_json:
        print_json(records)
        return
    if not records:
        why = "imported sweeps have no run directories" if _strategy(runs_dir, name) == "imported" \
            else "objective trials train no run"
        console.print(f"sweep {name}: no trial runs in {sweep_dir / 'trials'} ({why})", markup=False)
        return
    cols = ["trial", "values", "run", "status", "epochs", "best epoch", "H-mean", "precision", "recall", "time (s)"]
    rows = [
        [r["trial"], _values(r["params"]), r["run"], r["status"], r["epochs"], shown_epoch(r["best_epoch"]),
         r["hmean"], r["precision"], r["recall"], r["wall_time_s"]]
        for r in records
    ]
    console.print(table(f"sweep {name}: {len(records)} trial run(s)", cols, rows))


def _strategy(runs_dir: Path, name: str) -> str | None:
    """The sweep's strategy (``imported`` for ``sweep import``), from its study in the default
    place, opened read-only; None where it cannot be read (another --storage, no study)."""
    from ocrtune.sweep.store import Store

    try:
        store = Store.open_here(name, runs_dir)
        if store is None:
            return None
        try:
            cfg = store.config()
        finally:
            store.close()
    except Exception:  # noqa: BLE001 - only the wording of an empty listing depends on it
        return None
    return cfg.search.kind if cfg is not None else None


def _trial_files(trial: Path) -> tuple[TrialSpec | None, TrialResult | None]:
    """The trial's spec.json and result.json; None for one that is missing or unreadable."""
    try:
        spec = TrialSpec.read(trial / "spec.json")
    except (OSError, ValueError, TypeError):
        spec = None
    try:
        result = TrialResult.from_json(json.loads((trial / "result.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        result = None
    return spec, result


def _values(params: dict[str, Any] | None) -> str:
    """Swept values by their last key segment (``lr=0.0003``), the full key where two share it."""
    if params is None:
        return "?"
    last = [k.rsplit(".", 1)[-1] for k in params]
    return ", ".join(f"{s if last.count(s) == 1 else k}={fmt(v)}" for k, s, v in zip(params, last, params.values()))


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="Run directory or name.")],
    runs_dir: RunsDirOption = Path("runs"),
    as_json: JsonOption = False,
) -> None:
    """Summary and per-epoch metrics of one run."""
    run = find_run(ref, runs_dir)
    summary, rows = run.read_summary(), run.read_metrics()
    state = run_state(run, summary)
    if as_json:
        print_json({"run": str(run.path), "status": state.status, "status_reason": state.reason,
                    "resume": state.resume, "summary": summary, "metrics": rows})
        return
    console.print(table(str(run.path), ["field", "value"], _summary_rows(summary, state)))
    if rows:
        cols = ["epoch", "train_loss", "val_hmean", "val_precision", "val_recall", "lr", "grad_norm", "epoch_time_s", "peak_mem_mb"]
        console.print(table("metrics", cols, [[shown_epoch(r.get("epoch")), *(r.get(c) for c in cols[1:])] for r in rows]))
    if state.reason:
        info(f"{state.status}: {state.reason}")
    if state.resume:
        info(f"continue with: {state.resume}")


def _summary_rows(summary: dict[str, Any], state: RunState) -> list[list[Any]]:
    """The summary's fields, with the status as derived (what was recorded beside it when that
    differs), the best epoch counted from 1 and its val scores beside it."""
    out: list[list[Any]] = []
    for k, v in summary.items():
        if k == "epoch_base":
            continue
        if k == "status":
            out.append(["status", state.status if state.status == state.recorded
                        else f"{state.status} (recorded: {state.recorded})"])
        elif k == "owner" and isinstance(v, dict):
            out.append(["owner", f"pid {v.get('pid')} on {str(v.get('host', '?')).split('/')[0]}"])
        elif k == "init" and isinstance(v, dict):  # the line train --init printed
            out.append(["init", headline_of(v)])
        elif k == "best_epoch":
            out.append(["best epoch", shown_epoch(v)])
        elif k == "best":
            best = v if isinstance(v, dict) else {}
            out += [[f"best {name}", best.get(name)] for name in ("hmean", "precision", "recall", "iou_hmean")]
        else:
            out.append([k, v])
    return out
