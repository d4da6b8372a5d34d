"""One fold in its own process: ``python -m ocrtune.kfold.fold FOLD_DIR/spec.json``.

It trains the fold exactly as a sweep trial trains (``ocrtune.sweep.run.trial.run_training``:
the preset from ``spec.json``, ``fit`` into ``FOLD_DIR/runs/``, on the GPU in a GPU slot), or,
when the parent kept an interrupted attempt's run there, continues it from its ``last.ckpt``;
then predicts the held-out images with the run's ``best.ckpt`` (``oof.json``, also
``oof.csv``) and scores them, and writes ``result.json`` (a ``FoldResult``) last. The launcher
is the sweep's (``Child``): its own session, SIGTERM when the parent dies, SIGTERM as Ctrl-C
so ``fit`` records the run as interrupted.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path

from ocrtune.errors import InputError
from ocrtune.kfold.layout import COMPLETED, DATA, OOF
from ocrtune.kfold.scores import read_held_out, score
from ocrtune.kfold.types import FoldResult, Scores
from ocrtune.sweep.run.launcher import SLOT_GPU_ENV
from ocrtune.sweep.run.records import find_run_dir
from ocrtune.sweep.run.trial import die_with_launcher, run_training, write_result
from ocrtune.sweep.types import Status, TrialResult, TrialSpec
from ocrtune.train.loader_workers import loader_workers
from ocrtune.train.rundir import RunDir, shown_epoch


def run_fold(spec: TrialSpec, spec_path: Path, fold: int) -> FoldResult:
    """Train (or continue the run an earlier attempt left in ``runs/``), then predict and
    score the held-out images with the best checkpoint."""
    fold_dir = spec_path.parent
    kept = find_run_dir(fold_dir)
    tr = continue_training(spec, kept) if kept is not None else run_training(spec, spec_path)
    if tr.status.value != COMPLETED or tr.run_dir is None:
        return FoldResult(fold, tr.status.value, tr.run_dir, error=tr.error, hint=tr.hint, device=tr.device)
    run = RunDir(Path(tr.run_dir))
    summary = run.read_summary()
    if not run.best_ckpt.is_file():
        return FoldResult(fold, "failed", str(run.path), error=f"{run.best_ckpt}: no best checkpoint to predict with",
                          device=tr.device)
    predict_held_out(run, fold_dir)
    held = read_held_out(fold_dir)
    mean, glob = score(held)
    return FoldResult(fold, COMPLETED, str(run.path), images=len(held.gt),
                      best_epoch=shown_epoch(summary.get("best_epoch")), oof=mean, oof_global=glob,
                      best_val=Scores.of(summary.get("best")), device=tr.device)


def continue_training(spec: TrialSpec, run_path: Path) -> TrialResult:
    """An earlier attempt's run, kept by the parent because it can go on (``continuable``):
    training resumes from its ``last.ckpt``; one that had trained every epoch is only scored."""
    run = RunDir(run_path)
    summary = run.read_summary()
    done = summary.get("epochs_completed")
    if summary.get("status") == COMPLETED or (isinstance(done, int) and done >= spec.epochs):
        return TrialResult(Status.COMPLETED, run_dir=str(run.path.resolve()), device=summary.get("device"))
    from ocrtune.train.fit import TrainOptions, fit

    res = fit(None, TrainOptions(resume=str(run.path), data=Path(spec.data) if spec.data else None,
                                 runs_dir=run.path.parent, progress=False, max_epochs=spec.epochs,
                                 accelerator="gpu" if os.environ.get(SLOT_GPU_ENV) else "auto"))
    return TrialResult(Status(res.status), run_dir=str(Path(res.run_dir).resolve()), error=res.error, hint=res.hint,
                       device=res.device)


def predict_held_out(run: RunDir, fold_dir: Path) -> None:
    """``oof.json`` and ``oof.csv``: ``best.ckpt``'s detections on the held-out images, each
    written beside its final name first and then renamed into place."""
    from ocrtune.train.infer import load_checkpoint, predict

    device = "cuda" if os.environ.get(SLOT_GPU_ENV) else None  # a GPU slot predicts on its GPU
    loaded = load_checkpoint(run.best_ckpt, device=device)
    tmp_json, tmp_csv = fold_dir / f".{OOF}.{os.getpid()}.tmp", fold_dir / f".oof.csv.{os.getpid()}.tmp"
    try:
        predict(loaded, fold_dir / DATA / "images" / "val", tmp_csv, tmp_json,
                num_workers=loader_workers(loaded.preset.dataloader.num_workers))
        os.replace(tmp_csv, fold_dir / "oof.csv")
        os.replace(tmp_json, fold_dir / OOF)
    finally:
        tmp_json.unlink(missing_ok=True)
        tmp_csv.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ocrtune.kfold.fold FOLD_DIR/spec.json", file=sys.stderr)
        return 2
    spec_path = Path(args[0])
    fold = int(spec_path.parent.name) if spec_path.parent.name.isdigit() else 0
    die_with_launcher()
    signal.signal(signal.SIGTERM, _interrupt)
    start = time.perf_counter()
    try:
        result = run_fold(TrialSpec.read(spec_path), spec_path, fold)
    except KeyboardInterrupt:
        result = FoldResult(fold, "interrupted")
    except InputError as e:
        result = FoldResult(fold, "failed", error="\n".join(e.lines))
    except Exception as e:
        result = FoldResult(fold, "failed", error=_tail(e))
    result = replace(result, wall_time_s=round(time.perf_counter() - start, 3))
    return write_result(spec_path.parent, result, failed=result.status == "failed")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _tail(e: BaseException, n: int = 8) -> str:
    lines = "".join(traceback.format_exception(type(e), e, e.__traceback__)).strip().splitlines()
    return "\n".join(lines[-n:])


if __name__ == "__main__":
    sys.exit(main())
