"""Resource checks before a run: the memory estimate (how it scales, how close it is to a real
training's peak), what it refuses and suggests, free memory, and pretrained weights that cannot be
had here (refused in one line before the data is read or a run directory exists)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from ocrtune.errors import InputError
from ocrtune.presets.load import load_preset
from ocrtune.train import resources
from ocrtune.train.resources import (
    GB,
    Footprint,
    Settings,
    activation_bytes,
    estimate,
    host_free,
    refusal,
    steps_per_epoch,
    suggest,
)

REPO = Path(__file__).resolve().parents[1]
FP = Footprint(params=5_000_000, param_bytes=4, optimizer_states=2, activation_bytes=60 * 2**20, image_size=320)


@pytest.fixture(scope="module")
def demo():
    return load_preset("cpu-demo").preset


def test_activations_measured_scale_with_the_batch_and_the_pixel_count(demo):
    one = activation_bytes(demo, "32-true", 320, batch=1)
    assert one > 10 * 2**20  # a real model's activations, not a constant
    assert activation_bytes(demo, "32-true", 320, batch=2) == pytest.approx(2 * one, rel=0.01)
    assert activation_bytes(demo, "32-true", 640, batch=1) / one == pytest.approx(4.0, rel=0.1)
    # bf16 autocast keeps half-size copies for the convolutions: less than fp32, more than half of it
    half = activation_bytes(demo, "bf16-mixed", 320, batch=1)
    assert 0.4 * one < half < 0.95 * one


def test_the_estimate_scales_activations_and_loader_buffers_with_batch_and_image_size():
    base = Settings(batch_size=4, image_size=320, num_workers=2)
    e = estimate(FP, base)
    e2 = estimate(FP, replace(base, batch_size=8))
    assert e2.activations == pytest.approx(2 * e.activations, rel=1e-6)
    assert e2.loader == 2 * e.loader and e2.weights == e.weights
    e4 = estimate(FP, replace(base, image_size=640))
    assert e4.activations == pytest.approx(4 * e.activations, rel=1e-6)
    assert e4.loader == 4 * e.loader
    assert e.weights == 5_000_000 * 4 * 4  # parameters, gradients, two Adam states
    assert estimate(FP, base, processes=2).total == 2 * e.total  # DDP on CPU: every process on this machine


def test_suggestions_are_the_largest_settings_that_fit():
    s = Settings(batch_size=16, image_size=1024, num_workers=4)
    free = 3 * GB
    tip = suggest(FP, s, free)
    budget = free * resources.SUGGEST_HEADROOM
    assert tip.batch_size is not None and 1 <= tip.batch_size < 16
    assert estimate(FP, replace(s, batch_size=tip.batch_size)).total <= budget
    assert estimate(FP, replace(s, batch_size=tip.batch_size + 1)).total > budget
    assert tip.image_size is not None and tip.image_size % 32 == 0
    assert estimate(FP, replace(s, image_size=tip.image_size)).total <= budget
    assert estimate(FP, replace(s, image_size=tip.image_size + 32)).total > budget
    line = refusal(estimate(FP, s), free, "cpu", tip)
    assert f"--set dataloader.batch_size={tip.batch_size}" in line
    assert f"--set datasets.image_size={tip.image_size}" in line
    assert "--preset cpu-demo" in line and "--force" in line and "3.0 GB is free" in line
    nothing = suggest(FP, s, 10 * 2**20)  # not even one small image fits
    assert nothing.batch_size is None and nothing.image_size is None
    assert "try --preset cpu-demo" in refusal(estimate(FP, s), 10 * 2**20, "cpu", nothing)


def test_free_memory_is_mem_available_lowered_to_a_cgroup_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       32000000 kB\nMemAvailable:   20000000 kB\n")
    cg = tmp_path / "cgroup"
    cg.mkdir()
    assert host_free(meminfo, cg) == 20000000 * 1024
    (cg / "memory.max").write_text(f"{4 * GB}\n")
    (cg / "memory.current").write_text(f"{GB}\n")
    assert host_free(meminfo, cg) == 3 * GB
    (cg / "memory.max").write_text("max\n")
    assert host_free(meminfo, cg) == 20000000 * 1024
    assert host_free(tmp_path / "missing", cg) is None


def test_gpu_free_is_lowered_to_the_processs_share_of_a_shared_gpu(monkeypatch):
    """--trials-per-gpu caps each trial's allocator at its share: the memory check must compare
    the estimate with that share, not with the whole GPU's free memory (faked: no GPU here)."""
    import types

    import torch

    total, reserved = 140 * GB, 2 * GB
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (120 * GB, total))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i=0: types.SimpleNamespace(total_memory=total))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda i=0: reserved)
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda i=0: 1.0)
    assert resources.free_memory("cuda") == 120 * GB  # the GPU to itself: what is free
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda i=0: 0.25)
    assert resources.free_memory("cuda") == 35 * GB - reserved  # a quarter of 140 GB, less what it holds
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (10 * GB, total))
    assert resources.free_memory("cuda") == 10 * GB  # neighbours took more than their share: what is free


