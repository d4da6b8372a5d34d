"""Warm trials (a zygote forks each trial) against cold ones (a new process each): the same
process state and the same training results, failures that stay in their trial, a zygote that
dies or cannot start, GPUs shared by several slots, and the data memo the zygote fills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from ocrtune.errors import InputError
from ocrtune.presets.load import load_preset
from ocrtune.sweep.run import warm
from ocrtune.sweep.run.coordinator import Coordinator
from ocrtune.sweep.run.gpu_share import gpu_share, limit_gpu_memory
from ocrtune.sweep.run.launcher import ColdTrials, Slot, make_slots, trials_at_a_time
from ocrtune.sweep.run.liveness import pid_alive
from ocrtune.sweep.run.warm import MAX_RESTARTS, WarmTrials
from ocrtune.sweep.run.worker import WorkerSettings, run_trial, warm_spec
from ocrtune.sweep.store import Store
from ocrtune.sweep.types import Batch, SweepConfig, TrialSpec
from ocrtune.train.rundir import RunDir
from tests.sweep.helpers import LR, fake_nvidia_smi, one_line, sweep, wait_for

WOBJ = "tests.sweep.warm_objectives:"


def objective_config(objective: str, epochs: int = 1) -> SweepConfig:
    return SweepConfig(name="w", objective=objective, epochs=epochs, metric="hmean", base={}, preset="x")


def started(trials: WarmTrials) -> WarmTrials:
    trials.begin()
    trials.prepare(threading.Event())
    assert trials.zygote is not None and trials.zygote.state == "ready", trials.zygote and trials.zygote.failure
    return trials


def queue(*params: dict) -> Store:
    store = Store.open(f"w-{uuid.uuid4().hex[:8]}", f"memory:{uuid.uuid4().hex}", create=True)
    plan = store.add_plan(Batch(tuple(params), 0, False, "test"))
    for slot in range(len(params)):
        store.enqueue(plan, slot)
    return store


def facts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start_facts(trials, tmp_path: Path, name: str, env: dict) -> int | None:
    d = tmp_path / name
    d.mkdir()
    spec = TrialSpec(name=name, params={LR: 1e-3}, epochs=1, metric="hmean", base={}, objective=WOBJ + "facts")
    (d / "spec.json").write_text(json.dumps(spec.to_json()))
    return trials.start(d / "spec.json", env, d / "trial.log").wait(60)


def test_a_warm_trial_starts_like_a_new_process(tmp_path, monkeypatch):
    """Forked from a zygote that imported torch with one thread, a trial in a 2-thread GPU
    slot gets that slot's environment, 2 torch threads, its own session, the zygote as the
    parent it dies with, and random generators seeded afresh (as a new process's are), not
    copies of the zygote's that would make every trial draw the same numbers."""
    log = tmp_path / "facts.jsonl"
    monkeypatch.setenv("OCRTUNE_TEST_FACTS", str(log))
    zygote_env = {**Slot("zygote").env(), "OMP_NUM_THREADS": "1"}
    trials = started(WarmTrials(warm_spec(objective_config(WOBJ + "facts"), None), zygote_env, pytest.fail))
    try:
        env = {**Slot("gpu3", gpu="3", memory_fraction=0.475).env(), "OMP_NUM_THREADS": "2"}
        assert start_facts(trials, tmp_path, "warm", env) == 0
        assert start_facts(trials, tmp_path, "warm2", env) == 0
        zygote = trials.zygote.pid
    finally:
        trials.close()
    assert start_facts(ColdTrials(), tmp_path, "cold", env) == 0
    warm_run, warm_again, cold_run = facts(log)
    assert warm_run["ppid"] == zygote and warm_run["parent_env"] == str(zygote) != cold_run["parent_env"]
    assert warm_run["pgid"] == warm_run["sid"] == warm_run["pid"]  # own session, terminated as a group
    for run in (warm_run, cold_run):
        assert (run["threads"], run["omp"], run["gpu"], run["fraction"], run["cwd"]) == (2, "2", "3", "0.4750", os.getcwd())
    assert warm_run["torch_draw"] != warm_again["torch_draw"]
    assert not pid_alive(zygote)  # closed with its pool


@pytest.mark.slow
def test_warm_trials_equal_cold_runs_and_outlive_failing_ones(tmp_path):
    """One zygote runs a trial that fails after changing process state (threads, seeds, env,
    a module's function), one whose training diverges, one that calls os._exit, then two
    real trainings: each is recorded as what it was, and the trainings' every epoch figure
    equals cold runs' with the same seeds."""
    from ocrtune.data.synthetic import synthesize

    data = tmp_path / "data"
    synthesize(data, n=4, seed=0, size=128)
    base = load_preset("cpu-demo", ["datasets.image_size=64", "dataloader.batch_size=2",
                                    "dataloader.num_workers=0"]).preset.model_dump(mode="json")
    train = SweepConfig(name="w", epochs=2, metric="val_loss", base=base, preset="cpu-demo", data=str(data))
    store = queue({LR: 1e-3}, {LR: 1e6}, {LR: 1e-3}, {LR: 1e-3}, {LR: 3e-3}, {LR: 1e-3}, {LR: 3e-3})
    settings = WorkerSettings(tmp_path / "sweep", poll_s=0.05)
    kinds: list[str] = []
    trials = started(WarmTrials(warm_spec(train, None), Slot("zygote").env(), pytest.fail))
    start = trials.start

    def spied(*a):
        child = start(*a)
        kinds.append(type(child).__name__)
        return child

    trials.start = spied
    zygote = trials.zygote.pid
    outs = []
    try:
        for config, launcher in ((objective_config(WOBJ + "mess_then_raise"), trials), (train, trials),
                                 (objective_config(WOBJ + "exits"), trials), (train, trials), (train, trials),
                                 (train, ColdTrials()), (train, ColdTrials())):
            outs.append(run_trial(store, config, store.claim(), Slot("cpu0"), settings, threading.Event(),
                                  trials=launcher))
        assert trials.zygote.pid == zygote and kinds == ["WarmChild"] * 5  # never restarted, never cold
    finally:
        trials.close()
    assert [o.status for o in outs] == ["failed", "diverged", "failed", "completed", "completed", "completed",
                                        "completed"], [o.error for o in outs]
    assert "left a mess behind" in outs[0].error and "training loss became nan" in outs[1].error
    assert outs[2].error.startswith("trial process exited with code 3 and no result")
    stored = {t.number: t for t in store.trials()}
    assert [stored[i].status for i in range(7)] == [o.status for o in outs]

    def figures(number: int) -> list[dict]:
        rows = RunDir(Path(stored[number].attrs["run_dir"])).read_metrics()
        return [{k: v for k, v in r.items() if "time" not in k and "mem" not in k} for r in rows]

    for warm_trial, cold_trial in ((3, 5), (4, 6)):
        assert outs[warm_trial].score == outs[cold_trial].score is not None
        assert figures(warm_trial) == figures(cold_trial) and len(figures(warm_trial)) == 2
        assert stored[warm_trial].attrs["run_dir"] != stored[cold_trial].attrs["run_dir"]
    assert figures(3) != figures(4)  # the two learning rates trained differently


def test_a_dead_zygote_is_replaced_and_its_running_trial_requeued(tmp_path, monkeypatch):
    monkeypatch.setenv("OCRTUNE_TEST_SLEEP", "1.0")
    warnings: list[str] = []
    trials = started(WarmTrials(warm_spec(objective_config("tests.sweep_objectives:logged"), None),
                                Slot("zygote").env(), warnings.append))
    store = queue({LR: 5e-4}, {LR: 1e-3})
    config = objective_config("tests.sweep_objectives:logged", epochs=5)
    settings = WorkerSettings(tmp_path, poll_s=0.05)
    try:
        first = trials.zygote.pid
        box: dict = {}
        trial = store.claim()
        th = threading.Thread(target=lambda: box.update(out=run_trial(store, config, trial, Slot("cpu0"), settings,
                                                                      threading.Event(), trials=trials)))
        th.start()
        child = wait_for(lambda: store.trial(trial.trial_id).attrs.get("child_pid"), what="the trial's pid")
        os.kill(first, signal.SIGKILL)  # as the OOM killer would
        th.join(30)
        assert not th.is_alive() and box["out"].status == "interrupted"  # re-queued by the coordinator
        assert not pid_alive(child)  # the kernel ended it with its zygote
        trials.prepare(threading.Event())
        assert trials.zygote.state == "ready" and trials.zygote.pid != first and trials.restarts == 1
        monkeypatch.setenv("OCRTUNE_TEST_SLEEP", "0")
        out = run_trial(store, config, store.claim(), Slot("cpu0"), settings, threading.Event(), trials=trials)
        assert out.status == "completed" and warnings == []
        for _ in range(MAX_RESTARTS):  # one that keeps dying ends on cold processes, said once
            os.kill(trials.zygote.pid, signal.SIGKILL)
            wait_for(lambda: trials.zygote.state == "gone", what="the zygote to die")
            trials.prepare(threading.Event())
        assert trials.cold and len(warnings) == 1 and f"died {MAX_RESTARTS + 1} times" in warnings[0]
        assert "as --cold-trials does" in warnings[0]
    finally:
        trials.close()


@pytest.mark.parametrize("command, why", [
    ([sys.executable, "-c", "import sys; print('no torch here', file=sys.stderr); sys.exit(3)"], "no torch here"),
    ([sys.executable, "-c", "import time; time.sleep(60)"], "did not start within 1s"),
])
def test_a_zygote_that_cannot_start_leaves_the_pool_on_cold_processes(tmp_path, monkeypatch, command, why):
    from ocrtune.sweep.prepare import SweepRequest, prepare

    monkeypatch.setattr(warm, "zygote_command", lambda: command)
    monkeypatch.setattr(warm, "START_TIMEOUT_S", 1.0)
    cfg = prepare(SweepRequest(strategy="grid", range_text="1e-4,1e-3", points=4, name=f"c-{uuid.uuid4().hex[:8]}",
                               objective="tests.sweep_objectives:curve_only"), load_preset("cpu-demo").preset)
    store = Store.open(cfg.name, f"memory:{uuid.uuid4().hex}", create=True)
    events: list[tuple[str, dict]] = []
    coord = Coordinator(store, cfg, [Slot("cpu0"), Slot("cpu1")], WorkerSettings(tmp_path, poll_s=0.05),
                        on_event=lambda kind, data: events.append((kind, dict(data))))
    summary = coord.run()
    assert [t.status for t in summary.trials] == ["completed"] * 4
    warned = [d["error"] for kind, d in events if kind == "warning"]
    assert len(warned) == 1 and why in warned[0] and "running each trial as its own process" in warned[0]
    assert not [d for kind, d in events if kind == "error"]


def test_cold_trials_run_as_new_processes_and_warm_ones_share_a_zygote(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")
    args = ("--objective", WOBJ + "facts", "--strategy", "grid", "--range", "1e-4,1e-3", "--points", "2")
    for mode in ("cold", "warm"):
        monkeypatch.setenv("OCRTUNE_TEST_FACTS", str(tmp_path / f"{mode}.jsonl"))
        code, s, err = sweep(cli, tmp_path, *args, "--name", mode, *(["--cold-trials"] if mode == "cold" else []))
        assert code == 0 and [t["status"] for t in s["trials"]] == ["completed"] * 2, err
    cold, warm_runs = facts(tmp_path / "cold.jsonl"), facts(tmp_path / "warm.jsonl")
    assert [r["ppid"] for r in cold] == [os.getpid()] * 2  # this process (the CLI runs in it) started each
    zygotes = {r["ppid"] for r in warm_runs}
    assert len(zygotes) == 1 and os.getpid() not in zygotes and len({r["pid"] for r in warm_runs}) == 2
    assert not pid_alive(zygotes.pop())  # gone with the sweep


def test_trials_per_gpu_share_each_gpu(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")
    monkeypatch.setenv("OCRTUNE_TEST_SLEEP", "0.4")
    monkeypatch.setenv("OCRTUNE_TEST_FACTS", str(tmp_path / "gpu.jsonl"))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_nvidia_smi(tmp_path, monkeypatch, 0, 1)
    code, s, err = sweep(cli, tmp_path, "--objective", WOBJ + "shared_gpu", "--strategy", "grid", "--range",
                         "1e-4,2e-3", "--points", "8", "--gpus", "0,1", "--trials-per-gpu", "2", "--epochs", "2")
    assert code == 0 and [t["status"] for t in s["trials"]] == ["completed"] * 8, err
    assert {t["slot"] for t in s["trials"]} <= {"gpu0.0", "gpu0.1", "gpu1.0", "gpu1.1"}
    log = facts(tmp_path / "gpu.jsonl")
    assert {r["fraction"] for r in log} == {"0.4750"}  # each trial may use its half (less the contexts' share)
    for gpu in ("0", "1"):
        running, most = 0, 0
        for r in sorted((r for r in log if r["gpu"] == gpu), key=lambda r: (r["t"], r["event"] == "start")):
            running += 1 if r["event"] == "start" else -1
            most = max(most, running)
        assert most == 2, gpu  # two trials at once on each GPU, never three


def test_trials_per_gpu_slots(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_nvidia_smi(tmp_path, monkeypatch, 0, 1)
    slots = make_slots("0,1", trials_at_a_time("0,1", None, 2), cpus=16)
    assert [(s.name, s.gpu, s.threads, s.memory_fraction) for s in slots] == [
        ("gpu0.0", "0", 4, 0.475), ("gpu0.1", "0", 4, 0.475), ("gpu1.0", "1", 4, 0.475), ("gpu1.1", "1", 4, 0.475)]
    assert make_slots("0,1", trials_at_a_time("0,1", None, 3))[0].memory_fraction == 0.3167
    assert make_slots("0,1", None)[0].memory_fraction is None  # a GPU to itself: no cap
    assert trials_at_a_time("0", 2, 2) == 2 and trials_at_a_time(None, 3, None) == 3
    with pytest.raises(InputError, match="needs --gpus"):
        trials_at_a_time(None, None, 2)
    with pytest.raises(InputError, match="--parallel 3 says otherwise"):
        trials_at_a_time("0", 3, 2)


def test_trials_per_gpu_is_checked_before_anything_starts(cli, tmp_path):
    code, _, err = sweep(cli, tmp_path, "--objective", "tests.sweep_objectives:curve_only", "--trials-per-gpu", "2")
    assert code == 2 and one_line(err).startswith("--trials-per-gpu: needs --gpus")
    code, _, err = cli("sweep", "worker", "--name", "x", "--runs-dir", tmp_path, "--trials-per-gpu", "0")
    assert code == 2 and "--trials-per-gpu" in err
    assert not (tmp_path / "runs").exists()


def test_a_shared_gpu_caps_the_trials_memory(monkeypatch):
    import torch

    got = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, d: got.append((f, d)))
    assert limit_gpu_memory(Slot("gpu0.1", gpu="0", memory_fraction=0.475).env({})) == 0.475 and got == [(0.475, 0)]
    assert limit_gpu_memory(Slot("gpu0", gpu="0").env({})) is None and len(got) == 1  # the GPU to itself
    assert gpu_share({"OCRTUNE_SLOT_GPU_FRACTION": "0.5"}) is None  # not a GPU slot
    with pytest.raises(InputError, match="fraction in"):
        gpu_share({"OCRTUNE_SLOT_GPU": "0", "OCRTUNE_SLOT_GPU_FRACTION": "2"})


def test_the_live_view_shows_which_slot_runs_which_trial():
    from ocrtune.cli.sweep import render
    from ocrtune.sweep.summary import summarize

    store = queue({LR: 1e-4}, {LR: 1e-3})
    for slot in ("gpu1.0", "gpu1.1"):
        t = store.claim({"slot": slot, "worker": "here"})
        if slot == "gpu1.0":
            store.set_attrs(t.trial_id, progress={"epoch": 1, "epochs": 3, "value": 0.25})
    lines = [str(getattr(p, "plain", "")) for p in render(summarize(store, objective_config("x:y", 3)), False).renderables]
    assert "gpu1.0 -> trial 0: epoch 1/3 hmean 0.25" in lines and "gpu1.1 -> trial 1: starting" in lines


def test_the_split_memo_rereads_only_changed_files(tmp_path):
    from ocrtune.data.synthetic import synthesize
    from ocrtune.train import split_memo
    from ocrtune.train.datamodule import load_split

    root = tmp_path / "data"
    synthesize(root, n=5, seed=0, size=96)
    reads: list[str] = []
    memo = split_memo.remembered(lambda r, s, labels=True: (reads.append(s), load_split.__wrapped__(r, s, labels))[1])
    memo(root, "train")
    memo(root, "train")
    assert reads == ["train"] * 2  # off (as in every command but a warm sweep worker): read every time
    split_memo.enable()
    try:
        items, _ = memo(root, "train")
        again, _ = memo(root, "train")
        assert again == items and reads == ["train"] * 3  # once while nothing changed
        memo(root, "val")
        assert reads[-1] == "val"
        image = items[0].path
        time.sleep(0.01)
        image.write_bytes(image.read_bytes())  # rewritten: a new mtime
        memo(root, "train")
        assert reads == ["train"] * 3 + ["val", "train"]
        ann = root / "jsons" / "train.json"
        doc = json.loads(ann.read_text())
        doc["images"].pop(items[0].path.name)
        ann.write_text(json.dumps(doc))
        fewer, _ = memo(root, "train")
        assert len(fewer) == len(items) - 1 and len(reads) == 6
        (root / "images" / "train" / "extra.jpg").write_bytes(image.read_bytes())  # the folder changed
        memo(root, "train")
        assert len(reads) == 7
        memo(root, "train")
        assert len(reads) == 7
    finally:
        split_memo.enable(False)


FOOTPRINT_ONCE = """
from ocrtune.presets.load import load_preset
from ocrtune.sweep.run import zygote
from ocrtune.train import resources
measured = []
real = resources.measure_footprint
resources.measure_footprint = lambda preset, precision: (measured.append(precision), real(preset, precision))[1]
zygote.measure_footprints(load_preset("cpu-demo", ["datasets.image_size=64"]).preset)  # in a fork
other_lr = load_preset("cpu-demo", ["datasets.image_size=64", "models.optimizer.lr=0.01"]).preset
got = resources.footprint(other_lr, "32-true")
assert measured == [] and got == real(other_lr, "32-true"), measured
resources.footprint(load_preset("cpu-demo", ["datasets.image_size=96"]).preset, "32-true")
assert measured == ["32-true"], measured
print("ok")
"""


def test_the_zygote_measures_a_models_memory_footprint_once():
    """Measured in a throwaway fork (it may start CUDA) and reused by every trial of the same
    network, size and precision whatever its learning rate; another image size is measured.
    Run apart: it turns the memo of ``train.resources`` on for the rest of the process."""
    done = subprocess.run([sys.executable, "-c", FOOTPRINT_ONCE], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
