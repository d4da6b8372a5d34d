"""`ocrtune train`, `ocrtune evaluate`, `ocrtune predict`: parse, call the library, render."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ocrtune.cli._misses import misses_lines
from ocrtune.cli._options import JsonOption, PresetsDirOption, SetOption
from ocrtune.cli._output import ProgressBar, console, err_console, fmt, info, print_json, table
from ocrtune.errors import InputError
from ocrtune.presets.schema import MAX_EPOCHS
from ocrtune.train.rundir import RunDir, resume_for, shown_epoch

DataOption = Annotated[
    Optional[Path],
    typer.Option("--data", help="Dataset root (images/<split>/ + jsons|annotations/<split>.json). "
                 "Default: the preset's datasets.root, else the embedded synthetic receipts."),
]
RunsDirOption = Annotated[Path, typer.Option("--runs-dir", help="Where run directories live.")]
RefArgument = Annotated[str, typer.Argument(
    help="Run directory (or name under --runs-dir), a .ckpt file, or a k-fold folder (its completed folds).")]
EnsembleOption = Annotated[Optional[list[str]], typer.Option(
    "--ensemble", metavar="RUN", help="Another model whose probability maps are averaged with REF's (repeat for more): a run, "
    "a .ckpt or a k-fold folder. The postprocess settings are REF's (after --set).")]
WeightsOption = Annotated[Optional[str], typer.Option(
    "--weights", metavar="W1,W2,...", help="Weights of REF and each --ensemble, in order, e.g. 2,1 (normalised; a k-fold folder "
    "counts once and shares its weight among its folds). Default: equal.")]
TtaOption = Annotated[Optional[str], typer.Option(
    "--tta", metavar="VIEW,...", help="Test-time views averaged with the plain one: flip, scale:S (the model's input size times S), "
    "comma-separated; '+' joins both into one view, e.g. flip,scale:1.25,flip+scale:1.25.")]


def train(
    preset: Annotated[Optional[str], typer.Option("--preset", "-p", help="Preset name or path (e.g. cpu-demo).")] = None,
    set_: SetOption = None,
    data: DataOption = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (default: the preset's).")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Run directory to continue from last.ckpt.")] = None,
    init: Annotated[Optional[str], typer.Option(
        "--init", help="Fine-tune: start from the weights of a run (best.ckpt) or .ckpt whose names and shapes "
        "match; fresh optimizer and schedule.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="With --init: name every tensor not loaded.")] = False,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, max=MAX_EPOCHS, help="Override trainer.max_epochs.")] = None,
    devices: Annotated[Optional[str], typer.Option("--devices", help="Lightning devices: auto, 1, 4, '0,1'.")] = None,
    strategy: Annotated[Optional[str], typer.Option("--strategy", help="Lightning strategy, e.g. ddp.")] = None,
    num_nodes: Annotated[Optional[int], typer.Option("--num-nodes", min=1)] = None,
    accelerator: Annotated[str, typer.Option("--accelerator", help="auto, cpu or gpu.")] = "auto",
    logger: Annotated[str, typer.Option("--logger", help="csv (always on), tensorboard, wandb or mlflow.")] = "csv",
    val_loss: Annotated[bool, typer.Option("--val-loss", help="Also compute the validation loss (builds targets).")] = False,
    runs_dir: RunsDirOption = Path("runs"),
    presets_dir: PresetsDirOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Train even when the memory estimate exceeds the free memory (refused otherwise).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Train a preset into runs/<date>-<name>/; the best checkpoint is chosen by val H-mean."""
    from ocrtune.presets.load import load_preset
    from ocrtune.train.fit import TrainOptions, fit

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if resume is not None and (preset is not None or set_):
        raise InputError("a resumed run keeps its own config.yaml; drop --preset/--set (--epochs may extend it)",
                         key="--resume")
    if resume is None and preset is None:
        raise InputError("which preset? e.g. --preset cpu-demo (see `ocrtune presets list`), or --resume RUN",
                         key="--preset")
    loaded = load_preset(preset or "cpu-demo", set_ or [], presets_dir or []) if resume is None else None
    started: list[Any] = []  # the run's header, also read by the result table (warm-up lr)
    opts = TrainOptions(
        data=data,
        name=name,
        runs_dir=runs_dir,
        resume=resume,
        devices=_devices(devices),
        strategy=strategy,
        num_nodes=num_nodes,
        accelerator=accelerator,
        logger=logger,
        progress=not quiet and not as_json,
        val_loss=val_loss,
        max_epochs=epochs,
        init=init,
        on_init=lambda report: _render_init(report, verbose),
        force=force,
        on_start=lambda h: (started.append(h), _render_header(h)),
    )
    result = fit(loaded, opts)
    if result.rank > 0:  # a DDP child process: rank 0 reports
        raise typer.Exit(0 if result.status == "completed" else 1)
    if as_json:
        print_json({k: v for k, v in result.__dict__.items()})
    else:
        _render_result(result, started[0] if started else None)
    if result.status != "completed":
        raise typer.Exit(1)


