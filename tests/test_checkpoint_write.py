"""Run files on a full disk or with an unusable temp folder: checkpoints are written beside
their final name and renamed, a failed write leaves the previous checkpoint whole, the run ends
``failed`` with one located line naming the file and the free space, and it can be resumed."""

from __future__ import annotations

import errno
import json
import os
import re
import tempfile
from pathlib import Path

import pytest

import ocrtune.train.rundir as rundir
from ocrtune.train.rundir import RunDir, run_state
from tests._runs import receipts, train_argv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("train")]

SMALL = ["datasets.image_size=64", "dataloader.batch_size=2", "datasets.augment.enabled=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return receipts(tmp_path_factory.mktemp("receipts"), n=3, seed=5, val_fraction=0.34)


def _train(cli, data: Path, runs: Path, *extra: str) -> tuple[int, str, str]:
    return cli(*train_argv(data, runs, SMALL, "--quiet", *extra))


class _DiskFull:
    """A file that takes half of what it is given, then reports a full disk."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)


def _fill_disk_on(monkeypatch: pytest.MonkeyPatch, fails: dict[str, int]) -> None:
    """The disk is full from the ``n``-th write (1-based) of each named run file on."""
    names: dict[int, Path] = {}
    seen: dict[str, int] = {}
    open_temp, fdopen = rundir._open_temp, os.fdopen

    def opening(path):
        fd, tmp = open_temp(path)
        names[fd] = path
        return fd, tmp

    def fdopen_full(fd, *args, **kwargs):
        f = fdopen(fd, *args, **kwargs)
        path = names.pop(fd, None)
        if path is None or path.name not in fails:
            return f
        seen[path.name] = seen.get(path.name, 0) + 1
        return _DiskFull(f) if seen[path.name] >= fails[path.name] else f

    monkeypatch.setattr(rundir, "_open_temp", opening)
    monkeypatch.setattr(rundir.os, "fdopen", fdopen_full)


def _epoch(ckpt: Path) -> int:
    import torch

    return torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"]


def test_a_full_disk_keeps_the_previous_checkpoint_and_fails_the_run_in_one_line(cli, data, tmp_path, monkeypatch):
    with monkeypatch.context() as m:
        _fill_disk_on(m, {"last.ckpt": 2})  # epoch 1's last.ckpt, as the disk fills up
        code, out, err = _train(cli, data, tmp_path, "--epochs", "2")
    [path] = tmp_path.iterdir()
    run = RunDir(path)
    assert code == 1, (out, err)
    line = re.compile(re.escape(f"{run.last_ckpt}: No space left on device (") + r"\d+\.\d [kMG]B free there\)")
    assert [x for x in err.splitlines() if line.fullmatch(x)], err
    assert "Traceback" not in err + out
    summary = json.loads(run.summary_path.read_text())
    assert summary["status"] == "failed" and line.fullmatch(summary["error"])
    assert _epoch(run.last_ckpt) == 0  # the previous good one, whole
    assert [p.name for p in run.checkpoints.iterdir() if p.name.startswith(".")] == []  # no temp file left
    # the epoch whose checkpoint was lost is not counted: resuming trains it again
    assert summary["epochs_completed"] == 1 and [r["epoch"] for r in run.read_metrics()] == [0]
    state = run_state(run, summary)
    assert state.status == "failed" and state.resume == f"ocrtune train --resume {run.path}"
    assert f"continue with: {state.resume}" in err

    code, out, err = cli("train", "--resume", run.path, "--quiet")
    assert code == 0, (out, err)
    assert [r["epoch"] for r in run.read_metrics()] == [0, 1] and _epoch(run.last_ckpt) == 1


def test_when_not_even_the_outcome_can_be_written_the_run_still_ends_in_one_line(cli, data, tmp_path, monkeypatch,
                                                                                  caplog):
    with monkeypatch.context() as m:
        _fill_disk_on(m, {"last.ckpt": 1, "summary.json": 3})  # begin, epoch 0 written; then full
        code, out, err = _train(cli, data, tmp_path, "--epochs", "1")
    [path] = tmp_path.iterdir()
    run = RunDir(path)
    assert code == 1 and "Traceback" not in err + out
    assert f"{run.last_ckpt}: No space left on device" in err
    said = [r.getMessage() for r in caplog.records if r.name == "ocrtune.train"]  # on stderr outside tests
    assert any(m.startswith(f"{run.summary_path}: No space left on device") and "could not be recorded" in m
               for m in said), said
    json.loads(run.summary_path.read_text())  # the last summary written is whole


def test_training_never_needs_the_temp_folder(cli, data, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    unusable = str(blocker / "tmp")  # nothing can be created there, not even by root
    monkeypatch.setenv("TMPDIR", unusable)
    monkeypatch.setattr(tempfile, "tempdir", unusable)
    code, out, err = _train(cli, data, tmp_path / "runs", "--epochs", "1")
    assert code == 0, (out, err)
    [path] = (tmp_path / "runs").iterdir()
    run = RunDir(path)
    assert _epoch(run.best_ckpt) == 0 and _epoch(run.last_ckpt) == 0
    assert json.loads(run.summary_path.read_text())["status"] == "completed"
