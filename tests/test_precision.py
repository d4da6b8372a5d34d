"""How the model runs on a device (train/precision.py): the precision ``auto`` picks, where
inference autocasts to bf16 (where the run's training did, so evaluate scores what validation
scored), and where the model runs channels-last."""

from __future__ import annotations

import pytest
import torch

from ocrtune.presets.load import load_preset
from ocrtune.train.precision import bf16_inference, channels_last, precision_for


def _preset(precision: str):
    return load_preset("cpu-demo", [f"trainer.precision={precision}"]).preset


@pytest.mark.parametrize(("precision", "cpu", "bf16_on_cpu"), [
    ("auto", "32-true", False),  # bf16 on the CPU is a choice, not the default
    ("32-true", "32-true", False),
    ("bf16-mixed", "bf16-mixed", True),
    ("bf16-true", "bf16-true", True),
    ("16-mixed", "16-mixed", False),
])
def test_cpu_inference_runs_in_the_precision_the_run_trained_in(precision, cpu, bf16_on_cpu):
    preset = _preset(precision)
    assert precision_for(preset, "cpu") == cpu
    assert bf16_inference("cpu", preset) is bf16_on_cpu


def test_gpu_inference_autocasts_where_training_would(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert precision_for(_preset("auto"), "cuda") == "bf16-mixed"
    assert bf16_inference("cuda", _preset("auto")) and bf16_inference("cuda", _preset("16-mixed"))
    assert not bf16_inference("cuda", _preset("32-true"))  # validated in fp32: evaluated in fp32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert precision_for(_preset("auto"), "cuda") == "32-true"
    assert not bf16_inference("cuda", _preset("bf16-mixed"))


def test_channels_last_on_every_cpu_and_on_a_gpu_under_mixed_precision():
    assert channels_last("cpu", "32-true") and channels_last("cpu", "bf16-mixed")
    assert channels_last("cuda", "bf16-mixed") and channels_last("cuda", "16-mixed")
    assert not channels_last("cuda", "32-true")