def _devices(value: Optional[str]) -> Any:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    if "," in value:
        try:
            return [int(x) for x in value.split(",") if x.strip()]
        except ValueError:
            raise InputError(f"expected auto, a count or a list like 0,1 (got {value!r})", key="--devices") from None
    return value


def _render_header(header: Any) -> None:
    """The run's header line, and a note when its cosine stops before it anneals (stderr)."""
    info(header.line())
    if header.schedule:
        info(header.schedule)


def _render_init(report: Any, verbose: bool) -> None:
    """What --init loaded, before training starts (stderr: --json output stays parseable)."""
    info(report.headline() + ("" if verbose or not report.details() else " (--verbose names them)"))
    for line in report.details() if verbose else []:
        info(f"  {line}")


def _render_result(result: Any, header: Any = None) -> None:
    from ocrtune.train.resources import warmup_note

    warmup = header.warmup_epochs if header is not None else 0

    def lr(r: dict[str, Any]) -> Any:
        epoch = r.get("epoch")
        return f"{fmt(r.get('lr'))} (warm-up)" if isinstance(epoch, int) and epoch < warmup else r.get("lr")

    rows = [
        [shown_epoch(r.get("epoch")), r.get("train_loss"), r.get("val_hmean"), r.get("val_precision"), r.get("val_recall"),
         lr(r), r.get("epoch_time_s")]
        for r in result.rows
    ]
    if rows:
        console.print(table("epochs", ["epoch", "train loss", "val H", "val P", "val R", "lr", "time (s)"], rows))
        note = warmup_note(header.lr, warmup) if header is not None else None
        if note and any(isinstance(r.get("epoch"), int) and r["epoch"] < warmup for r in result.rows):
            console.print(note, markup=False)
    best = result.best or {}
    colour = "green" if result.status == "completed" else "red"
    console.print(
        f"[{colour}]{result.status}[/{colour}]  best epoch {fmt(shown_epoch(result.best_epoch))}: "
        f"H {fmt(best.get('hmean'))}  P {fmt(best.get('precision'))}  R {fmt(best.get('recall'))}  "
        f"in {result.wall_time_s:.1f}s on {result.device}"
    )
    console.print(f"run: {result.run_dir}", markup=False)
    if result.error:
        err_console.print(result.error)
    if result.hint:
        err_console.print(f"hint: {result.hint}")
    resume = resume_for(RunDir(Path(result.run_dir)), _summary(result.run_dir), result.status)
    if resume:
        info(f"continue with: {resume}")


def _summary(run_dir: Path) -> dict[str, Any]:
    """The run's summary as written (empty where it could not be read: a full disk)."""
    try:
        return RunDir(Path(run_dir)).read_summary()
    except (InputError, OSError):
        return {}


