"""Running one trial: outcome from what the subprocess left, lost trials stop, adoption,
and the trial entry point (params applied like --set, objectives called by signature)."""

from __future__ import annotations

import json
import threading
import time
import uuid

from ocrtune.presets.load import load_preset
from ocrtune.sweep.launcher import Slot, pid_alive
from ocrtune.sweep.store import Store
from ocrtune.sweep.strategies import Batch
from ocrtune.sweep.trial import build_preset, call_objective, main
from ocrtune.sweep.worker import WorkerSettings, adopt_result, run_trial

LR = "models.optimizer.lr"


def one_trial(objective: str, epochs: int = 2):
    store = Store.open(f"w-{uuid.uuid4().hex[:8]}", f"memory:{uuid.uuid4().hex}", create=True)
    plan = store.add_plan(Batch(({LR: 5e-4},), 0, False, "test"))
    store.enqueue(plan, 0)
    config = {"objective": objective, "epochs": epochs, "metric": "hmean", "base": {}, "preset": "x"}
    return store, config, store.claim()


def test_crashed_trial_is_failed_with_its_log_tail(tmp_path):
    store, config, trial = one_trial("tests.sweep_objectives:crash")
    out = run_trial(store, config, trial, Slot("cpu0"), WorkerSettings(tmp_path, poll_s=0.05), threading.Event())
    assert out.status == "failed" and "exited with code -9 and no result" in out.error
    stored = store.trial(trial.trial_id)
    assert stored.status == "failed" and stored.attrs["exit_code"] == -9 and stored.is_result


def test_a_trial_declared_lost_elsewhere_stops_running_here(tmp_path, monkeypatch):
    monkeypatch.setenv("OCRTUNE_TEST_SLEEP", "1.0")
    monkeypatch.setenv("OCRTUNE_TEST_CALLS", str(tmp_path / "calls.jsonl"))
    store, config, trial = one_trial("tests.sweep_objectives:logged", epochs=5)
    box = {}
    settings = WorkerSettings(tmp_path, heartbeat_s=0.1, poll_s=0.05)
    th = threading.Thread(target=lambda: box.update(out=run_trial(store, config, trial, Slot("cpu0"), settings, threading.Event())))
    th.start()
    for _ in range(200):
        if "child_pid" in store.trial(trial.trial_id).attrs:
            break
        time.sleep(0.05)
    child = store.trial(trial.trial_id).attrs["child_pid"]
    assert store.finish(trial.trial_id, "lost", None, {"error": "reaped by another process"})
    th.join(15)
    assert not th.is_alive() and box["out"].status == "lost"
    assert not pid_alive(child)
    assert store.trial(trial.trial_id).attrs["error"] == "reaped by another process"  # the reaper's record stays
    log = tmp_path / "calls.jsonl"
    assert not log.exists() or all(json.loads(x)["event"] == "start" for x in log.read_text().splitlines())  # never ended


def test_adoption_only_takes_final_results(tmp_path):
    store, config, trial = one_trial("tests.sweep_objectives:logged")
    d = tmp_path / "t"
    d.mkdir()
    (d / "spec.json").write_text(json.dumps({"metric": "hmean"}))
    (d / "progress.jsonl").write_text(json.dumps({"epoch": 0, "val_hmean": 0.4, "train_loss": 2.0}) + "\n")
    store.set_attrs(trial.trial_id, trial_dir=str(d))
    t = store.trial(trial.trial_id)
    assert adopt_result(t) is None  # no result written yet
    (d / "result.json").write_text(json.dumps({"status": "interrupted", "score": None}))
    assert adopt_result(t) is None
    (d / "result.json").write_text(json.dumps({"status": "completed", "score": 0.4}))
    status, score, attrs = adopt_result(t)
    assert (status, score, attrs["epochs"]) == ("completed", 0.4, 1)


def test_a_failed_local_slot_gets_its_trial_requeued():
    store, config, trial = one_trial("x:y")
    assert store.reap_stale(60) == []  # running in this process: left alone
    store.release(trial.trial_id)  # its slot thread died without ending it
    lost = store.reap_stale(60)
    assert [(t.number, t.status) for t in lost] == [(trial.number, "lost")]
    assert lost[0].attrs["error"] == "its slot in this process failed"


def test_trial_params_are_applied_like_set_and_validated(tmp_path):
    base = load_preset("cpu-demo").preset.model_dump(mode="json")
    spec = {"base": base, "params": {LR: 3e-4, "seed": 9, "models.encoder.out_indices": [2, 3, 4]}, "name": "t", "preset": "cpu-demo"}
    loaded = build_preset(spec, tmp_path / "spec.json")
    assert loaded.preset.models.optimizer.lr == 3e-4 and loaded.preset.seed == 9
    assert loaded.preset.models.encoder.out_indices == [2, 3, 4]
    spec = {**spec, "params": {LR: 1e-6}, "metric": "hmean", "epochs": 1}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main([str(tmp_path / "spec.json")]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "failed" and "eta_min" in result["error"]


def test_objective_gets_only_the_keywords_it_takes(tmp_path):
    seen = {}
    assert call_objective(lambda p: p["a"], {"a": 1}, 3, print, tmp_path) == 1
    assert call_objective(lambda p, epochs: epochs, {}, 3, print, tmp_path) == 3

    def anything(p, **kw):
        seen.update(kw)
        return 0.0

    call_objective(anything, {}, 2, print, tmp_path)
    assert set(seen) == {"epochs", "report", "trial_dir"}
