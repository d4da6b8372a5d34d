"""`ocrtune sweep` (run or resume a sweep), `sweep status NAME`, `sweep worker`: parse and render."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Mapping, Optional

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ocrtune.cli._options import JsonOption, PresetsDirOption, SetOption
from ocrtune.cli._output import console, err_console, fmt, info, print_json
from ocrtune.presets.schema import MAX_EPOCHS
from ocrtune.sweep.types import Status, SweepSummary

EXIT_STOPPED = 130
MAX_ROWS = 40

app = typer.Typer(help="Tune preset values: coarse-to-fine, grid, random or TPE sweeps, resumable, "
                  "on local GPUs/CPUs and on worker machines.", no_args_is_help=False)

StorageOption = Annotated[Optional[str], typer.Option(
    "--storage", help="Study storage: postgresql://user:pass@host/db (shared by workers), sqlite:///x.db or "
    "journal:x.log. Default: runs/sweeps/<name>/study.db.")]
RunsDirOption = Annotated[Path, typer.Option("--runs-dir", help="Root of run directories; trials go to <runs-dir>/sweeps/<name>/.")]
GpusOption = Annotated[Optional[str], typer.Option(
    "--gpus", help="GPUs to use, one trial per GPU at a time (see --trials-per-gpu): 0,1,2,3 or all.")]
ParallelOption = Annotated[Optional[int], typer.Option(
    "--parallel", min=0, help="Trials at a time on CPU (default 1), or per GPU with --gpus; 0: only coordinate.")]
TrialsPerGpuOption = Annotated[Optional[int], typer.Option(
    "--trials-per-gpu", min=1, help="With --gpus: trials sharing each GPU at a time, each limited to its share of "
    "the GPU's memory so one running out does not stop the other.")]
ColdTrialsOption = Annotated[bool, typer.Option(
    "--cold-trials", help="Start each trial as a new Python process (as before: seconds of imports and data "
    "reading per trial) instead of forking it from a warm process that did them once.")]


@app.callback(invoke_without_command=True)
def sweep(
    ctx: typer.Context,
    preset: Annotated[str, typer.Option("--preset", "-p", help="Base preset (name or path).")] = "cpu-demo",
    param: Annotated[str, typer.Option("--param", help="Numeric preset key to tune when there is no --space.")] = "models.optimizer.lr",
    range_: Annotated[str, typer.Option("--range", help="LOW,HIGH of --param.")] = "1e-5,1e-2",
    linear: Annotated[bool, typer.Option("--linear", help="Space points linearly (default: log scale).")] = False,
    points: Annotated[int, typer.Option("--points", help="Trials per stage, at least 2 (grid: points per range).")] = 5,
    top: Annotated[int, typer.Option("--top", help="Best intervals refined per stage.")] = 2,
    stages: Annotated[int, typer.Option("--stages", help="Most stages (hierarchical).")] = 5,
    min_improvement: Annotated[str, typer.Option(
        "--min-improvement", help="Stop when a stage improves the best score by less: relative (1%, 0.01) or "
        "absolute (0.005abs); 0 never stops early.")] = "1%",
    replicates: Annotated[int, typer.Option("--replicates", help="Re-run the best values with R new seeds at the end.")] = 0,
    replicate_top: Annotated[int, typer.Option("--replicate-top", help="How many best values --replicates re-runs.")] = 3,
    epochs: Annotated[int, typer.Option("--epochs", min=1, max=MAX_EPOCHS, help="Epochs per trial (other settings from the preset).")] = 3,
    metric: Annotated[Optional[str], typer.Option("--metric", help="hmean (maximised; default) or val_loss (minimised).")] = None,
    strategy: Annotated[Optional[str], typer.Option(
        "--strategy", help="hierarchical (default), grid, random or tpe (default with --space: its method, else grid).")] = None,
    space: Annotated[Optional[Path], typer.Option("--space", help="Search space YAML (W&B-style) for grid/random/tpe.")] = None,
    trials: Annotated[Optional[int], typer.Option("--trials", help="Trials for random/tpe (default points x stages); grid: at most.")] = None,
    prune: Annotated[Optional[str], typer.Option("--prune", help="Stop weak trials early: median or asha.")] = None,
    min_epochs: Annotated[Optional[int], typer.Option(
        "--min-epochs", help="With --prune: never prune before this many epochs (default 1).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Sweep name (default <preset>-<param> or <preset>-<strategy>); re-run to resume.")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Dataset root (default: the preset's, else synthetic receipts).")] = None,
    init: Annotated[Optional[str], typer.Option(
        "--init", help="Fine-tune: every trial starts from the weights of this run (best.ckpt) or .ckpt whose names "
        "and shapes match, as train --init does; stored with the sweep (a resume without it keeps it).")] = None,
    set_: SetOption = None,
    storage: StorageOption = None,
    gpus: GpusOption = None,
    parallel: ParallelOption = None,
    trials_per_gpu: TrialsPerGpuOption = None,
    cold_trials: ColdTrialsOption = False,
    batch: Annotated[Optional[int], typer.Option("--batch", min=1, help="TPE: trials proposed at a time (default: local slots).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random and TPE proposals.")] = 0,
    objective: Annotated[Optional[str], typer.Option(
        "--objective", help="Optimise module:function(params, epochs=, report=) instead of training.")] = None,
    trial_timeout: Annotated[Optional[float], typer.Option(
        "--trial-timeout", help="Stop a trial still running after this many seconds and record it failed "
        "(default: no limit; a trial with no new epoch for 5x the median epoch time, at least 30 min, is "
        "stopped anyway).")] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Do not write the sweep report when the sweep ends.")] = False,
    runs_dir: RunsDirOption = Path("runs"),
    presets_dir: PresetsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a sweep, or resume it: re-running the same command never re-runs a finished trial.
    When it ends, the report (ranking, impact, recommended presets, figures) is written to
    runs/sweeps/NAME/report/."""
    if ctx.invoked_subcommand is not None:
        return
    from ocrtune.sweep.api import Hooks, Place, run_sweep
    from ocrtune.sweep.plan.trial_schedule import trial_schedule_note
    from ocrtune.sweep.prepare import SweepRequest
    from ocrtune.sweep.run.launcher import trials_at_a_time

    request = SweepRequest(
        preset=preset, strategy=strategy, param=param, range_text=range_, linear=linear, points=points, top=top,
        stages=stages, min_improvement=min_improvement, replicates=replicates, replicate_top=replicate_top,
        epochs=epochs, metric=metric, space_path=space, trials=trials, prune=prune, min_epochs=min_epochs, name=name,
        data=str(data) if data else None, objective=objective, seed=seed, batch=batch, trial_timeout=trial_timeout,
        init=init)
    view = _View(live=not as_json and err_console.is_terminal)
    names: list[str] = []
    started_trials = [0]

    def event(kind: str, data: Mapping[str, Any]) -> None:
        started_trials[0] += kind == "start"
        view.event(kind, data)

    def started(cfg: Any, url: str, slots: Any) -> None:
        names.append(cfg.name)
        coupled = f"; {', '.join(c.describe() for c in cfg.couplings)}" if cfg.couplings else ""
        start = f", from the weights of {cfg.init}" if cfg.init else ""
        info(f"sweep {cfg.name}: {cfg.strategy} over {', '.join(cfg.keys)}, {cfg.epochs} epoch(s) a "
             f"trial{start}, {len(slots)} local slot(s); storage {url}{coupled}")
        note = trial_schedule_note(cfg)
        if note:
            info(note)
        view.__enter__()

    try:
        outcome = run_sweep(request, Place(storage, runs_dir), sets=set_ or [], presets_dir=presets_dir or [],
                            gpus=gpus, parallel=trials_at_a_time(gpus, parallel, trials_per_gpu),
                            hooks=Hooks(started, event, view.update), report=not no_report, warm=not cold_trials)
    except KeyboardInterrupt:
        view.__exit__(None, None, None)
        info(f"stopped; running trials were re-queued. Resume with the same command (sweep {names[0] if names else ''}).")
        raise typer.Exit(EXIT_STOPPED) from None
    finally:
        view.__exit__(None, None, None)
    if not started_trials[0] and outcome.summary.state == "finished":
        info(f"nothing left to run: sweep {outcome.summary.name} had already finished ({outcome.summary.reason}); "
             "raise --stages or --trials (or lower --min-improvement) to extend it")
    _finish(outcome.summary, as_json, outcome.report_dir, outcome.report_error, name=outcome.summary.name)


