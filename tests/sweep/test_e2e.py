"""Sweeps as real processes: SIGKILL of the coordinator mid-stage and resume, Ctrl-C and
resume, and (slow) a real tiny CPU sweep that trains the cpu-demo preset."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from ocrtune.errors import InputError
from ocrtune.sweep.run.liveness import pid_alive
from ocrtune.sweep.store import Store
from tests.sweep.helpers import LR, REPO, assert_each_slot_once, calls, env_for, sweep_cmd, wait_for


def trials_of(tmp_path: Path, name: str):
    try:
        return Store.open(name, None, runs_dir=tmp_path / "runs").trials()
    except InputError:  # not created yet
        return []


ARGS = ("--objective", "tests.sweep_objectives:logged", "--range", "2e-5,1e-2", "--points", "4", "--stages", "3",
        "--min-improvement", "0", "--epochs", "2", "--parallel", "2", "--name", "k", "--json")


@pytest.mark.slow
def test_killed_coordinator_resumes_without_losing_or_repeating_a_trial(tmp_path):
    # Trials long enough that the kill lands mid-stage: warm trials start in milliseconds, so a
    # short one leaves no moment with one result in and another still running.
    env = env_for(tmp_path, 0.6)
    proc = subprocess.Popen(sweep_cmd(tmp_path, *ARGS), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def mid_stage():
            ts = trials_of(tmp_path, "k")
            stage1 = [t for t in ts if t.batch == 1]
            return ts if sum(t.is_result for t in stage1) >= 1 and any(t.state == "running" for t in stage1) else None

        wait_for(mid_stage, what="a running trial in stage 1")
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    before = trials_of(tmp_path, "k")
    finished_before = {t.params[LR] for t in before if t.is_result}
    running_before = [t for t in before if t.state == "running"]
    assert running_before and len(finished_before) >= 5
    # the killed coordinator's children die with it (no orphan keeps training)
    wait_for(lambda: not any(pid_alive(int(t.attrs["child_pid"])) for t in running_before if t.attrs.get("child_pid")),
             timeout=15, what="orphaned trial processes to exit")

    done = subprocess.run(sweep_cmd(tmp_path, *ARGS), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    s = json.loads(done.stdout)
    assert s["state"] == "finished" and [b["index"] for b in s["batches"]] == [0, 1, 2]
    assert_each_slot_once(s)
    by_number = {t["number"]: t for t in s["trials"]}
    for t in running_before:  # the attempts cut off by the kill: lost (re-queued) or their written result adopted
        after = by_number[t.number]
        assert after["status"] in ("lost", "completed", "diverged"), after  # diverged: the curve's NaN cliff
    starts = Counter(c["params"][LR] for c in calls(tmp_path) if c["event"] == "start")
    assert all(starts[v] == 1 for v in finished_before)  # a finished trial never runs again
    assert set(starts) == {t["params"][LR] for t in s["trials"]}


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_resumes(tmp_path):
    env = env_for(tmp_path, 2.0)  # trials long enough that Ctrl-C lands mid-trial on a busy machine
    args = (*ARGS[:-3], "--stages", "2", "--name", "c", "--json")
    # as from a terminal: a suite started in the background (`make test &`) passes SIGINT on ignored
    proc = subprocess.Popen(sweep_cmd(tmp_path, *args), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for(lambda: sum(t.state == "running" and "child_pid" in t.attrs for t in trials_of(tmp_path, "c")) == 2,
                 what="two running trials")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Resume with the same command" in err, (proc.returncode, err[-3000:])
    ts = trials_of(tmp_path, "c")
    stopped = [t for t in ts if t.status == "interrupted"]
    assert len(stopped) == 2 and not [t for t in ts if t.state == "running"]
    assert not any(pid_alive(int(t.attrs["child_pid"])) for t in stopped)

    done = subprocess.run(sweep_cmd(tmp_path, *args), cwd=REPO, env=env_for(tmp_path, 0.0), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    s = json.loads(done.stdout)
    assert s["state"] == "finished"
    assert_each_slot_once(s)


@pytest.mark.slow
def test_real_tiny_cpu_sweep_trains_every_trial(tmp_path):
    from ocrtune.data.synthetic import synthesize
    from ocrtune.presets.load import load_preset

    data = tmp_path / "data"
    synthesize(data, n=4, seed=0, size=256)
    # ranked by val_loss: after one epoch every H-mean is 0, a tie that ends a sweep after stage 1
    args = ("--preset", "cpu-demo", "--set", "datasets.image_size=128", "--set", "dataloader.batch_size=2",
            "--data", str(data), "--epochs", "1", "--points", "2", "--stages", "2", "--range", "1e-4,1e-2",
            "--min-improvement", "0", "--metric", "val_loss", "--parallel", "2", "--name", "real", "--json")
    env = {**os.environ, "OCRTUNE_SWEEP_POLL_S": "0.2"}
    done = subprocess.run(sweep_cmd(tmp_path, *args), cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    s = json.loads(done.stdout)
    assert s["state"] == "finished" and [(b["index"], b["planned"], b["done"]) for b in s["batches"]] == [(0, 2, 2), (1, 2, 2)]
    assert_each_slot_once(s)
    for t in s["trials"]:
        assert t["status"] in ("completed", "diverged"), t["error"]
        run = Path(t["run_dir"])
        assert run.parent == tmp_path / "runs" / "sweeps" / "real" / "trials" / f"{t['number']:04d}" / "runs"
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == t["status"] and summary["epochs_completed"] == 1
        assert f"lr: {t['params'][LR]}" in (run / "config.yaml").read_text().replace("'", "")
        # cpu-demo's cosine eta_min follows the swept lr (the preset's ratio, 1e-6 / 2e-3)
        eta_min = load_preset(run / "config.yaml").preset.models.scheduler.eta_min
        assert t["derived"] == {"models.scheduler.eta_min": eta_min}
        assert eta_min == pytest.approx(t["params"][LR] / 2000, rel=1e-5)
        assert t["epochs"] == 1 and t["time_per_epoch_s"] > 0 and t["peak_mem_mb"] > 0
        if t["status"] == "completed":
            assert math.isfinite(t["score"]) and t["score"] > 0  # a validation loss
