"""Rendering a synthetic dataset's images on many cores, with the same bytes as on one.

Each image depends only on (seed, index), so any split of the work over processes writes the
same files. Workers render, encode and write their images (each atomically: a hidden temporary
file beside it, then a rename) and send back a small record: the file's sha256 and the image's
JSON entry. The parent writes each split's JSON from those entries in index order, streaming,
so memory stays flat for tens of thousands of receipts.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ocrtune.data.formats import Annotations, ImageAnnotation, dumps_json
from ocrtune.data.receipt_text import FontSet, find_fonts
from ocrtune.data.synth_marker import sha256_bytes
from ocrtune.data.synth_options import SynthOptions

__all__ = ["ImageJob", "RenderedImage", "Renderer", "render_all", "encode_jpeg", "json_entry", "SplitJson"]

#: ``render_receipt``'s signature: (seed, index, size, fonts, options) -> (image, annotation).
RenderFn = Callable[[int, int, int, FontSet, SynthOptions], tuple[np.ndarray, ImageAnnotation]]

_JSON_HEAD = '{"images": {'
_JSON_TAIL = "}}"


@dataclass(frozen=True)
class ImageJob:
    split: str
    index: int


@dataclass(frozen=True)
class RenderedImage:
    """What a worker sends back: where the image went, its hash, its JSON entry."""

    split: str
    index: int
    relpath: str
    sha256: str
    n_words: int
    entry: str  # ``"name": {...}`` exactly as inside the split's JSON


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def json_entry(ann: ImageAnnotation) -> str:
    """The image's ``"name": {...}`` text, cut out of the real serialiser's output so the
    joined file is byte-identical to writing all records at once."""
    text = dumps_json(Annotations([ann]), decimals=2)
    assert text.startswith(_JSON_HEAD) and text.endswith(_JSON_TAIL)
    return text[len(_JSON_HEAD):-len(_JSON_TAIL)]


def write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


@dataclass
class Renderer:
    """One process's renderer: same fonts, same options, images written under ``root``."""

    root: Path
    seed: int
    size: int
    options: SynthOptions
    render: RenderFn
    fonts: FontSet | None = None

    def __call__(self, job: ImageJob) -> RenderedImage:
        fonts = self.fonts if self.fonts is not None else find_fonts()
        image, ann = self.render(self.seed, job.index, self.size, fonts, self.options)
        quality = int(np.random.default_rng([self.seed, job.index, 1]).integers(82, 96))
        data = encode_jpeg(image, quality)
        relpath = f"images/{job.split}/{ann.name}"
        write_atomic(self.root / relpath, data)
        return RenderedImage(job.split, job.index, relpath, sha256_bytes(data), len(ann.words), json_entry(ann))


_WORKER: Renderer | None = None


def _init_worker(renderer: Renderer) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # no cv2.setNumThreads here: in a child forked after the parent used OpenCV's thread
    # pool it deadlocks; OpenCV rebuilds its pool in the child by itself
    _WORKER = renderer


def _work(job: ImageJob) -> RenderedImage:
    assert _WORKER is not None
    return _WORKER(job)


def _context() -> mp.context.BaseContext:
    """Workers forked from a fork server, not from this process: a child forked from a process
    whose OpenCV (or torch, or another thread's) locks were held at that moment hangs on its
    first call (seen in a test worker that had used OpenCV's thread pool and runs execnet's
    threads). The server imports the renderer once, so a worker starts as fast as a fork; the
    renderer (seed, size, options, fonts) travels pickled. spawn where there is no fork server."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


def render_all(renderer: Renderer, jobs: list[ImageJob], workers: int) -> Iterator[RenderedImage]:
    """Results in job order; ``workers`` 1 renders in this process."""
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        renderer.fonts = renderer.fonts or find_fonts()
        yield from map(renderer, jobs)
        return
    renderer.fonts = renderer.fonts or find_fonts()  # found once, sent to every worker
    chunk = max(1, min(16, len(jobs) // (workers * 4)))
    with _context().Pool(workers, initializer=_init_worker, initargs=(renderer,)) as pool:
        yield from pool.imap(_work, jobs, chunksize=chunk)


class SplitJson:
    """A split's JSON written entry by entry (no list of every record in memory), hashed as
    it goes; ``close`` writes the end and returns the sha256."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "w", encoding="utf-8")
        self._digest = hashlib.sha256()
        self._first = True
        self._put(_JSON_HEAD)

    def _put(self, text: str) -> None:
        self._file.write(text)
        self._digest.update(text.encode("utf-8"))

    def add(self, entry: str) -> None:
        self._put(entry if self._first else ", " + entry)
        self._first = False

    def close(self) -> str:
        self._put(_JSON_TAIL)
        self._file.close()
        return self._digest.hexdigest()

    def abort(self) -> None:
        self._file.close()
