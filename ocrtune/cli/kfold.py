"""`ocrtune kfold` (run or resume a k-fold cross-validation) and `kfold status NAME`: parse and render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Mapping, Optional, Sequence

import typer
from rich.console import Group
from rich.text import Text

from ocrtune.cli._options import JsonOption, PresetsDirOption, SetOption
from ocrtune.cli._output import console, fmt, info, print_json, table
from ocrtune.errors import InputError
from ocrtune.presets.schema import MAX_EPOCHS

EXIT_STOPPED = 130

app = typer.Typer(help="k-fold cross-validation: train one run per fold (folds stratified by words per image, "
                  "byte-identical images kept together) and score every image out of fold.", no_args_is_help=False)

RunsDirOption = Annotated[Path, typer.Option("--runs-dir", help="Root of run directories; a k-fold goes to <runs-dir>/kfold/<name>/.")]


@app.callback(invoke_without_command=True)
def kfold(
    ctx: typer.Context,
    preset: Annotated[Optional[str], typer.Option("--preset", "-p", help="Preset name or path (e.g. cpu-demo).")] = None,
    folds: Annotated[int, typer.Option("--folds", "-k", help="Number of folds (at least 2).")] = 5,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Dataset root; its train and val splits are merged and re-split. Default: the preset's "
        "datasets.root, else the embedded synthetic receipts.")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="k-fold name (default <preset>-<folds>fold); re-run to resume.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the fold assignment (training uses the preset's seed).")] = 0,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, max=MAX_EPOCHS, help="Epochs per fold (default: the preset's trainer.max_epochs).")] = None,
    set_: SetOption = None,
    gpus: Annotated[Optional[str], typer.Option("--gpus", help="GPUs to use, one fold per GPU at a time: 0,1,2,3 or all.")] = None,
    parallel: Annotated[Optional[int], typer.Option(
        "--parallel", help="Folds at a time on CPU (default 1), or per GPU with --gpus.")] = None,
    runs_dir: RunsDirOption = Path("runs"),
    presets_dir: PresetsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a k-fold, or resume it: re-running the same command trains only the folds not yet
    completed. Ends with each fold's out-of-fold H/P/R and the pooled score of all held-out images."""
    if ctx.invoked_subcommand is not None:
        return
    from ocrtune.kfold.api import Hooks, KFoldRequest, run_kfold

    if preset is None:
        raise InputError("which preset? e.g. --preset cpu-demo (see `ocrtune presets list`)", key="--preset")
    request = KFoldRequest(preset=preset, folds=folds, data=data, name=name, seed=seed, epochs=epochs,
                           sets=tuple(set_ or ()), presets_dir=tuple(str(p) for p in presets_dir or ()),
                           runs_dir=runs_dir, gpus=gpus, parallel=parallel)
    names: list[str] = []

    def started(settings: Any, slots: Sequence[Any], todo: Sequence[int], problems: Sequence[str]) -> None:
        names.append(settings.name)
        for line in problems[:20]:
            info(f"warning: {line}")
        if len(problems) > 20:
            info(f"warning: ... and {len(problems) - 20} more data problems")
        done = settings.folds - len(todo)
        resumed = f"; {done} fold(s) already completed" if done else ""
        info(f"kfold {settings.name}: {settings.folds} folds of {len(settings.images)} images, {settings.epochs} "
             f"epoch(s) a fold, {len(slots)} slot(s){resumed}; {runs_dir / 'kfold' / settings.name}")

    try:
        outcome = run_kfold(request, Hooks(started, _event))
    except KeyboardInterrupt:
        info(f"stopped; the running folds will be trained again. Resume with the same command "
             f"(kfold {names[0] if names else ''}).")
        raise typer.Exit(EXIT_STOPPED) from None
    summary = outcome.summary
    if not outcome.trained:
        info(f"nothing left to run: every fold of kfold {summary.name} had already completed")
    if as_json:
        print_json(summary.to_json())
    else:
        console.print(render(summary))
    if summary.state != "finished":
        failed = [r.fold for r in summary.rows if r.status != "completed"]
        info(f"fold(s) {', '.join(map(str, failed))} did not complete; re-run the same command to train them again")
        raise typer.Exit(1)


