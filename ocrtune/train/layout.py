"""The model's memory layout for a device and precision, one rule for training and inference."""

from __future__ import annotations


def channels_last(device_type: str, precision: str) -> bool:
    """Whether the model runs channels-last: on a GPU under mixed precision (tensor cores want
    it), and always on the CPU, where oneDNN's convolutions take 0.8x the time in fp32 and, in
    bf16, reach the AMX units (2.5x with both: docs/benchmarks.md, "A CPU training step:
    layout and precision"). Results agree with NCHW to float rounding."""
    return device_type == "cpu" or (device_type == "cuda" and precision != "32-true")
