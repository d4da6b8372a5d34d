"""Running one trial: outcome from what the subprocess left, lost trials stop, adoption,
and the trial entry point (params applied like --set, objectives called by signature, a GPU
slot never training on the CPU)."""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy

from ocrtune.errors import InputError
from ocrtune.presets.load import load_preset
from ocrtune.sweep.run.coordinator import fill_missing
from ocrtune.sweep.run.guards import Limits, StoreUnreachable
from ocrtune.sweep.run.launcher import SLOT_GPU_ENV, ColdTrials, Slot
from ocrtune.sweep.run.liveness import pid_alive
from ocrtune.sweep.run.trial import build_preset, call_objective, main, run_training
from ocrtune.sweep.run.warm import WarmTrials
from ocrtune.sweep.run.worker import MAX_CRASHES, WorkerSettings, adopt_result, run_trial
from ocrtune.sweep.store import Store, StoredTrial
from ocrtune.sweep.types import Batch, GridSearch, Status, SweepConfig, TrialSpec
from tests.sweep.helpers import LR, REPO
from tests.sweep_objectives import curve


def one_trial(objective: str, epochs: int = 2):
    store = Store.open(f"w-{uuid.uuid4().hex[:8]}", f"memory:{uuid.uuid4().hex}", create=True)
    plan = store.add_plan(Batch(({LR: 5e-4},), 0, False, "test"))
    store.enqueue(plan, 0)
    config = SweepConfig(name=store.name, objective=objective, epochs=epochs, metric="hmean", base={}, preset="x")
    return store, config, store.claim()


def test_a_trial_killed_without_a_result_is_requeued_then_failed(tmp_path, trials):
    """Killed by a signal (OOM killer, node drained): re-queued, up to MAX_CRASHES attempts."""
    store, config, trial = one_trial("tests.sweep_objectives:crash")
    settings = WorkerSettings(tmp_path, poll_s=0.05)
    got = []
    for _ in range(MAX_CRASHES):
        out = run_trial(store, config, trial, Slot("cpu0"), settings, threading.Event(), trials=trials)
        got.append(out.status)
        assert "SIGKILL without a result" in out.error
        fill_missing(store, store.plans(), store.trials())  # what the coordinator does each poll
        trial = store.claim()
    assert got == ["lost"] * (MAX_CRASHES - 1) + ["failed"]
    assert trial is None  # a failed attempt is a result: nothing more is queued
    stored = store.trials()
    assert [t.attrs["attempt"] for t in stored] == list(range(1, MAX_CRASHES + 1))
    assert stored[-1].is_result and stored[-1].attrs["exit_code"] == -9 and "not retried" in stored[-1].attrs["error"]


def test_a_trial_longer_than_the_grace_period_keeps_its_claim(tmp_path, monkeypatch):
    """The worker's heartbeat reaches Optuna's RDB heartbeat: a trial that runs past the grace
    period while its worker beats is not declared lost (on SQLite, silence is Optuna's check)."""
    from ocrtune.sweep.run.coordinator import Coordinator

    monkeypatch.chdir(REPO)
    monkeypatch.setenv("OCRTUNE_TEST_SLEEP", "1.5")  # 2 epochs: 3 s, past a 2 s grace
    name = f"hb-{uuid.uuid4().hex[:8]}"
    store = Store.open(name, f"sqlite:///{tmp_path}/study.db", create=True)
    cfg = SweepConfig(name=name, objective="tests.sweep_objectives:logged", epochs=2, metric="hmean", base={},
                      preset="x", search=GridSearch(points=1), dims=({"key": LR, "kind": "choice", "leaf": "float",
                                                                      "low": None, "high": None, "q": None,
                                                                      "values": [5e-4]},))
    settings = WorkerSettings(tmp_path, poll_s=0.05, heartbeat_s=0.3, grace_s=2)
    coord = Coordinator(store, cfg, [Slot("cpu0")], settings)
    box: dict = {}
    th = threading.Thread(target=lambda: box.update(summary=coord.run()), daemon=True)
    try:
        th.start()
        th.join(60)
        if th.is_alive():  # without the heartbeat, every attempt is declared lost and queued again
            coord.stop.set()
            th.join(30)
            pytest.fail(f"the trial never finished: {[t.status.value for t in store.trials()]}")
    finally:
        store.close()
    summary = box["summary"]
    assert [t.status for t in summary.trials] == ["completed"] and summary.trials[0].duration_s > 2


