"""An ocrtune training checkpoint read as weights: the preset it trained with and its tensors.

Fine-tuning (``train --init``) and ``models.encoder.pretrained_path`` both start a model from a
checkpoint that ``ocrtune train`` wrote. They only need its weights and the preset that says
which encoder those weights belong to, so the file is read with ``weights_only=True`` (no code
runs from it) and everything else Lightning keeps there (optimizer, loops) is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ocrtune.errors import InputError
from ocrtune.train.rundir import CONFIG, find_run

PREFIX = "model."  # DBNetModule keeps the DBNet as ``self.model``
EMA_PREFIX = "ema.module."  # ... and, when trainer.ema is on, its moving average as ``self.ema.module``
ENCODER_PREFIX = "model.encoder.model."  # ... whose encoder keeps the timm body as ``self.model``
DEFAULT_ENCODER = "resnet18"  # EncoderConfig's default, for presets that leave the name out


@dataclass(frozen=True)
class TrainedWeights:
    """The weights of one ocrtune checkpoint, with the preset they were trained with."""

    path: Path
    preset: dict[str, Any]
    state_dict: dict[str, Tensor]

    @property
    def encoder_name(self) -> str:
        return str(_encoder_cfg(self.preset).get("model_name") or DEFAULT_ENCODER)

    @property
    def out_indices(self) -> list[int]:
        return [int(i) for i in _encoder_cfg(self.preset).get("out_indices") or []]

    def encoder_state(self) -> dict[str, Tensor]:
        """The encoder's tensors named as in the timm features model (``conv1.weight`` ...)."""
        n = len(ENCODER_PREFIX)
        return {k[n:]: v for k, v in self.state_dict.items() if k.startswith(ENCODER_PREFIX)}


def _encoder_cfg(preset: Mapping[str, Any]) -> Mapping[str, Any]:
    models = preset.get("models")
    enc = models.get("encoder") if isinstance(models, Mapping) else None
    return enc if isinstance(enc, Mapping) else {}


def is_ocrtune_checkpoint(obj: object) -> bool:
    """A Lightning checkpoint of ``DBNetModule``: its preset in the hyper-parameters."""
    if not isinstance(obj, Mapping):
        return False
    hp = obj.get("hyper_parameters")
    return isinstance(hp, Mapping) and isinstance(hp.get("preset"), Mapping) and isinstance(
        obj.get("state_dict"), Mapping)


def from_object(obj: object, path: Path, key: str | None = None) -> TrainedWeights:
    """``obj`` as read from ``path``; an ``InputError`` located at the file unless it is ours."""
    if not is_ocrtune_checkpoint(obj):
        raise InputError("not an ocrtune checkpoint (no preset in its hyper-parameters)", file=str(path), key=key)
    assert isinstance(obj, Mapping)
    sd = scored_weights({k: v for k, v in obj["state_dict"].items() if isinstance(k, str) and isinstance(v, Tensor)})
    if not sd:
        raise InputError("checkpoint holds no weights", file=str(path), key=key)
    return TrainedWeights(path, dict(obj["hyper_parameters"]["preset"]), sd)


def scored_weights(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The DBNet weights a checkpoint was scored with, named ``model.*``: its moving average
    where it kept one (what validation chose the checkpoint by), else its trained weights."""
    ema = {PREFIX + k[len(EMA_PREFIX):]: v for k, v in state_dict.items() if k.startswith(EMA_PREFIX)}
    if not ema:
        return dict(state_dict)
    rest = {k: v for k, v in state_dict.items() if not k.startswith((PREFIX, EMA_PREFIX))}
    return {**rest, **ema}


def trained_weights(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The weights the optimizer trained, without the moving average kept beside them."""
    return {k: v for k, v in state_dict.items() if not k.startswith(EMA_PREFIX)}


def load_object(path: Path, key: str | None = None) -> object:
    """``torch.load`` without running code from the file; unreadable files are bad input."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt, truncated, not a torch file, or holding objects we do not load
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError(f"cannot read checkpoint ({type(e).__name__}: {first})", file=str(path), key=key) from None


def read_checkpoint(path: Path, key: str | None = None) -> TrainedWeights:
    return from_object(load_object(path, key), path, key)


def find_checkpoint(ref: str | Path, runs_dir: Path = Path("runs"), key: str | None = None) -> Path:
    """A ``.ckpt`` file as given, or a run's best.ckpt (else last.ckpt), as ``evaluate`` picks."""
    p = Path(ref)
    if p.is_file():
        return p
    if p.suffix == ".ckpt" and not p.exists():  # a checkpoint file, not a run's name
        raise InputError("no such checkpoint file", file=str(p), key=key)
    if p.is_dir() and not (p / CONFIG).is_file() and not (p / "summary.json").is_file():
        raise InputError("not a run directory (no config.yaml) and not a checkpoint file", file=str(p), key=key)
    try:
        run = find_run(ref, runs_dir)
    except InputError as e:  # "nope: run not found": say which option named it
        if key is None:
            raise
        raise InputError(problems=[replace(p, key=f"{key} {p.key}" if p.key else key) for p in e.problems]) from None
    if run.default_ckpt.is_file():
        return run.default_ckpt
    raise InputError("run has no checkpoint (best.ckpt or last.ckpt)", file=str(run.checkpoints), key=key)
