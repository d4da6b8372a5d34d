"""`ocrtune evaluate-json GT PRED`: the competition metric on files, no model involved."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ocrtune.cli._misses import misses_lines
from ocrtune.cli._options import JsonOption
from ocrtune.cli._output import console, info, print_json, table
from ocrtune.errors import InputError
from ocrtune.metrics.files import evaluate_files, extra_predictions_text
from ocrtune.train.rundir import write_json_atomic


def _check_output(out: Path, inputs: tuple[Path, ...]) -> None:
    """The per-image file must not be a folder, nor one of the inputs (it would replace it)."""
    if out.is_dir():
        raise InputError("is a directory; give a file name for the per-image scores", file=str(out))
    for src in inputs:
        same = out.resolve() == src.resolve() or (out.exists() and os.path.samefile(out, src))
        if same:
            raise InputError(
                f"is the same file as the input {src}; give another file for the per-image scores",
                file=str(out), key="--per-image",
            )


def evaluate_json(
    gt: Annotated[Path, typer.Argument(help="Ground truth, competition JSON.")],
    pred: Annotated[Path, typer.Argument(help="Predictions: competition JSON or submission CSV.")],
    metric: Annotated[str, typer.Option("--metric", help="cleval (competition score) or iou (ICDAR15, IoU >= 0.5).")] = "cleval",
    per_image: Annotated[Optional[Path], typer.Option("--per-image", help="Write per-image scores (JSON) here.")] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Refuse predictions for images the ground truth does not have (exit 2, bad "
                     "input) instead of warning and leaving them unscored."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Recall, precision and H-mean: the image mean (competition default) and the global pool.

    Only ground-truth images are scored (a missing prediction scores 0). Predictions for images
    the ground truth does not have (another split, renamed files) are counted and named in a
    warning on stderr and in the JSON's "extra_predictions"; with --strict they are an error:
    exit 2, like any other bad input.
    """
    if metric not in ("cleval", "iou"):
        raise InputError(f"unknown metric {metric!r}; choose cleval or iou", key="--metric")
    for p in (gt, pred):
        if not p.is_file():
            raise InputError("file not found", file=str(p))
    if per_image is not None:
        _check_output(per_image, (gt, pred))
    result = evaluate_files(gt, pred, metric, strict)  # type: ignore[arg-type]
    if result["extra_predictions"]:
        info(f"warning: {pred}: {extra_predictions_text(result['extra_predictions'])}; not scored"
             " (--strict refuses them)")
    if per_image is not None:
        try:  # temp file + rename: an existing file is replaced whole or not at all
            write_json_atomic(per_image, result["per_image"])
        except OSError as exc:
            raise InputError(
                f"cannot write the per-image scores: {exc.strerror or exc}", file=str(per_image)
            ) from None
    if as_json:
        print_json({k: v for k, v in result.items() if k != "per_image" or per_image is None})
        return
    rows = [
        [agg, result[agg]["hmean"], result[agg]["precision"], result[agg]["recall"]]
        for agg in ("image_mean", "global")
    ]
    title = f"{metric}: {result['images']} images"
    if result["missing_predictions"]:
        title += f" ({result['missing_predictions']} missing from the predictions, scored 0)"
    console.print(table(title, ["aggregate", "H-mean", "precision", "recall"], rows))
    for line in misses_lines(result["misses"]) if "misses" in result else []:
        console.print(line, soft_wrap=True)
    if per_image is not None:
        info(f"wrote {per_image}")
