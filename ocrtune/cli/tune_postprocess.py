"""`ocrtune tune-postprocess RUN|CKPT`: search postprocess settings on cached maps; parse, call, render."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.text import Text

from ocrtune.cli._misses import misses_lines
from ocrtune.cli._options import JsonOption, PresetsDirOption, SetOption
from ocrtune.cli._output import ProgressBar, console, err_console, fmt, info, print_json, table


def tune_postprocess(
    ref: Annotated[str, typer.Argument(help="Run directory (or name under --runs-dir) or a .ckpt file.")],
    split: Annotated[str, typer.Option("--split", help="Labelled split to tune on.")] = "val",
    strategy: Annotated[Optional[str], typer.Option(
        "--strategy", help="grid, random or tpe (default: the space file's method, else grid).")] = None,
    trials: Annotated[Optional[int], typer.Option(
        "--trials", help="At most this many settings (default: every grid point; 100 for random/tpe).")] = None,
    space: Annotated[Optional[Path], typer.Option(
        "--space", help="Search space YAML (the sweep's format; short keys such as thresh allowed). "
        "Default: thresh +/-0.1, box_thresh +/-0.2, the unclip ratio +/-0.5 around the checkpoint's.")] = None,
    points: Annotated[int, typer.Option("--points", help="Grid values per range.")] = 5,
    data: Annotated[Optional[Path], typer.Option(
        "--data", help="Dataset root (default: the preset's datasets.root, else the synthetic receipts).")] = None,
    set_: SetOption = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Name of the preset to write (default: <the run's preset>-post).")] = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder to write the preset in.")] = Path("presets"),
    no_preset: Annotated[bool, typer.Option("--no-preset", help="Do not write a preset.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite a preset of that name.")] = False,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", min=1, help="Processes (default: every core).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random and TPE strategies.")] = 0,
    objective: Annotated[str, typer.Option(
        "--objective", help="What ranks the settings: cleval (the CLEval H-mean, the competition's score) or iou "
        "(the IoU@0.5 H-mean: line granularity and box tightness). Both are shown.")] = "cleval",
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", min=1, help="Batch size of the one network pass (default: the preset's, as evaluate).")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild-cache", help="Recompute the maps even if the cache is fresh.")] = False,
    top: Annotated[int, typer.Option("--top", min=1, help="Settings shown.")] = 10,
    runs_dir: Annotated[Path, typer.Option("--runs-dir", help="Where run directories live.")] = Path("runs"),
    presets_dir: PresetsDirOption = None,
    as_json: JsonOption = False,
) -> None:
    """Tune postprocess settings on cached maps (one network pass); prints H/P/R vs the checkpoint's own, writes a preset."""
    from ocrtune.tune.api import TuneOptions
    from ocrtune.tune.api import tune_postprocess as run

    opts = TuneOptions(
        split=split, data=data, overrides=set_ or [], strategy=strategy, trials=trials, points=points, space=space,
        seed=seed, objective=objective, jobs=jobs, batch_size=batch_size, name=name, out_dir=out_dir,
        presets_dirs=presets_dir or [], force=force, write=not no_preset, rebuild=rebuild, runs_dir=runs_dir,
        command=" ".join(["ocrtune", *(shlex.quote(a) for a in sys.argv[1:])]) if sys.argv[1:] else "",
    )
    with _Progress("maps") as maps, _Progress("settings") as settings:
        result = run(ref, opts, maps, settings, log=info)
    if as_json:
        print_json(result.as_dict(top))
        return
    _render(result, top)


def _render(result: Any, top: int) -> None:
    from ocrtune.tune.search import OBJECTIVE_METRIC

    s = result.search
    cur = s.current
    keys = [k.rsplit(".", 1)[-1] for k in result.space]
    cols = ["", "trial", "H", "P", "R", "IoU H", ("IoU H" if s.objective == "iou" else "H") + " vs current", *keys]

    def row(label: str, sc: Any) -> list[Any]:
        diff = 100 * (sc.key(s.objective)[0] - cur.key(s.objective)[0])
        values = sc.settings.values()
        cells = [_param(values[k], cur.settings.values()[k]) for k in keys]
        return [label, sc.trial if sc.trial else "-",
                *(f"{100 * v:.2f}" for v in (sc.hmean, sc.precision, sc.recall, sc.iou_hmean)),
                f"{diff:+.2f} pp" if sc is not cur else "", *cells]

    rows = [row("current", cur)] + [row(f"#{i + 1}", sc) for i, sc in enumerate(s.ranked[:top])]
    title = (f"{result.split}: {result.images} images, {len(s.tried)} settings ({s.strategy}, {s.distinct} distinct) "
             f"in {s.seconds:.1f}s on {result.jobs} process(es); ranked by the {OBJECTIVE_METRIC[s.objective]}; "
             "CLEval H / P / R and IoU@0.5 H, image mean, %")
    console.print(table(title, cols, rows))
    for note in s.notes:
        info(note)
    best = result.best
    if result.improved:
        changes = ", ".join(f"{k} {fmt(a)} -> {fmt(b)}" for k, (a, b) in best.settings.changed(cur.settings).items())
        console.print(f"best: H {100 * best.hmean:.2f}  P {100 * best.precision:.2f}  R {100 * best.recall:.2f} "
                      f"({100 * (best.hmean - cur.hmean):+.2f} pp H-mean), IoU H {100 * best.iou_hmean:.2f} "
                      f"({100 * (best.iou_hmean - cur.iou_hmean):+.2f} pp) with {changes}", markup=False)
    else:
        console.print(f"the checkpoint's own settings score best: H {100 * cur.hmean:.2f}, "
                      f"IoU H {100 * cur.iou_hmean:.2f}", markup=False)
    for key, label in (("current", "own settings"), ("best", "best")):
        if key in result.misses:
            for line in misses_lines(result.misses[key], label if len(result.misses) > 1 else ""):
                console.print(line, markup=False)
    if result.preset:
        ext = f" (extends {result.preset['extends']})" if result.preset["extends"] else ""
        console.print(f"wrote {result.preset['path']}{ext}", markup=False)
    elif result.preset_note:
        info(result.preset_note)
    info(f"the same score from a fresh run: {result.evaluate_command()}")
    if result.summary_path:
        info(f"saved {result.summary_path}")


def _param(value: Any, before: Any) -> Text:
    """A setting, with its change in percent when it differs."""
    if value == before or isinstance(value, bool) or not before:
        return Text(fmt(value), style="" if value == before else "bold")
    return Text(f"{fmt(value)} ({100 * (value - before) / abs(before):+.0f}%)", style="bold")


class _Progress:
    """A bar on a terminal; elsewhere (logs, pipes) a line on stderr every few seconds:
    done / total, elapsed and the remaining time at the pace so far."""

    EVERY = 5.0

    def __init__(self, what: str) -> None:
        self.what = what
        self.bar = ProgressBar(what)
        self.start: float | None = None
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if err_console.is_terminal:
            self.bar(done, total)
            return
        now = time.perf_counter()
        if self.start is None:
            self.start = now
            self.last = now
            return
        if done < total and now - self.last < self.EVERY:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / done * (total - done) if done else float("nan")
        info(f"{self.what} {done}/{total}, {elapsed:.0f}s" + (f", about {eta:.0f}s left" if done < total else ""))

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)
