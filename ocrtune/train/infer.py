"""``evaluate`` and ``predict`` from a run directory or a checkpoint file (plain torch loop).

Predictions are postprocessed on the CPU from probability maps; ``predict --save-maps`` keeps
those maps (cropped to the image, float16) so postprocess settings can be tuned and maps
ensembled later without running the model again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import torch

from ocrtune.errors import InputError
from ocrtune.metrics.iou_misses import IoUMisses
from ocrtune.model.checkpoint import scored_weights, trained_weights
from ocrtune.presets.load import apply_overrides, validate
from ocrtune.presets.schema import Preset
from ocrtune.train.extents import prob_maps
from ocrtune.train.precision import bf16_inference, channels_last, precision_for
from ocrtune.train.rundir import CONFIG, RunDir, find_run, write_json_atomic

Progress = Callable[[int, int], None]


@dataclass
class Loaded:
    module: Any  # DBNetModule
    preset: Preset
    checkpoint: Path
    run: RunDir | None

    eval_suffix = ""  # evaluate's default file: eval-<split><suffix>.json

    @property
    def results_dir(self) -> Path | None:
        """Where evaluate saves by default: the run (None: beside the checkpoint)."""
        return self.run.path if self.run is not None else None

    @property
    def checkpoints(self) -> list[Path]:
        return [self.checkpoint]

    @property
    def post(self) -> Any:
        return self.module.post

    def loader(self, items: Sequence[Any], batch_size: int | None, num_workers: int) -> Any:
        from torch.utils.data import DataLoader

        from ocrtune.train.datamodule import DetectionDataset, WorkerInit, collate

        ds = DetectionDataset(items, self.preset.datasets, train=False, with_targets=False)
        return DataLoader(ds, batch_size=batch_size or self.preset.dataloader.batch_size, num_workers=num_workers,
                          collate_fn=collate, worker_init_fn=WorkerInit() if num_workers > 0 else None)

    def maps(self, loader: Any, progress: Progress | None) -> Iterator[tuple[dict[str, Any], Sequence[np.ndarray]]]:
        return _prob_maps(self.module, self.preset, loader, progress)

    def details(self) -> dict[str, Any]:
        return {}


class Predictor(Protocol):
    """What ``evaluate`` and ``predict`` ask of a model: a ``Loaded`` checkpoint, or an ensemble
    of models and test-time views (``ocrtune.train.ensemble.Ensemble``) whose maps are averaged."""

    preset: Preset  # input and postprocess settings (an ensemble: its first model's)
    checkpoint: Path
    run: RunDir | None
    eval_suffix: str

    @property
    def results_dir(self) -> Path | None: ...

    @property
    def checkpoints(self) -> list[Path]: ...

    @property
    def post(self) -> Any: ...

    def loader(self, items: Sequence[Any], batch_size: int | None, num_workers: int) -> Any: ...

    def maps(self, loader: Any, progress: Progress | None) -> Iterator[tuple[dict[str, Any], Sequence[np.ndarray]]]:
        """(batch, one map per image): maps in the frame ``batch["scale"]`` maps back to the image."""
        ...

    def details(self) -> dict[str, Any]:
        """What the saved results add about the model beyond ``checkpoint``."""
        ...


def load_checkpoint(
    ref: str | Path, overrides: Sequence[str] = (), runs_dir: Path = Path("runs"), device: str | None = None
) -> Loaded:
    """A run (best.ckpt, else last.ckpt) or a ``.ckpt`` file, with ``--set`` applied to its preset."""
    from ocrtune.train.module import DBNetModule

    p = Path(ref)
    run: RunDir | None = None
    if p.is_file():
        ckpt = p
        if (p.parent.parent / CONFIG).is_file():
            run = RunDir(p.parent.parent)
    else:
        run = find_run(ref, runs_dir)
        ckpt = run.default_ckpt
        if not ckpt.is_file():
            raise InputError("run has no checkpoint (best.ckpt or last.ckpt)", file=str(run.checkpoints))
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
    except Exception as e:  # corrupt or not a checkpoint
        raise InputError(f"cannot read checkpoint: {e}", file=str(ckpt)) from None
    hp = state.get("hyper_parameters", {}) if isinstance(state, dict) else {}
    if "preset" not in hp:
        raise InputError("not an ocrtune checkpoint (no preset in its hyper-parameters)", file=str(ckpt))
    data = hp["preset"]
    origins: dict[Any, Any] = {}
    apply_overrides(data, origins, overrides)
    preset = validate(data, origins, default_file=str(ckpt))
    # inference needs one set of weights, loaded as the model: those the checkpoint was scored
    # with (its moving average where the preset keeps one), or with --set trainer.ema.enabled=false
    # the trained ones (a checkpoint without an average gives the same from both); no second copy
    # is built for an average
    weights = (scored_weights if preset.trainer.ema.enabled else trained_weights)(state["state_dict"])
    net = preset.model_dump(mode="json")
    net["trainer"]["ema"]["enabled"] = False
    module = DBNetModule(net)
    try:
        missing, unexpected = module.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # shape mismatches raise even when not strict
        first = str(e).strip().splitlines()[1:2] or [str(e)]
        raise InputError(
            f"checkpoint does not fit the preset ({first[0].strip()}); did --set change the model?", file=str(ckpt)
        ) from None
    if missing or unexpected:
        raise InputError(
            f"checkpoint does not fit the preset (missing {len(missing)}, unexpected {len(unexpected)} keys; "
            "did --set change the model?)",
            file=str(ckpt),
        )
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cpu":
        from ocrtune.cpu_malloc import keep_large_blocks

        keep_large_blocks()  # fresh pages for every large activation cost more than the network
    module = module.to(dev).eval()
    if channels_last(dev.type, precision_for(preset, dev.type)):
        module = module.to(memory_format=torch.channels_last)
    return Loaded(module, preset, ckpt, run)


def _prob_maps(module: Any, preset: Preset, loader: Any,
               progress: Progress | None) -> Iterator[tuple[dict[str, Any], list[np.ndarray]]]:
    """Each batch with its images' maps, each over the image's own padded extent (``extents``)."""
    dev = next(module.parameters()).device
    amp = bf16_inference(dev.type, preset)
    done, total = 0, len(loader.dataset)
    if progress:  # the inputs are checked by now: the caller may open its display
        progress(0, total)
    with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
        for batch in loader:
            if batch is None:
                continue
            images = batch["image"].to(dev, non_blocking=True)
            yield batch, prob_maps(lambda x: module.model(x)["prob"], images, batch["extent"])
            done += len(batch["name"])
            if progress:
                progress(done, total)


def eval_output(loaded: Predictor, split: str, out: Path | None = None) -> Path | None:
    """Where ``evaluate`` saves its scores: ``out``, else ``eval-<split>.json`` in the run, else
    ``<checkpoint stem>.eval-<split>.json`` beside a checkpoint that is not in a run.

    Checked before any scoring, so a bad ``--out`` fails at once rather than after the work. The
    default place is best effort: a read-only run or shared model folder (None) still gets its
    scores printed.
    """
    if out is not None:
        path = Path(out)
        if path.is_dir():
            raise InputError("is a directory; give a file name for the scores", file=str(path), key="--out")
        if path.exists() and any(path.resolve() == c.resolve() for c in loaded.checkpoints):
            raise InputError("is the checkpoint being evaluated", file=str(path), key="--out")
        if not _writable(path):
            raise InputError(f"cannot write the scores here (folder {path.parent} is not writable)", file=str(path),
                             key="--out")
        return path
    if loaded.results_dir is not None:
        path = loaded.results_dir / f"eval-{split}{loaded.eval_suffix}.json"
    else:
        path = loaded.checkpoint.with_name(f"{loaded.checkpoint.stem}.eval-{split}{loaded.eval_suffix}.json")
    return path if _writable(path) else None


def _writable(path: Path) -> bool:
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK)


def evaluate(
    loaded: Predictor,
    data_root: Path,
    split: str = "val",
    batch_size: int | None = None,
    num_workers: int = 0,
    progress: Progress | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """CLEval (image mean and global) and IoU H-mean on a labelled split, saved as JSON at
    ``eval_output(loaded, split, out)`` (``result["saved"]``: the path, or None where the
    default place is not writable)."""
    from ocrtune.train.datamodule import load_split
    from ocrtune.train.module import DetectionScores

    target = eval_output(loaded, split, out)
    items, problems = load_split(data_root, split)
    loader = loaded.loader(items, batch_size, num_workers)
    scores = DetectionScores(loaded.post, misses=True)
    start = time.perf_counter()
    for batch, maps in loaded.maps(loader, progress):
        scores.add(maps, batch)
    c, i = scores.cleval.summary(), scores.iou.summary()
    misses = scores.misses or {}
    result = {
        "checkpoint": str(loaded.checkpoint),
        "data": str(data_root),
        "split": split,
        "images": len(c["per_image"]),
        "seconds": round(time.perf_counter() - start, 3),
        "cleval": {"image_mean": c["image_mean"], "global": _scores(c["global"])},
        "iou": {"image_mean": i["image_mean"], "global": _scores(i["global"]),
                "misses": asdict(sum(misses.values(), IoUMisses()))},
        "per_image": {k: {**{m: v[m] for m in ("recall", "precision", "hmean")},
                          "iou_misses": misses[k].missed()} for k, v in c["per_image"].items()},
        "data_problems": problems,
        **loaded.details(),
        "saved": str(target) if target is not None else None,
    }
    if target is not None:
        try:
            write_json_atomic(target, result)
        except OSError:
            if out is not None:  # asked for: a failure to keep
                raise
            result["saved"] = None  # the default place is best effort: the scores still print
    return result


def _scores(d: dict[str, Any]) -> dict[str, float]:
    return {m: d[m] for m in ("recall", "precision", "hmean")}


def predict(
    loaded: Predictor,
    images: Path,
    out_csv: Path,
    json_out: Path | None = None,
    maps_dir: Path | None = None,
    batch_size: int | None = None,
    num_workers: int = 0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Submission CSV for every image (those without detections too), optional JSON and maps.

    An image that cannot be decoded is listed with no detections; ``unreadable_reasons`` says
    why, so the caller can say it once (the dataset's own "skipped" warning is held back here).
    """
    from ocrtune.data.formats import write_json, write_submission_csv
    from ocrtune.data.formats.records import Annotations, ImageAnnotation, Word
    from ocrtune.train.datamodule import image_folder_items

    items = image_folder_items(images)
    loader = loaded.loader(items, batch_size, num_workers)
    post = loaded.post
    records: dict[str, ImageAnnotation] = {}
    n_det = 0
    if maps_dir is not None:
        maps_dir.mkdir(parents=True, exist_ok=True)
    with _quiet_skips():
        for batch, maps in loaded.maps(loader, progress):
            for name, m, s, (h, w) in zip(batch["name"], maps, batch["scale"], batch["orig_size"]):
                dets = post(m, scale=s, original_size=(h, w))
                words = [Word(f"{k + 1:04d}", d.polygon) for k, d in enumerate(dets)]
                records[name] = ImageAnnotation(name, words, width=w, height=h)
                n_det += len(words)
                if maps_dir is not None:
                    _save_map(maps_dir, name, m, s, (h, w))
    skipped = [it for it in items if it.path.name not in records]
    for it in skipped:  # unreadable images are still listed, with no detections
        records[it.path.name] = ImageAnnotation(it.path.name, [])
    ordered = Annotations([records[it.path.name] for it in items])
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    write_submission_csv(ordered, out_csv, decimals=2)
    if json_out is not None:
        write_json(ordered, json_out, decimals=2)
    return {
        "images": len(ordered),
        "detections": n_det,
        "unreadable": [it.path.name for it in skipped],
        "unreadable_reasons": {it.path.name: _why_unreadable(it.path) for it in skipped},
        "csv": str(out_csv),
        "json": str(json_out) if json_out else None,
        "maps": str(maps_dir) if maps_dir else None,
        **loaded.details(),
    }


