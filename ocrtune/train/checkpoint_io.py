"""How a run's checkpoints reach the disk: written beside their final name and renamed.

Lightning's own writer stages a checkpoint in the temp folder (``$TMPDIR``) and moves it into
place, which is a copy when the two are on different file systems: a full runs disk then left
a truncated ``best.ckpt`` under its final name, and a small ``$TMPDIR`` failed training even
with the runs disk nearly empty. Here the file is written next to its final place
(``write_bytes_atomic``): a failed write leaves the previous checkpoint whole and raises an
``OSError`` naming the checkpoint.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from ocrtune.train.rundir import write_bytes_atomic


class RunCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        write_bytes_atomic(Path(path), buf.getbuffer())
