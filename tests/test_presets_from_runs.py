"""`presets new NAME --from RUN_DIR|SWEEP:TRIAL`: a preset from what a run or a sweep trial
trained with, extending the preset it started from, without its per-run epochs and data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ocrtune.presets.load import load_preset
from ocrtune.train.fit import preset_yaml
from ocrtune.train.rundir import RunDir, new_run_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-trial objective sweep ``s`` (spec.json and result.json, no run dirs)."""
    from ocrtune.cli.app import app

    runs = tmp_path_factory.mktemp("sweep") / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)  # the objective is imported from the repository root
        r = CliRunner().invoke(app, ["sweep", "--runs-dir", str(runs), "--objective", "tests.sweep.curves:peak",
                                     "--range", "1e-4,1e-2", "--points", "2", "--stages", "1", "--epochs", "1",
                                     "--name", "s"])
    for n in ("0000", "0001"):
        assert (runs / "sweeps" / "s" / "trials" / n / "result.json").is_file(), r.stdout + r.stderr
    return runs


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, so ./presets and ./runs are this test's own."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def spec_of(runs: Path, trial: int, sweep: str = "s") -> dict:
    return json.loads((runs / "sweeps" / sweep / "trials" / f"{trial:04d}" / "spec.json").read_text())


def result_of(runs: Path, trial: int) -> dict:
    return json.loads((runs / "sweeps" / "s" / "trials" / f"{trial:04d}" / "result.json").read_text())


def fake_run(runs: Path, preset: str, sets: list[str], name: str = "b", best: dict | None = None,
             recorded: str | None = None) -> RunDir:
    """A run directory as ``fit`` leaves it: config.yaml (the resolved preset, per-run epochs and
    data included) and summary.json naming the preset as ``NAME (PATH)``."""
    loaded = load_preset(preset, sets)
    run = RunDir(new_run_dir(runs, name))
    note = recorded or f"{loaded.name} ({loaded.path})"
    run.config.write_text(preset_yaml(loaded.preset, f"resolved from {note}"), encoding="utf-8")
    summary = {"status": "completed", "preset": note, "epochs_completed": 3, "best_epoch": 2}
    if best is not None:
        summary["best"] = best
    run.write_summary(summary)
    return run


# --- from a sweep trial -------------------------------------------------------------------


def test_from_trial_extends_its_preset_with_the_trial_values(cli, here, sweep_runs):
    spec, result = spec_of(sweep_runs, 1), result_of(sweep_runs, 1)
    assert spec["preset"] == "cpu-demo" and spec["epochs"] == 1
    code, _, err = cli("presets", "new", "best", "--from", "s:1", "--runs-dir", sweep_runs)
    assert code == 0, err
    path = here / "presets" / "best.yaml"
    text = path.read_text()
    p = load_preset(path).preset
    demo = load_preset("cpu-demo").preset
    lr = spec["params"]["models.optimizer.lr"]
    assert p.models.optimizer.lr == lr
    assert p.models.scheduler.eta_min == spec["derived"]["models.scheduler.eta_min"]
    # the sweep's --epochs is not copied: the preset keeps cpu-demo's own
    assert p.trainer.max_epochs == demo.trainer.max_epochs == 16
    assert p.datasets.root is None and p.reported is None
    assert "extends: cpu-demo" in text
    # only the changed keys, each commented
    assert "sweep s trial 1 (swept); cpu-demo has 0.002" in text
    assert "(coupled to models.optimizer.lr)" in text
    assert "max_epochs" not in text.split("extends:")[1]
    # header: the sweep, the trial, its values and score
    head = text.split("extends:")[0]
    assert "sweep s trial 1" in head and f"models.optimizer.lr={lr!r}" in head
    assert f"score {result['score']:.6g}" in head and "Not copied: trainer.max_epochs=1" in head
    # the output says what was dropped
    assert "not copied: trainer.max_epochs=1" in err and "--keep-epochs" in err


def test_from_trial_keep_epochs(cli, here, sweep_runs):
    code, _, err = cli("presets", "new", "e1", "--from", "s:0", "--runs-dir", sweep_runs, "--keep-epochs")
    assert code == 0, err
    p = load_preset(here / "presets" / "e1.yaml").preset
    assert p.trainer.max_epochs == 1
    assert p.models.optimizer.lr == spec_of(sweep_runs, 0)["params"]["models.optimizer.lr"]
    assert "not copied" not in err


