"""Probability maps of one checkpoint on one split, computed once and kept beside the run.

``<run>/maps-<split>/`` (``<checkpoint stem>.maps-<split>/`` beside a checkpoint outside a
run) holds:

- ``maps.f16``: every image's map, float16, one after the other (memory-mapped when read).
  The whole map the network produced over the image's own extent (``train/extents.py``),
  padding included: contours and box means at the image edge read the padding, so a crop could
  change detections. float16 is half of float32 and loses nothing the postprocess reads: it
  quantises every map to float16 first (``ocrtune.model.postprocess.quantize``). A square
  1024 px map takes 2 MiB, a SROIE receipt's about 1.1 MiB.
- ``index.json``: per image its name, map shape and offset, the ``scale`` and original size
  that map detections back (the inverse resize), and the ground truth as the loader gave it
  to ``evaluate`` (polygons and don't-care flags: the IoU metric drops detections inside a
  don't-care word), in loader order.
- ``manifest.json``: what the maps depend on: the checkpoint (size, mtime, sha256), the data
  (root, annotation file, image files), the preset's input settings, batch size and device.

A cache whose manifest matches is reused; one that does not is rebuilt (a checkpoint that was
only touched, same sha256, still matches). A build is written into a hidden folder beside the
final one and swapped in when complete, so a reader never sees half a cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ocrtune.errors import InputError
from ocrtune.filehash import sha256_file
from ocrtune.model.postprocess import as_float16

VERSION = 4  # 2: the index keeps don't-care flags (gt_ignore); 3: maps over each image's own extent;
# 4: the model runs channels-last on the CPU, and in bf16 where it trained in it (train/precision.py)
MANIFEST, INDEX, MAPS = "manifest.json", "index.json", "maps.f16"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class FileStamp:
    """A file as the cache saw it; ``sha256`` decides when size or mtime moved."""

    path: str
    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> FileStamp:
        st = path.stat()
        return cls(str(path.resolve()), st.st_size, st.st_mtime_ns, sha256_file(path))

    def matches(self, path: Path) -> bool:
        try:
            st = path.stat()
        except OSError:
            return False
        if st.st_size != self.size:
            return False
        return st.st_mtime_ns == self.mtime_ns or sha256_file(path) == self.sha256


@dataclass(frozen=True)
class CachedImage:
    name: str
    shape: tuple[int, int]
    offset: int  # in float16 elements
    scale: tuple[float, float]  # (x, y): map pixels per original pixel
    orig_size: tuple[int, int]  # (h, w)
    gt: list[list[list[float]]]
    gt_ignore: list[bool]  # per GT word: don't care (IoU drops detections inside one)


class MapsCache:
    """An opened cache: images in loader order, maps as read-only float16 views."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.manifest: dict[str, Any] = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        raw = json.loads((path / INDEX).read_text(encoding="utf-8"))
        self.images = [CachedImage(r["name"], tuple(r["shape"]), r["offset"], tuple(r["scale"]), tuple(r["orig_size"]),
                                   r["gt"], [bool(f) for f in r["gt_ignore"]]) for r in raw]
        total = sum(int(np.prod(im.shape)) for im in self.images)
        self._maps = np.memmap(path / MAPS, dtype=np.float16, mode="r", shape=(total,)) if total else np.zeros(0, np.float16)

    def __len__(self) -> int:
        return len(self.images)

    def prob16(self, i: int) -> np.ndarray:
        im = self.images[i]
        h, w = im.shape
        return self._maps[im.offset : im.offset + h * w].reshape(h, w)

    @property
    def checkpoint(self) -> FileStamp:
        return FileStamp(**self.manifest["checkpoint"])

    @property
    def data_problems(self) -> list[str]:
        return list(self.manifest.get("data_problems", []))


def cache_dir(checkpoint: Path, run_path: Path | None, split: str) -> Path:
    """``<run>/maps-<split>`` for a run's best.ckpt, ``<run>/maps-<stem>-<split>`` for its other
    checkpoints (tuning last.ckpt must not replace best.ckpt's maps), or ``<stem>.maps-<split>``
    beside a checkpoint outside a run."""
    if run_path is not None:
        return run_path / (f"maps-{split}" if checkpoint.stem == "best" else f"maps-{checkpoint.stem}-{split}")
    return checkpoint.with_name(f"{checkpoint.stem}.maps-{split}")


