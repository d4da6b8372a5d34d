"""What a training run needs before its first step, checked before the damage is done.

A preset sized for a GPU (EfficientNet-B4 at 1024 px, batch 8) grew to 20 GB on a CPU machine
and was killed by the kernel with nothing said; a preset asking for hub weights on a machine
without hub access spent a minute in retries. Both are known before any data is read or any
step runs: the weights' availability from the cache or a bounded probe, the memory from the
model's own shapes.

Memory is estimated, not guessed: the model is built on the meta device and run once on a fake
(shape-only) batch with autograd's saved-tensor hooks, which see exactly the tensors a backward
pass keeps. Everything else is arithmetic on those measurements (pure functions below), so the
suggestions (a batch size or image size that fits) cost nothing to compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ocrtune.errors import InputError
from ocrtune.train.loader_workers import loader_workers

if TYPE_CHECKING:
    from ocrtune.presets.schema import Pad, Preset

GB = 1024**3
# Backward holds the gradients of the activations next to the saved ones, a layer at a time.
# With 1.5 the estimate was 0.83-0.99x the measured growth of a CPU training process for cpu-demo
# (320 px batch 2 and 4, 640 px batch 4) and 1.26x for EfficientNet-B4 (512 px, batch 2).
BACKWARD_FACTOR = 1.5
# On the CPU, freed activations stay in the process's heap (``ocrtune.cpu_malloc``) and are not
# always reused exactly: measured at 1024 px, batch 4, the peak above the data grew 1.9x.
HEAP_FACTOR = 2.0
PREFETCH_FACTOR = 2  # torch DataLoader's default batches in flight per worker
TARGET_MAPS = 4  # prob_map, prob_mask, thresh_map, thresh_mask: float32 (S, S) each
SLOW_RUN_S = 3600.0  # on a CPU, a run this long at the measured pace gets a warning
SUGGEST_HEADROOM = 0.9  # suggested settings leave a tenth of the free memory for everything else
_BYTES = {"32-true": 4, "32": 4, "16-mixed": 4, "bf16-mixed": 4, "bf16-true": 2}


@dataclass(frozen=True)
class Footprint:
    """Measured once per preset and precision; everything else scales from it."""

    params: int  # number of trainable parameters
    param_bytes: int  # bytes per parameter (2 for bf16-true, else 4)
    optimizer_states: int  # copies per parameter kept beside it: Adam's 2 states, +1 for an EMA
    activation_bytes: int  # saved for backward, for ONE image at ``image_size``
    image_size: int


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one training process needs, by part."""

    weights: int  # parameters + gradients + optimizer state
    activations: int  # the batch's saved activations and their gradients during backward
    loader: int  # batches held by loader workers (prefetch) and the one being trained on
    batch_size: int
    image_size: int
    processes: int = 1  # DDP on CPU: one process per device, all on this machine

    @property
    def device_bytes(self) -> int:
        """What the model needs on the accelerator (or in RAM on CPU), all processes."""
        return (self.weights + self.activations) * self.processes

    @property
    def host_bytes(self) -> int:
        return self.loader * self.processes

    @property
    def total(self) -> int:
        return self.device_bytes + self.host_bytes

    def parts(self) -> str:
        per = f" per process x{self.processes}" if self.processes > 1 else ""
        return (f"weights+grads+optimizer {gb(self.weights)}, activations {gb(self.activations)} for "
                f"{self.batch_size} images at {self.image_size} px, loader buffers {gb(self.loader)}{per}")


@dataclass(frozen=True)
class Settings:
    """The preset values the estimate depends on."""

    batch_size: int
    image_size: int
    num_workers: int


@dataclass(frozen=True)
class Suggestion:
    batch_size: int | None  # largest batch size that fits at the preset's image size
    image_size: int | None  # largest image size (multiple of 32) that fits at the preset's batch size
    batch_bytes: int | None = None
    image_bytes: int | None = None


