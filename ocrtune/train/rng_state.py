"""The random generators' states travel in the run's checkpoints, so a resumed run trains its
next epoch as an uninterrupted one would.

Order and augmentation come from ``EpochShuffle`` (seed and epoch alone); what else draws from
the global generators (Python ``random``, NumPy, torch on the CPU and each GPU) is saved with
every checkpoint and put back at the start of the first resumed epoch: put back earlier, the
resume's own set-up (building the model, starting loaders) would draw from it first.
"""

from __future__ import annotations

import random
from typing import Any

import lightning as L
import numpy as np
import torch


class RngState(L.Callback):
    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": _numpy_state(),
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = dict(state_dict)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        state, self._pending = self._pending, None
        if not state:
            return
        if "python" in state:
            random.setstate(_python_state(state["python"]))
        if "numpy" in state:
            name, keys, pos, has_gauss, gauss = state["numpy"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
        if "torch" in state:
            torch.set_rng_state(torch.as_tensor(state["torch"], dtype=torch.uint8).cpu())
        cuda = state.get("cuda")
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([torch.as_tensor(s, dtype=torch.uint8).cpu() for s in cuda])


def _numpy_state() -> list[Any]:
    """NumPy's legacy state as plain values: checkpoints may be loaded with ``weights_only``."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return [str(name), [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)]


def _python_state(s: Any) -> tuple[Any, ...]:
    """``random.setstate`` wants tuples; a checkpoint may hand back lists."""
    version, internal, gauss = s
    return (version, tuple(internal), gauss)
