"""Score prediction files against ground truth (``ocrtune evaluate-json``).

GT is competition JSON. Predictions may be competition JSON or a submission CSV. For CLEval the
raw word lists are scored exactly as the competition read them (file order, empty and short
polygons included: they use up prediction slots); IoU takes ``###`` GT words as don't-care.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from ocrtune.metrics.cleval import evaluate_cleval, load_words_json
from ocrtune.metrics.iou import evaluate_iou

Metric = Literal["cleval", "iou"]


def load_predictions(path: Path) -> dict[str, list[Any]]:
    if path.suffix.lower() == ".csv":
        from ocrtune.data.formats import read_submission_csv

        return {name: [w.points for w in ann.words] for name, ann in read_submission_csv(path).items()}
    return load_words_json(path)


def evaluate_files(gt_path: Path, pred_path: Path, metric: Metric = "cleval") -> dict[str, Any]:
    """``{"per_image", "image_mean", "global"}`` plus what was scored."""
    pred = load_predictions(pred_path)
    if metric == "cleval":
        result = evaluate_cleval(load_words_json(gt_path), pred)
    else:
        from ocrtune.data.formats import read_json

        anns = read_json(gt_path)
        gt = {name: [w.points for w in ann.words] for name, ann in anns.items()}
        ignore = {name: [w.ignore for w in ann.words] for name, ann in anns.items()}
        result = evaluate_iou(gt, pred, ignore)
    missing = sum(1 for name in result["per_image"] if name not in pred)
    return {
        "metric": metric,
        "gt": str(gt_path),
        "pred": str(pred_path),
        "images": len(result["per_image"]),
        "missing_predictions": missing,
        **result,
    }