def evaluate(
    ref: RefArgument,
    split: Annotated[str, typer.Option("--split", help="Split to score (needs annotations).")] = "val",
    data: DataOption = None,
    ensemble: EnsembleOption = None,
    weights: WeightsOption = None,
    tta: TtaOption = None,
    set_: SetOption = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1)] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Save the scores (JSON) here. Default: eval-<split>.json in the run, or "
        "<checkpoint>.eval-<split>.json beside a checkpoint outside a run; with --ensemble/--tta "
        "eval-<split>.ensemble.json (in REF's run or k-fold folder).")] = None,
    runs_dir: RunsDirOption = Path("runs"),
    as_json: JsonOption = False,
) -> None:
    """Score a checkpoint (or an ensemble, with test-time views) on a split: CLEval H/P/R (image
    mean and global) and IoU H-mean; prints and saves them."""
    with ProgressBar(f"evaluating {split}", unit="images") as bar:
        bar.stage("loading the model")  # torch's import is part of the wait
        from ocrtune.train.ensemble import load_predictor
        from ocrtune.train.fit import resolve_data_root
        from ocrtune.train.infer import evaluate as run_eval

        loaded = load_predictor(ref, ensemble or [], weights, tta, set_ or [], runs_dir)
        root = resolve_data_root(loaded.preset, data)
        bar.stage(f"reading the {split} split")
        result = run_eval(loaded, root, split, batch_size, progress=bar, out=out)
    _render_models(result)
    saved = (f"saved {result['saved']}" if result["saved"]
             else "scores not saved: their default folder is not writable; pass --out FILE")
    if as_json:
        print_json(result)
        info(saved)
        return
    c, i = result["cleval"], result["iou"]
    rows = [
        ["CLEval (image mean)", c["image_mean"]["hmean"], c["image_mean"]["precision"], c["image_mean"]["recall"]],
        ["CLEval (global)", c["global"]["hmean"], c["global"]["precision"], c["global"]["recall"]],
        ["IoU 0.5 (image mean)", i["image_mean"]["hmean"], i["image_mean"]["precision"], i["image_mean"]["recall"]],
        ["IoU 0.5 (global)", i["global"]["hmean"], i["global"]["precision"], i["global"]["recall"]],
    ]
    what = _ensemble_title(result) or result["checkpoint"]
    console.print(table(f"{split}: {result['images']} images, {what}", ["metric", "H-mean", "precision", "recall"], rows))
    for line in misses_lines(i["misses"]):
        console.print(line, soft_wrap=True)
    info(saved)


def predict(
    ref: RefArgument,
    images: Annotated[Path, typer.Option("--images", help="Folder of images to detect text in.")],
    out: Annotated[Path, typer.Option("--out", help="Submission CSV to write.")] = Path("submission.csv"),
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write predictions as competition JSON.")] = None,
    save_maps: Annotated[Optional[Path], typer.Option("--save-maps", help="Save probability maps (.npz) here.")] = None,
    ensemble: EnsembleOption = None,
    weights: WeightsOption = None,
    tta: TtaOption = None,
    set_: SetOption = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1)] = None,
    runs_dir: RunsDirOption = Path("runs"),
) -> None:
    """Write the competition CSV (every image listed), optionally JSON and probability maps; with
    --ensemble/--tta, from the average of the models' and views' maps."""
    if not images.is_dir():
        raise InputError("image folder not found", file=str(images))
    with ProgressBar("predicting", unit="images") as bar:
        bar.stage("loading the model")  # torch's import is part of the wait
        from ocrtune.train.ensemble import load_predictor
        from ocrtune.train.infer import predict as run_predict

        loaded = load_predictor(ref, ensemble or [], weights, tta, set_ or [], runs_dir)
        bar.stage("reading the images")
        result = run_predict(loaded, images, out, json_out, save_maps, batch_size, progress=bar)
    _render_models(result)
    for name in result["unreadable"]:
        reason = result["unreadable_reasons"].get(name) or f"{name}: could not be read"
        info(f"warning: {reason}; listed in the CSV with no detections")
    info(f"wrote {result['csv']}: {result['images']} images, {result['detections']} detections")


def _render_models(result: dict[str, Any]) -> None:
    """Which models, weights and views an ensemble used (stderr, so --json output stays clean)."""
    ens = result.get("ensemble")
    if not ens:
        return
    info(f"ensemble of {_count(len(ens['models']), 'model')}, views {', '.join(ens['views'])}; "
         "postprocess settings of model 1")
    for i, m in enumerate(ens["models"], 1):
        sizes = ", ".join(str(s) for s in dict.fromkeys(m["input_sizes"]))
        info(f"  {i}. {m['checkpoint']}  weight {m['weight']:.3g}  {m['encoder']}  input {sizes} px")


def _ensemble_title(result: dict[str, Any]) -> str | None:
    ens = result.get("ensemble")
    if not ens:
        return None
    return f"{_count(len(ens['models']), 'model')} x {_count(len(ens['views']), 'view')}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
