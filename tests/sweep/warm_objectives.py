"""Objectives for the warm-trial tests (``--objective tests.sweep.warm_objectives:NAME``): what a
trial process looks like from inside, trials that leave a mess or exit hard, and trials that
share a GPU. Each writes one JSON line to ``$OCRTUNE_TEST_FACTS`` when that is set."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Mapping

import torch


def _record(row: Mapping[str, Any]) -> None:
    path = os.environ.get("OCRTUNE_TEST_FACTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(row)) + "\n")


def facts(params: Mapping[str, Any]) -> float:
    """The process as the trial sees it: ids, environment, torch threads, first random draws."""
    _record({
        "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "sid": os.getsid(0),
        "parent_env": os.environ.get("OCRTUNE_PARENT_PID"), "threads": torch.get_num_threads(),
        "omp": os.environ.get("OMP_NUM_THREADS"), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "fraction": os.environ.get("OCRTUNE_SLOT_GPU_FRACTION"), "leaked": os.environ.get("OCRTUNE_LEAKED"),
        "torch_draw": torch.rand(3).tolist(), "cwd": os.getcwd(),
    })
    return 0.5


def mess_then_raise(params: Mapping[str, Any]) -> float:
    """Changes every kind of process state a later trial in the same process would inherit,
    then fails."""
    import random

    import ocrtune.train.fit as fit_module

    torch.set_num_threads(3)
    torch.manual_seed(1234)
    random.seed(99)
    os.environ["OCRTUNE_LEAKED"] = "1"
    fit_module.fit = None  # a later training in this process could not run
    raise RuntimeError("left a mess behind")


def exits(params: Mapping[str, Any]) -> float:
    """Leaves at once, without a result or any clean-up."""
    os._exit(3)


def shared_gpu(params: Mapping[str, Any], *, epochs: int, report: Callable[..., None]) -> float:
    """Sleeps ``$OCRTUNE_TEST_SLEEP`` an epoch between a start and an end record with its GPU."""
    row = {"gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "fraction": os.environ.get("OCRTUNE_SLOT_GPU_FRACTION"),
           "lr": params["models.optimizer.lr"]}
    _record({**row, "event": "start", "t": time.time()})
    for e in range(1, epochs + 1):
        time.sleep(float(os.environ.get("OCRTUNE_TEST_SLEEP", "0")))
        report(e, 0.5, train_loss=1.0 / e)
    _record({**row, "event": "end", "t": time.time()})
    return 0.5
