"""A run's status is always true: a run recorded as ``running`` whose process died shows
``killed`` (this host) or ``lost`` (another machine, silent), with the command that resumes
it; reading never rewrites a run; a run still training cannot be resumed twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocrtune.procs import Owner, pid_alive, process_start
from ocrtune.train.rundir import SILENT_AFTER_S, Heartbeat, RunDir, new_run_dir, run_state

CLI = "from ocrtune.cli.app import main; main()"


def _run(tmp_path: Path, owner: dict | None, status: str = "running", last_ckpt: bool = True) -> RunDir:
    run = RunDir(new_run_dir(tmp_path, "r"))
    run.config.write_text("seed: 1\n")
    summary = {"status": status, "epochs_completed": 1, "max_epochs": 5, "best_epoch": None, "best": None}
    if owner is not None:
        summary["owner"] = owner
    run.write_summary(summary)
    if last_ckpt:
        run.last_ckpt.write_bytes(b"ckpt")
    return run


def _age(run: RunDir, seconds: float) -> None:
    then = time.time() - seconds
    for p in (run.summary_path, run.metrics, run.heartbeat):
        if p.exists():
            os.utime(p, (then, then))


def test_a_run_whose_process_is_gone_shows_killed_with_the_resume_command(tmp_path, cli):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run = _run(tmp_path, Owner(Owner.me().host, proc.pid, process_start(proc.pid)).to_json())
    assert run_state(run, run.read_summary()).status == "running"
    proc.kill()
    proc.wait()
    before = run.summary_path.read_bytes(), run.summary_path.stat().st_mtime_ns

    code, out, err = cli("runs", "list", "--runs-dir", tmp_path)
    assert code == 0 and " killed " in out and " running " not in out
    assert f"{run.path.name} (killed): continue with: ocrtune train --resume {run.path}" in err
    code, out, err = cli("runs", "show", run.path.name, "--runs-dir", tmp_path)
    assert code == 0 and "killed (recorded: running)" in out
    assert f"continue with: ocrtune train --resume {run.path}" in err
    code, out, _ = cli("runs", "list", "--runs-dir", tmp_path, "--json")
    [record] = json.loads(out)
    assert record["status"] == "killed" and record["recorded_status"] == "running"
    assert record["resume"] == f"ocrtune train --resume {run.path}"
    # reading derived it: the run's own summary is untouched
    assert (run.summary_path.read_bytes(), run.summary_path.stat().st_mtime_ns) == before


def test_a_reused_pid_does_not_keep_a_dead_run_running(tmp_path):
    me = Owner.me().to_json()
    run = _run(tmp_path, {**me, "pid_start": (me["pid_start"] or 0) - 1})  # our pid, another start time
    assert run_state(run, run.read_summary()).status == "killed"


def test_another_machines_run_is_lost_only_after_its_silence(tmp_path, cli):
    run = _run(tmp_path, {"host": "gpu-box-7/0123abcd/4026531836", "pid": 4242, "pid_start": 1.0})
    Heartbeat(run.heartbeat).start().stop()
    assert run_state(run, run.read_summary()).status == "running"  # still beating
    _age(run, SILENT_AFTER_S - 60)
    assert run_state(run, run.read_summary()).status == "running"
    _age(run, SILENT_AFTER_S + 60)
    state = run_state(run, run.read_summary())
    assert state.status == "lost" and "gpu-box-7" in state.reason and "11 min" in state.reason
    assert state.resume == f"ocrtune train --resume {run.path}"
    code, out, err = cli("runs", "list", "--runs-dir", tmp_path)
    assert code == 0 and " lost " in out and "(lost): continue with" in err


def test_no_resume_command_without_last_ckpt_or_epochs_left(tmp_path):
    gone = {"host": Owner.me().host, "pid": 2**22 + 12345, "pid_start": 1.0}
    assert not pid_alive(gone["pid"])
    assert run_state(_run(tmp_path, gone, last_ckpt=False), {"status": "running", "owner": gone}).resume is None
    done = _run(tmp_path, None, status="interrupted")
    summary = {**done.read_summary(), "epochs_completed": 5}
    assert run_state(done, summary).resume is None
    assert run_state(done, done.read_summary()).resume == f"ocrtune train --resume {done.path}"
    # runs from before owners were recorded keep their recorded status
    assert run_state(_run(tmp_path, None), {"status": "running"}).status == "running"


def test_resuming_a_run_that_is_still_training_is_refused(tmp_path, cli):
    run = _run(tmp_path, Owner.me().to_json())  # this very process trains it
    code, _, err = cli("train", "--resume", run.path, "--runs-dir", tmp_path)
    assert code == 2 and err.startswith(f"{run.path}: this run is still training (pid {os.getpid()} on this host)")


def test_the_heartbeat_beats_until_stopped(tmp_path):
    beat = Heartbeat(tmp_path / "heartbeat", every=0.05).start()
    try:
        first = (tmp_path / "heartbeat").stat().st_mtime_ns
        deadline = time.monotonic() + 5
        while (tmp_path / "heartbeat").stat().st_mtime_ns == first and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (tmp_path / "heartbeat").stat().st_mtime_ns > first
    finally:
        beat.stop()
    stopped = (tmp_path / "heartbeat").stat().st_mtime_ns
    time.sleep(0.2)
    assert (tmp_path / "heartbeat").stat().st_mtime_ns == stopped


# ``ocrtune train`` whose loader workers (two, one training image each per epoch) hang in their
# second epoch's item: a busy worker never reaches torch's own parent check (between items).
TRAIN_STUCK = """
import sys, time
import ocrtune.train.datamodule as dm
item, calls = dm.DetectionDataset.__getitem__, [0]
def stuck_from_the_second_epoch(self, key):
    calls[0] += self.train
    if calls[0] > 1:
        time.sleep(120)
    return item(self, key)
