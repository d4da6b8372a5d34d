"""A run interrupted by Ctrl-C and resumed trains exactly as an uninterrupted one: order,
augmentation and the global generators are functions of the seed and epoch or travel in
last.ckpt. The CLI prints the exact command that resumes it."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from ocrtune.train.rundir import RunDir
from tests._runs import interrupt_before_epoch, receipts, train, train_argv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("train")]

# augmentation on (the cpu-demo default), so a resumed epoch that drew other seeds shows
SMALL = ["datasets.image_size=96", "dataloader.batch_size=2", "models.scheduler.warmup_epochs=0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return receipts(tmp_path_factory.mktemp("receipts"), n=5, seed=11, val_fraction=0.2)


def test_an_interrupted_and_resumed_run_trains_as_an_uninterrupted_one(data, tmp_path, monkeypatch, cli):
    whole = train(data, tmp_path / "whole", SMALL, epochs=2)  # fails here unless completed
    expected = [r["train_loss"] for r in whole.rows]
    assert len(expected) == 2 and len(set(expected)) == 2

    with monkeypatch.context() as m:
        interrupt_before_epoch(m, 1)
        code, out, err = cli(*train_argv(data, tmp_path / "cut", SMALL, "--epochs", "2"))
    assert code == 1, (out, err)
    [run_dir] = (tmp_path / "cut").iterdir()
    run = RunDir(run_dir)
    assert json.loads(run.summary_path.read_text())["status"] == "interrupted"
    assert f"continue with: ocrtune train --resume {run_dir}" in err
    command = next(line for line in err.splitlines() if "continue with:" in line).split("continue with: ", 1)[1]

    argv = shlex.split(command)
    assert argv[:3] == ["ocrtune", "train", "--resume"]
    code, out, err = cli(*argv[1:], "--runs-dir", tmp_path / "cut", "--quiet")
    assert code == 0, (out, err)
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == [0, 1]
    assert [r["train_loss"] for r in rows] == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert [r["val_hmean"] for r in rows] == pytest.approx([r["val_hmean"] for r in whole.rows], abs=1e-9)


def test_epoch_order_and_augmentation_seeds_depend_on_seed_and_epoch_only():
    from ocrtune.train.datamodule import EpochShuffle

    a, b = EpochShuffle(10, seed=7), EpochShuffle(10, seed=7)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    b.set_epoch(1)
    assert list(b) == second != first  # the same epoch draws the same, whatever came before
    assert sorted(d.index for d in second) == list(range(10))
    assert list(EpochShuffle(10, seed=8)) != first


def test_the_global_generators_are_put_back_at_the_first_resumed_epoch():
    import random

    import numpy as np
    import torch

    from ocrtune.train.rng_state import RngState

    saved = RngState().state_dict()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    restored = RngState()
    restored.load_state_dict(saved)
    random.random(), np.random.rand(), torch.rand(3)  # the resume's own set-up draws first
    restored.on_train_epoch_start(None, None)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    restored.on_train_epoch_start(None, None)  # only once: later epochs go on drawing
    assert (random.random(), np.random.rand(), torch.rand(1).item()) != expected
