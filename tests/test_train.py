"""End-to-end CPU training on a tiny synthetic set: run files (and their modes), resume (of
moved runs too, and its limits), divergence, evaluate (and where its scores are saved),
predict, one-line input errors, epochs shown from 1."""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from ocrtune.data.formats import read_submission_csv
from ocrtune.presets.load import load_preset
from ocrtune.train.fit import TrainOptions, fit
from ocrtune.train.rundir import METRIC_COLUMNS, RunDir, best_row
from tests._runs import TINY, train, train_argv

# one xdist worker runs this file, so the module-scoped 25-epoch training is built once, not per worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("train")]

# tiny_data (conftest.py): two receipts whose val split is a copy of their train split.


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory):
    runs = tmp_path_factory.mktemp("runs")
    return train(tiny_data, runs, TINY, epochs=25, name="tiny"), runs


# The model barely moves, so the resumed epochs score as the first one and never beat it.
STILL = [*TINY, "models.optimizer.lr=1e-9", "models.scheduler.eta_min=1e-12"]
# So large a step that the loss is not finite within the first epoch.
DIVERGE = [*TINY, "models.optimizer.lr=1e12", "trainer.gradient_clip_val=0"]


@pytest.fixture(scope="module")
def one_epoch(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> RunDir:
    return RunDir(train(tiny_data, tmp_path_factory.mktemp("runs1"), STILL, epochs=1, name="one").run_dir)


@pytest.fixture(scope="module")
def resumed_to_two(one_epoch: RunDir, tmp_path_factory: pytest.TempPathFactory, cli) -> SimpleNamespace:
    """A copy of ``one_epoch`` alone in a runs folder, resumed with the CLI to 2 epochs: ``run``,
    ``runs`` and the resume's ``code``, ``out``, ``err``. Read only: tests that change it copy it."""
    runs = tmp_path_factory.mktemp("runs2")
    run = RunDir(runs / "shown")
    shutil.copytree(one_epoch.path, run.path)
    code, out, err = cli("train", "--resume", run.path, "--epochs", "2", "--runs-dir", runs)
    return SimpleNamespace(run=run, runs=runs, code=code, out=out, err=err)


def _ckpt_epoch(path: Path) -> int:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)["epoch"]


def _snapshot(run: RunDir) -> dict[str, tuple[bytes, float]]:
    return {str(p.relative_to(run.path)): (p.read_bytes() if p.suffix != ".ckpt" else b"", p.stat().st_mtime_ns)
            for p in run.path.rglob("*") if p.is_file()}