dm.DetectionDataset.__getitem__ = stuck_from_the_second_epoch
from ocrtune.cli.app import main
sys.argv[0] = "ocrtune"
main()
"""


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        try:
            stat = (d / "stat").read_text() if d.name.isdigit() else ""
        except OSError:
            continue
        if stat and int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
            out.append(int(d.name))
    return out


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline, alive = time.monotonic() + seconds, pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if pid_alive(p)]
    return alive


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signals and /proc are Linux only")
def test_a_sigkilled_training_leaves_no_workers_and_shows_killed_with_how_to_resume(tmp_path, cli):
    from ocrtune.data.synthetic import synthesize

    synthesize(tmp_path / "data", n=3, seed=2, size=128, val_fraction=0.34)  # 2 train, 1 val
    sets = ["datasets.image_size=64", "dataloader.batch_size=1", "dataloader.num_workers=2"]
    argv = [sys.executable, "-c", TRAIN_STUCK, "train", "--preset", "cpu-demo", *sum((["--set", s] for s in sets), []),
            "--data", str(tmp_path / "data"), "--runs-dir", str(tmp_path / "runs"), "--epochs", "5", "--quiet"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not list((tmp_path / "runs").glob("*/checkpoints/last.ckpt")):
            time.sleep(0.1)
        [last] = list((tmp_path / "runs").glob("*/checkpoints/last.ckpt"))
        run = RunDir(last.parent.parent)
        time.sleep(1.0)  # the second epoch starts; its items hang
        workers = _children(proc.pid)
        assert len(workers) == 4, workers  # persistent train and val workers
        summary = run.read_summary()
        assert summary["status"] == "running" and summary["owner"]["pid"] == proc.pid and run.heartbeat.is_file()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert _wait_gone(workers, 3) == []
    finally:
        proc.kill()
        proc.wait()
        for p in workers:  # never leave one behind, even when the test fails
            if pid_alive(p):
                os.kill(p, signal.SIGKILL)
    code, out, err = cli("runs", "show", run.path.name, "--runs-dir", tmp_path / "runs")
    assert code == 0 and "killed (recorded: running)" in out
    assert f"continue with: ocrtune train --resume {run.path}" in err