def test_old_files_in_a_trial_folder_are_never_read_as_this_trials(tmp_path):
    """Same sweep name after study.db was deleted (or on another --storage): trials/0000 holds
    another sweep's result.json and progress.jsonl."""
    old = tmp_path / "trials" / "0000"
    (old / "runs" / "2024-01-01-old").mkdir(parents=True)
    (old / "runs" / "2024-01-01-old" / "config.yaml").write_text("seed: 1\n")
    (old / "result.json").write_text(json.dumps({"status": "completed", "score": 0.99}))
    (old / "progress.jsonl").write_text("".join(json.dumps({"epoch": i, "val_hmean": 0.99}) + "\n" for i in range(3)))
    store, config, trial = one_trial("tests.sweep_objectives:crash")
    assert trial.number == 0
    out = run_trial(store, config, trial, Slot("cpu0"), WorkerSettings(tmp_path, poll_s=0.05), threading.Event())
    assert (out.status, out.score) == ("lost", None)
    stored = store.trial(trial.trial_id)
    assert stored.attrs["epochs"] == 0 and stored.attrs["run_dir"] is None
    moved = [p for p in (tmp_path / "trials").iterdir() if p.name.startswith("0000.replaced-")]
    assert len(moved) == 1 and json.loads((moved[0] / "result.json").read_text())["score"] == 0.99  # kept, not deleted


def test_stored_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the objective, from elsewhere
    monkeypatch.chdir(tmp_path)
    store, config, trial = one_trial("tests.sweep_objectives:makes_run_dir")
    out = run_trial(store, config, trial, Slot("cpu0"), WorkerSettings(Path("rel/sweep"), poll_s=0.05), threading.Event())
    assert out.status == "completed"
    a = store.trial(trial.trial_id).attrs
    for key in ("trial_dir", "run_dir", "log"):
        assert Path(a[key]).is_absolute() and Path(a[key]).exists(), (key, a[key])
    assert a["run_dir"] == str(tmp_path / "rel" / "sweep" / "trials" / "0000" / "runs" / "2024-01-01-x")


class Flaky:
    """Stands in for a database that fails (``OperationalError``) ``fail`` times, then works."""

    def __init__(self, fn, fail: float):
        self.fn, self.fail, self.calls = fn, fail, 0

    def __call__(self, *a, **kw):
        self.calls += 1
        if self.calls <= self.fail:
            raise sqlalchemy.exc.OperationalError("UPDATE trial_user_attributes", {}, Exception("database is locked"))
        return self.fn(*a, **kw)


def spy_children(trials) -> list[int]:
    """The pids of the trial processes ``trials`` starts."""
    pids: list[int] = []
    start = trials.start

    def spied(*a, **kw):
        child = start(*a, **kw)
        pids.append(child.pid)
        return child

    trials.start = spied
    return pids


@pytest.fixture(params=["cold", "warm"])
def trials(request):
    """Both ways of starting a trial process: a new process, or a fork of a warm zygote."""
    if request.param == "cold":
        yield ColdTrials()
        return
    warnings: list[str] = []
    spec = TrialSpec(name="warm-up", params={}, epochs=1, metric="hmean", base={}, objective="tests.sweep_objectives:logged")
    warm = WarmTrials(spec, Slot("zygote").env(), warnings.append)
    warm.begin()
    warm.prepare(threading.Event())
    assert warm.zygote is not None and warm.zygote.state == "ready", warm.zygote.failure
    yield warm
    warm.close()
    assert warnings == []


def test_store_errors_while_a_trial_runs_are_retried(tmp_path, monkeypatch):
    store, config, trial = one_trial("tests.sweep_objectives:logged", epochs=3)
    monkeypatch.setenv("OCRTUNE_TEST_SLEEP", "0.2")
    store.set_attrs = Flaky(store.set_attrs, fail=3)
    settings = WorkerSettings(tmp_path, heartbeat_s=0.05, poll_s=0.05, grace_s=30)
    out = run_trial(store, config, trial, Slot("cpu0"), settings, threading.Event())
    assert (out.status, out.score) == ("completed", pytest.approx(curve(5e-4)))
    t = store.trial(trial.trial_id)
    assert t.attrs["progress"]["epoch"] == 3 and t.attrs["child_pid"] > 0  # the failed writes were made later


