"""`ocrtune kfold` without training: bad input is one located line and exit 2 with nothing
written, a resume with other settings is refused naming what differs, each fold's dataset is
links plus the source annotations, and the layout helpers other tools use read a k-fold."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ocrtune.kfold.api import KFoldRequest, prepare
from ocrtune.kfold.layout import fold_runs, is_kfold_dir
from ocrtune.kfold.sources import read_sources, write_fold_data
from ocrtune.sweep.run.liveness import me
from ocrtune.train.rundir import write_json_atomic

from .conftest import DUP, ORIGINAL


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _kfold(cli, tmp_path: Path, *args: object) -> tuple[int, str, str]:
    return cli("kfold", "--runs-dir", tmp_path / "runs", *args)


@pytest.mark.parametrize("args, message", [
    (("--preset", "cpu-demo", "--folds", "1"), "--folds: must be at least 2 (got 1)"),
    (("--preset", "cpu-demo", "--folds", "14"),
     "--folds: 14 folds but only 13 labelled images (12 distinct: byte-identical copies share a fold); every fold "
     "needs one held-out image"),
    (("--preset", "no-such-preset", "--folds", "3"), "no-such-preset: preset not found"),
    (("--folds", "3"), "--preset: which preset? e.g. --preset cpu-demo (see `ocrtune presets list`)"),
    (("--preset", "cpu-demo", "--epochs", "0"), "--epochs: must be >= 1 (got 0)"),
    (("--preset", "cpu-demo", "--parallel", "0"), "--parallel: must be >= 1: a k-fold trains its folds here (got 0)"),
    (("--preset", "cpu-demo", "--name", "../up"), "--name: a k-fold name uses only letters"),
])
def test_bad_options_are_one_located_line(cli, tmp_path, kfold_data, args, message):
    code, out, err = _kfold(cli, tmp_path, "--data", kfold_data, *args)
    assert code == 2 and _one_line(err).startswith(message), err
    assert not (tmp_path / "runs").exists()


def test_a_data_dir_without_splits_is_one_located_line(cli, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _kfold(cli, tmp_path, "--preset", "cpu-demo", "--data", empty)
    assert code == 2 and _one_line(err).startswith(f"{empty}: split 'train' not found"), err
    code, _, err = _kfold(cli, tmp_path, "--preset", "cpu-demo", "--data", tmp_path / "missing")
    assert code == 2 and _one_line(err) == f"{tmp_path / 'missing'}: dataset directory not found"
    assert not (tmp_path / "runs").exists()


def test_a_val_split_without_annotations_or_a_name_in_both_splits_is_refused(cli, tmp_path, kfold_data):
    data = tmp_path / "d"
    shutil.copytree(kfold_data, data)
    val_json = data / "jsons" / "val.json"
    val = val_json.read_text()
    val_json.unlink()
    code, _, err = _kfold(cli, tmp_path, "--preset", "cpu-demo", "--data", data)
    assert code == 2 and _one_line(err) == (f"{data}: split 'val' has no annotations (jsons/val.json); k-fold needs "
                                            "labelled train and val splits"), err
    val_json.write_text(val)
    shutil.copy(data / "images" / "train" / ORIGINAL, data / "images" / "val" / ORIGINAL)
    v = json.loads(val)
    v["images"][ORIGINAL] = v["images"][DUP]
    val_json.write_text(json.dumps(v))
    code, _, err = _kfold(cli, tmp_path, "--preset", "cpu-demo", "--data", data)
    assert code == 2 and _one_line(err) == (f"{val_json} {ORIGINAL}: image '{ORIGINAL}' is in both the train and the "
                                            "val split; rename one (a fold holds one file per name)"), err


def _started(tmp_path: Path, data: Path, *sets: str, folds: int = 3) -> Path:
    """A k-fold's settings as ``kfold`` records them before it trains anything."""
    settings, _ = prepare(KFoldRequest(preset="cpu-demo", folds=folds, data=data, name="k", sets=sets,
                                       runs_dir=tmp_path / "runs"))
    root = tmp_path / "runs" / "kfold" / "k"
    write_json_atomic(root / "kfold.json", settings.to_json())
    return root


def test_a_resume_with_other_settings_is_refused_naming_each_difference(cli, tmp_path, kfold_data):
    root = _started(tmp_path, kfold_data, "datasets.image_size=64")
    before = (root / "kfold.json").read_bytes()
    code, _, err = _kfold(cli, tmp_path, "--preset", "cpu-demo", "--data", kfold_data, "--name", "k", "--folds", "2",
                          "--seed", "4", "--epochs", "3", "--set", "datasets.image_size=96")
    line = _one_line(err)
    assert code == 2 and line.startswith(f"{root / 'kfold.json'}: k-fold k was started with other settings: "), err
    for part in ("--folds: stored 3, now 2", "--seed: stored 0, now 4",
                 "datasets.image_size (--preset/--set): stored 64, now 96",
                 "trainer.max_epochs (--epochs/--preset/--set): stored 16, now 3"):
        assert part in line, line
    assert (root / "kfold.json").read_bytes() == before and not (root / "folds").exists()