def test_steps_per_epoch_counts_as_lightning_does():
    assert steps_per_epoch(51, 4) == 13
    assert steps_per_epoch(51, 4, world_size=2) == 7  # 26 images per process
    assert steps_per_epoch(51, 4, limit=3) == 3
    assert steps_per_epoch(51, 4, limit=0.5) == 6


MEASURE = textwrap.dedent("""
    import json, resource, sys, torch
    from pathlib import Path
    torch.set_num_threads(1)
    from ocrtune.data.synthetic import synthesize
    from ocrtune.presets.load import load_preset
    from ocrtune.train.datamodule import DetectionDataset, collate, load_split
    from ocrtune.train.module import DBNetModule
    from ocrtune.train.resources import Settings, estimate, footprint
    from ocrtune.cpu_malloc import keep_large_blocks

    root = Path(sys.argv[1])
    heap = sys.argv[2] == "heap" and keep_large_blocks()  # what training on the CPU does
    preset = load_preset("cpu-demo").preset
    synthesize(root, n=6, seed=1, size=320, val_fraction=0.0)
    items, _ = load_split(root, "train")
    ds = DetectionDataset(items[:4], preset.datasets, train=True)
    batch = collate([ds[i] for i in range(4)])
    est = estimate(footprint(preset, "32-true"), Settings(4, 320, 0), heap=heap)
    module = DBNetModule(preset.model_dump(mode="json")).train()
    opt = torch.optim.AdamW(module.parameters())

    def status(field):
        return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(field))

    # the peak so far (data synthesis, imports) must not count: reset the high-water mark
    # (VmHWM) where the kernel allows it, else fall back to ru_maxrss
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        peak_of = lambda: status("VmHWM")
    except OSError:
        peak_of = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    base = status("VmRSS")
    for _ in range(5):
        loss = module.loss(module.model(batch["image"]), batch)["loss"]
        loss.backward(); opt.step(); opt.zero_grad()
    peak = peak_of()
    print(json.dumps({"estimate": est.weights + est.activations, "measured": peak - base}))
""")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmRSS from /proc")
@pytest.mark.parametrize("malloc", ["system", "heap"])
def test_the_estimate_is_near_the_peak_memory_of_real_cpu_demo_steps(tmp_path, malloc):
    """Measured once in a fresh process: training steps of cpu-demo (batch 4, 320 px) against the
    estimate for them (recorded: the estimate was 0.83x the measured growth of the process),
    with the C library's default and with freed activations kept in the heap, as training on
    the CPU keeps them (``cpu_malloc``)."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path / "data"), malloc], capture_output=True,
                         text=True, check=True, cwd=REPO)
    import json

    r = json.loads(out.stdout.strip().splitlines()[-1])
    print(malloc, r["estimate"] / r["measured"])
    assert 0.5 < r["estimate"] / r["measured"] < 2.5, r


def _tiny(tmp_path: Path) -> Path:
    from ocrtune.data.synthetic import synthesize

    root = tmp_path / "tiny"
    synthesize(root, n=2, seed=3, size=256, val_fraction=0.0)
    shutil.copytree(root / "images" / "train", root / "images" / "val", dirs_exist_ok=True)
    shutil.copy(root / "jsons" / "train.json", root / "jsons" / "val.json")
    return root


def test_a_run_that_needs_more_memory_than_is_free_is_refused_before_its_run_directory(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "free_memory", lambda device, index=None: 400 * 2**20)
    data = _tiny(tmp_path)
    runs = tmp_path / "runs"
    code, out, err = cli("train", "--preset", "cpu-demo", "--data", data, "--runs-dir", runs)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{REPO / 'presets' / 'cpu-demo.yaml'}:") or err.startswith("presets/cpu-demo.yaml:"), err
    assert "dataloader.batch_size: training needs ~" in err and "400 MB is free" in err
    assert "; try --set dataloader.batch_size=" in err and "--force trains anyway" in err
    assert "--preset cpu-demo" not in err  # already the small preset
    assert not runs.exists()


def test_force_trains_anyway_and_the_header_says_so(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "free_memory", lambda device, index=None: 50 * 2**20)
    data = _tiny(tmp_path)
    code, out, err = cli("train", "--preset", "cpu-demo", "--data", data, "--runs-dir", tmp_path / "runs",
                         "--epochs", "1", "--force", "--set", "datasets.image_size=256")
    assert code == 0, err
    header = err.splitlines()[0]
    run = next((tmp_path / "runs").iterdir())
    assert header.startswith(f"run {run}  |  cpu: ")
    assert "  |  32-true  |  2 train / 2 val images  |  1 step/epoch (batch 4)  |  1 epoch  |  RAM ~" in header
    assert header.endswith("MB free (over: --force)")
    # cpu-demo warms up for one epoch: the table says which lr that was and what it aims at
    assert "(warm-up)" in out and "epoch 1 warms up linearly towards the target 0.002" in out


# --- pretrained weights that cannot be had --------------------------------------------------

def test_unreachable_hub_weights_are_refused_before_data_or_model(tmp_path, monkeypatch):
    """The hub probe forced to fail (cache empty, connection refused): one located line, no data
    read (the --data folder does not exist), no model built, no run directory, no retries."""
    import socket

    import lightning  # noqa: F401  (imported before the clock starts: first imports are slow on CI)

    import ocrtune.model.encoder as encoder
    import ocrtune.model.weights as weights
    from ocrtune.train.fit import TrainOptions, fit

    attempts = []

    def refused(*a, **k):
        attempts.append(a)
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(weights, "_cached", lambda cfg: False)
    monkeypatch.setattr(socket, "create_connection", refused)
    monkeypatch.setattr(encoder, "_create", lambda *a, **k: pytest.fail("the model was built"))
    runs = tmp_path / "runs"
    with pytest.raises(InputError) as e:
        fit(load_preset("hybrid"), TrainOptions(data=tmp_path / "no-such-data", runs_dir=runs, progress=False))
    assert len(attempts) == 1  # one bounded probe, not a minute of the hub's retries
    line = str(e.value)
    assert line.startswith("presets/_receipt-b4.yaml:6:5 models.encoder.pretrained: ") or \
        line.startswith(f"{REPO / 'presets' / '_receipt-b4.yaml'}:6:5 models.encoder.pretrained: "), line
    assert "huggingface.co is not reachable (Connection refused)" in line
    assert "set models.encoder.pretrained_path" in line and "models.encoder.pretrained=false" in line
    assert not runs.exists()


@pytest.mark.slow
def test_train_offline_with_an_empty_cache_exits_2_at_once(tmp_path):
    """The real command in a fresh process: HF_HUB_OFFLINE=1 and empty caches. Refused by the
    check (its message), not by the hub after its retries (~55 s); no timing asserted."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "TORCH_HOME": str(tmp_path / "th"),
           "OCRTUNE_CACHE": str(tmp_path / "cache")}
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run([sys.executable, "-c", "from ocrtune.cli.app import main; main()", "train", "--preset",
                           "hybrid", "--runs-dir", str(tmp_path / "runs")], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "models.encoder.pretrained: pretrained: true, but the weights of 'efficientnet_b4' are not in the " \
           "local cache and HF_HUB_OFFLINE is set" in proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "cache").exists()  # no data built or read


def test_local_weights_or_no_pretraining_need_no_probe(monkeypatch):
    import ocrtune.model.weights as weights

    monkeypatch.setattr(weights, "unavailable_weights", lambda *a, **k: pytest.fail("probed"))
    hybrid = load_preset("hybrid", ["models.encoder.pretrained=false"]).preset
    resources.check_weights(hybrid)
    enc = hybrid.models.encoder.model_copy(update={"pretrained_path": "/somewhere/b4.safetensors"})
    resources.check_weights(hybrid.model_copy(update={"models": hybrid.models.model_copy(update={"encoder": enc})}))