@app.command("status")
def status(
    target: Annotated[str, typer.Argument(metavar="NAME|DIR", help="k-fold name, or its folder (holding kfold.json).")],
    runs_dir: RunsDirOption = Path("runs"),
    as_json: JsonOption = False,
) -> None:
    """Show a k-fold's folds (images, status, out-of-fold H/P/R) and pooled scores; writes nothing."""
    from ocrtune.kfold.api import kfold_status

    summary = kfold_status(target, runs_dir)
    if as_json:
        print_json(summary.to_json())
        return
    console.print(render(summary))


def _event(kind: str, d: Mapping[str, Any]) -> None:
    where = f"fold {d['fold']}/{d['folds']}"
    if kind == "start":
        cont = f", continuing its run after epoch {d['resumed_epochs']}" if d.get("resumed_epochs") else ""
        info(f"{where} [{d['slot']}] started: train {d['train']} images, held out {d['held_out']}{cont} (log {d['log']})")
    elif kind == "epoch":
        info(f"{where} epoch {d['epoch']}/{d['epochs']}: val H-mean {fmt(d['hmean'])}")
    elif kind == "end":
        secs = f" in {d['wall_time_s']:.1f}s" if isinstance(d.get("wall_time_s"), (int, float)) else ""
        oof = d.get("oof")
        if d["status"] == "completed" and oof:
            info(f"{where} completed{secs}: out of fold H {fmt(oof['hmean'])} P {fmt(oof['precision'])} "
                 f"R {fmt(oof['recall'])} (best epoch {fmt(d.get('best_epoch'))})")
        else:
            err = str(d.get("error") or "").strip().splitlines()
            info(f"{where} {d['status']}{secs}" + (f": {err[-1]}" if err else ""))


def render(s: Any) -> Group:
    """Per fold: held-out images and words, status, best epoch, out-of-fold H/P/R; then the
    mean of the folds and the pooled score of every held-out image."""
    rows: list[list[Any]] = []
    for r in s.rows:
        o = r.oof
        shown = f"{r.status} ({r.epochs_done}/{s.epochs} epochs)" if r.epochs_done is not None else r.status
        rows.append([r.fold, r.images, r.words, Text(shown, style=_STYLE.get(r.status, "")), r.best_epoch,
                     _pct(o.hmean if o else None), _pct(o.precision if o else None), _pct(o.recall if o else None),
                     Path(r.run_dir).name if r.run_dir else None])
    m, p = s.mean, s.pooled
    rows.append([f"mean of {s.completed} fold(s)", None, None, None, None, _pct(m.hmean if m else None),
                 _pct(m.precision if m else None), _pct(m.recall if m else None), None])
    pooled_label = f"pooled ({s.images} images)" if p else "pooled"
    rows.append([pooled_label, s.images or None, None, None, None, _pct(p.hmean if p else None),
                 _pct(p.precision if p else None), _pct(p.recall if p else None), None])
    title = (f"kfold {s.name}: {s.preset}, {s.folds} folds, {s.epochs} epoch(s), seed {s.seed} ({s.state}); "
             "out-of-fold CLEval in %")
    t = table(title, ["fold", "images", "words", "status", "best epoch", "H-mean", "precision", "recall", "run"], rows)
    parts: list[Any] = [t]
    if p is not None:
        g = s.pooled_global
        parts.append(Text(f"pooled: CLEval image mean over all {s.images} held-out images, each predicted by the "
                          f"best checkpoint of the fold that never saw it (global, pooled characters: H "
                          f"{_pct(g.hmean if g else None)}). The mean of folds weighs each fold alike."))
    else:
        parts.append(Text(f"pooled: once every fold completed ({s.completed} of {s.folds} so far)"))
    for r in s.rows:
        if r.error and r.status != "completed":
            parts.append(Text(f"fold {r.fold}: {str(r.error).strip().splitlines()[-1]}", style="red"))
    for w in s.warnings:
        parts.append(Text(f"warning: {w}", style="yellow"))
    parts.append(Text(f"folder: {s.dir}"))
    return Group(*parts)


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{100 * v:.2f}"


_STYLE = {"completed": "green", "failed": "red", "diverged": "red", "oom": "red", "interrupted": "magenta",
          "stopped": "magenta", "missing run": "magenta", "running": "cyan", "pending": ""}