def test_a_store_that_stays_down_stops_the_trial_process(tmp_path, monkeypatch, trials):
    """Never two trials in one slot: the child is gone before the slot could claim again."""
    store, config, trial = one_trial("tests.sweep_objectives:logged", epochs=5)
    monkeypatch.setenv("OCRTUNE_TEST_SLEEP", "1.0")
    pids = spy_children(trials)
    store.set_attrs = Flaky(store.set_attrs, fail=math.inf)
    settings = WorkerSettings(tmp_path, heartbeat_s=0.05, poll_s=0.05, grace_s=0.5)
    start = time.monotonic()
    with pytest.raises(StoreUnreachable, match="failed for 0.5s: OperationalError"):
        run_trial(store, config, trial, Slot("cpu0"), settings, threading.Event(), trials=trials)
    assert time.monotonic() - start < 10 and len(pids) == 1 and not pid_alive(pids[0])


def test_the_coordinator_rides_out_store_errors_too(tmp_path):
    from ocrtune.sweep.prepare import SweepRequest, prepare
    from ocrtune.sweep.run.coordinator import Coordinator

    request = SweepRequest(strategy="grid", range_text="1e-4,1e-3", points=3,
                           objective="tests.sweep_objectives:curve_only", name=f"c-{uuid.uuid4().hex[:8]}")
    cfg = prepare(request, load_preset("cpu-demo").preset)
    store = Store.open(cfg.name, f"memory:{uuid.uuid4().hex}", create=True)
    store.plans = Flaky(store.plans, fail=3)
    summary = Coordinator(store, cfg, [Slot("cpu0")], WorkerSettings(tmp_path, poll_s=0.05, grace_s=30)).run()
    assert store.plans.calls > 3 and summary.state == "finished" and summary.reason == "all 3 grid trials finished"
    assert [t.status for t in summary.trials] == ["completed"] * 3


def test_a_hung_trial_is_stopped_as_stalled(tmp_path, trials):
    store = Store.open(f"w-{uuid.uuid4().hex[:8]}", f"memory:{uuid.uuid4().hex}", create=True)
    plan = store.add_plan(Batch(({LR: 5e-4}, {LR: 1e-3}), 0, False, "test"))
    store.enqueue(plan, 0)
    store.enqueue(plan, 1)
    done = store.claim()
    store.finish(done.trial_id, "completed", 0.8, {"epochs": 3, "time_per_epoch_s": 0.01})
    trial = store.claim()
    config = SweepConfig(name=store.name, objective="tests.sweep_objectives:hang", epochs=3, metric="hmean", base={},
                         preset="x")
    settings = WorkerSettings(tmp_path, poll_s=0.05, stall_floor_s=0.6)  # limit: max(5 x 0.01 s, 0.6 s)
    start = time.monotonic()
    out = run_trial(store, config, trial, Slot("cpu0"), settings, threading.Event(), trials=trials)
    assert time.monotonic() - start < 15
    assert (out.status, out.score) == ("failed", None)
    assert out.error.startswith("stalled: no progress for") and "limit 1s" in out.error
    assert "now hanging" in out.error  # the log tail says where it hung
    assert store.trial(trial.trial_id).attrs["epochs"] == 1


def test_limits():
    finished = [StoredTrial(i, i, "complete", Status.COMPLETED, 0, i, 0, "explore", {}, 0.5,
                            {"time_per_epoch_s": v, "epochs": 2})
                for i, v in enumerate((10.0, 20.0, 400.0))]
    lim = Limits(None, factor=5, floor_s=60)
    assert lim.check(1e9, 1e9) is None  # nothing finished yet: no stall rule
    lim.learn(finished)
    assert lim.stall_s == 100.0  # 5 x the median 20 s
    assert lim.check(1e9, 99) is None and lim.check(1e9, 101)[0] == "stalled"
    lim.learn(finished[:1])
    assert lim.stall_s == 60.0  # the floor
    assert Limits(30.0).check(31, 0)[0] == "timeout" and Limits(30.0).check(29, 0) is None