@contextlib.contextmanager
def _quiet_skips() -> Iterator[None]:
    """Hold back the dataset's "<image>: cannot read image ...; skipped" warnings (forked loader
    workers inherit the filter): predict does not skip such an image, it lists it empty."""
    logger = logging.getLogger("ocrtune.data")

    def drop(record: logging.LogRecord) -> bool:
        return not str(record.msg).endswith("; skipped")

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _why_unreadable(path: Path) -> str:
    from ocrtune.data.images import load_image

    try:
        load_image(path)
    except InputError as e:
        return str(e)
    return f"{path}: could not be read"


def _save_map(maps_dir: Path, name: str, prob: np.ndarray, scale: tuple[float, float], orig: tuple[int, int]) -> None:
    """The map over the image's own area (padding cropped), with what postprocess needs.

    ``scale`` is saved as ``(x, y)`` ratios: pass it as is to ``DBPostProcessor(scale=...)``.
    """
    h, w = orig
    sx, sy = scale
    vh, vw = min(prob.shape[0], round(h * sy)), min(prob.shape[1], round(w * sx))
    np.savez_compressed(
        maps_dir / f"{name}.npz",
        prob=prob[:vh, :vw].astype(np.float16),
        scale=np.array([sx, sy], dtype=np.float64),
        orig_size=np.array([h, w], dtype=np.int64),
    )


