"""Score prediction files against ground truth (``ocrtune evaluate-json``).

GT is competition JSON. Predictions may be competition JSON or a submission CSV. For CLEval the
raw word lists are scored exactly as the competition read them (file order, empty and short
polygons included: they use up prediction slots); IoU takes ``###`` GT words as don't-care.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from ocrtune.errors import InputError
from ocrtune.metrics.cleval import evaluate_cleval, load_words_json
from ocrtune.metrics.iou import IoUAccumulator
from ocrtune.metrics.iou_misses import IoUMisses, classify

Metric = Literal["cleval", "iou"]


def load_predictions(path: Path) -> dict[str, list[Any]]:
    if path.suffix.lower() == ".csv":
        from ocrtune.data.formats import read_submission_csv

        return {name: [w.points for w in ann.words] for name, ann in read_submission_csv(path).items()}
    return load_words_json(path)


def evaluate_files(gt_path: Path, pred_path: Path, metric: Metric = "cleval", strict: bool = False) -> dict[str, Any]:
    """``{"per_image", "image_mean", "global"}`` plus what was scored; for the IoU also
    ``misses``, the unmatched words and detections by kind (``iou_misses``).

    Predictions for images the ground truth does not have are not scored (the competition
    scores GT images only); they are listed in ``extra_predictions`` (sorted), since they
    usually mean the wrong split or renamed files. ``strict`` refuses them instead (exit 2).
    """
    pred = load_predictions(pred_path)
    if metric == "cleval":
        gt_words = load_words_json(gt_path)
        names = set(gt_words)
    else:
        from ocrtune.data.formats import read_json

        anns = read_json(gt_path)
        gt = {name: [w.points for w in ann.words] for name, ann in anns.items()}
        ignore = {name: [w.ignore for w in ann.words] for name, ann in anns.items()}
        names = set(gt)
    extra = sorted(name for name in pred if name not in names)
    if strict and extra:
        raise InputError(f"{extra_predictions_text(extra)} (--strict)", file=str(pred_path))
    result = evaluate_cleval(gt_words, pred) if metric == "cleval" else _iou_with_misses(gt, pred, ignore)
    missing = sum(1 for name in result["per_image"] if name not in pred)
    return {
        "metric": metric,
        "gt": str(gt_path),
        "pred": str(pred_path),
        "images": len(result["per_image"]),
        "missing_predictions": missing,
        "extra_predictions": extra,
        **result,
    }


def _iou_with_misses(gt: dict[str, Any], pred: dict[str, Any], ignore: dict[str, Any]) -> dict[str, Any]:
    """``evaluate_iou``'s summary plus why the words were missed, from the same matching:
    ``misses`` pooled and each image's non-zero kinds."""
    acc = IoUAccumulator()
    misses = {name: classify(acc.update_match(name, words, pred.get(name), ignore[name])) for name, words in gt.items()}
    result = acc.summary()
    result["misses"] = asdict(sum(misses.values(), IoUMisses()))
    for name, m in misses.items():
        result["per_image"][name]["misses"] = m.missed()
    return result


def extra_predictions_text(extra: list[str], shown: int = 3) -> str:
    """``5 predicted images are not in the ground truth: a.jpg, b.jpg, c.jpg and 2 more``."""
    names = ", ".join(extra[:shown]) + (f" and {len(extra) - shown} more" if len(extra) > shown else "")
    n = len(extra)
    return f"{n} predicted image{'s are' if n != 1 else ' is'} not in the ground truth: {names}"
