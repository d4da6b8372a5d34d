"""``fit``: train a preset into a run directory and return what happened.

Statuses: ``completed``; ``diverged`` (NaN/inf loss; sweeps score it worst); ``oom`` (with a
hint); ``interrupted`` (Ctrl-C; resumable from last.ckpt); ``failed`` (anything else, with the
error's last lines). Every outcome is written to ``summary.json`` before ``fit`` returns.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.presets.load import LoadedPreset
from ocrtune.presets.schema import Preset
from ocrtune.train.loader_workers import loader_workers
from ocrtune.train.precision import channels_last, precision_for
from ocrtune.train.rundir import (
    RunDir, best_row, check_not_running, find_run, new_run_dir, os_error_line, write_text_atomic,
)

if TYPE_CHECKING:
    from ocrtune.model.checkpoint import TrainedWeights
    from ocrtune.model.init_from import InitReport
    from ocrtune.train.datamodule import DetectionDataModule
    from ocrtune.train.resources import RunHeader

log = logging.getLogger("ocrtune.train")

LOGGERS = ("csv", "tensorboard", "wandb", "mlflow")


@dataclass
class RunResult:
    run_dir: Path
    status: str
    best_epoch: int | None
    best: dict[str, float | None]
    epochs: int
    wall_time_s: float
    device: str
    error: str | None = None
    hint: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    rank: int = 0  # > 0 in DDP child processes, which write and print nothing


@dataclass
class TrainOptions:
    """Run-level settings that are not part of the preset."""

    data: Path | None = None
    name: str | None = None
    runs_dir: Path = Path("runs")
    resume: str | None = None
    devices: str | int | None = None
    strategy: str | None = None
    num_nodes: int | None = None
    accelerator: str = "auto"
    logger: str = "csv"
    progress: bool = True
    val_loss: bool = False
    max_epochs: int | None = None
    limit_train_batches: int | float | None = None
    init: str | None = None  # a run or .ckpt whose matching weights start the model (fine-tuning)
    on_init: Callable[[InitReport], None] | None = None  # told what --init loaded, before training
    force: bool = False  # train even when the memory estimate exceeds what is free
    on_start: Callable[[RunHeader], None] | None = None  # told the run's header before the first step


def resolve_data_root(preset: Preset, data: Path | None) -> Path:
    """--data, else the preset's ``datasets.root``, else the cached synthetic receipts."""
    if data is not None:
        return Path(data)
    if preset.datasets.root:
        return Path(os.path.expanduser(preset.datasets.root))
    from ocrtune.data.synthetic import default_dataset

    log.info("no dataset given: using the embedded synthetic receipts")
    return default_dataset()


def load_data(preset: Preset, data: Path | None, *, num_workers: int = 0, val_targets: bool = False,
              pin_memory: bool = False) -> DetectionDataModule:
    """The data a run trains on, read before anything is written: the root resolved
    (``resolve_data_root``, made absolute) and the train/val annotations read, so bad data fails
    here. ``fit`` and the sweep's data checks both call this, so they cannot disagree on what
    counts as usable data. The module's ``datasets.root`` is the resolved root."""
    from ocrtune.train.datamodule import DetectionDataModule

    root = resolve_data_root(preset, data).resolve()
    datasets = preset.datasets.model_copy(update={"root": str(root)})
    dm = DetectionDataModule(root, datasets, preset.dataloader.batch_size, num_workers, val_targets=val_targets,
                             pin_memory=pin_memory, seed=preset.seed, pad=preset.dataloader.pad)
    dm.prepare()
    return dm


def preset_yaml(preset: Preset, header: str) -> str:
    from ocrtune.presets.write import dump

    return f"# {header}\n" + dump(preset.model_dump(mode="json"))


RUN_DIR_ENV = "OCRTUNE_RUN_DIR"  # hands rank 0's run directory to DDP child processes
RANK0_PID_ENV = "OCRTUNE_RANK0_PID"  # ... and its pid: they die with it (``die_with_parent``)