def test_from_trial_drops_the_sweeps_data_unless_kept(cli, here, sweep_runs, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(sweep_runs / "sweeps" / "s", runs / "sweeps" / "d")
    spec_path = runs / "sweeps" / "d" / "trials" / "0001" / "spec.json"
    spec = json.loads(spec_path.read_text())
    spec["data"] = "/data/sroie"
    spec_path.write_text(json.dumps(spec))
    code, _, err = cli("presets", "new", "nodata", "--from", "d:1", "--runs-dir", runs)
    assert code == 0, err
    assert load_preset(here / "presets" / "nodata.yaml").preset.datasets.root is None
    assert "not copied: datasets.root=/data/sroie" in err
    code, _, err = cli("presets", "new", "withdata", "--from", "d:1", "--runs-dir", runs, "--keep-data")
    assert code == 0, err
    p = load_preset(here / "presets" / "withdata.yaml").preset
    assert p.datasets.root == "/data/sroie" and p.trainer.max_epochs == 16


def test_from_trial_refuses_to_overwrite_without_force(cli, here, sweep_runs):
    assert cli("presets", "new", "x", "--from", "s:0", "--runs-dir", sweep_runs)[0] == 0
    path = here / "presets" / "x.yaml"
    before = path.read_text()
    code, _, err = cli("presets", "new", "x", "--from", "s:1", "--runs-dir", sweep_runs)
    assert code == 2 and "already exists" in err and "--force" in err
    assert path.read_text() == before
    code, _, err = cli("presets", "new", "x", "--from", "s:1", "--runs-dir", sweep_runs, "--force")
    assert code == 0, err
    lr1 = spec_of(sweep_runs, 1)["params"]["models.optimizer.lr"]
    assert load_preset(path).preset.models.optimizer.lr == lr1
    assert sorted(p.name for p in (here / "presets").iterdir()) == ["x.yaml"]


def test_from_trial_refuses_a_name_that_shadows_a_preset(cli, here, sweep_runs):
    code, _, err = cli("presets", "new", "cpu-demo", "--from", "s:1", "--runs-dir", sweep_runs)
    assert code == 2 and "already exists" in err and not (here / "presets").exists()


def test_missing_sweep_trial_or_run_is_one_line(cli, here, sweep_runs):
    for ref, words in (("nope:1", "no sweep named 'nope'"), ("s:9", "has no trial 9"),
                       ("2099-01-01-nothing", "not a preset, a run directory or SWEEP:TRIAL")):
        code, _, err = cli("presets", "new", "y", "--from", ref, "--runs-dir", sweep_runs)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and words in lines[0] and "Traceback" not in err, err
    (here / "empty").mkdir()
    code, _, err = cli("presets", "new", "y", "--from", "empty")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no config.yaml" in err
    assert not (here / "presets").exists()


def test_set_and_validation_leave_nothing_behind(cli, here, sweep_runs, tmp_path):
    code, _, err = cli("presets", "new", "bad", "--from", "s:1", "--runs-dir", sweep_runs,
                       "--set", "models.optimizer.lrr=1")
    assert code == 2 and "--set models.optimizer.lrr" in err
    code, _, err = cli("presets", "new", "good", "--from", "s:1", "--runs-dir", sweep_runs,
                       "--set", "models.optimizer.weight_decay=0.001")
    assert code == 0, err
    text = (here / "presets" / "good.yaml").read_text()
    assert "weight_decay: 0.001" in text and "--set; was 0.0001" in text
    assert load_preset(here / "presets" / "good.yaml").preset.models.optimizer.weight_decay == 0.001
    # a trial whose values do not make a valid preset: refused, located, nothing written
    runs = tmp_path / "runs"
    shutil.copytree(sweep_runs / "sweeps" / "s", runs / "sweeps" / "v")
    spec_path = runs / "sweeps" / "v" / "trials" / "0000" / "spec.json"
    spec = json.loads(spec_path.read_text())
    spec["params"] = {"models.optimizer.lr": -1.0}
    spec_path.write_text(json.dumps(spec))
    code, _, err = cli("presets", "new", "neg", "--from", "v:0", "--runs-dir", runs)
    assert code == 2 and "models.optimizer.lr" in err and "Traceback" not in err
    assert sorted(p.name for p in (here / "presets").iterdir()) == ["good.yaml"]


def test_keep_flags_need_a_run_or_trial(cli, here):
    code, _, err = cli("presets", "new", "z", "--from", "baseline", "--keep-epochs")
    assert code == 2 and "--keep-epochs" in err and not (here / "presets").exists()


# --- from a run directory -----------------------------------------------------------------


BEST = {"hmean": 0.9661, "precision": 0.97, "recall": 0.9601, "iou_hmean": 0.95}


def test_from_run_extends_its_preset_with_the_changed_keys(cli, here):
    run = fake_run(here / "runs", "baseline",
                   ["models.optimizer.lr=0.0006", "trainer.max_epochs=3", "datasets.root=/data/sroie"], best=BEST)
    code, _, err = cli("presets", "new", "fromrun", "--from", str(run.path))
    assert code == 0, err
    path = here / "presets" / "fromrun.yaml"
    text = path.read_text()
    p = load_preset(path).preset
    assert p.models.optimizer.lr == 0.0006
    assert p.trainer.max_epochs == 22 and p.datasets.root is None  # baseline's own, not the run's
    assert p.reported is None  # baseline's reported scores were not measured on this preset
    assert "extends: baseline" in text
    body = text.split("extends:")[1]
    assert "lr: 0.0006  # as run" in body and "baseline has 0.0004" in body
    assert "weight_decay" not in body and "max_epochs" not in body and "root" not in body
    head = text.split("extends:")[0]
    assert f"run {run.path.name}" in head and "H-mean 96.61" in head and "at epoch 3" in head
    assert "not copied: trainer.max_epochs=3" in err and "not copied: datasets.root=/data/sroie" in err


def test_from_run_by_name_keeps_what_it_is_asked_to(cli, here):
    run = fake_run(here / "runs", "baseline", ["trainer.max_epochs=3", "datasets.root=/data/sroie"])
    code, _, err = cli("presets", "new", "kept", "--from", run.path.name, "--keep-epochs", "--keep-data")
    assert code == 0, err
    p = load_preset(here / "presets" / "kept.yaml").preset
    assert p.trainer.max_epochs == 3 and p.datasets.root == "/data/sroie"
    assert "not copied" not in err


def test_from_run_of_a_lost_preset_stands_alone(cli, here):
    run = fake_run(here / "runs", "cpu-demo", ["models.optimizer.lr=0.004", "trainer.max_epochs=2",
                                               "datasets.root=/data/x"], recorded="gone (/nowhere/gone.yaml)")
    code, _, err = cli("presets", "new", "alone", "--from", str(run.path))
    assert code == 0, err
    path = here / "presets" / "alone.yaml"
    text = path.read_text()
    assert "extends:" not in text and "Its preset gone is not found" in text
    p = load_preset(path).preset
    trained = load_preset(run.config).preset
    assert p.models.optimizer.lr == 0.004 and p.models.encoder.model_name == "resnet10t"
    assert p.datasets.image_size == trained.datasets.image_size == 320
    assert p.trainer.max_epochs == 22 and p.datasets.root is None  # the schema's defaults stand in
    assert "standalone" in err


def test_from_a_trial_run_directory_reads_the_trial(cli, here, sweep_runs, tmp_path):
    """A run in trials/NNNN/runs/ is that trial: its spec says what the sweep set per trial."""
    runs = tmp_path / "runs"
    shutil.copytree(sweep_runs / "sweeps" / "s", runs / "sweeps" / "t")
    trial = runs / "sweeps" / "t" / "trials" / "0001"
    lr = spec_of(runs, 1, "t")["params"]["models.optimizer.lr"]
    run = fake_run(trial / "runs", "cpu-demo", [f"models.optimizer.lr={lr}", "trainer.max_epochs=1"],
                   name="t-t0001", recorded=f"t-t0001 ({trial / 'spec.json'})")
    code, _, err = cli("presets", "new", "tr", "--from", str(run.path))
    assert code == 0, err
    text = (here / "presets" / "tr.yaml").read_text()
    assert "extends: cpu-demo" in text and "sweep t trial 1" in text and "Its run directory" in text
    p = load_preset(here / "presets" / "tr.yaml").preset
    assert p.models.optimizer.lr == lr and p.trainer.max_epochs == 16


# --- from a trial that has no folder: the study itself --------------------------------------


def test_from_an_imported_sweeps_trial_reads_the_study(cli, here):
    """`sweep import` makes no trial folders: SWEEP:TRIAL reads the trial from the study."""
    csv = here / "w.csv"
    csv.write_text("Name,State,models.optimizer.lr,models.optimizer.weight_decay,val/hmean\n"
                   "a,finished,0.0001,0.0001,0.7\nb,finished,0.001,0.0003,0.8\nc,crashed,0.01,0.0001,\n")
    code, _, err = cli("sweep", "import", csv, "--name", "wb", "--preset", "cpu-demo", "--metric", "val/hmean")
    assert code == 0, err
    assert not (here / "runs" / "sweeps" / "wb" / "trials").exists()
    code, _, err = cli("presets", "new", "imp", "--from", "wb:1")
    assert code == 0, err
    path = here / "presets" / "imp.yaml"
    text = path.read_text()
    p = load_preset(path).preset
    assert p.models.optimizer.lr == 0.001 and p.models.optimizer.weight_decay == 0.0003
    assert p.trainer.max_epochs == 16 and p.reported is None
    assert "extends: cpu-demo" in text and "sweep wb trial 1 (swept); cpu-demo has 0.002" in text
    head = text.split("extends:")[0]
    assert "imported from " in head and "w.csv, line 3, run 'b'" in head and "score 0.8 (hmean, as imported)" in head
    code, _, err = cli("presets", "new", "imp2", "--from", "wb:2")  # the crashed run: still its values
    assert code == 0, err
    assert "Result: failed (state crashed in the file), no score." in (here / "presets" / "imp2.yaml").read_text()
    code, _, err = cli("presets", "new", "imp3", "--from", "wb:7")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "sweep 'wb' has no trial 7 (it has trials 0..2)" in lines[0], err


@pytest.fixture(scope="module")
def replicate_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An objective sweep ``r`` with one replicate: trials 0, 1 explore, trial 2 re-runs the
    best value with cpu-demo's seed + 1."""
    from ocrtune.cli.app import app

    runs = tmp_path_factory.mktemp("replicates") / "runs"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(REPO)
        r = CliRunner().invoke(app, ["sweep", "--runs-dir", str(runs), "--objective", "tests.sweep.curves:peak",
                                     "--range", "1e-4,1e-2", "--points", "2", "--stages", "1", "--epochs", "1",
                                     "--replicates", "1", "--replicate-top", "1", "--name", "r"])
    assert spec_of(runs, 2, "r")["params"].get("seed") == SEED + 1, r.stdout + r.stderr
    return runs


SEED = load_preset("cpu-demo").preset.seed


def _check_replicate_preset(text: str) -> None:
    body = text.split("extends:")[1]
    assert f"seed: {SEED + 1}  # sweep r trial 2 (replicate seed); cpu-demo has {SEED}" in body
    assert "lr: 0.0001  # sweep r trial 2 (swept)" in body
    assert "eta_min: 5e-08  # sweep r trial 2 (coupled to models.optimizer.lr);" in body
    assert "seed (swept)" not in text and "coupled to models.optimizer.lr, seed" not in text


def test_a_replicates_seed_is_not_called_swept(cli, here, replicate_runs):
    code, _, err = cli("presets", "new", "rep", "--from", "r:2", "--runs-dir", replicate_runs)
    assert code == 0, err
    text = (here / "presets" / "rep.yaml").read_text()
    _check_replicate_preset(text)
    assert load_preset(here / "presets" / "rep.yaml").preset.seed == SEED + 1


def test_a_trial_whose_folder_is_gone_is_read_from_the_study(cli, here, replicate_runs, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(replicate_runs / "sweeps" / "r", runs / "sweeps" / "r")
    spec = spec_of(runs, 2, "r")
    shutil.rmtree(runs / "sweeps" / "r" / "trials" / "0002")
    code, _, err = cli("presets", "new", "gone", "--from", "r:2", "--runs-dir", runs)
    assert code == 0, err
    text = (here / "presets" / "gone.yaml").read_text()
    _check_replicate_preset(text)
    p = load_preset(here / "presets" / "gone.yaml").preset
    assert p.models.optimizer.lr == spec["params"]["models.optimizer.lr"]
    assert p.models.scheduler.eta_min == spec["derived"]["models.scheduler.eta_min"]
    assert p.trainer.max_epochs == 16
    assert "the trial has no folder" in text and "Not copied: trainer.max_epochs=1" in text


def test_from_run_with_set_says_the_overrides_came_after_its_scores(cli, here):
    run = fake_run(here / "runs", "baseline", ["models.optimizer.lr=0.0006"], best=BEST)
    code, _, err = cli("presets", "new", "tweaked", "--from", str(run.path), "--set", "seed=5")
    assert code == 0, err
    head = (here / "presets" / "tweaked.yaml").read_text().split("extends:")[0]
    assert "H-mean 96.61" in head  # the run's scores, still told as the run's
    assert "# Then these overrides: seed=5 (any scores above were measured without them).\n" in head
    code, _, err = cli("presets", "new", "plain", "--from", str(run.path))
    assert code == 0, err
    assert "overrides" not in (here / "presets" / "plain.yaml").read_text()
