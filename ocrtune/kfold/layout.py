"""Where a k-fold run keeps its files (no torch): read by ``kfold`` itself, ``kfold status``
and anything that uses the fold models (ensembles).

``runs/kfold/<name>/``
    kfold.json              settings (preset, data, folds, seed) and the fold of every image
    folds/<k>/              k = 1 .. folds
        data/               the fold's dataset: jsons/{train,val}.json, images/{train,val}/ (links)
        spec.json           what the fold's process trains (preset, epochs, data)
        fold.log            the fold process's output
        process.json        which process trains the fold (host, pid, start time)
        runs/<date>-<name>-f<k>/   the fold's training run (config.yaml, metrics.csv, checkpoints/)
        oof.json            predictions of best.ckpt on the held-out images (competition JSON)
        result.json         how the fold ended (status, run, scores); written last, so a fold
                            with a completed result.json is done and is never trained again
        attempts/<n>/       the files of earlier attempts that did not complete (kept, not deleted)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

KFOLD_JSON = "kfold.json"
FOLDS = "folds"
DATA = "data"
SPEC = "spec.json"
LOG = "fold.log"
PROCESS = "process.json"
RUNS = "runs"
OOF = "oof.json"
RESULT = "result.json"
COMPLETED = "completed"


def fold_dir(root: Path, k: int) -> Path:
    return root / FOLDS / str(k)


def is_kfold_dir(path: Path) -> bool:
    """Whether ``path`` is a k-fold run's folder (it holds ``kfold.json`` naming its folds)."""
    data = _read(Path(path) / KFOLD_JSON)
    return isinstance(data, dict) and _folds(data) is not None


def fold_runs(path: Path) -> list[Path]:
    """The run directories of the completed folds, in fold order (folds not done are left out).

    A fold is completed when its ``result.json`` says so and its run directory is still there;
    the run is looked up under the fold's own ``runs/`` so a moved k-fold folder still works.
    """
    root = Path(path)
    data = _read(root / KFOLD_JSON)
    n = _folds(data) if isinstance(data, dict) else None
    if n is None:
        return []
    out = []
    for k in range(1, n + 1):
        run = completed_run(fold_dir(root, k))
        if run is not None:
            out.append(run)
    return out


def completed_run(fold: Path) -> Path | None:
    """The fold's run directory if the fold completed, else None."""
    res = _read(fold / RESULT)
    if not isinstance(res, dict) or res.get("status") != COMPLETED or not isinstance(res.get("run_dir"), str):
        return None
    run = fold / RUNS / Path(res["run_dir"]).name
    return run if run.is_dir() else None


def _folds(data: dict[str, Any]) -> int | None:
    n = data.get("folds")
    return n if isinstance(n, int) and not isinstance(n, bool) and n >= 2 else None


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
