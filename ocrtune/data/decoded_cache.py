"""Decoded images kept on disk, so every epoch and every trial on a machine decodes an image once.

A cached image must be what the uncached path computes, bit for bit, so that training sees the
same pixels either way. Two stages are cached:

* ``full``: the decoded, EXIF-corrected RGB image at its own size (``load_image``). Training
  augmentation (colour jitter, flip, rotation, crop, zoom) works on the original pixels *before*
  ``resize_and_pad``, so an augmented training image can only be cached at this stage: an image
  cached already resized would be rotated, cropped and zoomed at another resolution, and train
  differently.
* ``square``: the image after ``resize_and_pad`` to ``image_size``, for images that are not
  augmented (validation; training with ``datasets.augment.enabled: false``). It is stored
  without the padding and padded on read. Polygons are not stored: they move by the resize's two
  exact ratios (``scale_polygons``), which the entry gives, so an edited annotation never meets
  a stale entry.

Entries are ``<cache>/decoded/<stage dir>/<2 hex>/<content hash>.px``. The stage directory names
the stage and its setting (``square1024``) plus a hash of the format version, the Pillow and
OpenCV versions and the source of the code that makes the pixels, so an upgraded library or an
edited loader starts a fresh directory. The file name is a hash of the image file's bytes: an
edited image is a new entry whatever its name or mtime. Each entry is written to a temp file
beside it and renamed into place (atomic on POSIX): processes building the same cache at once
never read half an entry and need no lock; they write the same bytes and the last rename wins.

Nothing is evicted by training: ``ocrtune data cache`` (``data/cache_admin.py``) lists the stage
directories (current or stale, size, last use) and removes the stale ones (``--clear-stale``), all
(``--clear``) or the least recently used entries above a size (``--max-size``); safe at any time,
even while training runs: a missing entry (or stage directory) is decoded and written again. An
entry that cannot be written (disk full, read-only cache) is only logged; training goes on decoding
as without the cache. Nor is one written when it would leave less than the larger of 1 GiB and 2 %
of the disk free: the cache never takes the space a run needs for its checkpoints.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import os
import secrets
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ocrtune.data import images
from ocrtune.data.images import load_image
from ocrtune.data.layout import cache_root
from ocrtune.data.transforms import Inverse, resize_and_pad
from ocrtune.diskspace import disk_usage_near

__all__ = ["ENTRY_SUFFIX", "FORMAT_VERSION", "DecodedCache", "Square", "decoded_root", "scale_polygons",
           "stage_dir_name"]

log = logging.getLogger("ocrtune.data")

FORMAT_VERSION = 1
_MAGIC = b"OCRTDC1\n"
_ALIGN = 64  # pixel data starts on a 64-byte boundary (memory-mappable at a fixed offset)
ENTRY_SUFFIX = ".px"


@dataclass(frozen=True)
class Square:
    """``resize_and_pad``'s image and inverse mapping for one image file."""

    image: np.ndarray  # uint8 (image_size, image_size, 3)
    inverse: Inverse


def decoded_root() -> Path:
    """Where decoded images go: ``<cache_root()>/decoded``."""
    return cache_root() / "decoded"


def stage_dir_name(stage: str) -> str:
    """The directory this code and these library versions use for ``stage`` (``full``,
    ``square1024``); any other directory of that stage was made by another version (stale)."""
    return f"{stage}-{_code_key()}"


def scale_polygons(polygons: Sequence[np.ndarray], inverse: Inverse) -> list[np.ndarray]:
    """Polygons moved as ``resize_and_pad`` moves them (float64 multiply, float32 out)."""
    ratio = np.asarray(inverse.xy)
    return [(np.asarray(p, dtype=np.float64).reshape(-1, 2) * ratio).astype(np.float32) for p in polygons]


