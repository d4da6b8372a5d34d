"""`ocrtune sweep` through the CLI with fast objectives: planning, resume, statuses, pruning,
GPU pinning, parallel slots, timeouts, storage errors, status. (What is refused before a
sweep starts is in ``test_prepare.py``.)"""

from __future__ import annotations

import json
import math

import pytest

from ocrtune.sweep.plan.planner import PlannerConfig
from ocrtune.sweep.plan.strategies import Hierarchical
from ocrtune.sweep.types import Result
from tests.sweep.helpers import LR, OBJ, calls, fake_nvidia_smi, one_line, sweep
from tests.sweep_objectives import curve


@pytest.fixture(autouse=True)
def _fast(monkeypatch, tmp_path):
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")
    monkeypatch.setenv("OCRTUNE_TEST_CALLS", str(tmp_path / "calls.jsonl"))


def test_hierarchical_sweep_plans_stages_records_and_resumes(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OCRTUNE_TEST_SLEEP", "0.15")
    args = ("--objective", OBJ + "logged", "--range", "2e-5,1e-2", "--points", "4", "--stages", "2",
            "--epochs", "2", "--parallel", "2", "--name", "h")
    code, s, err = sweep(cli, tmp_path, *args)
    assert code == 0, err
    assert s["state"] == "finished" and s["reason"] == "reached 2 stages"
    assert [(b["index"], b["planned"], b["done"]) for b in s["batches"]] == [(0, 4, 4), (1, 4, 4)]
    stage0 = [t for t in s["trials"] if t["batch"] == 0]
    assert [t["params"][LR] for t in stage0] == pytest.approx([2e-5, 1.5874e-4, 1.2599e-3, 1e-2], rel=1e-4)
    # stage 1 is exactly what the planner makes of stage 0's stored results
    cfg = PlannerConfig(low=2e-5, high=1e-2, points=4, stages=2)
    want = Hierarchical(LR, cfg).next_batch([Result(t["params"], t["score"], 0) for t in stage0])
    assert [t["params"] for t in s["trials"] if t["batch"] == 1] == list(want.params)
    assert [t["status"] for t in s["trials"]] == [
        "diverged" if t["params"][LR] > 10**-2.6 else "completed" for t in s["trials"]]
    done = [t for t in s["trials"] if t["status"] == "completed"]
    assert 4 <= len(done) < 8
    assert all(t["epochs"] == 2 and t["loss_reduction_rate"] == pytest.approx(0.5) for t in done)
    assert all(t["stability"] == pytest.approx(t["score"] / 2 / math.sqrt(2)) for t in done)
    assert abs(math.log10(s["best"]["params"][LR]) + 3.3) < 0.25
    log = calls(tmp_path)
    ends = [c["params"][LR] for c in log if c["event"] == "end"]
    assert sorted(ends) == sorted(t["params"][LR] for t in s["trials"])  # every trial ran exactly once
    spans = sorted((c["t"], c["event"]) for c in log)
    depth = peak = 0
    for _, ev in spans:
        depth += 1 if ev == "start" else -1
        peak = max(peak, depth)
    assert peak == 2  # --parallel 2 ran two trials at once, never more

    code, again, err = sweep(cli, tmp_path, *args)
    assert code == 0, err
    assert len(calls(tmp_path)) == len(log)  # resuming a finished sweep re-runs nothing
    assert [t["number"] for t in again["trials"]] == [t["number"] for t in s["trials"]]

    code, out, err = cli("sweep", "status", "h", "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0 and json.loads(out)["best"] == s["best"]
    code, out, err = cli("sweep", "status", "h", "--runs-dir", tmp_path / "runs")
    assert code == 0 and "best: lr=" in out and "finished: reached 2 stages" in out


def test_changed_settings_are_refused_but_the_budget_can_grow(cli, tmp_path):
    base = ("--objective", OBJ + "curve_only", "--range", "2e-5,1e-2", "--points", "3", "--name", "g")
    code, s, err = sweep(cli, tmp_path, *base, "--stages", "1")
    assert code == 0, err
    assert len(s["trials"]) == 3
    code, _, err = sweep(cli, tmp_path, *base, "--stages", "1", "--epochs", "5")
    line = one_line(err)
    assert code == 2 and "different settings: --epochs: stored 3, now 5." in line
    assert not line.startswith("--name") and line.startswith("sweep 'g' exists with different settings")
    narrower = tuple("2e-5,1e-3" if a == "2e-5,1e-2" else a for a in base)
    code, _, err = sweep(cli, tmp_path, *narrower, "--stages", "1", "--points", "4")
    line = one_line(err)
    assert code == 2
    assert "different settings: --range: stored 2e-05,0.01, now 2e-05,0.001; --points: stored 3, now 4." in line
    assert "high" not in line and "dims" not in line
    code, s, err = sweep(cli, tmp_path, *base, "--stages", "2", "--min-improvement", "0")
    assert code == 0, err
    assert [b["index"] for b in s["batches"]] == [0, 1] and len(s["trials"]) == 6


def test_failures_are_recorded_and_the_sweep_goes_on(cli, tmp_path):
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "troubled", "--strategy", "grid", "--range", "2e-5,1e-2",
                         "--points", "5", "--name", "f")
    assert code == 0, err
    got = {round(math.log10(t["params"][LR]), 2): t for t in s["trials"]}
    assert [got[k]["status"] for k in sorted(got)] == ["oom", "completed", "completed", "completed", "failed"]
    assert got[-2.0]["error"].endswith("second line of the error") and "ValueError" in got[-2.0]["error"]
    assert "MemoryError: synthetic out of memory" in got[round(math.log10(2e-5), 2)]["error"]
    assert s["best"]["params"][LR] == pytest.approx(4.472136e-4)

    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "not_a_number", "--strategy", "random", "--trials", "2",
                         "--range", "2e-5,1e-2", "--name", "nan")
    assert code == 1 and "no trial produced a score" in err
    assert {t["status"] for t in s["trials"]} == {"failed"} and "not a number" in s["trials"][0]["error"]

    # hierarchical: every value failed for a reason a lower range would not fix; the reason says where to look
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "not_a_number", "--range", "2e-5,1e-2", "--points", "2",
                         "--stages", "2", "--name", "nanh")
    assert code == 1 and s["state"] == "finished"
    assert s["reason"] == ("every evaluated value diverged or failed: see the trials' errors (sweep status); "
                           "if they diverged, try a lower range")


