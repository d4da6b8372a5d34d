"""Regressions from the sweep review, one section per finding (numbered as in the review)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ocrtune.errors import InputError
from ocrtune.sweep.launcher import SLOT_GPU_ENV, gpu_ids
from tests.test_sweep_launcher import fake_nvidia_smi

LR = "models.optimizer.lr"
OBJ = "tests.sweep_objectives:"


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")


def sweep(cli, tmp_path, *args):
    code, out, err = cli("sweep", "--runs-dir", tmp_path / "runs", "--json", *args)
    return code, (json.loads(out) if out.strip().startswith("{") else None), err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# --- 3. --gpus against the GPUs present; GPU slots never train on the CPU ----------------------


def test_gpu_indices_must_exist_without_cuda_visible_devices(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))  # no nvidia-smi: a machine without GPUs
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "curve_only", "--range", "1e-4,1e-2", "--gpus", "0")
    assert code == 2 and one_line(err).startswith("--gpus: no NVIDIA GPU found") and not (tmp_path / "runs").exists()
    fake_nvidia_smi(tmp_path, monkeypatch, 0, 1)
    code, _, err = sweep(cli, tmp_path, "--objective", OBJ + "curve_only", "--range", "1e-4,1e-2", "--gpus", "5")
    assert code == 2 and one_line(err) == "--gpus: GPU 5 is not present: nvidia-smi lists GPUs 0, 1 (got '5')"
    assert gpu_ids("1,0") == ["1", "0"]
    assert not (tmp_path / "runs").exists()


def test_a_gpu_slot_fails_rather_than_training_on_the_cpu(tmp_path, monkeypatch):
    import torch

    from ocrtune.data.synthetic import synthesize
    from ocrtune.presets.load import load_preset
    from ocrtune.sweep.trial import run_training

    if torch.cuda.is_available():
        pytest.skip("needs a machine without a GPU")
    data = tmp_path / "data"
    synthesize(data, n=2, seed=0, size=128)
    base = load_preset("cpu-demo", ["datasets.image_size=128", "dataloader.batch_size=2",
                                    "dataloader.num_workers=0"]).preset.model_dump(mode="json")
    spec = {"objective": None, "params": {LR: 1e-3}, "epochs": 1, "metric": "hmean", "base": base,
            "preset": "cpu-demo", "data": str(data), "name": "g"}
    spec_path = tmp_path / "trial" / "spec.json"
    spec_path.parent.mkdir()
    spec_path.write_text(json.dumps(spec))
    monkeypatch.setenv(SLOT_GPU_ENV, "0")
    with pytest.raises(InputError, match="accelerator=gpu"):
        run_training(spec, spec_path)
    assert not (tmp_path / "trial" / "runs").exists()  # failed before any run directory, no CPU run
