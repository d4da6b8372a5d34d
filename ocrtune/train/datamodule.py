"""Datasets and the DataModule. Training targets are built in loader workers, never in the loss.

Validation and prediction batches carry no targets unless asked (``with_targets``): scoring
needs only the image, the inverse mapping and the ground-truth polygons, and building DB maps
for every validation image just to print a loss slowed other tools' validation ~10x.

Training order and augmentation come from ``EpochShuffle``: a function of the preset's seed and
the epoch alone, so a resumed run trains its next epoch exactly as an uninterrupted one would,
whatever the number of loader workers. Loader workers die with the process that started them
(``WorkerInit``): an OOM-killed trainer leaves no orphans.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ocrtune.data.decoded_cache import DecodedCache, Square, scale_polygons
from ocrtune.data.formats import read_json
from ocrtune.data.formats.records import Annotations, ImageAnnotation
from ocrtune.data.formats.validate import sanitize
from ocrtune.data.images import image_size, load_image
from ocrtune.data.layout import list_images, resolve_split
from ocrtune.data.targets import build_db_targets
from ocrtune.data.transforms import Augment, normalize, resize_and_pad
from ocrtune.errors import InputError
from ocrtune.procs import die_with_parent
from ocrtune.presets.schema import AugmentConfig, DatasetsConfig, Pad
from ocrtune.train.extents import PAD_STEP
from ocrtune.train.split_memo import remembered

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


@remembered  # read once per warm sweep worker (enabled there only)
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
        cache: DecodedCache | None = None,
    ) -> None:
        self.items = list(items)
        self.cfg = cfg
        self.cache = cache  # decoded images on disk (same pixels); None: decode every time
        self.train = train
        self.with_targets = train if with_targets is None else with_targets
        self.augment_cfg: AugmentConfig | None = cfg.augment if train and cfg.augment.enabled else None

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | Draw) -> dict[str, Any] | None:
        index, seed = (key.index, key.seed) if isinstance(key, Draw) else (key, None)
        item = self.items[index]
        try:
            if self.cache is None:
                image, (w, h) = load_image(item.path)
            elif self.augment_cfg is None:  # not augmented: cached already resized
                image = self.cache.square(item.path, self.cfg.image_size)
                w, h = image.inverse.orig_w, image.inverse.orig_h
            else:  # augmentation works on the original pixels: cached decoded only
                image, (w, h) = self.cache.load(item.path)
        except InputError as e:
            log.warning("%s; skipped", e)
            return None
        words = item.annotation.words if item.annotation is not None else []
        raw = item.raw.words if item.raw is not None else words
        polys = [wd.points for wd in words]
        ignore = np.array([wd.ignore for wd in words], dtype=bool)
        if self.augment_cfg is not None:
            if seed is None:  # not drawn by ``EpochShuffle``: from this process's torch generator
                seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
            aug = Augment(self.augment_cfg, np.random.default_rng(seed))(image, polys)
            image, polys, ignore = aug.image, aug.polygons, ignore[aug.kept]
        if isinstance(image, Square):
            square, model_polys, inv = image.image, scale_polygons(polys, image.inverse), image.inverse
        else:
            square, model_polys, inv = resize_and_pad(image, polys, self.cfg.image_size)
        out: dict[str, Any] = {
            "image": torch.from_numpy(normalize(square)),
            "extent": inv.extent,
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


def collate(samples: Sequence[dict[str, Any] | None], pad: Pad = "square") -> dict[str, Any] | None:
    """Stack tensors, keep per-image metadata as lists; unreadable images (None) are dropped.

    ``pad="batch"`` cuts the stacked images and maps to the batch's largest image extent (and
    the threshold borders of text at its edge), rounded up to ``PAD_STEP``: ``resize_and_pad``
    pads at the bottom and right, so only padding is cut; ``"square"`` keeps the square.
    """
    samples = [s for s in samples if s is not None]
    if not samples:
        return None
    batch: dict[str, Any] = {"image": torch.stack([s["image"] for s in samples])}
    for k in TARGET_KEYS:
        if k in samples[0]:
            batch[k] = torch.stack([s[k] for s in samples])
    if pad not in ("square", "batch"):
        raise ValueError(f"pad must be 'square' or 'batch' (got {pad!r})")
    if pad == "batch":
        h, w = (max(s["extent"][i] for s in samples) for i in (0, 1))
        if "thresh_mask" in batch:  # threshold borders of text at an image's edge reach into its padding
            border = batch["thresh_mask"].amax(dim=0) > 0
            rows, cols = border.any(dim=1).nonzero(), border.any(dim=0).nonzero()
            h = max(h, int(rows.max()) + 1 if len(rows) else 0)
            w = max(w, int(cols.max()) + 1 if len(cols) else 0)
        h, w = (-(-n // PAD_STEP) * PAD_STEP for n in (h, w))
        for k in ("image", *TARGET_KEYS):
            if k in batch:
                batch[k] = batch[k][..., :h, :w].contiguous()
    for k in ("name", "scale", "orig_size", "extent", "gt", "gt_ignore"):
        batch[k] = [s[k] for s in samples]
    return batch


class Draw(NamedTuple):
    """One training sample as ``EpochShuffle`` picks it: which image, and its augmentation seed."""

    index: int
    seed: int


class EpochShuffle(Sampler[Draw]):
    """A new order and new augmentation seeds every epoch, both a function of (seed, epoch) only.

    Workers' own generators carry over from epoch to epoch (persistent workers) but start
    afresh in a resumed run, so augmentation drawn from them made the resumed epochs differ from
    an uninterrupted run's; drawn here, it does not depend on workers at all. Lightning calls
    ``set_epoch`` before every epoch (also through its distributed wrapper).
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[Draw]:
        mixed = np.random.SeedSequence([self.seed & 0xFFFFFFFF, self.epoch]).generate_state(1, np.uint64)[0]
        g = torch.Generator().manual_seed(int(mixed))
        order = torch.randperm(self.n, generator=g).tolist()
        seeds = torch.randint(0, 2**31 - 1, (self.n,), generator=g).tolist()
        return iter([Draw(i, s) for i, s in zip(order, seeds)])