def test_grid_random_and_tpe_over_a_space_file(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n"
                     "  models.optimizer.lr: {distribution: log_uniform, min: 1e-5, max: 1e-1}\n"
                     "  models.head.postprocess.thresh: {values: [0.2, 0.3, 0.4]}\n"
                     "method: bayes\n")
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "quadratic", "--space", space, "--strategy", "grid",
                         "--points", "3", "--parallel", "2", "--set", "models.scheduler.eta_min=0")
    assert code == 0, err
    assert s["name"] == "cpu-demo-grid" and len(s["trials"]) == 9
    assert s["best"]["params"] == {LR: pytest.approx(1e-3), "models.head.postprocess.thresh": 0.3}
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "quadratic", "--space", space, "--strategy", "random",
                         "--trials", "5", "--set", "models.scheduler.eta_min=0")
    assert code == 0 and len(s["trials"]) == 5 and len({t["params"][LR] for t in s["trials"]}) == 5
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "quadratic", "--space", space, "--trials", "6",
                         "--batch", "3", "--set", "models.scheduler.eta_min=0")  # method: bayes means TPE
    assert code == 0, err
    assert s["strategy"] == "tpe" and [(b["index"], b["planned"]) for b in s["batches"]] == [(0, 3), (1, 3)]


def test_pruning_stops_weak_trials_but_never_before_min_epochs(cli, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("models.optimizer.lr: {values: [5.0e-4, 4.0e-4, 6.0e-4, 3.0e-4, 7.0e-4, 2.0e-5, 3.0e-5]}\n")
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "slow_when_bad", "--space", space, "--strategy", "grid",
                         "--epochs", "4", "--prune", "median", "--min-epochs", "2")
    assert code == 0, err
    assert [t["status"] for t in s["trials"]] == ["completed"] * 5 + ["pruned"] * 2
    for t in s["trials"][5:]:
        assert t["epochs"] in (2, 3) and t["progress"]["epoch"] == t["epochs"]  # at epoch 2 (or 3), never 1
        assert t["score"] == pytest.approx(curve(t["params"][LR]) * t["epochs"] / 4)  # its last reported value
    ended = {c["params"][LR] for c in calls(tmp_path) if c["event"] == "end"}
    assert 2e-5 not in ended and 3e-5 not in ended and 5e-4 in ended