@app.command("report")
def report(
    target: Annotated[str, typer.Argument(metavar="NAME|DIR", help="Sweep name, or a sweep folder holding study.db.")],
    baseline: Annotated[Optional[str], typer.Option(
        "--baseline", help="Preset or run directory to compare with (default: the sweep's preset and its reported "
        "score).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Report folder (default runs/sweeps/NAME/report).")] = None,
    storage: StorageOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    presets_dir: PresetsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a sweep's report: ranking vs a baseline in pp, parameter changes in %, impact,
    coarse-to-fine progress, recommended presets with train commands, figures, methods text."""
    from ocrtune.sweep.report.build import ReportRequest, make_report

    rep, folder = make_report(ReportRequest(target, baseline, out, storage, runs_dir, presets_dir or []))
    if as_json:
        print_json({**rep.to_json(), "folder": str(folder)})
        return
    from ocrtune.cli.sweep_report import render_report

    console.print(render_report(rep, folder))


@app.command("status")
def status(
    name: Annotated[str, typer.Argument(help="Sweep name.")],
    storage: StorageOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    as_json: JsonOption = False,
) -> None:
    """Show a sweep's stages, trials, best value and state (running, stopped or finished)."""
    from ocrtune.sweep.api import Place, sweep_status

    summary = sweep_status(name, Place(storage, runs_dir))
    if as_json:
        print_json(summary.to_json())
        return
    console.print(render(summary, final=True))


@app.command("worker")
def worker(
    name: Annotated[str, typer.Option("--name", help="Sweep to work for.")],
    storage: StorageOption = None,
    gpus: GpusOption = None,
    parallel: ParallelOption = None,
    trials_per_gpu: TrialsPerGpuOption = None,
    cold_trials: ColdTrialsOption = False,
    data: Annotated[Optional[Path], typer.Option("--data", help="This machine's dataset path, if not the sweep's.")] = None,
    max_idle: Annotated[Optional[float], typer.Option("--max-idle", help="Exit after this many seconds without a queued trial.")] = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the sweep to be created.")] = 60.0,
    runs_dir: RunsDirOption = Path("runs"),
    as_json: JsonOption = False,
) -> None:
    """Pull queued trials of sweep NAME and run them here until the sweep finishes."""
    from ocrtune.sweep.api import Hooks, Place, run_worker
    from ocrtune.sweep.run.launcher import trials_at_a_time

    def started(cfg: Any, url: str, slots: Any) -> None:
        start = f"; trials start from the weights of {cfg.init}" if cfg.init else ""
        info(f"worker for sweep {name} on {url}: {len(slots)} slot(s){start}")

    try:
        outcomes = run_worker(name, Place(storage, runs_dir), gpus=gpus,
                              parallel=trials_at_a_time(gpus, parallel, trials_per_gpu), data=data,
                              max_idle=max_idle, wait=wait, hooks=Hooks(started, _worker_event), warm=not cold_trials)
    except KeyboardInterrupt:
        info("stopped; running trials were re-queued for other workers.")
        raise typer.Exit(EXIT_STOPPED) from None
    if as_json:
        print_json([o.to_json() for o in outcomes])
    else:
        info(f"worker done: ran {len(outcomes)} trial(s)")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="W&B 'export runs' CSV (or any CSV with one row per run), or JSON records.")],
    name: Annotated[str, typer.Option("--name", help="Name of the new sweep.")],
    preset: Annotated[str, typer.Option("--preset", "-p", help="Preset the runs trained (name or path): keys and values are checked against it.")],
    metric: Annotated[str, typer.Option("--metric", help="Column holding each run's score, e.g. val/hmean or summary.val_loss.")],
    column: Annotated[Optional[list[str]], typer.Option(
        "--column", help="Map a column to a preset key: SHORT=models.optimizer.lr (repeatable).", show_default=False)] = None,
    direction: Annotated[Optional[str], typer.Option(
        "--direction", help="maximize (default; recorded as hmean) or minimize (default for a loss column; recorded as val_loss).")] = None,
    percent: Annotated[Optional[bool], typer.Option(
        "--percent/--fraction", help="The H-mean column holds percent (converted to a fraction) or fractions 0..1 "
        "(default: percent when a value is above 1 and none above 100).", show_default=False)] = None,
    storage: StorageOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    presets_dir: PresetsDirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing sweep of that name.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Import sweep results run elsewhere (W&B, a spreadsheet) as a finished sweep, so that
    `sweep status` and `sweep report` read them like any sweep."""
    from ocrtune.sweep.importer import ImportOutcome, ImportRequest, import_sweep

    request = ImportRequest(
        file=file, name=name, preset=preset, metric=metric, columns=tuple(column or ()), direction=direction,
        unit="auto" if percent is None else "percent" if percent else "fraction", storage=storage,
        runs_dir=runs_dir, presets_dir=tuple(presets_dir or ()), force=force)
    done: list[ImportOutcome] = []
    summary = import_sweep(request, on_done=done.append)
    outcome = done[0]
    if outcome.ignored:
        shown = ", ".join(outcome.ignored[:10]) + (f" and {len(outcome.ignored) - 10} more" if len(outcome.ignored) > 10 else "")
        info(f"ignored columns (not preset keys; map one with --column SHORT=dotted.key): {shown}")
    if as_json:
        info(outcome.line())
        print_json(summary.to_json())
        return
    console.print(Text(outcome.line()), soft_wrap=True)
    b = summary.best
    if b is not None:
        console.print(Text(f"best: {_params(b.params)} {summary.metric} {fmt(b.score)} (trial {b.trial})"), soft_wrap=True)
    info(f"see it with: ocrtune sweep status {name}" + (f" --runs-dir {runs_dir}" if runs_dir != Path("runs") else "")
         + (" (and the same --storage)" if storage else ""))


# --- rendering -------------------------------------------------------------------------------


def _finish(summary: SweepSummary, as_json: bool, folder: Path | None = None, report_error: str | None = None,
            name: str = "") -> None:
    if as_json:
        print_json({**summary.to_json(), "report": str(folder) if folder else None})
    else:
        console.print(render(summary, final=True))
    if folder is not None:
        info(f"report: {folder / 'report.md'} (also report.html, figures/, presets/)")
    if report_error is not None:
        info(f"error: report not written: {report_error}; the results are in the study: "
             f"re-make it with 'ocrtune sweep report {name}'")
        raise typer.Exit(1)
    if summary.best is None:
        info("no trial produced a score (all diverged or failed); see the errors above")
        raise typer.Exit(1)
    if as_json and summary.warning:
        info(f"warning: {summary.warning}")


def _worker_event(kind: str, data: Mapping[str, Any]) -> None:
    if kind == "start":
        info(f"trial {data['number']} [{data['slot']}] {_params(data['params'])}")
    elif kind == "end":
        err = f"  {str(data['error']).splitlines()[-1]}" if data.get("error") else ""
        info(f"trial {data['number']} {data['status']} score {fmt(data['score'])}{err}")
    elif kind == "error":
        info(f"worker error [{data.get('slot')}]: {data.get('error')}")
    elif kind == "warning":
        info(f"warning: {data.get('error')}")


class _View:
    """A rich Live view on a terminal; otherwise one stderr line per finished trial."""

    def __init__(self, live: bool) -> None:
        self.live = Live(console=Console(stderr=True), refresh_per_second=4, transient=True) if live else None
        self._open = False

    def __enter__(self) -> _View:
        if self.live is not None and not self._open:
            self.live.__enter__()
            self._open = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None and self._open:
            self._open = False
            self.live.__exit__(*exc)

    def update(self, summary: SweepSummary) -> None:
        if self.live is not None:
            self.live.update(render(summary, final=False))

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        if kind == "warning" and self.live is not None and self._open:
            self.live.console.print(Text(f"warning: {data.get('error')}", style="yellow"))
        elif kind == "warning" or (self.live is None and kind in ("end", "error")):
            _worker_event(kind, data)


def render(s: SweepSummary, final: bool) -> Group:
    """Stage table (measured and, for the hierarchical strategy, smoothed score; coupled
    settings as their own columns), running trials' epoch progress, best so far and ETA."""
    keys = list(s.keys)
    smooth = s.strategy == "hierarchical"
    t = Table(title=f"sweep {s.name} ({s.strategy}, {s.metric}, {s.state})", title_justify="left")
    cols = ["trial", "stage", *(k.split(".")[-1] for k in keys), *(k.split(".")[-1] for k in s.derived), s.metric]
    cols += ["smoothed"] if smooth else []
    for col in [*cols, "status", "epochs", "s/epoch", "time"]:
        t.add_column(col, no_wrap=True)
    rows = s.trials[-MAX_ROWS:]
    best_trial = s.best.trial if s.best else None
    for r in rows:
        prog = r.progress or {}
        epochs = r.epochs if r.epochs is not None else prog.get("epoch")
        stage = f"{r.stage}" + ("r" if r.kind == "replicate" else "")  # counted from 1, as the docs do
        status = Text(r.status.value, style=_STYLE.get(r.status, ""))
        mark = "*" if r.number == best_trial else ""
        cells = [f"{r.number}{mark}", stage, *(fmt(r.params.get(k)) for k in keys),
                 *(fmt(r.derived.get(k)) for k in s.derived), fmt(r.score)]
        cells += [fmt(r.smoothed)] if smooth else []
        t.add_row(*cells, status, fmt(epochs), fmt(r.time_per_epoch_s), _dur(r.duration_s))
    parts: list[Any] = [t]
    if len(s.trials) > MAX_ROWS:
        parts.append(Text(f"({len(s.trials) - MAX_ROWS} earlier trials not shown; sweep status --json lists all)"))
    if not final:
        for r in s.trials:
            if r.status == Status.RUNNING:
                p = r.progress or {}
                done = (f"epoch {p['epoch']}/{p.get('epochs', s.epochs)} {s.metric} {fmt(p.get('value'))}"
                        if p.get("epoch") else "starting")
                parts.append(Text(f"{r.slot or '?'} -> trial {r.number}: {done}"))
    if s.couplings:
        parts.append(Text("coupled: " + "; ".join(s.couplings)))
    if s.init:
        parts.append(Text(f"init: every trial starts from the weights of {s.init}"))
    b = s.best
    if b is None:
        parts.append(Text("best: none yet", style="bold"))
    else:
        if b.n > 1:
            score = f"{s.metric} {fmt(b.score)} +- {fmt(b.spread)} over {b.n} runs"
        elif b.smoothed is not None:
            score = f"{s.metric} {fmt(b.score)} (smoothed {fmt(b.smoothed)})"
        else:
            score = f"{s.metric} {fmt(b.score)}"
        where = f" (trial {b.trial}, {b.run_dir})" if b.run_dir else f" (trial {b.trial})"
        parts.append(Text(f"best: {_params(b.params)} {score}{where}", style="bold"))
        if b.note:
            parts.append(Text(f"why: {b.note}"))
    if s.warning:
        parts.append(Text(f"warning: {s.warning}", style="bold yellow"))
    if final:
        parts.append(Text(f"{s.state}: {s.reason or ''}"))
    elif s.eta_s is not None:
        note = " (at most: a stage that does not improve ends the sweep)" if s.strategy == "hierarchical" else ""
        parts.append(Text(f"ETA {_dur(s.eta_s)}{note}"))
    return Group(*parts)


_STYLE = {Status.COMPLETED: "green", Status.DIVERGED: "red", Status.OOM: "red", Status.FAILED: "red",
          Status.PRUNED: "yellow", Status.LOST: "magenta", Status.INTERRUPTED: "magenta", Status.RUNNING: "cyan"}


def _params(p: Mapping[str, Any]) -> str:
    return " ".join(f"{k.split('.')[-1]}={fmt(v)}" for k, v in p.items())


def _dur(s: Any) -> str:
    if s is None:
        return "-"
    s = float(s)
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    return f"{m}m{sec:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"