def inputs_of(loaded: Any, root: Path, split: str, batch_size: int, device: str) -> dict[str, Any]:
    """Everything besides the checkpoint that the maps depend on (JSON-plain, comparable)."""
    from ocrtune.data.layout import list_images, resolve_split

    image_dir, ann = resolve_split(root, split)
    if ann is None:
        raise InputError(f"split {split!r} has no annotations (jsons/{split}.json): tuning needs them", file=str(root))
    images = hashlib.sha256()
    for p in list_images(image_dir):
        st = p.stat()
        images.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    preset = loaded.preset.model_dump(mode="json")
    models = dict(preset["models"])
    models["head"] = {k: v for k, v in models["head"].items() if k != "postprocess"}
    return {
        "version": VERSION,
        "split": split,
        "data": str(Path(root).resolve()),
        "annotations": asdict(FileStamp.of(ann)),
        "images": images.hexdigest(),
        "datasets": preset["datasets"],
        "models": {k: v for k, v in models.items() if k in ("encoder", "decoder", "head")},
        "batch_size": batch_size,
        "device": device,
        "precision": preset["trainer"]["precision"],  # inference autocasts where training did
        "dtype": "float16",
    }


def _same_inputs(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Equal inputs; the annotation file compared by content when only its mtime moved."""
    a, b = dict(old), dict(new)
    ann_a, ann_b = a.pop("annotations", None), b.pop("annotations", None)
    if a != b or not isinstance(ann_a, dict) or not isinstance(ann_b, dict):
        return False
    return ann_a["path"] == ann_b["path"] and ann_a["size"] == ann_b["size"] and ann_a["sha256"] == ann_b["sha256"]


def open_if_fresh(path: Path, checkpoint: Path, inputs: dict[str, Any]) -> MapsCache | None:
    """The cache at ``path`` when it was built from this checkpoint and these inputs, else None."""
    try:
        cache = MapsCache(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if cache.manifest.get("version") != VERSION or not _same_inputs(cache.manifest.get("inputs", {}), inputs):
        return None
    stamp = cache.checkpoint
    if stamp.path == str(checkpoint.resolve()):
        return cache if stamp.matches(checkpoint) else None
    # A moved or copied run: the same file only if its content is.
    same = checkpoint.stat().st_size == stamp.size and sha256_file(checkpoint) == stamp.sha256
    return cache if same else None


def build(loaded: Any, root: Path, split: str, path: Path, inputs: dict[str, Any],
          num_workers: int = 0, progress: Progress | None = None) -> MapsCache:
    """Run the network over the split once and write the cache at ``path`` (atomically)."""
    from ocrtune.train.datamodule import split_loader
    from ocrtune.train.infer import _prob_maps

    loader, _, problems = split_loader(root, split, loaded.preset.datasets, inputs["batch_size"], num_workers)
    stamp = FileStamp.of(loaded.checkpoint)
    with CacheWriter(path) as out:
        for batch, maps in _prob_maps(loaded.module, loaded.preset, loader, progress):
            for name, m, s, o, gt, ignore in zip(batch["name"], maps, batch["scale"], batch["orig_size"], batch["gt"],
                                                 batch["gt_ignore"]):
                out.add(name, m, s, o, gt, ignore)
        return out.finish({"checkpoint": asdict(stamp), "inputs": inputs, "data_problems": problems})


class CacheWriter:
    """Writes a cache into a hidden folder beside ``path``; ``finish`` swaps it in, leaving
    the block without ``finish`` removes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        self.tmp.mkdir()
        self._maps = open(self.tmp / MAPS, "wb")
        self.images: list[dict[str, Any]] = []
        self._offset = 0

    def add(self, name: str, prob: np.ndarray, scale: Any, orig_size: Any, gt: Any, gt_ignore: Any) -> None:
        """One image: its map (stored as float16), the ``(x, y)`` scale and ``(h, w)`` size
        that map it back, its ground-truth polygons and their don't-care flags."""
        if len(gt_ignore) != len(gt):
            raise ValueError(f"{name}: {len(gt_ignore)} don't-care flags for {len(gt)} GT words")
        half = np.ascontiguousarray(as_float16(prob))
        self._maps.write(half.tobytes())
        self.images.append({
            "name": name, "shape": list(half.shape), "offset": self._offset,
            "scale": [float(scale[0]), float(scale[1])], "orig_size": [int(orig_size[0]), int(orig_size[1])],
            "gt": [np.asarray(p, dtype=np.float64).reshape(-1, 2).tolist() for p in gt],
            "gt_ignore": [bool(f) for f in gt_ignore],
        })
        self._offset += half.size

    def finish(self, manifest: dict[str, Any]) -> MapsCache:
        self._maps.flush()
        os.fsync(self._maps.fileno())
        self._maps.close()
        _write_json(self.tmp / INDEX, self.images)
        _write_json(self.tmp / MANIFEST, {"version": VERSION, **manifest, "images": len(self.images)})
        _swap_in(self.tmp, self.path)
        return MapsCache(self.path)

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._maps.closed:
            self._maps.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _swap_in(tmp: Path, path: Path) -> None:
    """Put the finished folder ``tmp`` at ``path``; an old cache there is removed after."""
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.{secrets.token_hex(4)}.old"
        os.rename(path, old)
    os.rename(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, data: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
