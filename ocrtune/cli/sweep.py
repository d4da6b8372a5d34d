"""`ocrtune sweep` (run or resume a sweep), `sweep status NAME`, `sweep worker`: parse and render."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Mapping, Optional

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ocrtune.cli._options import JsonOption, PresetsDirOption, SetOption
from ocrtune.cli._output import console, err_console, fmt, info, print_json
from ocrtune.errors import InputError

EXIT_STOPPED = 130
MAX_ROWS = 40

app = typer.Typer(help="Tune preset values: coarse-to-fine, grid, random or TPE sweeps, resumable, "
                  "on local GPUs/CPUs and on worker machines.", no_args_is_help=False)

StorageOption = Annotated[Optional[str], typer.Option(
    "--storage", help="Study storage: postgresql://user:pass@host/db (shared by workers), sqlite:///x.db or "
    "journal:x.log. Default: runs/sweeps/<name>/study.db.")]
RunsDirOption = Annotated[Path, typer.Option("--runs-dir", help="Root of run directories; trials go to <runs-dir>/sweeps/<name>/.")]
GpusOption = Annotated[Optional[str], typer.Option("--gpus", help="GPUs to use, one trial per GPU at a time: 0,1,2,3 or all.")]
ParallelOption = Annotated[Optional[int], typer.Option(
    "--parallel", min=0, help="Trials at a time on CPU (default 1), or per GPU with --gpus; 0: only coordinate.")]


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
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs per trial (other settings from the preset).")] = 3,
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
    set_: SetOption = None,
    storage: StorageOption = None,
    gpus: GpusOption = None,
    parallel: ParallelOption = None,
    batch: Annotated[Optional[int], typer.Option("--batch", min=1, help="TPE: trials proposed at a time (default: local slots).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of random and TPE proposals.")] = 0,
    objective: Annotated[Optional[str], typer.Option(
        "--objective", help="Optimise module:function(params, epochs=, report=) instead of training.")] = None,
    trial_timeout: Annotated[Optional[float], typer.Option(
        "--trial-timeout", help="Stop a trial still running after this many seconds and record it failed "
        "(default: no limit; a trial with no new epoch for 5x the median epoch time, at least 30 min, is "
        "stopped anyway).")] = None,
    runs_dir: RunsDirOption = Path("runs"),
    presets_dir: PresetsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Run a sweep, or resume it: re-running the same command never re-runs a finished trial."""
    if ctx.invoked_subcommand is not None:
        return
    from ocrtune.presets.load import load_preset
    from ocrtune.sweep.coordinator import Coordinator
    from ocrtune.sweep.launcher import make_slots, sigterm_as_interrupt
    from ocrtune.sweep.prepare import prepare
    from ocrtune.sweep.store import Store
    from ocrtune.sweep.worker import WorkerSettings

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    loaded = load_preset(preset, set_ or [], presets_dir or [])
    slots = make_slots(gpus, parallel)
    cfg = prepare(loaded.preset, preset, strategy=strategy, param=param, range_text=range_, linear=linear,
                  points=points, top=top, stages=stages, min_improvement=min_improvement, replicates=replicates,
                  replicate_top=replicate_top, epochs=epochs, metric=metric, space_path=space, trials=trials,
                  prune=prune, min_epochs=min_epochs, name=name, data=str(data) if data else None,
                  objective=objective, seed=seed, batch=batch, slots=len(slots), trial_timeout=trial_timeout)
    store = Store.open(cfg.name, storage, runs_dir=runs_dir, create=True, direction=cfg.direction)  # type: ignore[arg-type]
    settings = WorkerSettings(sweep_dir=runs_dir / "sweeps" / cfg.name)
    view = _View(live=not as_json and err_console.is_terminal)
    coord = Coordinator(store, cfg, slots, settings, on_event=view.event)
    info(f"sweep {cfg.name}: {cfg.strategy} over {', '.join(d['key'] for d in cfg.dims)}, {cfg.epochs} epoch(s) a "
         f"trial, {len(slots)} local slot(s); storage {store.url}")
    try:
        with sigterm_as_interrupt(), view:
            summary = coord.run(on_update=view.update)
    except KeyboardInterrupt:
        info(f"stopped; running trials were re-queued. Resume with the same command (sweep {cfg.name}).")
        raise typer.Exit(EXIT_STOPPED) from None
    finally:
        store.close()
    _finish(summary, as_json)


