"""Regressions from the training review: resuming moved runs, run-file modes and keys, resume
limits, evaluate's saved scores, one-line input errors, unreadable images, epoch numbering."""

from __future__ import annotations

import json
import os
import shutil
import stat
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from ocrtune.presets.load import load_preset
from ocrtune.train.fit import TrainOptions, fit
from ocrtune.train.rundir import METRIC_COLUMNS, RunDir, best_row
from tests.test_train import TINY, tiny_data  # noqa: F401  (tiny_data is a fixture)

pytestmark = pytest.mark.slow

# The model barely moves, so the resumed epochs score as the first one and never beat it.
STILL = [*TINY, "models.optimizer.lr=1e-9", "models.scheduler.eta_min=1e-12"]


def _sets(settings: list[str]) -> list[str]:
    return sum((["--set", s] for s in settings), [])


@pytest.fixture(scope="module")
def one_epoch(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:  # noqa: F811
    runs = tmp_path_factory.mktemp("runs1")
    result = fit(load_preset("cpu-demo", STILL),
                 TrainOptions(data=tiny_data, runs_dir=runs, name="one", progress=False, max_epochs=1))
    assert result.status == "completed", result.error
    return RunDir(result.run_dir)


def _ckpt_epoch(path: Path) -> int:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)["epoch"]


def _snapshot(run: RunDir) -> dict[str, tuple[bytes, float]]:
    return {str(p.relative_to(run.path)): (p.read_bytes() if p.suffix != ".ckpt" else b"", p.stat().st_mtime_ns)
            for p in run.path.rglob("*") if p.is_file()}


def test_resuming_a_copied_run_keeps_best_ckpt_unless_beaten(one_epoch, tmp_path):
    moved = RunDir(tmp_path / "moved")
    shutil.copytree(one_epoch.path, moved.path)  # cp -r: last.ckpt names the old place
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fit(None, TrainOptions(resume=str(moved.path), runs_dir=tmp_path, progress=False, max_epochs=3))
    assert result.status == "completed", result.error
    assert not [w for w in caught if "dirpath" in str(w.message)]  # no raw Lightning warning
    rows = moved.read_metrics()
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    summary = json.loads(moved.summary_path.read_text())
    best = best_row(rows)
    assert summary["best_epoch"] == best["epoch"] == 0  # the resumed epochs did not beat epoch 0
    assert _ckpt_epoch(moved.best_ckpt) == summary["best_epoch"]
    assert _ckpt_epoch(moved.last_ckpt) == 2
    assert summary["best_checkpoint"] == str(moved.best_ckpt)
    # the original run was neither read for paths nor changed
    assert _ckpt_epoch(one_epoch.last_ckpt) == 0 and len(one_epoch.read_metrics()) == 1


def test_resuming_replaces_best_ckpt_with_an_epoch_that_beats_the_records(one_epoch, tmp_path):
    run = RunDir(tmp_path / "worse")
    shutil.copytree(one_epoch.path, run.path)
    rows = run.read_metrics()
    rows[0]["val_hmean"] = -1.0  # recorded lower than any real H-mean: the next epoch beats it
    run.write_metrics(rows)
    result = fit(None, TrainOptions(resume=str(run.path), runs_dir=tmp_path, progress=False, max_epochs=2))
    assert result.status == "completed", result.error
    summary = json.loads(run.summary_path.read_text())
    assert summary["best_epoch"] == best_row(run.read_metrics())["epoch"] == 1
    assert _ckpt_epoch(run.best_ckpt) == 1


def test_run_files_get_the_umask_mode(one_epoch):
    umask = os.umask(0)
    os.umask(umask)
    for p in (one_epoch.config, one_epoch.metrics, one_epoch.summary_path, one_epoch.best_ckpt):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p


