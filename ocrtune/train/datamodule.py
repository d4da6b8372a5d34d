"""Datasets and the DataModule. Training targets are built in loader workers, never in the loss.

Validation and prediction batches carry no targets unless asked (``with_targets``): scoring
needs only the image, the inverse mapping and the ground-truth polygons, and building DB maps
for every validation image just to print a loss slowed other tools' validation ~10x.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ocrtune.data.formats import read_json
from ocrtune.data.formats.records import Annotations, ImageAnnotation
from ocrtune.data.formats.validate import sanitize
from ocrtune.data.images import image_size, load_image
from ocrtune.data.layout import list_images, resolve_split
from ocrtune.data.targets import build_db_targets
from ocrtune.data.transforms import Augment, normalize, resize_and_pad
from ocrtune.errors import InputError
from ocrtune.presets.schema import AugmentConfig, DatasetsConfig

log = logging.getLogger("ocrtune.data")

TARGET_KEYS = ("prob_map", "prob_mask", "thresh_map", "thresh_mask")


@dataclass(frozen=True)
class Item:
    """One image on disk, its sanitised annotation (for targets) and the raw one (for scoring).

    The metric must see the ground truth exactly as the competition read it: a zero-area word
    still counts as unmatched characters, a clipped word keeps its original size.
    """

    path: Path
    annotation: ImageAnnotation | None
    raw: ImageAnnotation | None = None


def load_split(root: Path, split: str, require_labels: bool = True) -> tuple[list[Item], list[str]]:
    """Items of a split (annotation order; unlabelled splits: file order) and problem lines."""
    image_dir, ann_path = resolve_split(root, split)
    problems: list[str] = []
    if ann_path is None:
        if require_labels:
            raise InputError(f"split {split!r} has no annotations (jsons/{split}.json)", file=str(root))
        return [Item(p, None) for p in list_images(image_dir)], problems
    anns = read_json(ann_path)
    items = []
    for name, ann in anns.items():
        path = image_dir / name
        if not path.is_file():
            problems.append(f"{ann_path}: {name}: image file missing; skipped")
            continue
        try:  # clip to the image as displayed (EXIF applied), not to a declared img_w/img_h
            w, h = image_size(path)
        except InputError as e:
            problems.append(f"{e}; skipped")
            continue
        clean, probs = sanitize(ann, w, h, file=str(ann_path))
        problems += [str(p) for p in probs]
        items.append(Item(path, clean, ann))
    if not items:
        raise InputError(f"split {split!r} has no usable images", file=str(ann_path))
    return items, problems


class DetectionDataset(Dataset):
    """Images -> normalised square tensors (+ DB targets when ``with_targets``)."""

    def __init__(
        self,
        items: Sequence[Item],
        cfg: DatasetsConfig,
        *,
        train: bool = False,
        with_targets: bool | None = None,
    ) -> None:
        self.items = list(items)
        self.cfg = cfg
        self.train = train
        self.with_targets = train if with_targets is None else with_targets
        self.augment_cfg: AugmentConfig | None = cfg.augment if train and cfg.augment.enabled else None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        item = self.items[index]
        try:
            image, (w, h) = load_image(item.path)
        except InputError as e:
            log.warning("%s; skipped", e)
            return None
        words = item.annotation.words if item.annotation is not None else []
        raw = item.raw.words if item.raw is not None else words
        polys = [wd.points for wd in words]
        ignore = np.array([wd.ignore for wd in words], dtype=bool)
        if self.augment_cfg is not None:
            # Drawn from torch's generator: seeded per worker and epoch by the DataLoader.
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            aug = Augment(self.augment_cfg, np.random.default_rng(seed))(image, polys)
            image, polys, ignore = aug.image, aug.polygons, ignore[aug.kept]
        square, model_polys, inv = resize_and_pad(image, polys, self.cfg.image_size)
        out: dict[str, Any] = {
            "image": torch.from_numpy(normalize(square)),
            "name": item.path.name,
            "scale": inv.xy,
            "orig_size": (h, w),
            # Ground truth in original pixels, as the metric scores it (raw points, file order).
            "gt": [wd.points for wd in raw],
            "gt_ignore": [bool(wd.ignore) for wd in raw],
        }
        if self.with_targets:
            t = build_db_targets(
                model_polys,
                ignore,
                (self.cfg.image_size, self.cfg.image_size),
                shrink_ratio=self.cfg.shrink_ratio,
                thresh_min=self.cfg.thresh_min,
                thresh_max=self.cfg.thresh_max,
                min_text_size=self.cfg.min_text_size,
            )
            for k, v in t.as_dict().items():
                out[k] = torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
        return out


def collate(samples: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Stack tensors, keep per-image metadata as lists; unreadable images (None) are dropped."""
    samples = [s for s in samples if s is not None]
    if not samples:
        return None
    batch: dict[str, Any] = {"image": torch.stack([s["image"] for s in samples])}
    for k in TARGET_KEYS:
        if k in samples[0]:
            batch[k] = torch.stack([s[k] for s in samples])
    for k in ("name", "scale", "orig_size", "gt", "gt_ignore"):
        batch[k] = [s[k] for s in samples]
    return batch


class DetectionDataModule(L.LightningDataModule):
    """Train/val (and test/predict) loaders for a dataset root in the competition layout."""

    def __init__(
        self,
        root: Path,
        cfg: DatasetsConfig,
        batch_size: int,
        num_workers: int,
        *,
        val_targets: bool = False,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.cfg = cfg
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_targets = val_targets
        self.pin_memory = pin_memory
        self.problems: list[str] = []
        self._train: list[Item] | None = None
        self._val: list[Item] | None = None

    def prepare(self) -> None:
        """Read annotations now so bad data fails before any model is built."""
        if self._train is None:
            self._train, p1 = load_split(self.root, self.cfg.train)
            self._val, p2 = load_split(self.root, self.cfg.val)
            self.problems = p1 + p2

    @property
    def n_train(self) -> int:
        self.prepare()
        return len(self._train or [])

    @property
    def n_val(self) -> int:
        self.prepare()
        return len(self._val or [])

    def _loader(self, ds: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        self.prepare()
        return self._loader(DetectionDataset(self._train or [], self.cfg, train=True), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        self.prepare()
        ds = DetectionDataset(self._val or [], self.cfg, train=False, with_targets=self.val_targets)
        return self._loader(ds, shuffle=False)


def split_loader(
    root: Path, split: str, cfg: DatasetsConfig, batch_size: int, num_workers: int, require_labels: bool = True
) -> tuple[DataLoader, list[Item], list[str]]:
    """A loader over any split (evaluate/predict), no augmentation, no targets."""
    items, problems = load_split(root, split, require_labels)
    ds = DetectionDataset(items, cfg, train=False, with_targets=False)
    dl = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)
    return dl, items, problems


def image_folder_items(image_dir: Path) -> list[Item]:
    images = list_images(image_dir)
    if not images:
        raise InputError("no images found", file=str(image_dir))
    return [Item(p, None) for p in images]


__all__ = [
    "Item",
    "DetectionDataset",
    "DetectionDataModule",
    "collate",
    "load_split",
    "split_loader",
    "image_folder_items",
    "Annotations",
]