@dataclass(frozen=True)
class MemoryCheck:
    """The outcome shown in the run's header line (and in a refusal)."""

    estimate: MemoryEstimate
    free: int | None  # None: unknown here (no /proc/meminfo)
    device: str  # "cpu" or "cuda"
    over: bool = False  # the estimate exceeds what is free (trained anyway: --force)

    def line(self) -> str:
        where = "GPU memory" if self.device == "cuda" else "RAM"
        need = self.estimate.device_bytes if self.device == "cuda" else self.estimate.total
        free = f" of {gb(self.free)} free" if self.free is not None else ""
        return f"{where} ~{gb(need)}{free}"


def gb(n: int | float) -> str:
    return f"{n / GB:.1f} GB" if n >= GB else f"{n / 2**20:.0f} MB"


# --- pure arithmetic ------------------------------------------------------------------------

def estimate(fp: Footprint, s: Settings, processes: int = 1, heap: bool = False) -> MemoryEstimate:
    """Memory for ``s`` from a footprint measured at ``fp.image_size``: activations scale with
    the batch and with the pixel count (image size squared); ``heap``: freed activations stay
    in the process (``HEAP_FACTOR``)."""
    pixels = (s.image_size / fp.image_size) ** 2
    activations = fp.activation_bytes * s.batch_size * pixels * BACKWARD_FACTOR * (HEAP_FACTOR if heap else 1.0)
    weights = fp.params * fp.param_bytes * (2 + fp.optimizer_states)  # params, grads, states
    sample = s.image_size**2 * 4 * (3 + TARGET_MAPS)  # the image and its targets, float32
    in_flight = s.num_workers * PREFETCH_FACTOR + 1
    return MemoryEstimate(int(weights), int(activations), int(sample * s.batch_size * in_flight),
                          s.batch_size, s.image_size, processes)


def _need(est: MemoryEstimate, device: str) -> int:
    return est.device_bytes if device == "cuda" else est.total


def suggest(fp: Footprint, s: Settings, free: int, device: str = "cpu", processes: int = 1,
            heap: bool = False) -> Suggestion:
    """The largest batch size at the preset's image size, and the largest image size (a multiple
    of 32) at the preset's batch size, that fit in ``SUGGEST_HEADROOM`` of ``free``."""
    budget = free * SUGGEST_HEADROOM

    def fits(x: Settings) -> bool:
        return _need(estimate(fp, x, processes, heap), device) <= budget

    batch = next((b for b in range(s.batch_size - 1, 0, -1) if fits(replace(s, batch_size=b))), None)
    size = next((z for z in range(s.image_size - 32, 31, -32) if fits(replace(s, image_size=z))), None)
    return Suggestion(
        batch, size,
        _need(estimate(fp, replace(s, batch_size=batch), processes, heap), device) if batch else None,
        _need(estimate(fp, replace(s, image_size=size), processes, heap), device) if size else None,
    )


def refusal(est: MemoryEstimate, free: int, device: str, tip: Suggestion, small_preset: str | None = "cpu-demo") -> str:
    """One line: what is needed, what is free, what would fit, and how to train anyway."""
    where = "GPU memory" if device == "cuda" else "RAM"
    options = []
    if tip.batch_size:
        options.append(f"--set dataloader.batch_size={tip.batch_size} (~{gb(tip.batch_bytes or 0)})")
    if tip.image_size:
        options.append(f"--set datasets.image_size={tip.image_size} (~{gb(tip.image_bytes or 0)})")
    if device == "cpu" and small_preset:
        options.append(f"--preset {small_preset}")
    fix = " or ".join(options) if options else "a machine with more memory"
    return (f"training needs ~{gb(_need(est, device))} of {where} ({est.parts()}) but {gb(free)} is free; "
            f"try {fix}; --force trains anyway")


# --- measurements (torch, /proc) ------------------------------------------------------------

def activation_bytes(preset: Preset, precision: str, image_size: int | None = None, batch: int = 1) -> int:
    """Bytes autograd saves for backward in one training forward pass of ``batch`` images at
    ``image_size`` (default: the preset's), the weights it saves excluded."""
    return _measure(preset, precision, image_size or preset.datasets.image_size, batch)[1]


