"""`runs list --sweep NAME`: a sweep's trial runs with trial number, values, status and scores.

Trial folders are made by hand, with the files training and the sweep leave there (spec.json,
result.json, and a run directory's config.yaml, summary.json and metrics.csv), since training
on the CPU is slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocrtune.presets.load import load_preset
from ocrtune.sweep.types import Status, TrialResult, TrialSpec
from ocrtune.train.fit import preset_yaml
from ocrtune.train.rundir import RunDir, list_trial_runs, new_run_dir, write_json_atomic

LR, ETA = "models.optimizer.lr", "models.scheduler.eta_min"


def make_trial(sweep_dir: Path, number: int, lr: float, status: Status | None, hmean: float | None,
               run: bool = True, folder: str | None = None) -> Path:
    """trials/NNNN with spec.json, result.json (unless ``status`` is None) and a run directory."""
    trial = sweep_dir / "trials" / (folder or f"{number:04d}")
    base = load_preset("cpu-demo").preset
    spec = TrialSpec(name=f"{sweep_dir.name}-t{number:04d}", params={LR: lr}, epochs=2, metric="hmean",
                     base=base.model_dump(mode="json"), preset="cpu-demo", derived={ETA: lr / 100})
    write_json_atomic(trial / "spec.json", spec.to_json())
    run_dir = None
    if run:
        rd = RunDir(new_run_dir(trial / "runs", spec.name))
        trained = load_preset("cpu-demo", [f"{LR}={lr}", f"{ETA}={lr / 100}", "trainer.max_epochs=2"]).preset
        rd.config.write_text(preset_yaml(trained, f"resolved from {spec.name} ({trial / 'spec.json'})"))
        rows = [{"epoch": e, "train_loss": 1.0 - 0.1 * e, "val_hmean": (hmean or 0.0) * (0.5 + 0.5 * e),
                 "val_precision": 0.8, "val_recall": 0.7, "lr": lr, "epoch_time_s": 1.5} for e in range(2)]
        rd.write_metrics(rows)
        best = {"hmean": hmean, "precision": 0.8, "recall": 0.7, "iou_hmean": 0.6} if hmean is not None else None
        rd.write_summary({"status": "completed" if status != Status.DIVERGED else "diverged",
                          "preset": f"{spec.name} ({trial / 'spec.json'})", "epochs_completed": 2,
                          "best_epoch": 1 if hmean is not None else None, "best": best, "wall_time_s": 3.0})
        run_dir = str(rd.path.resolve())
    if status is not None:
        score = hmean if status.is_scored else None
        write_json_atomic(trial / "result.json", TrialResult(status, score, run_dir).to_json())
    return trial


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    runs = tmp_path / "runs"
    sweep = runs / "sweeps" / "lr"
    make_trial(sweep, 0, 1e-4, Status.COMPLETED, 0.41)
    make_trial(sweep, 1, 1e-2, Status.DIVERGED, None)
    make_trial(sweep, 2, 1e-3, Status.PRUNED, 0.52)
    make_trial(sweep, 3, 3e-3, None, None, run=False)  # queued: no run yet
    make_trial(sweep, 4, 5e-4, Status.COMPLETED, 0.9, folder="0004.replaced-20240101-000000-1")  # not this sweep's
    # a normal run beside the sweeps
    plain = RunDir(new_run_dir(runs, "plain"))
    plain.config.write_text(preset_yaml(load_preset("cpu-demo").preset, "resolved from cpu-demo"))
    plain.write_summary({"status": "completed", "epochs_completed": 1})
    return runs


def test_list_trial_runs_helper(runs):
    found = list_trial_runs(runs / "sweeps" / "lr")
    assert [n for n, _ in found] == [0, 1, 2]
    assert all(r.path.parent.parent.name == f"{n:04d}" for n, r in found)
    assert list_trial_runs(runs / "sweeps" / "nope") == []


def test_runs_list_sweep_table(cli, runs):
    code, out, err = cli("runs", "list", "--sweep", "lr", "--runs-dir", runs)
    assert code == 0, err
    assert "sweep lr: 3 trial run(s)" in out
    lines = {x.split("│")[1].strip(): x for x in out.splitlines() if x.startswith("│")}
    assert set(lines) == {"0", "1", "2"}
    assert "lr=0.0001" in lines["0"] and "completed" in lines["0"] and "0.41" in lines["0"] and "lr-t0000" in lines["0"]
    assert "lr=0.01" in lines["1"] and "diverged" in lines["1"]
    assert "pruned" in lines["2"] and "0.52" in lines["2"]  # the trial's status, not the run's
    assert "plain" not in out


def test_runs_list_sweep_json(cli, runs):
    code, out, err = cli("runs", "list", "--sweep", "lr", "--runs-dir", runs, "--json")
    assert code == 0, err
    recs = json.loads(out)
    assert [r["trial"] for r in recs] == [0, 1, 2]
    first = recs[0]
    assert first["params"] == {LR: 1e-4} and first["derived"] == {ETA: pytest.approx(1e-6)}
    assert first["status"] == "completed" and first["score"] == 0.41
    assert first["hmean"] == 0.41 and first["precision"] == 0.8 and first["epochs"] == 2 and first["best_epoch"] == 1
    assert Path(first["run_dir"]).parent.parent.name == "0000"
    assert recs[2]["status"] == "pruned" and recs[2]["run_status"] == "completed"
    assert recs[1]["score"] is None and recs[1]["hmean"] is None


def test_plain_runs_list_is_unchanged(cli, runs):
    code, out, _ = cli("runs", "list", "--runs-dir", runs, "--json")
    assert code == 0 and [r["run"] for r in json.loads(out)] == [p.name for p in runs.iterdir() if p.name.endswith("plain")]


def test_runs_list_missing_sweep_is_one_line(cli, runs):
    code, out, err = cli("runs", "list", "--sweep", "nope", "--runs-dir", runs)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "no sweep named 'nope'" in lines[0] and out == ""


def test_runs_list_sweep_without_trial_runs(cli, tmp_path):
    sweep = tmp_path / "runs" / "sweeps" / "obj"
    make_trial(sweep, 0, 1e-3, Status.COMPLETED, 0.5, run=False)  # an objective trial: no run
    code, out, _ = cli("runs", "list", "--sweep", "obj", "--runs-dir", tmp_path / "runs")
    assert code == 0 and "no trial runs" in out
    code, out, _ = cli("runs", "list", "--sweep", "obj", "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0 and json.loads(out) == []


def test_runs_list_of_an_imported_sweep_says_why_it_is_empty(cli, tmp_path):
    csv = tmp_path / "w.csv"
    csv.write_text(f"Name,{LR},val/hmean\na,0.001,0.5\nb,0.002,0.6\n")
    code, _, err = cli("sweep", "import", csv, "--name", "wb", "--preset", "cpu-demo", "--metric", "val/hmean",
                       "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    code, out, err = cli("runs", "list", "--sweep", "wb", "--runs-dir", tmp_path / "runs")
    assert code == 0, err
    assert "imported sweeps have no run directories" in out and "objective trials" not in out