def test_a_kfold_stored_before_a_schema_key_existed_resumes_unchanged(tmp_path, kfold_data):
    from ocrtune.kfold.api import _settings_for_resume
    from ocrtune.kfold.types import KFoldSettings

    root = _started(tmp_path, kfold_data)
    doc = json.loads((root / "kfold.json").read_text())
    del doc["base"]["trainer"]["ema"]  # as a version before trainer.ema wrote it
    write_json_atomic(root / "kfold.json", doc)
    settings, _ = prepare(KFoldRequest(preset="cpu-demo", folds=3, data=kfold_data, name="k",
                                       runs_dir=tmp_path / "runs"))
    assert settings.differences(KFoldSettings.read(root / "kfold.json")) == []
    assert _settings_for_resume(root, settings).base == doc["base"]  # resumes with what it stored


def test_a_resume_on_changed_images_names_them(cli, tmp_path, kfold_data):
    data = tmp_path / "d"
    shutil.copytree(kfold_data, data)
    root = _started(tmp_path, data)
    img = data / "images" / "train" / "receipt_00003.jpg"
    img.write_bytes(img.read_bytes() + b"\0")
    val = json.loads((data / "jsons" / "val.json").read_text())
    del val["images"][DUP]
    (data / "jsons" / "val.json").write_text(json.dumps(val))
    code, _, err = _kfold(cli, tmp_path, "--preset", "cpu-demo", "--data", data, "--name", "k", "--folds", "3")
    assert code == 2 and ("--data images (1 image changed (receipt_00003.jpg); 1 image removed "
                          f"({DUP})): stored 13, now 12") in _one_line(err), err
    assert not (root / "folds").exists()


def test_a_kfold_running_elsewhere_is_not_run_twice(cli, tmp_path, kfold_data):
    root = _started(tmp_path, kfold_data)
    (root / "owner.json").write_text(json.dumps(me()))  # this test's process: alive
    code, _, err = _kfold(cli, tmp_path, "--preset", "cpu-demo", "--data", kfold_data, "--name", "k", "--folds", "3")
    assert code == 2 and f"k-fold k is running already (pid {os.getpid()}" in _one_line(err), err
    assert not (root / "folds").exists()


def test_status_of_a_kfold_not_trained_yet_lists_pending_folds_and_writes_nothing(cli, tmp_path, kfold_data):
    root = _started(tmp_path, kfold_data)
    files = sorted(p for p in root.rglob("*"))
    code, out, err = cli("kfold", "status", "k", "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["state"] == "incomplete" and [r["status"] for r in s["rows"]] == ["pending"] * 3
    assert sum(r["images"] for r in s["rows"]) == 13 and s["pooled"] is None
    assert sorted(p for p in root.rglob("*")) == files
    code, out, _ = cli("kfold", "status", str(root))
    assert code == 0 and "pooled: once every fold completed (0 of 3 so far)" in out


def test_fold_data_links_each_image_to_its_own_split_folder(tmp_path, kfold_data):
    sources = read_sources(kfold_data, ("train", "val"))
    assert len(sources.images) == 13 and not sources.problems
    settings, _ = prepare(KFoldRequest(preset="cpu-demo", folds=3, data=kfold_data))
    assert settings.assignment[DUP] == settings.assignment[ORIGINAL]
    src = {split: json.loads((kfold_data / "jsons" / f"{split}.json").read_text())["images"] for split in ("train", "val")}
    for k in (1, 2, 3):
        data = write_fold_data(tmp_path / str(k), sources, settings.assignment, k)
        val = json.loads((data / "jsons" / "val.json").read_text())["images"]
        train = json.loads((data / "jsons" / "train.json").read_text())["images"]
        assert set(val) == {n for n, f in settings.assignment.items() if f == k}
        assert set(train) | set(val) == set(settings.assignment) and not set(train) & set(val)
        for split, anns in (("val", val), ("train", train)):
            for name, ann in anns.items():
                link = data / "images" / split / name
                origin = "val" if name in src["val"] else "train"
                assert link.is_symlink() and Path(os.readlink(link)) == (kfold_data / "images" / origin / name).resolve()
                assert ann == src[origin][name]  # the annotation exactly as the source has it
    # a dataset cut short (no JSONs yet) is rebuilt; a complete one is kept as it is
    data = tmp_path / "1" / "data"
    (data / "jsons" / "val.json").unlink()
    stray = data / "images" / "train" / "stray.jpg"
    stray.write_bytes(b"x")
    write_fold_data(tmp_path / "1", sources, settings.assignment, 1)
    assert (data / "jsons" / "val.json").is_file() and not stray.exists()


def test_layout_lists_only_completed_folds_in_fold_order(tmp_path):
    root = tmp_path / "kf"
    assert not is_kfold_dir(root) and fold_runs(root) == []
    write_json_atomic(root / "kfold.json", {"folds": 3})
    assert is_kfold_dir(root)
    for k, status in ((1, "completed"), (2, "failed"), (3, "completed")):
        run = root / "folds" / str(k) / "runs" / f"2026-01-01-k-f{k}"
        run.mkdir(parents=True)
        write_json_atomic(root / "folds" / str(k) / "result.json",
                          {"status": status, "run_dir": f"/elsewhere/2026-01-01-k-f{k}"})  # moved since
    assert fold_runs(root) == [root / "folds" / "1" / "runs" / "2026-01-01-k-f1",
                               root / "folds" / "3" / "runs" / "2026-01-01-k-f3"]
    shutil.rmtree(root / "folds" / "1" / "runs")
    assert fold_runs(root) == [root / "folds" / "3" / "runs" / "2026-01-01-k-f3"]
    assert not is_kfold_dir(tmp_path)
