"""Regressions from the sweep review, one section per finding (numbered as in the review)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocrtune.errors import InputError
from ocrtune.presets.schema import Preset
from ocrtune.sweep.config import SweepConfig
from ocrtune.sweep.run.launcher import SLOT_GPU_ENV, gpu_ids
from ocrtune.sweep.run.liveness import process_start
from ocrtune.sweep.plan.space import load_space
from ocrtune.sweep.store import Store
from ocrtune.sweep.plan.strategies import Batch
from ocrtune.sweep.summary import summarize
from ocrtune.sweep.run.trial import reserved_keys
from tests.test_sweep_launcher import fake_nvidia_smi

LR = "models.optimizer.lr"
OBJ = "tests.sweep_objectives:"
TIMED = "tests.test_sweep_fix_objectives:timed"


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")


def sweep(cli, tmp_path, *args):
    code, out, err = cli("sweep", "--runs-dir", tmp_path / "runs", "--json", *args)
    return code, (json.loads(out) if out.strip().startswith("{") else None), err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- 1. data is checked before the study is created --------------------------------------------


def test_a_missing_data_folder_is_one_line_before_the_study_exists(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = sweep(cli, tmp_path, "--preset", "cpu-demo", "--data", "nowhere", "--name", "x2", "--points", "2",
                         "--stages", "1", "--epochs", "1")
    assert code == 2 and one_line(err) == f"{(tmp_path / 'nowhere').resolve()}: dataset directory not found"
    t_code, _, t_err = cli("train", "--preset", "cpu-demo", "--data", "nowhere", "--runs-dir", tmp_path / "train-runs")
    assert t_code == 2 and one_line(t_err) == one_line(err)  # the same line `train` gives
    assert not (tmp_path / "runs").exists()  # no study, so the right --data is not "different settings"
    (tmp_path / "empty").mkdir()
    code, _, err = sweep(cli, tmp_path, "--preset", "cpu-demo", "--data", "empty", "--name", "x2")
    assert code == 2 and "split 'train' not found" in one_line(err) and not (tmp_path / "runs").exists()


def test_a_coordinate_only_sweep_leaves_the_data_to_its_workers(tmp_path):
    from ocrtune.presets.load import load_preset
    from ocrtune.sweep.prepare import prepare

    preset = load_preset("cpu-demo").preset
    where = str(tmp_path / "only-on-workers")
    cfg = prepare(preset, "cpu-demo", data=where, slots=0, epochs=1, points=2, stages=1)  # --parallel 0
    assert cfg.data == where
    with pytest.raises(InputError, match="dataset directory not found"):
        prepare(preset, "cpu-demo", data=where, slots=1, epochs=1, points=2, stages=1)


def test_every_swept_split_is_checked_and_workers_check_their_data(cli, tmp_path):
    from ocrtune.data.synthetic import synthesize

    data = tmp_path / "data"
    synthesize(data, n=2, seed=0, size=128)
    space = tmp_path / "space.yaml"
    space.write_text("models.optimizer.lr: {values: [1.0e-3]}\ndatasets.val: {values: [val, holdout]}\n")
    code, _, err = sweep(cli, tmp_path, "--preset", "cpu-demo", "--data", data, "--space", space, "--name", "sv")
    assert code == 2 and "split 'holdout' not found" in one_line(err) and not (tmp_path / "runs").exists()

    base = Preset.model_validate({"models": {"scheduler": {"eta_min": 0}}}).model_dump(mode="json")
    cfg = SweepConfig(name="wk", preset="cpu-demo", base=base, data=str(data),
                      dims=[{"key": LR, "kind": "log_uniform", "leaf": "float", "low": 1e-4, "high": 1e-2}])
    store = Store.open("wk", runs_dir=tmp_path / "runs", create=True)
    store.set_config(cfg.to_dict())
    store.close()
    code, _, err = cli("sweep", "worker", "--name", "wk", "--runs-dir", tmp_path / "runs", "--data", tmp_path / "nope",
                       "--wait", "0", "--max-idle", "0")
    assert code == 2 and one_line(err) == f"{(tmp_path / 'nope').resolve()}: dataset directory not found"


# --- 2. keys the trials set themselves ---------------------------------------------------------


def test_keys_a_training_trial_overrides_are_refused_where_they_are_written(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("models.optimizer.lr: {values: [1.0e-3]}\ntrainer:\n  max_epochs: {values: [1, 4]}\n")
    code, _, err = sweep(cli, tmp_path, "--preset", "cpu-demo", "--space", space)
    assert code == 2 and one_line(err) == f"{space}:3:3 trainer.max_epochs: set for every trial by --epochs"
    space.write_text("datasets.root: {values: [a, b]}\n")
    code, _, err = sweep(cli, tmp_path, "--preset", "cpu-demo", "--space", space, "--data", tmp_path)
    assert code == 2 and one_line(err).startswith(f"{space}:1:1 datasets.root: set for every trial by --data")
    space.write_text("parameters:\n  reported:\n    hmean: {values: [1, 2]}\n")
    code, _, err = sweep(cli, tmp_path, "--preset", "cpu-demo", "--space", space)
    assert code == 2 and one_line(err).startswith(f"{space}:3:5 reported.hmean: a record of scores")
    for strategy in ("grid", "hierarchical"):
        code, _, err = sweep(cli, tmp_path, "--preset", "cpu-demo", "--strategy", strategy,
                             "--param", "trainer.max_epochs", "--range", "1,4")
        assert code == 2 and one_line(err) == "--param trainer.max_epochs: set for every trial by --epochs"
    assert not (tmp_path / "runs").exists()


def test_an_objective_may_sweep_any_schema_key(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(f"{LR}: {{values: [1.0e-3]}}\ntrainer.max_epochs: {{values: [1, 4]}}\n")
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "quadratic", "--space", space)
    assert code == 0, err
    assert sorted(t["params"]["trainer.max_epochs"] for t in s["trials"]) == [1, 4]


def test_reserved_keys_cover_what_run_training_overrides(tmp_path):
    assert set(reserved_keys(data_given=False)) == {"trainer.max_epochs", "datasets.test", "reported", "description"}
    assert reserved_keys(data_given=True)["datasets.root"].startswith("set for every trial by --data")
    p = tmp_path / "s.yaml"
    p.write_text("datasets.root: {value: /data}\n")
    assert load_space(p).keys == ("datasets.root",)  # only refused where something overrides it
    with pytest.raises(InputError) as e:
        load_space(p, reserved=reserved_keys(data_given=True))
    assert ":1:1 datasets.root: set for every trial by --data" in e.value.lines[0]


# --- 3. --gpus against the GPUs present; GPU slots never train on the CPU ----------------------


def test_gpu_indices_must_exist_without_cuda_visible_devices(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no nvidia-smi: a machine without GPUs
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "curve_only", "--range", "1e-4,1e-2", "--gpus", "0")
    assert code == 2 and one_line(err).startswith("--gpus: no GPU found") and not (tmp_path / "runs").exists()
    fake_nvidia_smi(tmp_path, monkeypatch, 0, 1)
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "curve_only", "--range", "1e-4,1e-2", "--gpus", "5")
    assert code == 2 and one_line(err) == "--gpus: GPU 5 is not present: this machine has GPUs 0, 1 (got '5')"
    assert gpu_ids("1,0") == ["1", "0"]
    assert not (tmp_path / "runs").exists()


def test_a_gpu_slot_fails_rather_than_training_on_the_cpu(tmp_path, monkeypatch):
    import torch

    from ocrtune.data.synthetic import synthesize
    from ocrtune.presets.load import load_preset
    from ocrtune.sweep.run.trial import run_training

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    data = tmp_path / "data"
    synthesize(data, n=2, seed=0, size=128)
    base = load_preset("cpu-demo", ["datasets.image_size=128", "dataloader.batch_size=2",
                                    "dataloader.num_workers=0"]).preset.model_dump(mode="json")
    spec = {"objective": None, "params": {LR: 1e-3}, "epochs": 1, "metric": "hmean", "base": base,
            "preset": "cpu-demo", "data": str(data), "name": "g"}
    spec_path = tmp_path / "trial" / "spec.json"
    spec_path.parent.mkdir()
    spec_path.write_text(json.dumps(spec))
    monkeypatch.setenv(SLOT_GPU_ENV, "0")
    with pytest.raises(InputError, match="accelerator=gpu"):
        run_training(spec, spec_path)
    assert not (tmp_path / "trial" / "runs").exists()  # failed before any run directory, no CPU run


# --- 4. a read-only status shows dead trials as lost -------------------------------------------


def _sweep_store(tmp_path: Path, name: str, objective: str | None = None) -> tuple[Store, SweepConfig]:
    base = Preset.model_validate({"models": {"scheduler": {"eta_min": 0}}}).model_dump(mode="json")
    cfg = SweepConfig(name=name, preset="cpu-demo", base=base, objective=objective, strategy="grid", epochs=2,
                      dims=[{"key": LR, "kind": "choice", "leaf": "float", "values": [1e-4, 1e-3, 1e-2]}])
    store = Store.open(name, runs_dir=tmp_path / "runs", create=True)
    store.set_config(cfg.to_dict())
    return store, cfg


def test_status_shows_trials_of_a_killed_coordinator_as_lost_without_writing(cli, tmp_path):
    store, _ = _sweep_store(tmp_path, "k")
    plan = store.add_plan(Batch(({LR: 1e-4}, {LR: 1e-3}, {LR: 1e-2}), 0, False, "3 of 3 grid trials"))
    for slot in range(3):
        store.enqueue(plan, slot)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start(gone.pid)
    gone.wait()  # a coordinator killed with -9: its pid is gone
    dead = store.claim({"pid": gone.pid, "pid_start": start, "slot": "cpu0"})
    alive = store.claim({"slot": "cpu1"})  # this process: alive
    remote = store.claim({"host": "elsewhere/1/2", "pid": 7, "slot": "gpu0"})
    store.set_attrs(remote.trial_id, heartbeat=time.time() - 600)
    store.close()

    code, out, err = cli("sweep", "status", "k", "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    s = json.loads(out)
    rows = {t["number"]: t for t in s["trials"]}
    assert rows[dead.number]["status"] == "lost" and rows[dead.number]["duration_s"] is None
    assert f"worker process {gone.pid} on this host is gone" in rows[dead.number]["error"]
    assert rows[remote.number]["status"] == "lost" and "no heartbeat from elsewhere pid 7" in rows[remote.number]["error"]
    assert rows[alive.number]["status"] == "running"
    assert s["counts"] == {"lost": 2, "running": 1}
    code, out, _ = cli("sweep", "status", "k", "--runs-dir", tmp_path / "runs")
    row = next(line for line in out.splitlines() if line.startswith(f"│ {dead.number} "))
    assert "lost" in row and row.rstrip("│ ").endswith("-")  # no growing time

    store = Store.open("k", runs_dir=tmp_path / "runs")
    try:  # status wrote nothing: the next coordinator run decides
        assert [(t.state, t.status) for t in store.trials()] == [("running", "running")] * 3
    finally:
        store.close()


# --- 5. useless hierarchical settings ----------------------------------------------------------


def test_one_point_a_stage_and_min_epochs_without_meaning_are_refused(cli, tmp_path):
    base = ("--objective", OBJ + "curve_only", "--range", "2e-5,1e-2")
    code, _, err = sweep(cli, tmp_path, *base, "--points", "1")
    assert code == 2 and one_line(err).startswith("--points: must be >= 2 for the hierarchical strategy")
    code, _, err = sweep(cli, tmp_path, *base, "--prune", "median", "--min-epochs", "0")
    assert code == 2 and one_line(err).startswith("--min-epochs: must be >= 1 (got 0)")
    code, _, err = sweep(cli, tmp_path, *base, "--min-epochs", "2")
    assert code == 2 and one_line(err) == "--min-epochs: only applies with --prune median or asha (got 2 without --prune)"
    assert not (tmp_path / "runs").exists()


# --- 6. objective epochs have a time ------------------------------------------------------------


def test_objective_trials_record_time_per_epoch(cli, tmp_path):
    code, s, err = sweep(cli, tmp_path, "--objective", TIMED, "--strategy", "grid", "--points", "2",
                         "--range", "1e-4,1e-3", "--epochs", "3", "--name", "t")
    assert code == 0, err
    for t in s["trials"]:
        assert t["epochs"] == 3
        # epochs 1 and 3 measured (0.2 s each, more on a busy machine), epoch 2 as the objective gave it
        assert (7.0 + 0.4) / 3 <= t["time_per_epoch_s"] < (7.0 + 30) / 3
    code, out, _ = cli("sweep", "status", "t", "--runs-dir", tmp_path / "runs")
    rows = [line.split("│") for line in out.splitlines() if line.startswith("│")]
    assert rows and all(float(r[7]) > 2 for r in rows)  # the s/epoch column


# --- 7. every trial scored 0 --------------------------------------------------------------------


def test_a_sweep_where_every_trial_scored_zero_says_so(cli, tmp_path):
    from ocrtune.cli.sweep import render

    store, cfg = _sweep_store(tmp_path, "z")
    plan = store.add_plan(Batch(({LR: 1e-4}, {LR: 1e-3}), 0, False, "2 of 3 grid trials"))
    for slot in range(2):
        store.enqueue(plan, slot)
        store.finish(store.claim().trial_id, "completed", 0.0, {"epochs": 2})
    summary = summarize(store, cfg)
    assert summary["best"]["trial"] is not None
    assert summary["warning"].startswith("no trial scored above 0 (2 scored)") and "check the data and --epochs" in \
        summary["warning"]
    live = render(summary, final=False)
    assert any("warning: no trial scored above 0" in str(getattr(p, "plain", "")) for p in live.renderables)
    cfg_obj = SweepConfig.from_dict({**cfg.to_dict(), "objective": OBJ + "curve_only"})
    assert summarize(store, cfg_obj)["warning"] is None  # an objective's 0 is just a value
    store.close()
    code, out, err = cli("sweep", "status", "z", "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0 and json.loads(out)["warning"] == summary["warning"]
    code, out, err = cli("sweep", "status", "z", "--runs-dir", tmp_path / "runs")
    assert "warning: no trial scored above 0" in out

    store = Store.open("z", runs_dir=tmp_path / "runs")
    store.enqueue(plan, 0, attempt=2)
    store.finish(store.claim().trial_id, "completed", 0.25, {"epochs": 2})
    assert summarize(store, cfg)["warning"] is None
    store.close()


# --- 8. stages counted from 1 for people ------------------------------------------------------


def test_stages_are_counted_from_one_in_output_but_stored_from_zero(cli, tmp_path):
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "curve_only", "--range", "2e-5,1e-2", "--points", "3",
                         "--stages", "4", "--min-improvement", "0.9", "--name", "st")
    assert code == 0, err
    assert s["reason"].startswith("stage 2 improved the best score by")  # the second stage did not improve enough
    assert [(b["index"], b["stage"]) for b in s["batches"]] == [(0, 1), (1, 2)]
    assert {(t["batch"], t["stage"]) for t in s["trials"]} == {(0, 1), (1, 2)}
    code, out, _ = cli("sweep", "status", "st", "--runs-dir", tmp_path / "runs")
    stages = [line.split("│")[2].strip() for line in out.splitlines() if line.startswith("│")]
    assert stages == ["1"] * 3 + ["2"] * 3 and "stopped" not in out and "finished: stage 2 improved" in out
    store = Store.open("st", runs_dir=tmp_path / "runs")
    try:
        assert store.finished()["reason"].startswith("stage 2 improved")  # the stored text is for people too
    finally:
        store.close()
