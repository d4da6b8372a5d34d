"""Per-trial records from epoch rows, reading rows while a trial writes them, and the epoch
times an objective trial records."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from ocrtune.sweep.run.records import find_run_dir, loss_reduction_rate, progress, read_rows, score_of, spread, trial_records
from ocrtune.train.rundir import RunDir, new_run_dir
from tests.sweep.helpers import sweep, table_rows

ROWS = [
    {"epoch": 0, "train_loss": 4.0, "val_hmean": 0.20, "val_loss": 3.0, "epoch_time_s": 10.0, "peak_mem_mb": 900.0},
    {"epoch": 1, "train_loss": 2.0, "val_hmean": 0.50, "val_loss": 2.0, "epoch_time_s": 12.0, "peak_mem_mb": 950.0},
    {"epoch": 2, "train_loss": 1.0, "val_hmean": 0.60, "val_loss": 2.5, "epoch_time_s": 11.0, "peak_mem_mb": 940.0},
    {"epoch": 3, "train_loss": 0.5, "val_hmean": 0.55, "val_loss": 2.2, "epoch_time_s": 11.0, "peak_mem_mb": None},
]


def test_trial_records():
    r = trial_records(ROWS, "hmean")
    assert r["epochs"] == 4 and r["score"] == 0.60 and r["last_score"] == 0.55
    assert r["loss_reduction_rate"] == pytest.approx(0.5)  # halves every epoch
    assert r["stability"] == pytest.approx(statistics.stdev([0.50, 0.60, 0.55]))  # the last 3 epochs
    assert r["loss_spread"] == pytest.approx(statistics.stdev([2.0, 1.0, 0.5]) / statistics.fmean([2.0, 1.0, 0.5]))
    assert r["time_per_epoch_s"] == pytest.approx(11.0) and r["peak_mem_mb"] == 950.0
    assert trial_records(ROWS, "val_loss")["score"] == 2.0  # lowest val loss is best


def test_undefined_figures_are_none():
    one = trial_records(ROWS[:1], "hmean")
    assert one["loss_reduction_rate"] is None and one["stability"] is None and one["score"] == 0.2
    empty = trial_records([], "hmean")
    assert empty["epochs"] == 0 and empty["score"] is None and empty["peak_mem_mb"] is None
    assert loss_reduction_rate([1.0, math.nan]) is None and loss_reduction_rate([0.0, 1.0]) is None
    assert score_of([{"val_hmean": math.nan}, {"val_hmean": None}], "hmean") is None
    assert spread([1.0, math.inf, 3.0]) == pytest.approx(math.sqrt(2))


def test_reads_metrics_csv_of_the_run_or_objective_progress(tmp_path):
    assert read_rows(tmp_path) == [] and find_run_dir(tmp_path) is None
    (tmp_path / "progress.jsonl").write_text(json.dumps({"epoch": 0, "val_hmean": 0.3}) + "\n"
                                             + json.dumps({"epoch": 1, "val_hmean": 0.4}) + "\n" + '{"epoch": 2, "val_h')
    assert progress(read_rows(tmp_path), "hmean") == [(1, 0.3), (2, 0.4)]  # a torn last line is skipped
    run = RunDir(new_run_dir(tmp_path / "runs", "t"))
    run.config.write_text("seed: 1\n")
    run.write_metrics(ROWS[:2])
    assert find_run_dir(tmp_path) == run.path
    assert [r["val_hmean"] for r in read_rows(tmp_path)] == [0.2, 0.5]  # metrics.csv wins once it exists


def test_objective_trials_record_time_per_epoch(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")
    code, s, err = sweep(cli, tmp_path, "--objective", "tests.sweep_objectives:timed", "--strategy", "grid",
                         "--points", "2", "--range", "1e-4,1e-3", "--epochs", "3", "--name", "t")
    assert code == 0, err
    for t in s["trials"]:
        assert t["epochs"] == 3
        # epochs 1 and 3 measured (0.2 s each, more on a busy machine), epoch 2 as the objective gave it
        assert (7.0 + 0.4) / 3 <= t["time_per_epoch_s"] < (7.0 + 30) / 3
    code, out, _ = cli("sweep", "status", "t", "--runs-dir", tmp_path / "runs")
    rows = table_rows(out)
    assert rows and all(float(r["s/epoch"]) > 2 for r in rows)