@app.command("status")
def status(
    name: Annotated[str, typer.Argument(help="Sweep name.")],
    storage: StorageOption = None,
    runs_dir: RunsDirOption = Path("runs"),
    as_json: JsonOption = False,
) -> None:
    """Show a sweep's stages, trials, best value and state (running, stopped or finished)."""
    from ocrtune.sweep.config import SweepConfig
    from ocrtune.sweep.store import Store, check_name
    from ocrtune.sweep.summary import summarize

    store = Store.open(check_name(name, key="NAME"), storage, runs_dir=runs_dir)
    try:
        stored = store.config()
        if stored is None:
            raise InputError("this study was not created by ocrtune sweep (no settings stored)", key=name)
        summary = summarize(store, SweepConfig.from_dict(stored), observe=True)
    finally:
        store.close()
    if as_json:
        print_json(summary)
        return
    console.print(render(summary, final=True))


@app.command("worker")
def worker(
    name: Annotated[str, typer.Option("--name", help="Sweep to work for.")],
    storage: StorageOption = None,
    gpus: GpusOption = None,
    parallel: ParallelOption = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="This machine's dataset path, if not the sweep's.")] = None,
    max_idle: Annotated[Optional[float], typer.Option("--max-idle", help="Exit after this many seconds without a queued trial.")] = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the sweep to be created.")] = 60.0,
    runs_dir: RunsDirOption = Path("runs"),
    as_json: JsonOption = False,
) -> None:
    """Pull queued trials of sweep NAME and run them here until the sweep finishes."""
    from ocrtune.sweep.launcher import make_slots, sigterm_as_interrupt
    from ocrtune.sweep.prepare import check_worker_data
    from ocrtune.sweep.store import Store, check_name
    from ocrtune.sweep.worker import WorkerPool, WorkerSettings

    check_name(name)
    slots = make_slots(gpus, parallel)
    if not slots:
        raise InputError("a worker needs at least one slot", key="--parallel")
    settings = WorkerSettings(sweep_dir=runs_dir / "sweeps" / name, data=str(data.resolve()) if data else None,
                              max_idle_s=max_idle)
    store = Store.open_when_ready(name, storage, runs_dir=runs_dir, wait_s=wait, poll_s=max(settings.poll_s, 0.05))
    config = store.config() or {}
    try:
        check_worker_data(config, settings.data)  # this machine's data, before any trial takes it
    except BaseException:
        store.close()
        raise
    pool = WorkerPool(store, config, slots, settings, on_event=_worker_event, reap=True)
    info(f"worker for sweep {name} on {store.url}: {len(slots)} slot(s)")
    try:
        with sigterm_as_interrupt():
            outcomes = pool.run()
    except KeyboardInterrupt:
        info("stopped; running trials were re-queued for other workers.")
        raise typer.Exit(EXIT_STOPPED) from None
    finally:
        store.close()
    if as_json:
        print_json([o.__dict__ for o in outcomes])
    else:
        info(f"worker done: ran {len(outcomes)} trial(s)")


# --- rendering -------------------------------------------------------------------------------


