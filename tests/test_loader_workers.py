"""``dataloader.num_workers``: a number as it is, ``auto`` from the cores this process may use
(a sweep slot's share first); samples do not depend on it."""

from __future__ import annotations

import os

import pytest

from ocrtune.errors import InputError
from ocrtune.presets.load import load_preset
from ocrtune.train.loader_workers import AUTO_MAX, SLOT_CORES_ENV, loader_workers, process_cores


@pytest.mark.parametrize("cores, workers",
                         [(1, 1), (2, 1), (3, 1), (4, 2), (8, 6), (14, 12), (16, 12), (128, AUTO_MAX)])
def test_auto_is_the_cores_less_two_between_one_and_the_cap(cores, workers):
    assert loader_workers("auto", cores) == workers


def test_a_number_is_taken_as_it_is():
    assert loader_workers(0, 16) == 0 and loader_workers(20, 2) == 20 and loader_workers(4, 16, processes=4) == 4


def test_the_training_processes_of_one_machine_share_its_cores():
    assert loader_workers("auto", 16, processes=4) == 2  # DDP on 4 GPUs: 4 cores each, less two
    assert loader_workers("auto", 16, processes=1) == 12
    assert loader_workers("auto", 4, processes=8) == 1  # never none


def test_the_cores_are_the_sweep_slots_share_else_the_affinity(monkeypatch):
    monkeypatch.setenv(SLOT_CORES_ENV, "6")
    assert process_cores() == 6 and loader_workers("auto") == 4
    for unusable in ("0", "", "x"):
        monkeypatch.setenv(SLOT_CORES_ENV, unusable)
        assert process_cores() == len(os.sched_getaffinity(0))
    monkeypatch.delenv(SLOT_CORES_ENV)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # torch's threads, not the cores: a user's setting for them
    assert process_cores() == len(os.sched_getaffinity(0))


def test_the_gpu_presets_say_auto_and_a_bad_value_is_one_located_line():
    assert load_preset("baseline").preset.dataloader.num_workers == "auto"
    assert load_preset("cpu-demo").preset.dataloader.num_workers == 0
    assert load_preset("baseline", ["dataloader.num_workers=3"]).preset.dataloader.num_workers == 3
    assert load_preset("baseline", ["dataloader.num_workers=256"]).preset.dataloader.num_workers == 256
    assert load_preset("baseline", ["dataloader.num_workers=4.0"]).preset.dataloader.num_workers == 4  # spreadsheets
    for bad, shown in (("many", "'many'"), ("-1", "-1"), ("2.5", "2.5"), ("true", "true"), ("257", "257")):
        with pytest.raises(InputError) as e:
            load_preset("baseline", [f"dataloader.num_workers={bad}"])
        assert str(e.value) == (f"--set dataloader.num_workers: must be auto or a whole number from 0 to 256 "
                                f"(got {shown})")


def test_a_bad_value_in_a_preset_file_is_located(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("extends: baseline\ndataloader:\n  num_workers: half\n")
    with pytest.raises(InputError) as e:
        load_preset(path)
    assert e.value.lines == [f"{path}:3:3 dataloader.num_workers: must be auto or a whole number from 0 to 256 "
                             f"(got 'half')"]


def test_a_run_says_and_records_what_auto_came_to(cli, tmp_path, monkeypatch):
    import json

    from tests._runs import TINY, receipts, train_argv

    data = receipts(tmp_path / "data", n=2, seed=3, val_is_train=True)
    monkeypatch.setenv(SLOT_CORES_ENV, "3")  # as a sweep slot of 3 cores: 1 worker
    code, out, err = cli(*train_argv(data, tmp_path / "runs", [*TINY, "dataloader.num_workers=auto"], "--epochs", "1"))
    assert code == 0, err
    assert "|  1 loader worker (auto)" in out + err
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "summary.json").read_text())["loader_workers"] == 1
    assert "num_workers: auto" in (run / "config.yaml").read_text()  # the setting, not the count, is kept


@pytest.mark.slow
def test_ddp_ranks_on_one_machine_share_its_cores(tmp_path):
    """Two CPU ranks (Lightning re-runs the command for rank 1): a slot of 8 cores gives each
    rank 8 / 2 - 2 = 2 workers; and no warning about logging without sync_dist (the val
    scores are gathered from every rank before they are logged)."""
    import csv
    import json
    import math
    import shutil
    import sys

    from tests._runs import TINY, receipts, sets

    data = receipts(tmp_path / "data", n=2, seed=3, val_is_train=True)
    env = {**os.environ, SLOT_CORES_ENV: "8"}
    cmd = [sys.executable, "-m", "ocrtune", "train", "--preset", "cpu-demo",
           *sets([*TINY, "dataloader.num_workers=auto"]), "--data", str(data), "--runs-dir", str(tmp_path / "runs"),
           "--epochs", "1", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--val-loss"]
    code, out = _two_ranks(cmd, env, tmp_path)
    if code is None:  # a hang: once in about 60 runs on CI, never reproduced here; its stacks are kept
        import warnings

        warnings.warn(f"the two-rank run hung and was run again; its stacks:\n{out[-8000:]}")
        shutil.rmtree(tmp_path / "runs", ignore_errors=True)
        code, out = _two_ranks(cmd, env, tmp_path)
        assert code is not None, f"the two-rank run hung twice; the stacks of its processes:\n{out[-12000:]}"
    assert code == 0, out[-2000:]
    assert "|  2 loader workers (auto)" in out
    assert "sync_dist" not in out
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "summary.json").read_text())["loader_workers"] == 2
    (row,) = csv.DictReader((run / "metrics.csv").open())
    assert math.isfinite(float(row["val_loss"]))  # the images' losses gathered from both ranks


def _two_ranks(cmd: list[str], env: dict[str, str], cwd, timeout: float = 120) -> tuple[int | None, str]:
    """Run a DDP command (rank 0 starts rank 1, both start loader workers, all in one process
    group); its exit code and output, or None and every process's Python stacks after a hang
    (faulthandler prints them on SIGABRT), so a hang in CI says where it was."""
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, env={**env, "PYTHONFAULTHANDLER": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=cwd, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGABRT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        return None, out