class WorkerInit:
    """A loader worker's first act: die with the process that created the loader (Linux
    ``PR_SET_PDEATHSIG``), so an OOM-killed or SIGKILLed trainer leaves no orphaned workers;
    then seed as Lightning's ``seed_everything(workers=True)`` would have (a loader with its own
    ``worker_init_fn`` does not get Lightning's)."""

    def __init__(self) -> None:
        # fork and spawn start workers from this process; forkserver from its server, whose pid
        # is not known here (it exits with us, so the signal still follows us)
        self.parent = os.getpid() if mp.get_context().get_start_method() in ("fork", "spawn") else None

    def __call__(self, worker_id: int) -> None:
        die_with_parent(signal.SIGKILL, self.parent)
        if os.environ.get("PL_SEED_WORKERS") == "1":
            from lightning.fabric.utilities.seed import pl_worker_init_function

            pl_worker_init_function(worker_id)


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
        seed: int = 0,
        pad: Pad = "square",
    ) -> None:
        super().__init__()
        self.pad = pad  # training batches (``DataloaderConfig.pad``); validation is always square
        self.root = Path(root)
        self.cfg = cfg
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_targets = val_targets
        self.pin_memory = pin_memory
        self.seed = seed  # training order and augmentation (``EpochShuffle``)
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

    def _cache(self) -> DecodedCache | None:
        """Training reads every image once per epoch: decoded once per machine (``datasets.cache``)."""
        return DecodedCache() if self.cfg.cache else None

    def _loader(self, ds: Dataset, shuffle: bool, pad: Pad = "square") -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=EpochShuffle(len(ds), self.seed) if shuffle else None,
            num_workers=self.num_workers,
            collate_fn=partial(collate, pad=pad),
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
            worker_init_fn=WorkerInit() if self.num_workers > 0 else None,
            # the workers' base seed comes from here, not from the global generator, whose state
            # a resumed run restores (``RngState``) and which must not depend on loader starts
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        self.prepare()
        return self._loader(DetectionDataset(self._train or [], self.cfg, train=True, cache=self._cache()), shuffle=True,
                            pad=self.pad)

    def val_dataloader(self) -> DataLoader:
        self.prepare()
        ds = DetectionDataset(self._val or [], self.cfg, train=False, with_targets=self.val_targets,
                              cache=self._cache())
        return self._loader(ds, shuffle=False)


def split_loader(
    root: Path, split: str, cfg: DatasetsConfig, batch_size: int, num_workers: int, require_labels: bool = True
) -> tuple[DataLoader, list[Item], list[str]]:
    """A loader over any split (evaluate/predict), no augmentation, no targets."""
    items, problems = load_split(root, split, require_labels)
    ds = DetectionDataset(items, cfg, train=False, with_targets=False)
    dl = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate,
                    worker_init_fn=WorkerInit() if num_workers > 0 else None)
    return dl, items, problems


def image_folder_items(image_dir: Path) -> list[Item]:
    images = list_images(image_dir)
    if not images:
        raise InputError("no images found", file=str(image_dir))
    return [Item(p, None) for p in images]


__all__ = [
    "Item",
    "Draw",
    "EpochShuffle",
    "WorkerInit",
    "DetectionDataset",
    "DetectionDataModule",
    "collate",
    "load_split",
    "split_loader",
    "image_folder_items",
    "Annotations",
]