def _finish(summary: Mapping[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(summary)
    else:
        console.print(render(summary, final=True))
    if summary["best"] is None:
        info("no trial produced a score (all diverged or failed); see the errors above")
        raise typer.Exit(1)
    if as_json and summary.get("warning"):
        info(f"warning: {summary['warning']}")


def _worker_event(kind: str, data: Mapping[str, Any]) -> None:
    if kind == "start":
        info(f"trial {data['number']} [{data['slot']}] {_params(data['params'])}")
    elif kind == "end":
        err = f"  {str(data['error']).splitlines()[-1]}" if data.get("error") else ""
        info(f"trial {data['number']} {data['status']} score {fmt(data['score'])}{err}")
    elif kind == "error":
        info(f"worker error [{data.get('slot')}]: {data.get('error')}")


class _View:
    """A rich Live view on a terminal; otherwise one stderr line per finished trial."""

    def __init__(self, live: bool) -> None:
        self.live = Live(console=Console(stderr=True), refresh_per_second=4, transient=True) if live else None
        self.seen: set[int] = set()

    def __enter__(self) -> _View:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def update(self, summary: Mapping[str, Any]) -> None:
        if self.live is not None:
            self.live.update(render(summary, final=False))

    def event(self, kind: str, data: Mapping[str, Any]) -> None:
        if self.live is None and kind in ("end", "error"):
            _worker_event(kind, data)


def render(s: Mapping[str, Any], final: bool) -> Group:
    """Stage table, running trials' epoch progress, best so far and ETA."""
    keys = list(s["keys"])
    t = Table(title=f"sweep {s['name']} ({s['strategy']}, {s['metric']}, {s['state']})", title_justify="left")
    for col in ["trial", "stage", *(k.split(".")[-1] for k in keys), s["metric"], "status", "epochs", "s/epoch", "time"]:
        t.add_column(col, no_wrap=True)
    rows = s["trials"][-MAX_ROWS:]
    best_trial = (s["best"] or {}).get("trial")
    for r in rows:
        prog = r.get("progress") or {}
        epochs = r.get("epochs") if r.get("epochs") is not None else prog.get("epoch")
        stage = f"{r['stage']}" + ("r" if r["kind"] == "replicate" else "")  # counted from 1, as the docs do
        status = Text(r["status"], style=_STYLE.get(r["status"], ""))
        mark = "*" if r["number"] == best_trial else ""
        t.add_row(f"{r['number']}{mark}", stage, *(fmt(r["params"].get(k)) for k in keys), fmt(r["score"]), status,
                  fmt(epochs), fmt(r.get("time_per_epoch_s")), _dur(r.get("duration_s")))
    parts: list[Any] = [t]
    if len(s["trials"]) > MAX_ROWS:
        parts.append(Text(f"({len(s['trials']) - MAX_ROWS} earlier trials not shown; sweep status --json lists all)"))
    if not final:
        for r in s["trials"]:
            if r["state"] == "running":
                p = r.get("progress") or {}
                parts.append(Text(f"trial {r['number']} [{r.get('slot') or '?'}] epoch {p.get('epoch', 0)}/"
                                  f"{p.get('epochs', s['epochs'])} {s['metric']} {fmt(p.get('value'))}"))
    b = s["best"]
    parts.append(Text("best: " + (f"{_params(b['params'])} {s['metric']} {fmt(b['score'])}"
                                  + (f" +- {fmt(b['spread'])} over {b['n']} runs" if b["n"] > 1 else "")
                                  + (f" (trial {b['trial']}, {b['run_dir']})" if b.get("run_dir") else f" (trial {b['trial']})")
                                  if b else "none yet"), style="bold"))
    if s.get("warning"):
        parts.append(Text(f"warning: {s['warning']}", style="bold yellow"))
    if final:
        parts.append(Text(f"{s['state']}: {s['reason'] or ''}"))
    elif s.get("eta_s") is not None:
        note = " (at most: a stage that does not improve ends the sweep)" if s["strategy"] == "hierarchical" else ""
        parts.append(Text(f"ETA {_dur(s['eta_s'])}{note}"))
    return Group(*parts)


_STYLE = {"completed": "green", "diverged": "red", "oom": "red", "failed": "red", "pruned": "yellow",
          "lost": "magenta", "interrupted": "magenta", "running": "cyan"}


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