def test_gpu_slots_pin_one_trial_per_gpu(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OCRTUNE_TEST_SLEEP", "0.15")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_nvidia_smi(tmp_path, monkeypatch, 0, 1)
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "logged", "--strategy", "grid", "--range", "1e-4,2e-3",
                         "--points", "6", "--gpus", "0,1", "--epochs", "1")
    assert code == 0, err
    log = calls(tmp_path)
    assert {c["gpu"] for c in log} == {"0", "1"}
    for gpu in ("0", "1"):
        events = sorted((c["t"], c["event"]) for c in log if c["gpu"] == gpu)
        assert [e for _, e in events] == ["start", "end"] * (len(events) // 2)  # never two at once on a GPU


def test_integer_param_without_a_space_file(cli, tmp_path):
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "t_max", "--strategy", "grid", "--points", "5",
                         "--param", "models.scheduler.T_max", "--range", "10,30")
    assert code == 0, err
    assert [t["params"]["models.scheduler.T_max"] for t in s["trials"]] == [10, 15, 20, 25, 30]
    assert s["best"]["params"] == {"models.scheduler.T_max": 20}
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "t_max", "--strategy", "grid",
                         "--param", "models.scheduler.T_max", "--range", "10,30.5")
    assert code == 2 and "integer key" in err


def test_names_are_checked_the_same_everywhere(cli, tmp_path):
    code, _, err = cli("sweep", "status", "My Sweep/x", "--runs-dir", tmp_path)
    assert code == 2 and "NAME: a sweep name uses only letters" in err
    code, _, err = cli("sweep", "worker", "--name", "My Sweep/x", "--runs-dir", tmp_path, "--wait", "0")
    assert code == 2 and "--name: a sweep name uses only letters" in err


def test_unusable_storage_is_one_line_not_a_traceback(cli, tmp_path):
    (tmp_path / "junk.db").write_text("not a database\n")
    for storage, code_want, msg in (("journal:", 2, "--storage: 'journal:' names no file"),
                                    ("sqlite:///", 2, "--storage: 'sqlite:///' names no file"),
                                    (f"sqlite:///{tmp_path}", 2, "is a folder"),
                                    (f"sqlite:///{tmp_path}/junk.db", 1, "file is not a database")):
        code, out, err = cli("sweep", "status", "s", "--storage", storage)
        assert code == code_want and msg in err and "Traceback" not in err, (storage, err)
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "curve_only", "--range", "1e-4,1e-2", "--storage",
                         "sqlite:////proc/x.db")
    assert code == 1 and "cannot open storage sqlite:////proc/x.db" in err and calls(tmp_path) == []


def test_trial_timeout_stops_a_trial_as_failed(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OCRTUNE_TEST_SLEEP", "60")
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "logged", "--strategy", "grid", "--points", "2",
                         "--range", "1e-4,1e-3", "--parallel", "2", "--trial-timeout", "0.5")
    assert code == 1 and "no trial produced a score" in err
    assert [t["status"] for t in s["trials"]] == ["failed", "failed"]
    assert all(t["error"].startswith("timed out: still running after") and "--trial-timeout 0.5" in t["error"]
               for t in s["trials"])
    assert not [c for c in calls(tmp_path) if c["event"] == "end"]


def test_a_finished_sweep_with_replicates_can_still_be_extended(cli, tmp_path):
    base = ("--objective", OBJ + "logged", "--range", "2e-5,1e-2", "--points", "3", "--epochs", "1",
            "--replicates", "1", "--replicate-top", "2", "--min-improvement", "0", "--name", "rx")
    code, s, err = sweep(cli, tmp_path, *base, "--stages", "2")
    assert code == 0, err
    assert [(b["index"], b["kind"]) for b in s["batches"]] == [(0, "explore"), (1, "explore"), (2, "replicate")]
    code, s, err = sweep(cli, tmp_path, *base, "--stages", "3")
    assert code == 0, err
    # one more explore stage, then only the new top value that has no replicate yet
    assert [(b["index"], b["kind"], b["planned"]) for b in s["batches"]] == [
        (0, "explore", 3), (1, "explore", 3), (2, "replicate", 2), (2, "explore", 3), (3, "replicate", 1)]
    stage2 = [t for t in s["trials"] if t["batch"] == 2 and t["kind"] == "explore"]
    second = sorted(stage2 + [t for t in s["trials"] if t["batch"] < 2], key=lambda t: -(t["score"] or -1))[1]
    assert s["trials"][-1]["params"][LR] == second["params"][LR]
    assert s["best"]["n"] == 2 and s["state"] == "finished" and s["reason"] == "replicates finished"


def test_rerunning_a_finished_sweep_says_there_was_nothing_to_run(cli, tmp_path):
    args = ("--objective", OBJ + "curve_only", "--range", "1e-4,1e-2", "--points", "2", "--stages", "1", "--name", "done")
    code, s, err = sweep(cli, tmp_path, *args)
    assert code == 0 and "nothing left to run" not in err
    code, again, err = sweep(cli, tmp_path, *args)
    assert code == 0 and again["trials"] == s["trials"]
    assert "nothing left to run: sweep done had already finished (reached 1 stages)" in err and "--stages" in err
