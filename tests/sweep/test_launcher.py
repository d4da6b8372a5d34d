"""Slots, GPU pinning and --gpus against the GPUs present, process identity and group termination."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.sweep.run.launcher import Child, Slot, gpu_ids, make_slots
from ocrtune.sweep.run.liveness import host_id, me, pid_alive, process_start
from tests.sweep.helpers import OBJ, fake_nvidia_smi, one_line, sweep


def test_slots(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fake_nvidia_smi(tmp_path, monkeypatch, 0, 1, 2)
    assert make_slots(None, None) == [Slot("cpu0")]
    assert make_slots(None, 2, cpus=8) == [Slot("cpu0", threads=4), Slot("cpu1", threads=4)]
    assert make_slots(None, 0) == []
    assert [(s.name, s.gpu) for s in make_slots("0,2", None)] == [("gpu0", "0"), ("gpu2", "2")]
    assert [s.threads for s in make_slots("0,2", None, cpus=16)] == [8, 8]  # GPU slots share the cores too
    assert [s.threads for s in make_slots("0,1", 2, cpus=16)] == [4] * 4
    assert make_slots("0", None, cpus=16)[0].threads is None  # one slot: all cores
    assert [s.gpu for s in make_slots("1", 2)] == ["1", "1"]
    for bad in ("0,0", "a,b", ","):
        with pytest.raises(InputError, match="--gpus"):
            make_slots(bad, None)
    with pytest.raises(InputError, match="--parallel"):
        make_slots(None, -1)


def test_slot_env_pins_gpu_and_shares_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = Slot("gpu3", gpu="3").env({"PATH": "/bin"})
    assert env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "3", "OCRTUNE_SLOT_GPU": "3"}
    assert "OCRTUNE_SLOT_GPU" not in Slot("cpu0").env({"OCRTUNE_SLOT_GPU": "3"})  # not inherited by CPU slots
    assert Slot("cpu0", threads=2).env({})["OMP_NUM_THREADS"] == "2"
    assert Slot("cpu0", threads=2).env({"OMP_NUM_THREADS": "1"})["OMP_NUM_THREADS"] == "1"  # the user's choice wins
    # the slot's cores, which dataloader.num_workers: auto divides, whatever OMP_NUM_THREADS says
    assert Slot("gpu0.1", gpu="0", threads=8).env({"OMP_NUM_THREADS": "1"})["OCRTUNE_SLOT_CORES"] == "8"
    assert "OCRTUNE_SLOT_CORES" not in Slot("gpu0", gpu="0").env({"OCRTUNE_SLOT_CORES": "8"})  # one slot: all cores


def test_gpus_all(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert gpu_ids("all") == ["4", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(OcrtuneError, match="leaves no GPU visible"):
        gpu_ids("all")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(OcrtuneError, match="no GPU found"):
        gpu_ids("all")


def test_without_nvidia_smi_torch_counts_the_gpus(monkeypatch):
    """Containers without nvidia-smi (and ROCm machines) still have GPUs torch can see."""
    import torch

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert gpu_ids("all") == ["0", "1"] and gpu_ids("1") == ["1"]
    with pytest.raises(InputError, match="GPU 2 is not present: this machine has GPUs 0, 1"):
        gpu_ids("2")


def test_gpu_indices_are_within_the_visible_gpus(monkeypatch):
    """Under a scheduler's CUDA_VISIBLE_DEVICES, --gpus 0,1 means the first two of those GPUs."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert [s.gpu for s in make_slots("0,1", None)] == ["2", "3"] == [s.gpu for s in make_slots("all", None)]
    assert gpu_ids("1") == ["3"]
    with pytest.raises(InputError, match="--gpus: GPU 2 is not visible: CUDA_VISIBLE_DEVICES=2,3 gives indices 0-1"):
        gpu_ids("0,2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa11,GPU-bb22")
    assert gpu_ids("1") == ["GPU-bb22"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,-1,2")  # CUDA ignores everything from -1 on
    assert gpu_ids("all") == ["1"]


def test_gpu_indices_must_exist_without_cuda_visible_devices(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no nvidia-smi: a machine without GPUs
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "curve_only", "--range", "1e-4,1e-2", "--gpus", "0")
    assert code == 2 and one_line(err).startswith("--gpus: no GPU found") and not (tmp_path / "runs").exists()
    fake_nvidia_smi(tmp_path, monkeypatch, 0, 1)
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "curve_only", "--range", "1e-4,1e-2", "--gpus", "5")
    assert code == 2 and one_line(err) == "--gpus: GPU 5 is not present: this machine has GPUs 0, 1 (got '5')"
    assert gpu_ids("1,0") == ["1", "0"]
    assert not (tmp_path / "runs").exists()


def test_process_identity():
    ident = me()
    assert ident["host"] == host_id() and ident["pid"] == os.getpid()
    assert pid_alive(os.getpid(), process_start(os.getpid()))
    assert not pid_alive(os.getpid(), (process_start(os.getpid()) or 0) + 1)  # a reused pid is not ours
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    for _ in range(100):
        if not pid_alive(zombie.pid):
            break
        time.sleep(0.05)
    assert not pid_alive(zombie.pid)  # exited but not yet reaped
    zombie.wait()
    assert not pid_alive(zombie.pid)


def test_child_terminate_stops_the_whole_group(tmp_path):
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print(p.pid, flush=True); time.sleep(60)")
    child = Child([sys.executable, "-c", code], dict(os.environ), tmp_path / "log.txt")
    for _ in range(200):
        text = (tmp_path / "log.txt").read_text()
        if text.strip():
            break
        time.sleep(0.05)
    grandchild = int(text.split()[0])
    assert child.wait(0.1) is None
    rc = child.terminate(grace=5)
    assert rc != 0 and not pid_alive(child.pid)
    for _ in range(100):
        if not pid_alive(grandchild):
            break
        time.sleep(0.05)
    assert not pid_alive(grandchild)
