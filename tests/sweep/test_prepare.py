"""Checks made before a sweep's study exists (``sweep/prepare.py``): option parsers, every swept
key against the preset, keys the trials set themselves, hierarchical settings that mean nothing,
and the data (a worker checks its own)."""

from __future__ import annotations

import pytest

from ocrtune.errors import InputError
from ocrtune.presets.load import load_preset
from ocrtune.presets.schema import Preset
from ocrtune.sweep.plan.space import load_space
from ocrtune.sweep.prepare import SweepRequest, parse_min_improvement, parse_range, prepare
from ocrtune.sweep.run.trial import reserved_keys
from ocrtune.sweep.store import Store
from ocrtune.sweep.types import Coupling, SweepConfig
from tests.sweep.helpers import LR, OBJ, calls, one_line, sweep


@pytest.fixture(autouse=True)
def _fast(monkeypatch, tmp_path):
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")
    monkeypatch.setenv("OCRTUNE_TEST_CALLS", str(tmp_path / "calls.jsonl"))


# --- options ----------------------------------------------------------------------------------


def test_option_parsers():
    assert parse_range("1e-5,1e-2") == (1e-5, 1e-2) and parse_range("0.1..0.5") == (0.1, 0.5)
    assert parse_min_improvement("1%") == (0.01, None)
    assert parse_min_improvement("0.02") == (0.02, None)
    assert parse_min_improvement("0.005abs") == (0.0, 0.005)
    for bad in ("a,b", "1e-5"):
        with pytest.raises(InputError, match="--range"):
            parse_range(bad)
    with pytest.raises(InputError, match="--min-improvement"):
        parse_min_improvement("lots")


def test_every_key_is_validated_before_any_trial(cli, tmp_path):
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "logged", "--param", "models.optimizer.lrr", "--range", "1e-4,1e-2")
    assert code == 2 and "unknown key 'lrr' in models.optimizer (did you mean 'lr'?)" in err
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "logged", "--range", "1e-4,1e-2", "--name", "My Sweep/x")
    assert code == 2 and "--name: a sweep name uses only letters, digits, '.', '_' and '-'" in err
    space = tmp_path / "space.yaml"
    space.write_text("models.optimizer.lr: {distribution: log_uniform, min: 1e-4, max: 1e-2}\n"
                     "models.head.thresh: {values: [0.2, 0.3]}\n")
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "logged", "--space", space, "--strategy", "grid")
    assert code == 2 and f"{space}:2:1 models.head.thresh" in err and "models.head.postprocess.thresh" in err
    assert not (tmp_path / "runs").exists() and calls(tmp_path) == []
    # the default range against the preset's eta_min: a cosine eta_min that is not swept follows
    # the swept lr (the preset's ratio), so every lr of the range is valid ...
    preset = load_preset("cpu-demo", ["models.scheduler.eta_min=1e-5"]).preset
    cfg = prepare(SweepRequest(objective=OBJ + "logged"), preset)
    assert cfg.couplings == (Coupling("models.scheduler.eta_min", LR, pytest.approx(1e-5 / 2e-3)),)
    # ... while an eta_min the space fixes is checked against every lr of the range
    fixed = tmp_path / "fixed.yaml"
    fixed.write_text("models.optimizer.lr: {distribution: log_uniform, min: 1.0e-5, max: 1.0e-2}\n"
                     "models.scheduler.eta_min: {value: 1.0e-5}\n")
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "logged", "--space", fixed)
    assert code == 2 and f"{fixed}:2:35 models.scheduler.eta_min: value 1e-05 is rejected by the preset with " \
                         "models.optimizer.lr=1e-05" in one_line(err)
    code, _, err = sweep(cli, tmp_path, "--objective", "tests.sweep_objectives:nope", "--range", "1e-4,1e-2")
    assert code == 2 and "has no callable 'nope'" in err
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "logged", "--range", "1e-4,1e-2", "--metric", "accuracy")
    assert code == 2 and "--metric: must be one of hmean, val_loss" in err
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "logged", "--range", "1e-4,1e-2", "--prune", "median",
                         "--epochs", "2", "--min-epochs", "3")
    assert code == 2 and "--min-epochs: must be <= --epochs 2" in err
    assert not (tmp_path / "runs").exists() and calls(tmp_path) == []
    space.write_text("parameters:\n  models.optimizer.lr: {values: [1.0e-4, 1.0e-3]}\n"
                     "metric: {name: val_hmean, goal: minimize}\n")
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "logged", "--space", space)
    assert code == 2 and f"{space} metric.goal: is minimize, but the sweep's metric hmean is maximized" in err
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "logged", "--space", space, "--metric", "val_loss")
    assert code == 0, err  # the goal agrees with --metric val_loss
    calls_before = len(calls(tmp_path))
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "logged", "--range", "1e-4,1e-2", "--trial-timeout", "0")
    assert code == 2 and "--trial-timeout: must be > 0" in err
    assert len(calls(tmp_path)) == calls_before


def test_one_point_a_stage_and_min_epochs_without_meaning_are_refused(cli, tmp_path):
    base = ("--objective", OBJ + "curve_only", "--range", "2e-5,1e-2")
    code, _, err = sweep(cli, tmp_path, *base, "--points", "1")
    assert code == 2 and one_line(err).startswith("--points: must be >= 2 for the hierarchical strategy")
    code, _, err = sweep(cli, tmp_path, *base, "--prune", "median", "--min-epochs", "0")
    assert code == 2 and one_line(err).startswith("--min-epochs: must be >= 1 (got 0)")
    code, _, err = sweep(cli, tmp_path, *base, "--min-epochs", "2")
    assert code == 2 and one_line(err) == "--min-epochs: only applies with --prune median or asha (got 2 without --prune)"
    assert not (tmp_path / "runs").exists()


# --- keys the trials set themselves -----------------------------------------------------------


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


# --- the data is checked before the study is created -------------------------------------------


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
    preset = load_preset("cpu-demo").preset
    where = str(tmp_path / "only-on-workers")
    request = SweepRequest(preset="cpu-demo", data=where, epochs=1, points=2, stages=1)
    cfg = prepare(request, preset, slots=0)  # --parallel 0
    assert cfg.data == where
    with pytest.raises(InputError, match="dataset directory not found"):
        prepare(request, preset, slots=1)


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
                      dims=({"key": LR, "kind": "log_uniform", "leaf": "float", "low": 1e-4, "high": 1e-2},))
    store = Store.open("wk", runs_dir=tmp_path / "runs", create=True)
    store.set_config(cfg)
    store.close()
    code, _, err = cli("sweep", "worker", "--name", "wk", "--runs-dir", tmp_path / "runs", "--data", tmp_path / "nope",
                       "--wait", "0", "--max-idle", "0")
    assert code == 2 and one_line(err) == f"{(tmp_path / 'nope').resolve()}: dataset directory not found"
