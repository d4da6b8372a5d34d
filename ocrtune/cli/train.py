"""`ocrtune train`, `ocrtune evaluate`, `ocrtune predict`: parse, call the library, render."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ocrtune.cli._options import JsonOption, PresetsDirOption, SetOption
from ocrtune.cli._output import ProgressBar, console, err_console, fmt, info, print_json, table
from ocrtune.errors import InputError
from ocrtune.train.rundir import shown_epoch

DataOption = Annotated[
    Optional[Path],
    typer.Option("--data", help="Dataset root (images/<split>/ + jsons|annotations/<split>.json). "
                 "Default: the preset's datasets.root, else the embedded synthetic receipts."),
]
RunsDirOption = Annotated[Path, typer.Option("--runs-dir", help="Where run directories live.")]


def train(
    preset: Annotated[Optional[str], typer.Option("--preset", "-p", help="Preset name or path (e.g. cpu-demo).")] = None,
    set_: SetOption = None,
    data: DataOption = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Run name (default: the preset's).")] = None,
    resume: Annotated[Optional[str], typer.Option("--resume", help="Run directory to continue from last.ckpt.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Override trainer.max_epochs.")] = None,
    devices: Annotated[Optional[str], typer.Option("--devices", help="Lightning devices: auto, 1, 4, '0,1'.")] = None,
    strategy: Annotated[Optional[str], typer.Option("--strategy", help="Lightning strategy, e.g. ddp.")] = None,
    num_nodes: Annotated[Optional[int], typer.Option("--num-nodes", min=1)] = None,
    accelerator: Annotated[str, typer.Option("--accelerator", help="auto, cpu or gpu.")] = "auto",
    logger: Annotated[str, typer.Option("--logger", help="csv (always on), tensorboard, wandb or mlflow.")] = "csv",
    val_loss: Annotated[bool, typer.Option("--val-loss", help="Also compute the validation loss (builds targets).")] = False,
    runs_dir: RunsDirOption = Path("runs"),
    presets_dir: PresetsDirOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
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
    )
    result = fit(loaded, opts)
    if result.rank > 0:  # a DDP child process: rank 0 reports
        raise typer.Exit(0 if result.status == "completed" else 1)
    if as_json:
        print_json({k: v for k, v in result.__dict__.items()})
    else:
        _render_result(result)
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


def _render_result(result: Any) -> None:
    rows = [
        [shown_epoch(r.get("epoch")), r.get("train_loss"), r.get("val_hmean"), r.get("val_precision"), r.get("val_recall"),
         r.get("lr"), r.get("epoch_time_s")]
        for r in result.rows
    ]
    if rows:
        console.print(table("epochs", ["epoch", "train loss", "val H", "val P", "val R", "lr", "time (s)"], rows))
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


def evaluate(
    ref: Annotated[str, typer.Argument(help="Run directory (or name under --runs-dir) or a .ckpt file.")],
    split: Annotated[str, typer.Option("--split", help="Split to score (needs annotations).")] = "val",
    data: DataOption = None,
    set_: SetOption = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1)] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Save the scores (JSON) here. Default: eval-<split>.json in the run, or "
        "<checkpoint>.eval-<split>.json beside a checkpoint outside a run.")] = None,
    runs_dir: RunsDirOption = Path("runs"),
    as_json: JsonOption = False,
) -> None:
    """Score a checkpoint on a split: CLEval H/P/R (image mean and global) and IoU H-mean; prints and saves them."""
    from ocrtune.train.fit import resolve_data_root
    from ocrtune.train.infer import evaluate as run_eval
    from ocrtune.train.infer import load_checkpoint

    loaded = load_checkpoint(ref, set_ or [], runs_dir)
    root = resolve_data_root(loaded.preset, data)
    with ProgressBar(f"evaluating {split}") as bar:
        result = run_eval(loaded, root, split, batch_size, progress=bar, out=out)
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
        ["IoU 0.5", i["image_mean"]["hmean"], i["image_mean"]["precision"], i["image_mean"]["recall"]],
    ]
    console.print(table(f"{split}: {result['images']} images, {result['checkpoint']}", ["metric", "H-mean", "precision", "recall"], rows))
    info(saved)


def predict(
    ref: Annotated[str, typer.Argument(help="Run directory (or name under --runs-dir) or a .ckpt file.")],
    images: Annotated[Path, typer.Option("--images", help="Folder of images to detect text in.")],
    out: Annotated[Path, typer.Option("--out", help="Submission CSV to write.")] = Path("submission.csv"),
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write predictions as competition JSON.")] = None,
    save_maps: Annotated[Optional[Path], typer.Option("--save-maps", help="Save probability maps (.npz) here.")] = None,
    set_: SetOption = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1)] = None,
    runs_dir: RunsDirOption = Path("runs"),
) -> None:
    """Write the competition CSV (every image listed), optionally JSON and probability maps."""
    from ocrtune.train.infer import load_checkpoint
    from ocrtune.train.infer import predict as run_predict

    if not images.is_dir():
        raise InputError("image folder not found", file=str(images))
    loaded = load_checkpoint(ref, set_ or [], runs_dir)
    with ProgressBar("predicting") as bar:
        result = run_predict(loaded, images, out, json_out, save_maps, batch_size, progress=bar)
    for name in result["unreadable"]:
        reason = result["unreadable_reasons"].get(name) or f"{name}: could not be read"
        info(f"warning: {reason}; listed in the CSV with no detections")
    info(f"wrote {result['csv']}: {result['images']} images, {result['detections']} detections")