def footprint(preset: Preset, precision: str) -> Footprint:
    """The preset's model at its image size, one image: measured, or remembered where
    ``remember_footprints`` turned the memo on."""
    key = footprint_key(preset, precision)
    if _remembered is not None and key in _remembered:
        return _remembered[key]
    fp = measure_footprint(preset, precision)
    if _remembered is not None:
        _remembered[key] = fp
    return fp


def measure_footprint(preset: Preset, precision: str) -> Footprint:
    """The measurement itself (about a second for EfficientNet-B4 at 1024 px)."""
    params, saved = _measure(preset, precision, preset.datasets.image_size, 1)
    states = 2 + (1 if preset.trainer.ema.enabled else 0)
    return Footprint(params, _BYTES.get(precision, 4), states, saved, preset.datasets.image_size)


# A warm trial server measures each model once for all its trials (sweep/run/zygote.py): the
# footprint depends only on ``footprint_key``, which a sweep over the learning rate never
# changes. Off (None) everywhere else, so every other command measures as before.
_remembered: dict[tuple[str, int, str], Footprint] | None = None


def footprint_key(preset: Preset, precision: str) -> tuple[str, int, str]:
    """What the measurement reads: the network (encoder, decoder, head), the optimizer's kind,
    the image size, the precision and whether an EMA is kept; not the learning rate, schedule
    or loss weights."""
    import json

    m = preset.models
    net = json.dumps([m.encoder.model_dump(mode="json"), m.decoder.model_dump(mode="json"),
                      m.head.model_dump(mode="json"), m.optimizer.name, preset.trainer.ema.enabled],
                     sort_keys=True)
    return net, preset.datasets.image_size, precision


def remember_footprints(known: dict[str, Footprint] | None = None, preset: Preset | None = None) -> None:
    """Turn the memo on in this process (and the forks it makes); ``known`` maps precisions to
    footprints of ``preset`` measured elsewhere (a throwaway fork)."""
    global _remembered
    if _remembered is None:
        _remembered = {}
    if known and preset is not None:
        _remembered.update({footprint_key(preset, p): fp for p, fp in known.items()})


def _measure(preset: Preset, precision: str, size: int, batch: int) -> tuple[int, int]:
    """(trainable parameters, saved-for-backward bytes). The model is built on the meta device
    (no weights loaded or allocated) and run under a fake-tensor mode, which computes shapes
    only: about a second for EfficientNet-B4 at 1024 px."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from ocrtune.model.dbnet import build_dbnet

    enc = preset.models.encoder.model_copy(update={"pretrained": False, "pretrained_path": None})
    with torch.device("meta"):
        model = build_dbnet(preset.models.model_copy(update={"encoder": enc}))
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    saved: dict[int, int] = {}
    weights: set[int] = set()  # convolutions save their weights too: those are counted as weights

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage._cdata not in weights:
            saved[storage._cdata] = storage.nbytes()
        return t

    half = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = model.to_empty(device="cpu").train()
        if precision == "bf16-true":
            model = model.to(torch.bfloat16)
        weights.update(p.untyped_storage()._cdata for p in model.parameters())
        x = torch.empty(batch, 3, size, size, dtype=next(model.parameters()).dtype)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=half or torch.bfloat16, enabled=half is not None):
            model(x)
    return params, sum(saved.values())


def free_memory(device: str, index: int | None = None) -> int | None:
    """Free bytes where the model will live: ``torch.cuda.mem_get_info`` on a GPU; on the CPU
    MemAvailable from /proc/meminfo, lowered to a cgroup's limit when one is set (containers)."""
    if device == "cuda":
        return gpu_free(index or 0)
    return host_free()


def gpu_free(index: int = 0) -> int:
    """The GPU's free bytes, lowered to this process's share where its allocator is capped
    (``--trials-per-gpu``: the sweep slot sets the per-process memory fraction before training),
    so a trial is checked against the memory it may use, not against what its neighbours
    have not taken yet."""
    import torch

    free = int(torch.cuda.mem_get_info(index)[0])
    fraction = torch.cuda.get_per_process_memory_fraction(index)
    if fraction < 1:
        total = torch.cuda.get_device_properties(index).total_memory
        free = min(free, max(int(fraction * total) - torch.cuda.memory_reserved(index), 0))
    return free