def test_training_writes_every_run_file_and_learns(trained):
    result, _ = trained
    run = RunDir(result.run_dir)
    assert result.status == "completed", result.error
    for f in (run.config, run.metrics, run.summary_path, run.best_ckpt, run.last_ckpt):
        assert f.is_file(), f
    rows = run.read_metrics()
    assert [r["epoch"] for r in rows] == list(range(25))
    assert tuple(run.metrics.read_text().splitlines()[0].split(",")) == METRIC_COLUMNS
    for r in rows:
        for k in ("train_loss", "train_prob", "train_thresh", "train_binary", "val_hmean", "lr", "grad_norm",
                  "epoch_time_s", "peak_mem_mb"):
            assert isinstance(r[k], (int, float)), (k, r)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    summary = json.loads(run.summary_path.read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 25
    best = max(rows, key=lambda r: r["val_hmean"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["best"]["hmean"] == pytest.approx(best["val_hmean"])
    assert summary["best"]["hmean"] > 0.1  # it detects words it was trained on (0.31 here; 0 = nothing learned)
    # the run's config is the resolved preset and loads back as a preset
    again = load_preset(run.config).preset
    assert again.datasets.image_size == 256 and again.trainer.max_epochs == 25


def test_cpu_training_and_inference_run_the_model_channels_last(trained):
    """oneDNN's convolutions are faster channels-last (bench/bench_cpu_precision.py); the weights
    training saves keep the layout, and a loaded checkpoint runs in it too."""
    import torch

    from ocrtune.train.infer import load_checkpoint

    result, _ = trained
    weights = torch.load(RunDir(result.run_dir).best_ckpt, map_location="cpu", weights_only=False)["state_dict"]
    convs = {k: w for k, w in weights.items() if w.ndim == 4 and w.shape[1] > 1 and w.shape[-1] > 1}
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
                         for w in convs.values())
    loaded = load_checkpoint(RunDir(result.run_dir).best_ckpt, device="cpu")
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in loaded.module.parameters()
               if p.ndim == 4 and p.shape[1] > 1 and p.shape[-1] > 1)


def test_bf16_mixed_trains_on_the_cpu_and_evaluate_scores_as_validation_did(tiny_data, tmp_path, cli):
    """bf16-mixed on the CPU (AMX: 2.5x an fp32 step at 1024 px) trains, and evaluate, computing
    its maps in bf16 as validation did (tests/test_precision.py), reproduces the best epoch."""
    result = train(tiny_data, tmp_path, [*TINY, "trainer.precision=bf16-mixed"], epochs=20, name="bf16")
    summary = json.loads((Path(result.run_dir) / "summary.json").read_text())
    assert summary["precision"] == "bf16-mixed" and summary["epochs_completed"] == 20
    rows = RunDir(result.run_dir).read_metrics()
    assert all(math.isfinite(r["train_loss"]) for r in rows) and rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert result.best["hmean"] > 0.05, result.best  # it found words: the comparison below means something
    code, out, err = cli("evaluate", result.run_dir, "--data", tiny_data, "--json", "--runs-dir", tmp_path)
    assert code == 0, err
    assert json.loads(out)["cleval"]["image_mean"]["hmean"] == pytest.approx(result.best["hmean"], abs=1e-9)


def test_run_files_get_the_umask_mode(one_epoch):
    umask = os.umask(0)
    os.umask(umask)
    for p in (one_epoch.config, one_epoch.metrics, one_epoch.summary_path, one_epoch.best_ckpt):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p


def test_best_checkpoint_is_chosen_by_hmean_and_evaluate_reproduces_it(trained, tiny_data, cli):
    result, runs = trained
    code, out, err = cli("evaluate", result.run_dir, "--data", tiny_data, "--json", "--runs-dir", runs)
    assert code == 0, err
    scores = json.loads(out)
    # evaluating best.ckpt on the validation split gives exactly the best epoch's val H-mean
    assert scores["cleval"]["image_mean"]["hmean"] == pytest.approx(result.best["hmean"], abs=1e-9)
    assert (Path(result.run_dir) / "eval-val.json").is_file()
    # the IoU misses by kind account for every word and detection the global IoU scores counted
    m, iou = scores["iou"]["misses"], scores["iou"]["global"]
    words = sum(v for k, v in m.items() if k.startswith("gt_"))
    dets = sum(v for k, v in m.items() if k.startswith("det_"))
    assert words > 0 and m["gt_matched"] == m["det_matched"]
    assert m["gt_matched"] / words == pytest.approx(iou["recall"])
    assert m["det_matched"] / dets == pytest.approx(iou["precision"]) if dets else iou["precision"] == 0
    per_image = [v["iou_misses"] for v in scores["per_image"].values()]
    assert len(per_image) == scores["images"]
    assert sum(v.get("gt_not_found", 0) for v in per_image) == m["gt_not_found"]
    code, out, _ = cli("evaluate", result.run_dir, "--data", tiny_data, "--runs-dir", runs)
    assert code == 0 and f"IoU misses: {words - m['gt_matched']} of {words} words" in out


def test_predict_writes_csv_for_every_image(trained, tiny_data, cli, tmp_path):
    result, runs = trained
    out = tmp_path / "sub.csv"
    maps = tmp_path / "maps"
    code, _, err = cli("predict", result.run_dir, "--images", tiny_data / "images" / "val", "--out", out,
                       "--json", tmp_path / "p.json", "--save-maps", maps, "--runs-dir", runs)
    assert code == 0, err
    sub = read_submission_csv(out)
    names = sorted(p.name for p in (tiny_data / "images" / "val").iterdir())
    assert sorted(sub) == names
    assert sum(len(a.words) for a in sub.values()) > 0
    assert sorted(p.name for p in maps.iterdir()) == [f"{n}.npz" for n in names]
    # scoring the written predictions with the metric gives the evaluate numbers
    code, out2, _ = cli("evaluate-json", tiny_data / "jsons" / "val.json", tmp_path / "p.json", "--json")
    assert json.loads(out2)["image_mean"]["hmean"] == pytest.approx(result.best["hmean"], abs=0.02)


def test_predict_says_once_that_an_unreadable_image_is_listed_empty(one_epoch, tiny_data, tmp_path, cli):
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


def test_resume_continues_the_same_run_on_the_same_data(tiny_data, tmp_path):
    import torch

    warm = [*TINY, "models.scheduler.warmup_epochs=1"]
    loaded = load_preset("cpu-demo", warm)
    first = fit(loaded, TrainOptions(data=tiny_data, runs_dir=tmp_path, name="r", progress=False, max_epochs=2))
    assert first.status == "completed"
    run = RunDir(first.run_dir)
    # last.ckpt is rewritten every epoch, whether or not H-mean improved
    assert torch.load(run.last_ckpt, map_location="cpu", weights_only=False)["epoch"] == 1
    # the lr column is the lr each epoch trained with (warm-up: half, then full)
    assert [r["lr"] for r in run.read_metrics()] == pytest.approx([0.0015, 0.003])
    # no --data: the run's config.yaml names the data it trained on
    second = fit(None, TrainOptions(resume=str(first.run_dir), runs_dir=tmp_path, progress=False, max_epochs=3))
    assert second.status == "completed" and second.run_dir == first.run_dir
    assert [r["epoch"] for r in run.read_metrics()] == [0, 1, 2]
    summary = json.loads(run.summary_path.read_text())
    assert summary["epochs_completed"] == 3 and summary["n_train"] == 2
    assert summary["data"] == str(tiny_data.resolve()) and summary["preset"].startswith("cpu-demo")
    assert load_preset(run.config).preset.trainer.max_epochs == 3
    assert len(list(tmp_path.iterdir())) == 1  # no second run directory


def test_resume_refuses_a_new_preset_or_overrides(cli, tmp_path):
    code, _, err = cli("train", "--resume", "x", "--set", "models.optimizer.lr=0.1", "--runs-dir", tmp_path)
    assert code == 2 and "--resume: a resumed run keeps its own config.yaml" in err
    code, _, err = cli("train", "--runs-dir", tmp_path)
    assert code == 2 and "--preset: which preset?" in err


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


def test_resume_without_more_epochs_is_refused_and_changes_nothing(resumed_to_two, cli):
    run = resumed_to_two.run
    assert resumed_to_two.code == 0, resumed_to_two.err  # now 2 epochs
    before = _snapshot(run)
    for extra in ([], ["--epochs", "2"], ["--epochs", "1"]):
        code, out, err = cli("train", "--resume", run.path, *extra, "--runs-dir", resumed_to_two.runs)
        assert code == 2, (extra, out, err)
        assert err == f"{run.path}: already trained 2 epochs; pass --epochs N with N > 2 to train further\n"
        assert _snapshot(run) == before
    assert load_preset(run.config).preset.trainer.max_epochs == 2


def test_bad_trainer_settings_fail_before_a_run_exists(cli, tiny_data, tmp_path):
    code, _, err = cli("train", "--preset", "cpu-demo", "--data", tiny_data, "--strategy", "bogus", "--runs-dir", tmp_path)
    assert code == 2 and "invalid trainer settings" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("train", "--preset", "cpu-demo", "--data", tiny_data, "--set", "models.encoder.model_name=resnet18x",
                       "--runs-dir", tmp_path)
    assert code == 2 and "models.encoder.model_name" in err
    assert not any(tmp_path.iterdir())


def test_evaluate_with_a_set_that_changes_the_model_is_refused(trained, tiny_data, cli):
    result, runs = trained
    code, _, err = cli("evaluate", result.run_dir, "--data", tiny_data, "--set", "models.decoder.inner_channels=32")
    assert code == 2 and "checkpoint does not fit the preset" in err and "Traceback" not in err


def test_evaluate_a_checkpoint_outside_a_run_saves_its_scores(one_epoch, tiny_data, tmp_path, cli):
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


def test_evaluate_in_a_read_only_folder_prints_the_scores_and_says_they_were_not_saved(
        one_epoch, tiny_data, tmp_path, cli, monkeypatch):
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


def test_evaluate_prints_the_scores_when_the_default_save_fails_late(one_epoch, tiny_data, cli):
    (one_epoch.path / "eval-val.json").unlink(missing_ok=True)  # an earlier test's scores
    (one_epoch.path / "eval-val.json").mkdir()  # writable folder, but the name is taken by a folder
    try:
        code, out, err = cli("evaluate", one_epoch.path, "--data", tiny_data, "--json")
        assert code == 0, err
        assert json.loads(out)["saved"] is None and "scores not saved" in err
        assert not [p for p in one_epoch.path.iterdir() if p.name.endswith(".tmp")]  # no temp file left
    finally:
        (one_epoch.path / "eval-val.json").rmdir()


def test_input_errors_of_evaluate_and_predict_are_one_line(one_epoch, tiny_data, tmp_path, cli):
    empty = tmp_path / "emptydir"
    empty.mkdir()
    code, _, err = cli("predict", one_epoch.path, "--images", empty, "--out", tmp_path / "s.csv")
    assert code == 2 and err == f"{empty}: no images found\n"
    code, _, err = cli("evaluate", one_epoch.path, "--data", tiny_data, "--split", "test")
    assert code == 2 and err.startswith(f"{tiny_data}") and len(err.splitlines()) == 1, err
    assert not (one_epoch.path / "eval-test.json").exists()


def test_absurd_lr_diverges_cleanly(tiny_data, tmp_path, cli):
    code, out, err = cli(*train_argv(tiny_data, tmp_path, DIVERGE, "--epochs", "3", "--json"))
    assert code == 1
    result = json.loads(out)
    assert result["status"] == "diverged"
    summary = json.loads((Path(result["run_dir"]) / "summary.json").read_text())
    assert summary["status"] == "diverged" and "loss became" in summary["error"]


def test_a_run_that_diverges_in_its_first_epoch_has_metrics_and_every_summary_key(tiny_data, tmp_path, cli):
    code, out, _ = cli(*train_argv(tiny_data, tmp_path, DIVERGE, "--epochs", "1", "--json"))
    assert code == 1
    run = RunDir(Path(json.loads(out)["run_dir"]))
    assert tuple(run.metrics.read_text().splitlines()[0].split(",")) == METRIC_COLUMNS
    assert run.read_metrics() == []
    summary = json.loads(run.summary_path.read_text())
    assert summary["status"] == "diverged"
    assert summary["epochs_completed"] == 0 and summary["best_epoch"] is None and summary["best"] is None
    assert summary["epoch_base"] == 0


def test_bad_preset_or_missing_data_is_one_line_exit_2(cli, tmp_path):
    code, _, err = cli("train", "--preset", "nosuch", "--runs-dir", tmp_path)
    assert code == 2 and err.strip().endswith("nosuch: preset not found; looked in " + err.split("looked in ")[1].strip())
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("train", "--preset", "cpu-demo", "--data", tmp_path / "nowhere", "--runs-dir", tmp_path)
    assert code == 2 and "nowhere: dataset directory not found" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # no run directory for a run that never started


def test_runs_list_show_and_compare_with_a_run(trained, cli):
    result, runs = trained
    name = Path(result.run_dir).name
    code, out, _ = cli("runs", "list", "--runs-dir", runs, "--json")
    assert code == 0
    row = [r for r in json.loads(out) if r["run"] == name][0]
    assert row["status"] == "completed" and row["epochs"] == 25
    assert row["hmean"] == pytest.approx(result.best["hmean"])
    code, out, _ = cli("runs", "show", name, "--runs-dir", runs, "--json")
    assert code == 0 and len(json.loads(out)["metrics"]) == 25
    code, out, _ = cli("compare", "cpu-demo", name, "--runs-dir", runs, "--json")
    assert code == 0
    rows = {r["key"]: r for r in json.loads(out)["rows"]}
    assert rows["datasets.image_size"]["values"] == {"cpu-demo": 320, name: 256}
    assert rows["run.status"]["values"][name] == "completed"
    assert rows["run.best.hmean"]["values"][name] == pytest.approx(result.best["hmean"])
    assert rows["run.best_epoch"]["values"][name] == result.best_epoch + 1  # shown from 1, stored from 0
    code, _, err = cli("runs", "show", "nosuch", "--runs-dir", runs)
    assert code == 2 and "nosuch: run not found" in err


def test_out_of_memory_ends_the_run_with_a_hint(tiny_data, tmp_path, monkeypatch):
    import torch

    from ocrtune.train import module

    def oom(self, batch, batch_idx):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(module.DBNetModule, "training_step", oom)
    result = fit(load_preset("cpu-demo", TINY), TrainOptions(data=tiny_data, runs_dir=tmp_path, progress=False, max_epochs=1))
    assert result.status == "oom" and "batch_size" in result.hint
    summary = json.loads((Path(result.run_dir) / "summary.json").read_text())
    assert summary["status"] == "oom" and "Tried to allocate" in summary["error"]


def test_unknown_logger_is_bad_input(cli, tiny_data, tmp_path):
    code, _, err = cli("train", "--preset", "cpu-demo", "--data", tiny_data, "--logger", "neptune", "--runs-dir", tmp_path)
    assert code == 2 and "--logger: unknown logger 'neptune'" in err
    assert not any(tmp_path.iterdir())


def test_missing_logger_extra_fails_before_the_run(cli, tiny_data, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("wandb",) else real(name, *a))
    code, _, err = cli("train", "--preset", "cpu-demo", "--data", tiny_data, "--logger", "wandb", "--runs-dir", tmp_path)
    assert code == 2 and "pip install 'ocrtune[wandb]'" in err
    assert not any(tmp_path.iterdir())


def test_progress_in_logs_is_one_line_per_epoch(cli, tiny_data, tmp_path):
    code, out, err = cli(*train_argv(tiny_data, tmp_path, TINY, "--epochs", "2"))
    assert code == 0, err
    lines = [ln for ln in err.splitlines() if ln.startswith("epoch ")]
    assert [ln.split()[1] for ln in lines] == ["1/2", "2/2"]
    assert all("loss" in ln and "val H" in ln for ln in lines)
    assert "completed" in out and "best epoch" in out


def test_epochs_are_shown_from_1_everywhere(resumed_to_two, cli):
    run, code, out, err = resumed_to_two.run, resumed_to_two.code, resumed_to_two.out, resumed_to_two.err
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
    code, out, _ = cli("runs", "list", "--runs-dir", resumed_to_two.runs)
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
