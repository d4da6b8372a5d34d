"""A k-fold's state from its files (``kfold status``, and ``kfold``'s final table).

``summarize`` only reads: it writes nothing, not even a lock, so it works on a k-fold that is
running, on one whose process was killed, and on a read-only copy. A fold is ``pending``
until its process starts, then ``running`` (with the epochs it has trained), ``stopped`` when
that process is gone without a result, or the status its result records. The pooled scores come
from ``scores.json`` when it was made from the folds' current runs, else they are computed
from the folds' ``oof.json`` files (in memory).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ocrtune.errors import InputError
from ocrtune.kfold.folds import fold_counts
from ocrtune.kfold.layout import COMPLETED, KFOLD_JSON, PROCESS, RESULT, SPEC, completed_run, fold_dir
from ocrtune.kfold.scores import mean_of, pooled, read_held_out
from ocrtune.kfold.types import PENDING, RUNNING, STOPPED, FoldResult, FoldRow, KFoldSettings, KFoldSummary, Scores
from ocrtune.sweep.run.liveness import gone_here
from ocrtune.sweep.run.records import read_rows

SCORES = "scores.json"
OWNER = "owner.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def check_name(name: str, key: str = "--name") -> str:
    """A k-fold name is a folder name: taken as given or refused, never rewritten."""
    if not _NAME.match(name) or len(name) > 100:
        raise InputError(f"a k-fold name uses only letters, digits, '.', '_' and '-', starts with a letter or digit "
                         f"and has at most 100 characters (got {name!r})", key=key)
    return name


def kfold_dir(runs_dir: Path, name: str) -> Path:
    return Path(runs_dir) / "kfold" / name


def find_kfold(ref: str, runs_dir: Path = Path("runs")) -> Path:
    """A k-fold folder by path, or by name under ``runs_dir/kfold``."""
    p = Path(ref)
    if (p / KFOLD_JSON).is_file():
        return p
    check_name(ref, key="NAME")
    d = kfold_dir(runs_dir, ref)
    if not (d / KFOLD_JSON).is_file():
        raise InputError(f"no k-fold of that name (looked for {d / KFOLD_JSON})", key=ref)
    return d


def read_owner(root: Path) -> dict[str, Any] | None:
    return _read_json(root / OWNER)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def owner_alive(owner: dict[str, Any] | None) -> bool:
    """Whether the recorded ``kfold`` process runs (on another machine: assumed to)."""
    return owner is not None and not gone_here(owner)


def fold_process_alive(fold: Path) -> bool:
    """Whether the process that trains (or trained) this fold still runs."""
    return owner_alive(_read_json(fold / PROCESS))


def read_result(fold: Path) -> FoldResult | None:
    try:
        raw = json.loads((fold / RESULT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return FoldResult.from_json(raw) if isinstance(raw, dict) else None


def summarize(root: Path, settings: KFoldSettings | None = None, live: bool | None = None) -> KFoldSummary:
    """``live``: whether a ``kfold`` process runs the folds (default: what ``owner.json`` says)."""
    settings = settings or KFoldSettings.read(root / KFOLD_JSON)
    running = owner_alive(read_owner(root)) if live is None else live
    counts = fold_counts(settings.images, settings.assignment, settings.folds)
    rows: list[FoldRow] = []
    for c in counts:
        d = fold_dir(root, c.fold)
        res = read_result(d)
        if res is not None:
            if res.status == COMPLETED and completed_run(d) is None:
                status = "missing run"  # its run directory was moved or deleted: it is trained again
            else:
                status = res.status
            rows.append(FoldRow(c.fold, c.images, c.words, status, res.run_dir, res.best_epoch, res.oof,
                                res.best_val, res.error))
        elif (d / SPEC).is_file() and (d / PROCESS).is_file():  # started, no result yet
            rows.append(FoldRow(c.fold, c.images, c.words, RUNNING if fold_process_alive(d) else STOPPED,
                                epochs_done=len(read_rows(d))))
        else:
            rows.append(FoldRow(c.fold, c.images, c.words, PENDING))
    done = [r for r in rows if r.status == COMPLETED]
    warnings: list[str] = []
    pooled_mean = pooled_global = None
    n_pooled = 0
    if len(done) == settings.folds:
        got = _pooled(root, rows, warnings)
        if got is not None:
            pooled_mean, pooled_global, n_pooled = got
    state = "finished" if len(done) == settings.folds else RUNNING if running else "incomplete"
    return KFoldSummary(
        name=settings.name, dir=str(root), preset=settings.preset, data=settings.data, folds=settings.folds,
        seed=settings.seed, epochs=settings.epochs, state=state, rows=tuple(rows),
        mean=mean_of([r.oof for r in done if r.oof is not None]), pooled=pooled_mean, pooled_global=pooled_global,
        images=n_pooled, warnings=tuple(warnings),
    )


def _pooled(root: Path, rows: list[FoldRow], warnings: list[str]) -> tuple[Scores, Scores, int] | None:
    runs = [r.run_dir for r in rows]
    cached = _read_scores(root)
    if cached is not None and cached.get("runs") == runs:
        mean, glob = Scores.of(cached.get("pooled")), Scores.of(cached.get("pooled_global"))
        if mean is not None and glob is not None:
            return mean, glob, int(cached.get("images") or 0)
    try:
        return pooled([read_held_out(fold_dir(root, r.fold)) for r in rows])
    except InputError as e:
        warnings.append(f"pooled scores not computed: {e.lines[0]}")
        return None


def _read_scores(root: Path) -> dict[str, Any] | None:
    return _read_json(root / SCORES)


def scores_record(summary: KFoldSummary) -> dict[str, Any]:
    """What ``scores.json`` holds: per-fold and pooled scores, and the runs they came from."""
    return {
        "runs": [r.run_dir for r in summary.rows],
        "folds": [{"fold": r.fold, "images": r.images, "words": r.words, "run_dir": r.run_dir,
                   "best_epoch": r.best_epoch, "oof": r.oof.__dict__ if r.oof else None} for r in summary.rows],
        "mean_of_folds": summary.mean.__dict__ if summary.mean else None,
        "pooled": summary.pooled.__dict__ if summary.pooled else None,
        "pooled_global": summary.pooled_global.__dict__ if summary.pooled_global else None,
        "images": summary.images,
    }