@dataclass
class DecodedCache:
    """Decoded (``full``) and resized (``square``) images of image files, read from disk when
    already built by any process, else built and stored. Picklable: loader workers get a copy."""

    root: Path = field(default_factory=decoded_root)
    # path -> (stat stamp, content hash): a file is hashed again only when its stat changes
    _digests: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict, repr=False)

    def load(self, path: str | Path) -> tuple[np.ndarray, tuple[int, int]]:
        """``load_image(path)``, decoded at most once per machine."""
        digest = self._digest(path)
        if digest is None:
            return load_image(path)  # unreadable: load_image says why, naming the file
        entry = self._entry("full", digest)
        hit = _read(entry)
        if hit is not None:
            image, _ = hit
            return image, (int(image.shape[1]), int(image.shape[0]))
        image, size = load_image(path)
        if self._digest(path) == digest:  # not written to while we read it
            _write(entry, image, image.shape[:2])
        return image, size

    def square(self, path: str | Path, image_size: int) -> Square:
        """``resize_and_pad(load_image(path)[0], [], image_size)`` without the polygons, decoded
        and resized at most once per machine."""
        digest = self._digest(path)
        entry = self._entry(f"square{image_size}", digest) if digest is not None else None
        hit = _read(entry) if entry is not None else None
        if hit is not None:
            resized, (oh, ow) = hit
            nh, nw = resized.shape[:2]
            out = np.zeros((image_size, image_size) + resized.shape[2:], dtype=np.uint8)
            out[:nh, :nw] = resized
            inv = Inverse(scale=image_size / max(oh, ow), orig_h=oh, orig_w=ow, scale_x=nw / ow, scale_y=nh / oh)
            return Square(out, inv)
        image, _ = load_image(path)
        out, _, inv = resize_and_pad(image, [], image_size)
        if entry is not None and self._digest(path) == digest:
            nh, nw = round(inv.scale_y * inv.orig_h), round(inv.scale_x * inv.orig_w)
            _write(entry, out[:nh, :nw], (inv.orig_h, inv.orig_w))
        return Square(out, inv)

    def _entry(self, stage: str, digest: str) -> Path:
        return self.root / stage_dir_name(stage) / digest[:2] / f"{digest}{ENTRY_SUFFIX}"

    def _digest(self, path: str | Path) -> str | None:
        """Hash of the file's bytes (None when unreadable); memoised on size, mtime, ctime, inode."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
        known = self._digests.get(str(path))
        if known is not None and known[0] == stamp:
            return known[1]
        try:
            data = Path(path).read_bytes()
        except OSError:
            return None
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        self._digests[str(path)] = (stamp, digest)
        return digest


@functools.lru_cache(maxsize=1)
def _code_key() -> str:
    """Format version, decoder libraries and the source of the code that makes cached pixels."""
    import cv2
    import PIL

    parts = [str(FORMAT_VERSION), PIL.__version__, cv2.__version__]
    for obj in (images, resize_and_pad):
        try:
            parts.append(inspect.getsource(obj))
        except (OSError, TypeError):  # no source shipped: the versions above still key it
            parts.append(getattr(obj, "__qualname__", getattr(obj, "__name__", "?")))
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=6).hexdigest()


def _header(shape: tuple[int, ...], orig: tuple[int, int]) -> bytes:
    meta = json.dumps({"shape": [int(s) for s in shape], "dtype": "uint8", "orig": [int(o) for o in orig]})
    head = _MAGIC + struct.pack("<I", len(meta)) + meta.encode()
    return head + b" " * (-len(head) % _ALIGN)


_write_failed = False
# The cache never takes the space a run needs for its checkpoints and logs: an entry is written
# only while this much stays free on the cache's disk (the larger of 1 GiB and 2 % of the disk).
MIN_FREE_BYTES = 2**30
MIN_FREE_SHARE = 0.02


def _room_for(folder: Path, nbytes: int) -> bool:
    usage = disk_usage_near(folder)  # entry folders come later
    if usage is None:
        return True  # cannot tell: the write itself will say
    return usage.free - nbytes >= max(MIN_FREE_BYTES, MIN_FREE_SHARE * usage.total)


def _write(entry: Path, image: np.ndarray, orig: tuple[int, int]) -> None:
    """Store an entry atomically: a temp file beside it, renamed over it when complete."""
    global _write_failed
    data = np.ascontiguousarray(image, dtype=np.uint8)
    if not _room_for(entry.parent, data.nbytes):
        if not _write_failed:
            log.warning("decoded-image cache not written: its disk is nearly full (the cache leaves the larger "
                        "of 1 GiB and 2 %% free for runs); images not cached are decoded every time "
                        "(`ocrtune data cache --max-size SIZE` or `--clear-stale` makes room)")
            _write_failed = True
        return
    tmp = entry.parent / f".{entry.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        for attempt in range(2):  # the folder removed meanwhile (`ocrtune data cache --clear`): once more
            try:
                entry.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "xb") as f:
                    f.write(_header(data.shape, orig))
                    f.write(memoryview(data).cast("B"))
                os.replace(tmp, entry)
                break
            except FileNotFoundError:
                if attempt:
                    raise
            finally:
                tmp.unlink(missing_ok=True)
    except OSError as e:
        if not _write_failed:  # once per process: a full disk would say it for every image
            log.warning("decoded-image cache not written (%s); images are decoded every time", e)
            _write_failed = True


def _read(entry: Path) -> tuple[np.ndarray, tuple[int, int]] | None:
    """An entry's pixels and original (h, w); None when missing or not a complete entry."""
    try:
        with open(entry, "rb") as f:
            head = f.read(len(_MAGIC) + 4)
            if len(head) != len(_MAGIC) + 4 or head[: len(_MAGIC)] != _MAGIC:
                return None
            (n,) = struct.unpack("<I", head[len(_MAGIC):])
            meta = json.loads(f.read(n))
            shape = tuple(int(s) for s in meta["shape"])
            oh, ow = (int(o) for o in meta["orig"])
            f.seek(len(head) + n + (-(len(head) + n) % _ALIGN))
            out = np.empty(shape, dtype=np.uint8)
            if f.readinto(memoryview(out).cast("B")) != out.nbytes or f.read(1):
                return None  # truncated or trailing bytes: not something this module wrote
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.debug("decoded-image cache entry %s unreadable (%s); decoding again", entry, e)
        return None
    return out, (oh, ow)
