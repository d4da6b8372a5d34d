"""`ocrtune runs list|show`: what has been trained, with status and best scores.

Tables count epochs from 1, as training prints them; ``--json`` gives the run's files as they
are (``epoch`` and ``best_epoch`` from 0, as ``summary.json`` says with ``epoch_base``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ocrtune.cli._options import JsonOption
from ocrtune.cli._output import console, print_json, table
from ocrtune.errors import InputError
from ocrtune.train.rundir import find_run, list_runs, shown_epoch

app = typer.Typer(help="List and inspect training runs.", no_args_is_help=True)
RunsDirOption = Annotated[Path, typer.Option("--runs-dir", help="Where run directories live.")]


@app.command("list")
def list_(runs_dir: RunsDirOption = Path("runs"), as_json: JsonOption = False) -> None:
    """Runs with status, epochs and best validation scores."""
    records = []
    for run in list_runs(runs_dir):
        try:
            s = run.read_summary()
        except InputError as e:  # one broken run does not hide the others
            s = {"status": f"unreadable summary ({e.problems[0].message})"}
        best = s.get("best") or {}
        records.append(
            {
                "run": run.path.name,
                "status": s.get("status", "unknown"),
                "preset": s.get("preset"),
                "epochs": s.get("epochs_completed"),
                "best_epoch": s.get("best_epoch"),
                "hmean": best.get("hmean"),
                "precision": best.get("precision"),
                "recall": best.get("recall"),
                "wall_time_s": s.get("wall_time_s"),
            }
        )
    if as_json:
        print_json(records)
        return
    if not records:
        console.print(f"no runs in {runs_dir}", markup=False)
        return
    cols = ["run", "status", "epochs", "best epoch", "H-mean", "precision", "recall", "time (s)"]
    rows = [[r["run"], r["status"], r["epochs"], shown_epoch(r["best_epoch"]), r["hmean"], r["precision"], r["recall"], r["wall_time_s"]] for r in records]
    console.print(table(None, cols, rows))


@app.command()
def show(
    ref: Annotated[str, typer.Argument(help="Run directory or name.")],
    runs_dir: RunsDirOption = Path("runs"),
    as_json: JsonOption = False,
) -> None:
    """Summary and per-epoch metrics of one run."""
    run = find_run(ref, runs_dir)
    summary, rows = run.read_summary(), run.read_metrics()
    if as_json:
        print_json({"run": str(run.path), "summary": summary, "metrics": rows})
        return
    console.print(table(str(run.path), ["field", "value"], _summary_rows(summary)))
    if rows:
        cols = ["epoch", "train_loss", "val_hmean", "val_precision", "val_recall", "lr", "grad_norm", "epoch_time_s", "peak_mem_mb"]
        console.print(table("metrics", cols, [[shown_epoch(r.get("epoch")), *(r.get(c) for c in cols[1:])] for r in rows]))


def _summary_rows(summary: dict[str, Any]) -> list[list[Any]]:
    """The summary's fields, with the best epoch counted from 1 and its val scores beside it."""
    out: list[list[Any]] = []
    for k, v in summary.items():
        if k == "epoch_base":
            continue
        if k == "best_epoch":
            out.append(["best epoch", shown_epoch(v)])
        elif k == "best":
            best = v if isinstance(v, dict) else {}
            out += [[f"best {name}", best.get(name)] for name in ("hmean", "precision", "recall", "iou_hmean")]
        else:
            out.append([k, v])
    return out
