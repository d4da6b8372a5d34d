"""A real tiny k-fold on the CPU, killed with SIGKILL after its first fold and one epoch of the
second, and resumed: the resume trains only the missing fold, continuing its run from
last.ckpt, `kfold status` reads without writing, and the folds' out-of-fold predictions and
the pooled score cover every image exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocrtune.kfold.layout import fold_runs, is_kfold_dir
from ocrtune.sweep.run.liveness import pid_alive

from .conftest import DUP, ORIGINAL

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MAIN = "import sys; from ocrtune.cli.app import main; sys.argv[0] = 'ocrtune'; main()"
TINY = ("--preset", "cpu-demo", "--folds", "2", "--epochs", "3", "--parallel", "1", "--name", "t",
        "--set", "datasets.image_size=64", "--set", "dataloader.batch_size=4")


def _cmd(tmp_path: Path, data: Path, *args: str) -> list[str]:
    return [sys.executable, "-c", MAIN, "kfold", "--runs-dir", str(tmp_path / "runs"), "--data", str(data), *TINY, *args]


def _wait_for(pred, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in root.rglob("*")}


def _metrics(run: Path) -> list[str]:
    p = run / "metrics.csv"
    return p.read_text().splitlines()[1:] if p.is_file() else []


def test_kfold_killed_after_one_fold_resumes_with_only_the_missing_fold(tmp_path, kfold_data):
    env = {**os.environ, "OCRTUNE_SWEEP_POLL_S": "0.1"}
    root = tmp_path / "runs" / "kfold" / "t"
    f1, f2 = root / "folds" / "1", root / "folds" / "2"
    proc = subprocess.Popen(_cmd(tmp_path, kfold_data), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        runs2 = f2 / "runs"
        # last.ckpt is saved at the end of validation, the epoch's metrics row after it: wait for both
        _wait_for(lambda: proc.poll() is not None or any(
            (r / "checkpoints" / "last.ckpt").is_file() and _metrics(r) for r in runs2.glob("*")), 300,
                  "fold 2's first epoch")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)  # no clean-up at all; fold 2's process gets SIGTERM from the kernel
        proc.wait(30)
    finally:
        proc.kill()
    child = json.loads((f2 / "process.json").read_text())
    _wait_for(lambda: not pid_alive(child["pid"], child["pid_start"]), 60, "fold 2's process to end")
    assert json.loads((f1 / "result.json").read_text())["status"] == "completed"
    run1 = fold_runs(root)
    assert len(run1) == 1 and run1[0].parent.parent == f1
    (run2,) = (f2 / "runs").iterdir()
    first = _metrics(run2)[0]
    assert json.loads((run2 / "summary.json").read_text())["status"] == "interrupted"
    best1 = (run1[0] / "checkpoints" / "best.ckpt").stat().st_mtime_ns

    before = _tree(root)
    st = subprocess.run([sys.executable, "-c", MAIN, "kfold", "status", "t", "--runs-dir", str(tmp_path / "runs"),
                         "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert st.returncode == 0, st.stderr
    s = json.loads(st.stdout)
    assert [r["status"] for r in s["rows"]][0] == "completed" and s["rows"][1]["status"] in ("interrupted", "stopped")
    assert s["state"] == "incomplete" and s["pooled"] is None
    assert _tree(root) == before  # status wrote nothing

    done = subprocess.run(_cmd(tmp_path, kfold_data, "--json"), cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert "1 fold(s) already completed" in done.stderr and "fold 2/2 [cpu0] started" in done.stderr
    assert "fold 1/2 [cpu0] started" not in done.stderr  # fold 1 was not trained again
    assert (run1[0] / "checkpoints" / "best.ckpt").stat().st_mtime_ns == best1
    assert (f2 / "attempts" / "1" / "spec.json").is_file()  # the killed attempt's files, kept aside
    # ... but not its run: that went on from its last.ckpt, keeping the epochs it had trained
    assert "continuing its run after epoch" in done.stderr and not (f2 / "attempts" / "1" / "runs").exists()
    assert fold_runs(root)[1] == run2 and len(_metrics(run2)) == 3 and _metrics(run2)[0] == first

    s = json.loads(done.stdout)
    assert s["state"] == "finished" and [r["status"] for r in s["rows"]] == ["completed", "completed"]
    settings = json.loads((root / "kfold.json").read_text())
    images = settings["images"]
    assert len(images) == 13 and images[DUP]["fold"] == images[ORIGINAL]["fold"]
    assert images[DUP]["sha256"] == images[ORIGINAL]["sha256"]
    held = {}
    for k, row in enumerate(s["rows"], 1):
        names = {n for n, v in images.items() if v["fold"] == k}
        assert row["images"] == len(names) and row["words"] == sum(images[n]["words"] for n in names)
        oof = json.loads((root / "folds" / str(k) / "oof.json").read_text())["images"]
        assert set(oof) == names  # predictions for exactly the held-out images
        result = json.loads((root / "folds" / str(k) / "result.json").read_text())
        assert result["images"] == len(names) and result["oof"] == row["oof"] and 1 <= result["best_epoch"] <= 3
        held.update(dict.fromkeys(names, k))
    assert set(held) == set(images)  # every image held out once
    assert s["images"] == 13 and s["pooled"] is not None and s["pooled_global"] is not None
    assert s["mean"]["hmean"] == pytest.approx(sum(r["oof"]["hmean"] for r in s["rows"]) / 2)
    scores = json.loads((root / "scores.json").read_text())
    assert scores["pooled"] == s["pooled"] and scores["runs"] == [r["run_dir"] for r in s["rows"]]
    assert is_kfold_dir(root) and [p.parent.parent for p in fold_runs(root)] == [f1, f2]

    again = subprocess.run(_cmd(tmp_path, kfold_data), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing left to run" in again.stderr, again.stderr
    assert "pooled (13 images)" in again.stdout and "mean of 2 fold(s)" in again.stdout
