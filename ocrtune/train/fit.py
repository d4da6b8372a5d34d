"""``fit``: train a preset into a run directory and return what happened.

Statuses: ``completed``; ``diverged`` (NaN/inf loss; sweeps score it worst); ``oom`` (with a
hint); ``interrupted`` (Ctrl-C; resumable from last.ckpt); ``failed`` (anything else, with the
error's last lines). Every outcome is written to ``summary.json`` before ``fit`` returns.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ocrtune.errors import InputError, OcrtuneError
from ocrtune.presets.load import LoadedPreset
from ocrtune.presets.schema import Preset
from ocrtune.train.rundir import RunDir, best_row, find_run, new_run_dir, write_text_atomic

if TYPE_CHECKING:
    from ocrtune.train.datamodule import DetectionDataModule

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
                             pin_memory=pin_memory)
    dm.prepare()
    return dm


def precision_for(preset: Preset, accelerator: str) -> str:
    p = preset.trainer.precision
    if p != "auto":
        return "32-true" if p == "32" else p
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def preset_yaml(preset: Preset, header: str) -> str:
    from ocrtune.presets.write import dump

    return f"# {header}\n" + dump(preset.model_dump(mode="json"))


RUN_DIR_ENV = "OCRTUNE_RUN_DIR"  # hands rank 0's run directory to DDP child processes


def _rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def fit(loaded: LoadedPreset | Preset | None, opts: TrainOptions) -> RunResult:
    """Train; always returns a result whose status is also in ``summary.json``.

    Everything that can be wrong with the input (preset, data, model name, accelerator,
    strategy) is checked before a run directory is created.
    """
    import lightning as L

    from ocrtune.train.module import DBNetModule, Diverged
    from ocrtune.train.recorder import RunRecorder

    _check_logger(opts.logger)
    if loaded is None and not opts.resume:
        raise InputError("a preset is needed unless resuming a run", key="--preset")
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
        source = summary.get("preset", source)
        _check_more_epochs(run, summary, rows, opts.max_epochs or preset.trainer.max_epochs)
    dm = load_data(preset, opts.data, num_workers=preset.dataloader.num_workers, val_targets=opts.val_loss,
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
    module = DBNetModule(preset.model_dump(mode="json"), val_loss=opts.val_loss)  # bad model names fail here
    if precision != "32-true" and accelerator != "cpu" and torch.cuda.is_available():
        module = module.to(memory_format=torch.channels_last)
    t = preset.trainer
    trainer_args = dict(
        max_epochs=t.max_epochs,
        accelerator=accelerator,
        devices=opts.devices if opts.devices is not None else t.devices,
        strategy=opts.strategy or t.strategy,
        num_nodes=opts.num_nodes or t.num_nodes,
        precision=precision,
    )
    _check_trainer(trainer_args)

    child = _rank() > 0 and RUN_DIR_ENV in os.environ
    if child:  # a DDP rank > 0: rank 0 owns the run directory and its files
        run = RunDir(Path(os.environ[RUN_DIR_ENV]))
    elif not opts.resume:
        name = opts.name or (loaded.name if isinstance(loaded, LoadedPreset) else "run")
        run = RunDir(new_run_dir(opts.runs_dir, name))
    if not child:
        write_text_atomic(run.config, preset_yaml(preset, f"resolved from {source}"))
        os.environ[RUN_DIR_ENV] = str(run.path.resolve())

    device = _device_name(accelerator)
    summary.update(
        {
            "status": "running",
            "preset": source,
            "data": str(data_root),
            "n_train": dm.n_train,
            "n_val": dm.n_val,
            "device": device,
            "precision": precision,
            "max_epochs": t.max_epochs,
            "started": summary.get("started") or time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
    )
    recorder = RunRecorder(run, summary, rows, enabled=not child)
    recorder.begin()
    start = time.perf_counter()
    status, error, hint = "completed", None, None
    interactive = sys.stderr.isatty()  # a live bar on a terminal; one line per epoch in logs
    try:
        trainer = L.Trainer(
            default_root_dir=run.path,
            **trainer_args,
            accumulate_grad_batches=t.accumulate_grad_batches,
            gradient_clip_val=t.gradient_clip_val or None,
            callbacks=[recorder, *_checkpoints(run, rows), *_progress(opts.progress, interactive)],
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
    recorder.update_summary(
        status=status,
        error=error,
        hint=hint,
        wall_time_s=round(time.perf_counter() - start + before, 3),
        finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
        best_checkpoint=str(run.best_ckpt) if run.best_ckpt.is_file() else None,
    )


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


def _check_trainer(args: dict[str, Any]) -> None:
    """Accelerator/devices/strategy mistakes as one located line, before any run directory."""
    import lightning as L

    try:
        L.Trainer(**args, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    except Exception as e:  # Lightning raises ValueError, MisconfigurationException, ImportError...
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"invalid trainer settings ({', '.join(f'{k}={v}' for k, v in args.items())}): {msg}") from None


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