def test_resume_without_more_epochs_is_refused_and_changes_nothing(one_epoch, tmp_path, cli):
    run = RunDir(tmp_path / "done")
    shutil.copytree(one_epoch.path, run.path)
    code, _, err = cli("train", "--resume", run.path, "--epochs", "2", "--runs-dir", tmp_path)  # now 2 epochs
    assert code == 0, err
    before = _snapshot(run)
    for extra in ([], ["--epochs", "2"], ["--epochs", "1"]):
        code, out, err = cli("train", "--resume", run.path, *extra, "--runs-dir", tmp_path)
        assert code == 2, (extra, out, err)
        assert err == f"{run.path}: already trained 2 epochs; pass --epochs N with N > 2 to train further\n"
        assert _snapshot(run) == before
    assert load_preset(run.config).preset.trainer.max_epochs == 2


def test_a_run_that_diverges_in_its_first_epoch_has_metrics_and_every_summary_key(tiny_data, tmp_path, cli):  # noqa: F811
    code, out, _ = cli("train", "--preset", "cpu-demo", *_sets(TINY), "--set", "models.optimizer.lr=1e12",
                       "--set", "trainer.gradient_clip_val=0", "--data", tiny_data, "--runs-dir", tmp_path,
                       "--epochs", "1", "--json")
    assert code == 1
    run = RunDir(Path(json.loads(out)["run_dir"]))
    assert tuple(run.metrics.read_text().splitlines()[0].split(",")) == METRIC_COLUMNS
    assert run.read_metrics() == []
    summary = json.loads(run.summary_path.read_text())
    assert summary["status"] == "diverged"
    assert summary["epochs_completed"] == 0 and summary["best_epoch"] is None and summary["best"] is None
    assert summary["epoch_base"] == 0


def test_evaluate_a_checkpoint_outside_a_run_saves_its_scores(one_epoch, tiny_data, tmp_path, cli):  # noqa: F811
    lone = tmp_path / "lone.ckpt"
    shutil.copy(one_epoch.best_ckpt, lone)
    code, out, err = cli("evaluate", lone, "--data", tiny_data)
    assert code == 0, err
    saved = tmp_path / "lone.eval-val.json"
    assert f"saved {saved}" in err
    scores = json.loads(saved.read_text())
    assert scores["split"] == "val" and scores["checkpoint"] == str(lone)
    code, out, err = cli("evaluate", lone, "--data", tiny_data, "--out", tmp_path / "sub" / "s.json", "--json")
    assert code == 0, err
    assert json.loads((tmp_path / "sub" / "s.json").read_text())["cleval"] == json.loads(out)["cleval"]
    code, _, err = cli("evaluate", lone, "--data", tiny_data, "--out", lone)
    assert code == 2 and err == f"{lone} --out: is the checkpoint being evaluated\n"
    code, _, err = cli("evaluate", lone, "--data", tiny_data, "--out", tmp_path)
    assert code == 2 and "--out: is a directory" in err
    # a run directory keeps its eval-<split>.json
    code, _, err = cli("evaluate", one_epoch.path, "--data", tiny_data)
    assert code == 0 and f"saved {one_epoch.path / 'eval-val.json'}" in err
    assert (one_epoch.path / "eval-val.json").is_file()


def test_input_errors_of_evaluate_and_predict_are_one_line(one_epoch, tiny_data, tmp_path, cli):  # noqa: F811
    empty = tmp_path / "emptydir"
    empty.mkdir()
    code, _, err = cli("predict", one_epoch.path, "--images", empty, "--out", tmp_path / "s.csv")
    assert code == 2 and err == f"{empty}: no images found\n"
    code, _, err = cli("evaluate", one_epoch.path, "--data", tiny_data, "--split", "test")
    assert code == 2 and err.startswith(f"{tiny_data}") and len(err.splitlines()) == 1, err
    assert not (one_epoch.path / "eval-test.json").exists()


def test_predict_says_once_that_an_unreadable_image_is_listed_empty(one_epoch, tiny_data, tmp_path, cli):  # noqa: F811
    images = tmp_path / "imgs"
    shutil.copytree(tiny_data / "images" / "val", images)
    (images / "broken.jpg").write_text("not an image")
    code, _, err = cli("predict", one_epoch.path, "--images", images, "--out", tmp_path / "s.csv")
    assert code == 0, err
    lines = err.splitlines()
    about = [ln for ln in lines if "broken.jpg" in ln]
    assert len(about) == 1 and about[0].endswith("; listed in the CSV with no detections"), err
    assert "cannot read image" in about[0] and "skipped" not in err
    assert "broken.jpg," in (tmp_path / "s.csv").read_text()