def _rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def fit(loaded: LoadedPreset | Preset | None, opts: TrainOptions) -> RunResult:
    """Train; always returns a result whose status is also in ``summary.json``.

    Everything that can be wrong with the input (preset, data, model name, accelerator,
    strategy) is checked before a run directory is created.
    """
    import lightning as L

    from ocrtune.train.checkpoint_io import RunCheckpointIO
    from ocrtune.train.module import DBNetModule, Diverged
    from ocrtune.train.recorder import RunRecorder
    from ocrtune.train.rng_state import RngState

    _check_logger(opts.logger)
    if loaded is None and not opts.resume:
        raise InputError("a preset is needed unless resuming a run", key="--preset")
    if opts.init and opts.resume:
        raise InputError("a resumed run continues its own weights; --init starts a new run", key="--init")
    preset = loaded.preset if isinstance(loaded, LoadedPreset) else loaded
    source = f"{loaded.name} ({loaded.path})" if isinstance(loaded, LoadedPreset) else "preset"
    resume_ckpt: Path | None = None
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    if opts.resume:
        run = find_run(opts.resume, opts.runs_dir)
        resume_ckpt = run.last_ckpt
        if not resume_ckpt.is_file():
            raise InputError("no last.ckpt to resume from", file=str(run.checkpoints))
        from ocrtune.presets.load import load_preset

        preset = load_preset(run.config).preset
        rows = [r for r in run.read_metrics() if r.get("epoch") is not None]
        summary = run.read_summary()
        check_not_running(run, summary)
        source = summary.get("preset", source)
        _check_more_epochs(run, summary, rows, opts.max_epochs or preset.trainer.max_epochs)
    init_weights = _init_source(preset, opts) if opts.init else None  # read and checked before any work
    _check_weights(_model_preset(preset, init_weights), loaded, resume_ckpt)  # before the data is read
    workers = loader_workers(preset.dataloader.num_workers)
    dm = load_data(preset, opts.data, num_workers=workers, val_targets=opts.val_loss,
                   pin_memory=torch.cuda.is_available())  # bad data fails here, before a run directory exists
    data_root = dm.root
    # config.yaml is the fully resolved preset: the data it trained on included, so resume and
    # evaluate find the same data without --data.
    preset = preset.model_copy(update={"datasets": preset.datasets.model_copy(update={"root": str(data_root)})})
    if opts.max_epochs is not None:
        preset = preset.model_copy(update={"trainer": preset.trainer.model_copy(update={"max_epochs": opts.max_epochs})})

    for noisy in ("lightning.pytorch", "lightning.fabric", "lightning"):
        # GPU/TPU availability banners and tips: our summary says what ran where.
        logging.getLogger(noisy).setLevel(logging.WARNING)
    accelerator = opts.accelerator
    precision = precision_for(preset, accelerator)
    for line in dm.problems[:20]:
        log.warning(line)
    L.seed_everything(preset.seed, workers=True, verbose=False)
    built = _model_preset(preset, init_weights)
    module = DBNetModule(built.model_dump(mode="json"), val_loss=opts.val_loss)  # bad model names fail here
    init_report = _init_module(module, init_weights, opts) if init_weights else None
    t = preset.trainer
    trainer_args = dict(
        max_epochs=t.max_epochs,
        accelerator=accelerator,
        devices=opts.devices if opts.devices is not None else t.devices,
        strategy=opts.strategy or t.strategy,
        num_nodes=opts.num_nodes or t.num_nodes,
        precision=precision,
    )
    probe = _check_trainer(trainer_args)
    if channels_last(probe.strategy.root_device.type, precision):
        module = module.to(memory_format=torch.channels_last)
    if probe.strategy.root_device.type == "cpu":
        from ocrtune.cpu_malloc import keep_large_blocks

        keep_large_blocks()  # about half a step's time at 1024 px went to mapping fresh pages

    if preset.dataloader.num_workers == "auto" and probe.num_devices > 1:  # the node's ranks share its cores
        dm.num_workers = loader_workers("auto", processes=probe.num_devices)
    child = _rank() > 0 and RUN_DIR_ENV in os.environ
    memory = None if child else _check_memory(preset, precision, probe, loaded, resume_ckpt, opts)
    if child:  # a DDP rank > 0: rank 0 owns the run directory and its files
        run = RunDir(Path(os.environ[RUN_DIR_ENV]))
        if os.environ.get(RANK0_PID_ENV, "").isdigit():
            from ocrtune.procs import die_with_parent

            die_with_parent(signal.SIGKILL, int(os.environ[RANK0_PID_ENV]))
    elif not opts.resume:
        name = opts.name or (loaded.name if isinstance(loaded, LoadedPreset) else "run")
        run = RunDir(new_run_dir(opts.runs_dir, name))
    if not child:
        header = f"resolved from {source}"
        if init_report:
            header += f"\n# weights initialised from {init_report.source}"
        write_text_atomic(run.config, preset_yaml(preset, header))
        os.environ[RUN_DIR_ENV] = str(run.path.resolve())
        os.environ[RANK0_PID_ENV] = str(os.getpid())

    device = _device_name(accelerator)
    summary.update(
        {
            "status": "running",
            "preset": source,
            "data": str(data_root),
            "n_train": dm.n_train,
            "n_val": dm.n_val,
            "loader_workers": dm.num_workers,
            "device": device,
            "precision": precision,
            "max_epochs": t.max_epochs,
            "started": summary.get("started") or time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    if init_report:
        summary["init"] = init_report.record()
    if preset.trainer.ema.enabled:  # what every val score and best.ckpt's choice are of
        e = preset.trainer.ema
        summary["scored"] = f"EMA of the weights (decay {e.decay:g}{', warm-up' if e.warmup else ''})"
    recorder = RunRecorder(run, summary, rows, enabled=not child)
    recorder.begin()
    if not child and opts.on_start is not None:
        opts.on_start(_header(run, device, precision, dm, preset, probe, opts, memory, len(rows)))
    start = time.perf_counter()
    status, error, hint = "completed", None, None
    interactive = sys.stderr.isatty()  # a live bar on a terminal; one line per epoch in logs
    try:
        trainer = L.Trainer(
            default_root_dir=run.path,
            **trainer_args,
            accumulate_grad_batches=t.accumulate_grad_batches,
            gradient_clip_val=t.gradient_clip_val or None,
            callbacks=[recorder, *_checkpoints(run, rows), RngState(), *_progress(opts.progress, interactive),
                       *_pace(probe, child, preset, precision)],
            plugins=[RunCheckpointIO()],  # checkpoints written beside their place, never via $TMPDIR
            logger=_logger(opts.logger, run.path),
            enable_progress_bar=opts.progress and interactive,
            enable_model_summary=opts.progress and interactive,
            num_sanity_val_steps=0,
            log_every_n_steps=1,
            limit_train_batches=opts.limit_train_batches,
        )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", ".*does not have many workers.*")
            warnings.filterwarnings("ignore", ".*Precision.*is not supported by the model summary.*")
            warnings.filterwarnings("ignore", ".*LeafSpec.*")
            warnings.filterwarnings("ignore", ".*Checkpoint directory .* exists and is not empty.*")
            # DDP: the val scores are gathered from every rank before they are logged (module.py)
            warnings.filterwarnings("ignore", ".*when logging on epoch level in distributed setting.*")
            trainer.fit(module, datamodule=dm, ckpt_path=str(resume_ckpt) if resume_ckpt else None)
        if trainer.interrupted:
            status = "interrupted"
    except Diverged as e:
        status, error = "diverged", str(e)
    except torch.cuda.OutOfMemoryError as e:
        status, error = "oom", _last_lines(e)
        hint = "out of GPU memory: lower dataloader.batch_size or datasets.image_size (--set ...)"
    except KeyboardInterrupt:
        status = "interrupted"
    except OSError as e:  # a file that could not be written (a full disk): one located line
        status, error = "failed", os_error_line(e) if e.filename else _last_lines(e)
    except SystemExit:
        # Lightning turns Ctrl-C into a graceful shutdown and sys.exit(1), ignoring SIGINT after.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        status = "interrupted"
    except BaseException as e:  # recorded, not hidden: the sweep goes on and the user sees why
        status, error = "failed", _last_lines(e) if not isinstance(e, OcrtuneError) else str(e)
        if isinstance(e, OcrtuneError) or not isinstance(e, Exception):
            _finish(recorder, run, status, error, hint, start, summary, opts)
            raise
    _finish(recorder, run, status, error, hint, start, summary, opts)
    return RunResult(
        run.path,
        status,
        summary.get("best_epoch"),
        summary.get("best") or {},
        len(recorder.rows),
        float(summary["wall_time_s"]),
        device,
        error,
        hint,
        recorder.rows,
        rank=_rank(),
    )


def _finish(
    recorder: Any, run: RunDir, status: str, error: str | None, hint: str | None, start: float,
    summary: dict[str, Any], opts: TrainOptions,
) -> None:
    before = float(summary.get("wall_time_s") or 0.0) if opts.resume else 0.0
    unrecorded = recorder.end(
        status=status,
        error=error,
        hint=hint,
        wall_time_s=round(time.perf_counter() - start + before, 3),
        finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
        best_checkpoint=str(run.best_ckpt) if run.best_ckpt.is_file() else None,
    )
    if unrecorded:  # best effort: the outcome is still returned and printed
        log.error("%s; the run's outcome (%s) could not be recorded there", unrecorded, status)


def _init_source(preset: Preset, opts: TrainOptions) -> TrainedWeights:
    """The checkpoint ``--init`` names, read and its encoder checked."""
    from ocrtune.model.init_from import read_init_source

    assert opts.init is not None
    return read_init_source(opts.init, opts.runs_dir, preset)


def _model_preset(preset: Preset, init_weights: TrainedWeights | None) -> Preset:
    from ocrtune.model.init_from import preset_for_init

    return preset_for_init(preset, init_weights) if init_weights is not None else preset


def _init_module(module: Any, init_weights: TrainedWeights, opts: TrainOptions) -> InitReport:
    from ocrtune.model.init_from import init_module

    report = init_module(module, init_weights)
    if opts.on_init is not None and _rank() == 0:
        opts.on_init(report)
    return report


def _check_more_epochs(run: RunDir, summary: dict[str, Any], rows: list[dict[str, Any]], target: int) -> None:
    """Resuming must train at least one more epoch; checked before anything in the run changes.

    Lightning would otherwise return at once (same count) or fail after the run's config and
    summary were rewritten with the smaller count.
    """
    done = summary.get("epochs_completed")
    if not isinstance(done, int) or isinstance(done, bool):
        done = max((int(r["epoch"]) + 1 for r in rows), default=0)
    if target <= done:
        noun = "epoch" if done == 1 else "epochs"
        raise InputError(
            f"already trained {done} {noun}; pass --epochs N with N > {done} to train further", file=str(run.path)
        )


def _checkpoints(run: RunDir, rows: list[dict[str, Any]]) -> list[Any]:
    """best.ckpt by val H-mean (never val loss), and last.ckpt rewritten every epoch for resume.

    ``rows`` are the epochs already recorded (resume): best.ckpt is kept until one beats them.
    """
    from ocrtune.train.recorder import BestCheckpoint, LastCheckpoint

    best = best_row(rows)
    return [BestCheckpoint(run, best["val_hmean"] if best else None), LastCheckpoint(run)]


def _progress(enabled: bool, interactive: bool) -> list[Any]:
    if not enabled:
        return []
    from ocrtune.train.recorder import EpochBar, EpochLines

    return [EpochBar(leave=True)] if interactive else [EpochLines()]


def _check_trainer(args: dict[str, Any]) -> Any:
    """Accelerator/devices/strategy mistakes as one located line, before any run directory.
    Returns the probe trainer: its device and world size are the run's."""
    import lightning as L

    try:
        return L.Trainer(**args, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    except Exception as e:  # Lightning raises ValueError, MisconfigurationException, ImportError...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"invalid trainer settings ({', '.join(f'{k}={v}' for k, v in args.items())}): {msg}") from None


def _where(loaded: LoadedPreset | Preset | None, resume_ckpt: Path | None, key: str) -> dict[str, Any]:
    """Where a preset key was set, for a located error line: its file and line (a --set names
    itself), or the resumed run's config.yaml."""
    if resume_ckpt is not None:
        return {"file": str(resume_ckpt.parent.parent / "config.yaml")}
    origin = loaded.origins.get(tuple(key.split("."))) if isinstance(loaded, LoadedPreset) else None
    if origin is None:
        return {"file": str(loaded.path)} if isinstance(loaded, LoadedPreset) and loaded.path else {}
    return {"file": origin.file, "line": origin.line, "column": origin.column}


def _check_weights(preset: Preset, loaded: LoadedPreset | Preset | None, resume_ckpt: Path | None) -> None:
    from ocrtune.train.resources import check_weights

    check_weights(preset, _where(loaded, resume_ckpt, "models.encoder.pretrained"))


def _check_memory(preset: Preset, precision: str, probe: Any, loaded: LoadedPreset | Preset | None,
                  resume_ckpt: Path | None, opts: TrainOptions) -> Any:
    """The memory estimate for this device, refused (exit 2) when over what is free unless --force."""
    from ocrtune.train.resources import check_memory

    device = probe.strategy.root_device.type
    strategy = str(opts.strategy or preset.trainer.strategy)
    if device == "cuda" and ("fork" in strategy or "notebook" in strategy):
        return None  # asking CUDA for its free memory would initialise it before the fork
    return check_memory(preset, precision, "cuda" if device == "cuda" else "cpu", processes=probe.num_devices,
                        force=opts.force, where=_where(loaded, resume_ckpt, "dataloader.batch_size"),
                        index=probe.strategy.root_device.index,
                        small_preset=None if getattr(loaded, "name", None) == "cpu-demo" else "cpu-demo")


def _header(run: RunDir, device: str, precision: str, dm: Any, preset: Preset, probe: Any, opts: TrainOptions,
            memory: Any, epochs_done: int) -> RunHeader:
    from ocrtune.train.resources import RunHeader, steps_per_epoch
    from ocrtune.train.schedule import schedule_note

    s = preset.models.scheduler
    steps = steps_per_epoch(dm.n_train, preset.dataloader.batch_size, probe.world_size, opts.limit_train_batches)
    return RunHeader(
        run_dir=run.path, device=device, precision=precision, n_train=dm.n_train, n_val=dm.n_val,
        batch_size=preset.dataloader.batch_size, steps_per_epoch=steps,
        epochs=preset.trainer.max_epochs, epochs_done=epochs_done, lr=preset.models.optimizer.lr,
        warmup_epochs=s.warmup_epochs, memory=memory.line() if memory is not None else None,
        memory_over=bool(memory is not None and memory.over),
        ema_decay=preset.trainer.ema.decay if preset.trainer.ema.enabled else None,
        pad=preset.dataloader.pad,
        auto_workers=dm.num_workers if preset.dataloader.num_workers == "auto" else None,
        schedule=schedule_note(s, preset.models.optimizer.lr, preset.trainer.max_epochs,
                               math.ceil(steps / preset.trainer.accumulate_grad_batches), resumed=epochs_done > 0),
    )


def _pace(probe: Any, child: bool, preset: Preset, precision: str) -> list[Any]:
    """On a CPU: one warning after the first steps when the run will take hours."""
    if child or probe.strategy.root_device.type != "cpu":
        return []
    from ocrtune.presets.load import builtin_dir, load_preset
    from ocrtune.train.recorder import CpuPace
    from ocrtune.train.resources import cpu_bf16_units, pace_remedies

    # the shipped file, not a user's cpu-demo.yaml found first on the preset path
    small = load_preset(builtin_dir() / "cpu-demo.yaml").preset.models.encoder.model_name
    return [CpuPace(remedies=pace_remedies(preset.datasets.image_size, preset.models.encoder.model_name, small,
                                           precision, cpu_bf16_units()))]


def _device_name(accelerator: str) -> str:
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"cpu: {os.cpu_count()} cores, torch {torch.__version__}"


def _check_logger(kind: str) -> None:
    """Fail before a run directory exists, not after."""
    if kind not in LOGGERS:
        raise InputError(f"unknown logger {kind!r}; choose one of {', '.join(LOGGERS)}", key="--logger")
    module = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}.get(kind)
    if module and importlib.util.find_spec(module) is None and not (
        kind == "tensorboard" and importlib.util.find_spec("tensorboardX")
    ):
        raise InputError(f"{kind} logging needs an extra: pip install 'ocrtune[{kind}]'", key="--logger")


def _logger(kind: str, path: Path) -> Any:
    from lightning.pytorch import loggers

    if kind == "csv":
        return loggers.CSVLogger(path, name="lightning_logs")
    extra = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}[kind]
    try:
        if kind == "tensorboard":
            return [loggers.CSVLogger(path, name="lightning_logs"), loggers.TensorBoardLogger(path, name="tensorboard")]
        if kind == "wandb":
            return [loggers.CSVLogger(path, name="lightning_logs"), loggers.WandbLogger(save_dir=str(path), name=path.name)]
        return [loggers.CSVLogger(path, name="lightning_logs"), loggers.MLFlowLogger(save_dir=str(path / "mlruns"), run_name=path.name)]
    except (ImportError, ModuleNotFoundError) as e:
        raise InputError(f"{kind} logging needs an extra: pip install 'ocrtune[{extra}]' ({e})", key="--logger") from None


def _last_lines(e: BaseException, n: int = 8) -> str:
    lines = "".join(traceback.format_exception(type(e), e, e.__traceback__)).strip().splitlines()
    return "\n".join(lines[-n:])


__all__: Sequence[str] = ["fit", "TrainOptions", "RunResult", "resolve_data_root", "load_data", "precision_for"]
