"""Tiny training runs for tests: a few synthetic receipts and a short cpu-demo run on them, built
one way everywhere, so each test states only its settings (epochs, image size, images, seed,
``--set`` overrides) and the numbers it asserts stay those of that recipe."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ocrtune.train.fit import RunResult

# Small and quick, but a real model on real (synthetic) receipts: no augmentation, so a few dozen
# steps on two images are enough to detect their words.
TINY = (
    "datasets.image_size=256",
    "datasets.augment.enabled=false",
    "dataloader.batch_size=1",
    "models.optimizer.lr=0.003",
    "models.scheduler.name=constant",
    "models.scheduler.warmup_epochs=0",
)


def receipts(root: Path, *, n: int, seed: int, size: int = 256, val_fraction: float = 0.0,
             val_is_train: bool = False) -> Path:
    """``n`` synthetic receipts of ``size`` px under ``root``. With ``val_is_train`` the val split
    is a copy of train, so a short run can show it learned something."""
    from ocrtune.data.synthetic import synthesize

    synthesize(root, n=n, seed=seed, size=size, val_fraction=val_fraction)
    if val_is_train:
        shutil.rmtree(root / "images" / "val", ignore_errors=True)
        shutil.copytree(root / "images" / "train", root / "images" / "val")
        shutil.copy(root / "jsons" / "train.json", root / "jsons" / "val.json")
    return root


def sets(settings: Iterable[str]) -> list[str]:
    """The CLI's ``--set`` options, in order (a later one wins)."""
    return [arg for s in settings for arg in ("--set", s)]


def train_argv(data: Path, runs: Path, settings: Iterable[str] = (), *extra: str | Path,
               preset: str = "cpu-demo") -> list[str | Path]:
    """``ocrtune train`` arguments for the ``cli`` fixture: ``--preset``, ``--set``s, ``--data``,
    ``--runs-dir``, then ``extra`` (``--epochs N``, ``--json``, ...)."""
    return ["train", "--preset", preset, *sets(settings), "--data", data, "--runs-dir", runs, *extra]


def train(data: Path, runs: Path, settings: Iterable[str] = (), *, epochs: int, name: str | None = None,
          preset: str = "cpu-demo") -> RunResult:
    """A completed run of ``preset`` with ``settings`` (``fit`` in this process, no progress bar);
    anything else fails the calling fixture or test with the run's error."""
    from ocrtune.presets.load import load_preset
    from ocrtune.train.fit import TrainOptions, fit

    result = fit(load_preset(preset, list(settings)),
                 TrainOptions(data=data, runs_dir=runs, name=name, progress=False, max_epochs=epochs))
    assert result.status == "completed", result.error
    return result


def interrupt_before_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Ctrl-C as the given epoch (from 0) starts, after the previous one's last.ckpt was written."""
    from ocrtune.train.recorder import RunRecorder

    start = RunRecorder.on_train_epoch_start

    def on_start(self, trainer, pl_module):  # type: ignore[no-untyped-def]
        if trainer.current_epoch == epoch:
            raise KeyboardInterrupt
        start(self, trainer, pl_module)

    monkeypatch.setattr(RunRecorder, "on_train_epoch_start", on_start)