def test_epochs_are_shown_from_1_everywhere(one_epoch, tmp_path, cli):
    run = RunDir(tmp_path / "shown")
    shutil.copytree(one_epoch.path, run.path)
    code, out, err = cli("train", "--resume", run.path, "--epochs", "2", "--runs-dir", tmp_path)
    assert code == 0, err
    assert [ln.split()[1] for ln in err.splitlines() if ln.startswith("epoch ")] == ["2/2"]
    table = [ln.split("│")[1].strip() for ln in out.splitlines() if ln.startswith("│")]
    assert table == ["1", "2"]  # the files say 0 and 1
    assert "best epoch 1:" in out
    assert json.loads(run.summary_path.read_text())["best_epoch"] == 0
    code, out, _ = cli("runs", "show", run.path)
    assert code == 0
    fields = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in out.splitlines()
              if ln.startswith("│") and len(ln.split("│")) == 4}
    assert fields["best epoch"] == "1"
    best = json.loads(run.summary_path.read_text())["best"]
    for k in ("hmean", "precision", "recall"):
        assert fields[f"best {k}"] == f"{best[k]:.4g}"
    metrics_epochs = [ln.split("│")[1].strip() for ln in out.splitlines() if ln.startswith("│") and len(ln.split("│")) > 4]
    assert metrics_epochs == ["1", "2"]
    code, out, _ = cli("runs", "list", "--runs-dir", tmp_path)
    row = [ln for ln in out.splitlines() if "shown" in ln][0]
    assert [c.strip() for c in row.split("│")][3:5] == ["2", "1"]  # epochs, best epoch


def test_the_live_bar_counts_epochs_from_1_without_v_num():
    from ocrtune.train.recorder import EpochBar

    bar = EpochBar()
    logger = SimpleNamespace(version=0)
    bar._trainer = SimpleNamespace(max_epochs=3, progress_bar_metrics={"train/loss": 1.5}, loggers=[logger],
                                   logger=logger)
    assert bar._get_train_description(0).strip() == "Epoch 1/3"
    assert bar._get_train_description(2).strip() == "Epoch 3/3"
    metrics = bar.get_metrics(bar._trainer, None)
    assert "v_num" not in metrics and metrics["train/loss"] == 1.5


def test_evaluate_in_a_read_only_folder_prints_the_scores_and_says_they_were_not_saved(
        one_epoch, tiny_data, tmp_path, cli, monkeypatch):  # noqa: F811
    import ocrtune.train.infer as infer

    lone = tmp_path / "shared-model" / "model.ckpt"
    lone.parent.mkdir()
    shutil.copy(one_epoch.best_ckpt, lone)
    real_access = os.access
    monkeypatch.setattr(infer.os, "access", lambda p, mode: False if Path(p) == lone.parent else real_access(p, mode))
    code, out, err = cli("evaluate", lone, "--data", tiny_data, "--json")
    assert code == 0, err
    assert json.loads(out)["saved"] is None and "scores not saved" in err and "--out FILE" in err
    assert list(lone.parent.iterdir()) == [lone]
    code, _, err = cli("evaluate", lone, "--data", tiny_data, "--out", lone.parent / "s.json")  # asked for: refused
    assert code == 2 and "--out: cannot write the scores here" in err


def test_evaluate_prints_the_scores_when_the_default_save_fails_late(one_epoch, tiny_data, cli):  # noqa: F811
    (one_epoch.path / "eval-val.json").unlink(missing_ok=True)  # an earlier test's scores
    (one_epoch.path / "eval-val.json").mkdir()  # writable folder, but the name is taken by a folder
    try:
        code, out, err = cli("evaluate", one_epoch.path, "--data", tiny_data, "--json")
        assert code == 0, err
        assert json.loads(out)["saved"] is None and "scores not saved" in err
        assert not [p for p in one_epoch.path.iterdir() if p.name.endswith(".tmp")]  # no temp file left
    finally:
        (one_epoch.path / "eval-val.json").rmdir()
