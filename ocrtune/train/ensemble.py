"""Several models and test-time views as one predictor for ``evaluate`` and ``predict``.

Every model sees each image at its own preset's input size (and at each view's); its maps are
brought back to the image's frame (``ocrtune.train.views``), averaged with the models' weights
(views of a model share its weight equally) and postprocessed once, with the first model's
postprocess settings. Maps are averaged one batch of images at a time.

One model and no extra view is not an ensemble: ``load_predictor`` then returns the plain
``Loaded`` checkpoint, whose path scores exactly as before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ocrtune.data.images import load_image
from ocrtune.data.transforms import normalize, resize_and_pad
from ocrtune.errors import InputError
from ocrtune.presets.schema import Preset
from ocrtune.train.datamodule import Item
from ocrtune.train.extents import prob_maps
from ocrtune.train.infer import Loaded, Progress, load_checkpoint
from ocrtune.train.precision import bf16_inference
from ocrtune.train.rundir import RunDir
from ocrtune.train.views import PLAIN, MapAverage, View, crop_to_image, image_area, parse_views, parse_weights

log = logging.getLogger("ocrtune.data")


@dataclass(frozen=True)
class Member:
    """One model of an ensemble: ``source`` is the reference it came from (a run, a k-fold
    folder's fold), ``weight`` its share of the average (all members' sum to 1)."""

    loaded: Loaded
    weight: float
    source: str


@dataclass(frozen=True)
class InputSpec:
    """One model input built per image: the image (mirrored when ``flip``) resized and padded to
    ``image_size``. Models and views that need the same input share it."""

    image_size: int
    flip: bool

    def build(self, image: np.ndarray) -> tuple[torch.Tensor, tuple[float, float], tuple[int, int]]:
        """The input, its resize ratios and the image's extent in it (the rest is padding)."""
        square, _, inv = resize_and_pad(View(flip=self.flip).apply(image), [], self.image_size)
        return torch.from_numpy(normalize(square)), inv.xy, inv.extent


class ViewsDataset(Dataset):
    """Images -> every input spec's tensor (and its resize ratios), plus what scoring needs."""

    def __init__(self, items: Sequence[Item], specs: Sequence[InputSpec]) -> None:
        self.items = list(items)
        self.specs = list(specs)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        item = self.items[index]
        try:
            image, (w, h) = load_image(item.path)
        except InputError as e:
            log.warning("%s; skipped", e)  # the same line as DetectionDataset's: predict holds it back
            return None
        built = [spec.build(image) for spec in self.specs]
        raw = item.raw if item.raw is not None else item.annotation
        words = raw.words if raw is not None else []
        return {
            "inputs": [t for t, _, _ in built],
            "scales": [xy for _, xy, _ in built],
            "extents": [e for _, _, e in built],
            "name": item.path.name,
            "orig_size": (h, w),
            "gt": [wd.points for wd in words],
            "gt_ignore": [bool(wd.ignore) for wd in words],
        }


