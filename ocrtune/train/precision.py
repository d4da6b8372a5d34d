"""How the model runs on a device: its compute precision and memory layout, one rule for
training and inference, so that ``evaluate`` scores the maps a run was validated on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from ocrtune.presets.schema import Preset


def precision_for(preset: Preset, accelerator: str) -> str:
    """Lightning's precision for the preset's ``trainer.precision``: ``auto`` is bf16-mixed on a
    GPU that has bf16, else fp32 (on the CPU too: bf16 there is a choice, docs/training.md)."""
    p = preset.trainer.precision
    if p != "auto":
        return "32-true" if p == "32" else p
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def bf16_inference(device_type: str, preset: Preset) -> bool:
    """Whether inference autocasts to bf16: where training on that device does, so a run's
    validation and ``evaluate`` compute the same maps (on a GPU, only where it has bf16)."""
    precision = precision_for(preset, device_type)
    if device_type == "cuda":
        return precision != "32-true" and torch.cuda.is_bf16_supported()
    return precision.startswith("bf16")


def channels_last(device_type: str, precision: str) -> bool:
    """Whether the model runs channels-last: on a GPU under mixed precision (tensor cores want
    it), and always on the CPU, where oneDNN's convolutions take 0.8x the time in fp32 and, in
    bf16, reach the AMX units (2.5x with both: docs/benchmarks.md, "A CPU training step:
    layout and precision"). Results agree with NCHW to float rounding."""
    return device_type == "cpu" or (device_type == "cuda" and precision != "32-true")