def host_free(meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    try:
        fields = dict(line.split(":", 1) for line in meminfo.read_text().splitlines() if ":" in line)
        free = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            limit = (cgroup / limit_file).read_text().strip()
            usage = int((cgroup / usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            free = min(free, max(int(limit) - usage, 0))
        break
    return free


def check_memory(preset: Preset, precision: str, device: str, processes: int = 1, force: bool = False,
                 where: dict[str, Any] | None = None, index: int | None = None,
                 small_preset: str | None = "cpu-demo") -> MemoryCheck | None:
    """Refuse (``InputError``, exit 2) a run whose estimate exceeds the free memory, unless
    ``force``. None when the model cannot be measured this way (the run then starts unchecked)."""
    try:
        fp = footprint(preset, precision)
    except InputError:
        raise
    except Exception:  # an exotic backbone the fake pass cannot run: not a reason to refuse
        return None
    workers = loader_workers(preset.dataloader.num_workers, processes=processes)
    s = Settings(preset.dataloader.batch_size, preset.datasets.image_size, workers)
    cpu_processes = processes if device == "cpu" else 1
    from ocrtune.cpu_malloc import enabled

    heap = device == "cpu" and enabled()  # training keeps freed activations in the heap there
    est = estimate(fp, s, cpu_processes, heap)
    free = free_memory(device, index)
    if free is None or _need(est, device) <= free:
        return MemoryCheck(est, free, device)
    if force:
        return MemoryCheck(est, free, device, over=True)
    raise InputError(refusal(est, free, device, suggest(fp, s, free, device, cpu_processes, heap), small_preset),
                     key="dataloader.batch_size", **(where or {}))


# --- weights --------------------------------------------------------------------------------

def check_weights(preset: Preset, where: dict[str, Any] | None = None) -> None:
    """``pretrained: true`` needs hub weights: refused in one line when they cannot be had here
    (cache, else a bounded probe of the hub), instead of a minute of hub retries and exit 1."""
    enc = preset.models.encoder
    if enc.pretrained and not enc.pretrained_path:
        check_hub_weights(enc.model_name, where)


def check_hub_weights(model_name: str, where: dict[str, Any] | None = None) -> None:
    """The refusal itself, shared by training and the sweep's check of every encoder it sweeps."""
    from ocrtune.model import weights

    why = weights.unavailable_weights(model_name)
    if why is not None:
        raise InputError(f"pretrained: true, but {why}; set models.encoder.pretrained_path to a local weights "
                         "file, or --set models.encoder.pretrained=false to train from scratch",
                         key="models.encoder.pretrained", **(where or {}))


# --- the run's header -----------------------------------------------------------------------

@dataclass(frozen=True)
class RunHeader:
    """What a run is about to do, said once before its first step."""

    run_dir: Path
    device: str
    precision: str
    n_train: int
    n_val: int
    batch_size: int
    steps_per_epoch: int
    epochs: int
    epochs_done: int = 0  # > 0 when resuming
    lr: float | None = None  # the optimizer's target lr
    warmup_epochs: int = 0  # epochs 1..warmup_epochs train at a lower, rising lr
    memory: str | None = None  # "RAM ~1.2 GB of 22.0 GB free"
    memory_over: bool = False  # the estimate exceeds what is free (trained anyway: --force)
    ema_decay: float | None = None  # validation scores a moving average of the weights
    pad: Pad = "square"  # training batches: "square", or only as far as the batch needs ("batch")
    schedule: str | None = None  # a cosine the run stops before it anneals (schedule.schedule_note)
    auto_workers: int | None = None  # what dataloader.num_workers: auto came to on this machine

    def line(self) -> str:
        epochs = (f"epochs {self.epochs_done + 1}-{self.epochs} of {self.epochs}" if self.epochs_done
                  else _count(self.epochs, "epoch"))
        parts = [f"run {self.run_dir}", self.device, self.precision,
                 f"{self.n_train} train / {self.n_val} val images",
                 f"{_count(self.steps_per_epoch, 'step')}/epoch (batch {self.batch_size}"
                 + (", padded to the batch)" if self.pad == "batch" else ")"), epochs]
        if self.auto_workers is not None:
            parts.append(f"{_count(self.auto_workers, 'loader worker')} (auto)")
        if self.ema_decay is not None:
            parts.append(f"scores the EMA of weights (decay {self.ema_decay:g})")
        if self.memory:
            parts.append(self.memory + (" (over: --force)" if self.memory_over else ""))
        return "  |  ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def steps_per_epoch(n_train: int, batch_size: int, world_size: int = 1, limit: int | float | None = None) -> int:
    """Training batches per epoch and process, as Lightning counts them: a distributed sampler
    gives each of ``world_size`` processes ceil(n / world) images; ``limit_train_batches`` caps
    them (an int: batches, a float: a fraction)."""
    per_rank = math.ceil(n_train / max(world_size, 1))
    steps = math.ceil(per_rank / batch_size)
    if isinstance(limit, float) and limit <= 1.0:
        return int(steps * limit)
    if limit is not None:
        return min(steps, int(limit))
    return steps


def warmup_note(lr: float | None, warmup_epochs: int) -> str | None:
    """What the lr column of warm-up epochs means, or None without warm-up."""
    if not warmup_epochs or lr is None:
        return None
    which = "epoch 1 warms" if warmup_epochs == 1 else f"epochs 1-{warmup_epochs} warm"
    return f"lr: the rate each epoch trained at; {which} up linearly towards the target {lr:g}"


# --- pace -----------------------------------------------------------------------------------

def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 20 min``, ``2.5 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        h, m = divmod(int(round(seconds / 60)), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{seconds / 86400:.1f} days"


def cpu_bf16_units(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The CPU's bf16 matrix units that oneDNN dispatches to (``amx_bf16``, ``avx512_bf16``),
    read from the kernel's flags; () where there are none or the file is not there (not Linux)."""
    try:
        with open(cpuinfo) as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return ()
    return tuple(u for u in ("amx_bf16", "avx512_bf16") if u in flags)


def pace_remedies(image_size: int, encoder: str, small_encoder: str, precision: str = "32-true",
                  bf16_units: Sequence[str] = ()) -> tuple[str, ...]:
    """What would make a slow CPU run shorter: bf16-mixed for an fp32 run where the CPU has AMX
    (measured there: docs/benchmarks.md), and cpu-demo's encoder only to runs not on it already
    (a cpu-demo run told to use cpu-demo's encoder learns nothing)."""
    remedies = ["a GPU"]
    if precision == "32-true" and "amx_bf16" in bf16_units:
        remedies.append("--set trainer.precision=bf16-mixed (this CPU has amx_bf16: docs/training.md, Precision)")
    remedies.append(f"a smaller datasets.image_size (now {image_size})")
    if encoder != small_encoder:
        remedies.append(f"cpu-demo's small encoder (models.encoder.model_name={small_encoder})")
    return tuple(remedies)


def pace_line(seconds_per_step: float, batch_size: int, steps_per_epoch: int, epochs_left: int,
              remedies: Sequence[str] = ()) -> str:
    """The CPU warning: measured seconds per step, and what that makes an epoch and the run."""
    epoch = seconds_per_step * steps_per_epoch
    line = (f"slow on this CPU: {seconds_per_step:.1f} s/step ({batch_size / seconds_per_step:.2f} images/s): "
            f"~{duration(epoch)} an epoch of {steps_per_epoch} steps, ~{duration(epoch * epochs_left)} for the "
            f"{epochs_left} epochs left (validation not included)")
    if not remedies:
        return line
    *most, last = remedies
    return f"{line}; shorter: {', '.join(most) + ' or ' if most else ''}{last}"