def collate_views(samples: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    samples = [s for s in samples if s is not None]
    if not samples:
        return None
    n = len(samples[0]["inputs"])
    batch: dict[str, Any] = {"inputs": [torch.stack([s["inputs"][k] for s in samples]) for k in range(n)]}
    for key in ("name", "scales", "extents", "orig_size", "gt", "gt_ignore"):
        batch[key] = [s[key] for s in samples]
    return batch


class Ensemble:
    """Models and views whose original-frame maps are averaged (see the module doc).

    Offers what ``infer.evaluate``/``infer.predict`` ask of a model (``infer.Predictor``); the
    frame is the first model's plain view, so ``batch["scale"]`` of its maps is that view's.
    """

    eval_suffix = ".ensemble"  # eval-<split>.ensemble.json: a single model's scores stay

    def __init__(self, members: Sequence[Member], views: Sequence[View], home: Path | None = None) -> None:
        """``home``: where evaluate saves by default (a k-fold folder given as REF); else the
        first model's run, or beside its checkpoint."""
        if not members or not views or views[0] != PLAIN:
            raise ValueError("an ensemble needs a model and the plain view first")
        self.members = list(members)
        self.views = list(views)
        self.home = home
        self.specs: list[InputSpec] = []
        self._spec_of: dict[tuple[int, int], int] = {}
        for mi, m in enumerate(self.members):
            for vi, v in enumerate(self.views):
                spec = InputSpec(v.input_size(m.loaded.preset.datasets.image_size), v.flip)
                if spec not in self.specs:
                    self.specs.append(spec)
                self._spec_of[(mi, vi)] = self.specs.index(spec)

    @property
    def preset(self) -> Preset:
        return self.members[0].loaded.preset

    @property
    def checkpoint(self) -> Path:
        return self.members[0].loaded.checkpoint

    @property
    def run(self) -> RunDir | None:
        return self.members[0].loaded.run

    @property
    def results_dir(self) -> Path | None:
        return self.home if self.home is not None else self.members[0].loaded.results_dir

    @property
    def checkpoints(self) -> list[Path]:
        return [m.loaded.checkpoint for m in self.members]

    @property
    def post(self) -> Any:
        return self.members[0].loaded.module.post

    def input_sizes(self, member: int) -> list[int]:
        """The input side each view of ``member`` runs at."""
        return [self.specs[self._spec_of[(member, vi)]].image_size for vi in range(len(self.views))]

    def loader(self, items: Sequence[Item], batch_size: int | None, num_workers: int) -> DataLoader:
        ds = ViewsDataset(items, self.specs)
        from ocrtune.train.datamodule import WorkerInit

        return DataLoader(ds, batch_size=batch_size or self.preset.dataloader.batch_size, num_workers=num_workers,
                          collate_fn=collate_views, worker_init_fn=WorkerInit() if num_workers > 0 else None)

    def maps(self, loader: DataLoader, progress: Progress | None) -> Iterator[tuple[dict[str, Any], list[np.ndarray]]]:
        dev = next(self.members[0].loaded.module.parameters()).device
        amp = all(bf16_inference(dev.type, m.loaded.preset) for m in self.members)  # bf16 if each validates in it
        done, total = 0, len(loader.dataset)
        if progress:
            progress(0, total)
        with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
            for batch in loader:
                if batch is None:
                    continue
                yield self._average(batch, dev)
                done += len(batch["name"])
                if progress:
                    progress(done, total)

    def _average(self, batch: dict[str, Any], dev: torch.device) -> tuple[dict[str, Any], list[np.ndarray]]:
        sizes = [tuple(int(x) for x in hw) for hw in batch["orig_size"]]
        frame_scales = [s[0] for s in batch["scales"]]  # spec 0: the first model's plain view
        frames = [image_area(hw, s) for hw, s in zip(sizes, frame_scales)]
        sums = [MapAverage(f) for f in frames]
        on_device: dict[int, torch.Tensor] = {}
        extents = [[e[k] for e in batch["extents"]] for k in range(len(self.specs))]
        for mi, member in enumerate(self.members):
            weight = member.weight / len(self.views)
            if weight <= 0:  # --weights 0: left out, not run
                continue
            for vi, view in enumerate(self.views):
                k = self._spec_of[(mi, vi)]
                if k not in on_device:
                    on_device[k] = batch["inputs"][k].to(dev, non_blocking=True)
                model = member.loaded.module.model
                prob = prob_maps(lambda x: model(x)["prob"], on_device[k], extents[k])
                for i, hw in enumerate(sizes):
                    image_map = crop_to_image(prob[i], hw, batch["scales"][i][k])
                    sums[i].add(view.invert(image_map, frames[i]), weight)
        out = {key: batch[key] for key in ("name", "orig_size", "gt", "gt_ignore")}
        out["scale"] = frame_scales
        return out, [s.result() for s in sums]

    def details(self) -> dict[str, Any]:
        models = [
            {
                "checkpoint": str(m.loaded.checkpoint),
                "source": m.source,
                "weight": m.weight,
                "encoder": m.loaded.preset.models.encoder.model_name,
                "input_sizes": self.input_sizes(i),
            }
            for i, m in enumerate(self.members)
        ]
        return {"ensemble": {"models": models, "views": [v.name for v in self.views], "postprocess": "model 1"}}


def load_predictor(
    ref: str,
    ensemble: Sequence[str] = (),
    weights: str | None = None,
    tta: str | None = None,
    overrides: Sequence[str] = (),
    runs_dir: Path = Path("runs"),
    device: str | None = None,
) -> Loaded | Ensemble:
    """``ref`` and each ``--ensemble`` reference (a run, a checkpoint or a k-fold folder, whose
    completed folds share its weight equally) with ``--tta`` views; ``--set`` applies to every
    model. One model without extra views is returned as a plain ``Loaded``."""
    views = parse_views(tta)
    groups = [_models_of(r, runs_dir) for r in (ref, *ensemble)]
    shares = parse_weights(weights, len(groups))
    if sum(len(g) for g, _ in groups) == 1 and len(views) == 1:
        return load_checkpoint(groups[0][0][0], overrides, runs_dir, device)
    members = []
    for (group, _), share in zip(groups, shares):
        for model_ref in group:
            loaded = load_checkpoint(model_ref, overrides, runs_dir, device)
            members.append(Member(loaded, share / len(group), str(model_ref)))
    return Ensemble(members, views, home=groups[0][1])


def _models_of(ref: str, runs_dir: Path) -> tuple[list[str], Path | None]:
    """The model references behind one reference and the k-fold folder it names: a k-fold
    folder's completed fold runs, else the reference itself (resolved by ``load_checkpoint``)."""
    kfold = _kfold_layout()
    if kfold is None:
        return [ref], None
    for place in (Path(ref), runs_dir / ref, runs_dir / "kfold" / ref):
        if place.is_dir() and kfold.is_kfold_dir(place):
            runs = kfold.fold_runs(place)
            if not runs:
                raise InputError("k-fold run has no completed fold yet (see `ocrtune kfold status`)", file=str(place))
            return [str(r) for r in runs], place
    return [ref], None


def _kfold_layout() -> Any:
    """``ocrtune.kfold.layout`` when this install has k-fold runs, else None."""
    try:
        from ocrtune.kfold import layout
    except ImportError:
        return None
    return layout