def test_a_trial_declared_lost_elsewhere_stops_running_here(tmp_path, monkeypatch, trials):
    monkeypatch.setenv("OCRTUNE_TEST_SLEEP", "1.0")
    monkeypatch.setenv("OCRTUNE_TEST_CALLS", str(tmp_path / "calls.jsonl"))
    store, config, trial = one_trial("tests.sweep_objectives:logged", epochs=5)
    box = {}
    settings = WorkerSettings(tmp_path, heartbeat_s=0.1, poll_s=0.05)
    th = threading.Thread(target=lambda: box.update(out=run_trial(store, config, trial, Slot("cpu0"), settings,
                                                                  threading.Event(), trials=trials)))
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
    spec = TrialSpec(name="t", params={LR: 5e-4}, epochs=2, metric="hmean", base={})
    (d / "spec.json").write_text(json.dumps(spec.to_json()))
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
    spec = TrialSpec(name="t", params={LR: 3e-4, "seed": 9, "models.encoder.out_indices": [2, 3, 4]}, epochs=1,
                     metric="hmean", base=base, preset="cpu-demo")
    loaded = build_preset(spec, tmp_path / "spec.json")
    assert loaded.preset.models.optimizer.lr == 3e-4 and loaded.preset.seed == 9
    assert loaded.preset.models.encoder.out_indices == [2, 3, 4]
    spec = replace(spec, params={LR: 1e-6})  # cpu-demo's eta_min, with nothing coupled to it
    (tmp_path / "spec.json").write_text(json.dumps(spec.to_json()))
    assert main([str(tmp_path / "spec.json")]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "failed" and "eta_min" in result["error"]


def test_a_run_that_diverged_after_a_good_epoch_has_no_score(tmp_path, monkeypatch):
    """fit() stands in here (no torch): epoch 0 scored 0.6, then the loss went NaN."""
    import types

    rows = [{"epoch": 0, "val_hmean": 0.6}, {"epoch": 1, "val_hmean": None}]
    result = types.SimpleNamespace(status="diverged", rows=rows, run_dir=tmp_path / "run", error="loss is NaN",
                                   hint=None, device="cpu")
    fake = types.ModuleType("ocrtune.train.fit")
    fake.TrainOptions = lambda **kw: kw
    fake.fit = lambda loaded, opts: result
    monkeypatch.setitem(__import__("sys").modules, "ocrtune.train.fit", fake)
    spec = TrialSpec(name="t", params={LR: 3e-4}, epochs=2, metric="hmean",
                     base=load_preset("cpu-demo").preset.model_dump(mode="json"), preset="cpu-demo")
    out = run_training(spec, tmp_path / "spec.json")
    assert (out.status, out.score) == ("diverged", None)
    # and whatever a trial writes, the store keeps no score for it (planner, TPE and best read this)
    store, config, trial = one_trial("x:y")
    assert store.finish(trial.trial_id, "diverged", 0.6)
    assert store.trial(trial.trial_id).score is None and store.trial(trial.trial_id).result().score is None


def test_objective_gets_only_the_keywords_it_takes(tmp_path):
    seen = {}
    assert call_objective(lambda p: p["a"], {"a": 1}, 3, print, tmp_path) == 1
    assert call_objective(lambda p, epochs: epochs, {}, 3, print, tmp_path) == 3

    def anything(p, **kw):
        seen.update(kw)
        return 0.0

    call_objective(anything, {}, 2, print, tmp_path)
    assert set(seen) == {"epochs", "report", "trial_dir"}


def test_a_gpu_slot_fails_rather_than_training_on_the_cpu(tmp_path, monkeypatch):
    import torch

    from ocrtune.data.synthetic import synthesize

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    data = tmp_path / "data"
    synthesize(data, n=2, seed=0, size=128)
    base = load_preset("cpu-demo", ["datasets.image_size=128", "dataloader.batch_size=2",
                                    "dataloader.num_workers=0"]).preset.model_dump(mode="json")
    spec = TrialSpec(name="g", params={LR: 1e-3}, epochs=1, metric="hmean", base=base, preset="cpu-demo",
                     data=str(data), objective=None)
    spec_path = tmp_path / "trial" / "spec.json"
    spec_path.parent.mkdir()
    spec_path.write_text(json.dumps(spec.to_json()))
    monkeypatch.setenv(SLOT_GPU_ENV, "0")
    with pytest.raises(InputError, match="accelerator=gpu"):
        run_training(spec, spec_path)
    assert not (tmp_path / "trial" / "runs").exists()  # failed before any run directory, no CPU run
