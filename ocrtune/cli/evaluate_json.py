"""`ocrtune evaluate-json GT PRED`: the competition metric on files, no model involved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ocrtune.cli._options import JsonOption
from ocrtune.cli._output import console, info, print_json, table
from ocrtune.errors import InputError
from ocrtune.metrics.files import evaluate_files


def evaluate_json(
    gt: Annotated[Path, typer.Argument(help="Ground truth, competition JSON.")],
    pred: Annotated[Path, typer.Argument(help="Predictions: competition JSON or submission CSV.")],
    metric: Annotated[str, typer.Option("--metric", help="cleval (competition score) or iou (ICDAR15, IoU >= 0.5).")] = "cleval",
    per_image: Annotated[Optional[Path], typer.Option("--per-image", help="Write per-image scores (JSON) here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Recall, precision and H-mean: the image mean (competition default) and the global pool."""
    if metric not in ("cleval", "iou"):
        raise InputError(f"unknown metric {metric!r}; choose cleval or iou", key="--metric")
    for p in (gt, pred):
        if not p.is_file():
            raise InputError("file not found", file=str(p))
    if per_image is not None and per_image.is_dir():
        raise InputError("is a directory; give a file name for the per-image scores", file=str(per_image))
    result = evaluate_files(gt, pred, metric)  # type: ignore[arg-type]
    if per_image is not None:
        per_image.parent.mkdir(parents=True, exist_ok=True)
        per_image.write_text(json.dumps(result["per_image"], indent=2) + "\n", encoding="utf-8")
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
    if per_image is not None:
        info(f"wrote {per_image}")
