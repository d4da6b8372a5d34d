"""Score postprocess settings on every cached image, across processes.

Each worker owns a fixed share of the images (image ``i`` goes to worker ``i % jobs``) and
keeps their stages (contours, unclipped boxes, CLEval pairs, IoU of selections seen) between
batches of settings, so work done for one batch serves the next. Workers return CLEval and IoU
counts per (setting, image); the parent puts them back in image order, so results do not depend
on the number of workers or on which finishes first. Asked for a setting or two after a search,
they also sort its IoU misses by kind (added up over their images).

Workers are forked from a fork server (``forkserver``), not from this process: a process
forked after OpenCV's (or torch's) thread pool has run hangs at its first parallel call, and
the caller here has just run the network. The server imports this module once, so each worker
starts as fast as a plain fork. They run no torch and use one OpenCV thread each.
"""

from __future__ import annotations

import multiprocessing as mp
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ocrtune.errors import OcrtuneError
from ocrtune.metrics.iou_misses import IoUMisses
from ocrtune.tune.cache import MapsCache
from ocrtune.tune.settings import PostSettings
from ocrtune.tune.stages import Floors, ImageCounts, ImageStages

N_COUNTS = ImageCounts.FIELDS  # CLEvalCounts then IoUCounts fields, in declaration order


def image_stages(cache: MapsCache, floors: Floors, mine: Sequence[int]) -> list[ImageStages]:
    """The staged postprocess of images ``mine`` of a cache, each with its ground truth."""
    return [ImageStages(cache.prob16(i), im.scale, im.orig_size, im.gt, im.gt_ignore, floors)
            for i, im in ((i, cache.images[i]) for i in mine)]


def _score(stages: Sequence[ImageStages], settings: Sequence[PostSettings]) -> np.ndarray:
    """(settings, images, counts): image by image, so each map is converted once per batch."""
    out = np.zeros((len(settings), len(stages), N_COUNTS), dtype=np.int64)
    for j, st in enumerate(stages):
        for i, s in enumerate(settings):
            out[i, j] = st.counts(s).row()
        st.release()
    return out


def _misses(stages: Sequence[ImageStages], settings: Sequence[PostSettings]) -> list[IoUMisses]:
    """Each setting's IoU misses, added up over the images."""
    out = [IoUMisses() for _ in settings]
    for st in stages:
        for i, s in enumerate(settings):
            out[i] += st.iou_misses(s)
        st.release()
    return out


_JOBS = {"counts": _score, "misses": _misses}


def _worker(conn: Any, cache_path: str, floors: Floors, index: int, jobs: int) -> None:
    import cv2

    cv2.setNumThreads(1)
    stages: list[ImageStages] | None = None
    failed = ""
    try:
        cache = MapsCache(Path(cache_path))
        stages = image_stages(cache, floors, range(index, len(cache), jobs))
    except Exception:  # reported at the first batch
        failed = traceback.format_exc()
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        if stages is None:
            conn.send(("error", failed))
            continue
        try:
            cpu = time.process_time()
            kind, settings = message
            out = _JOBS[kind](stages, settings)
            conn.send(("ok", (out, time.process_time() - cpu)))
        except Exception:
            conn.send(("error", traceback.format_exc()))


def _context() -> Any:
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


class Scorer:
    """CLEval and IoU counts of settings on every image of a cache; ``jobs`` processes (1: in this one)."""

    def __init__(self, cache: MapsCache, floors: Floors, jobs: int = 1) -> None:
        self.n = len(cache)
        self.jobs = max(1, min(jobs, self.n))
        self._conns: list[Any] = []
        self._procs: list[Any] = []
        self.cpu_seconds = 0.0  # spent scoring, over all processes (a figure that ignores other load)
        if self.jobs == 1:
            self._local = image_stages(cache, floors, range(self.n))
            return
        ctx = _context()
        for k in range(self.jobs):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(child, str(cache.path), floors, k, self.jobs), daemon=True)
            p.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(p)

    def counts(self, settings: Sequence[PostSettings]) -> np.ndarray:
        """(settings, images, ``N_COUNTS``) counts (``ImageCounts.row``), images in cache order."""
        settings = list(settings)
        if self.jobs == 1:
            return self._here(_score, settings)
        out = np.zeros((len(settings), self.n, N_COUNTS), dtype=np.int64)
        for k, value in enumerate(self._ask("counts", settings)):
            out[:, k :: self.jobs] = value
        return out

    def misses(self, settings: Sequence[PostSettings]) -> list[IoUMisses]:
        """Each setting's IoU misses by kind over every image (``evaluate``'s breakdown)."""
        settings = list(settings)
        if self.jobs == 1:
            return self._here(_misses, settings)
        total = [IoUMisses() for _ in settings]
        for share in self._ask("misses", settings):
            total = [a + b for a, b in zip(total, share)]
        return total

    def _here(self, job: Callable[[Sequence[ImageStages], list[PostSettings]], Any],
              settings: list[PostSettings]) -> Any:
        """``job`` on every image in this process (``jobs`` 1), its CPU time counted as a worker's."""
        cpu = time.process_time()
        out = job(self._local, settings)
        self.cpu_seconds += time.process_time() - cpu
        return out

    def _ask(self, kind: str, settings: list[PostSettings]) -> list[Any]:
        """Every worker's answer for its share of the images, in worker order."""
        for c in self._conns:
            c.send((kind, settings))
        answers = []
        for k, c in enumerate(self._conns):
            try:
                status, value = c.recv()
            except EOFError:
                raise OcrtuneError(f"tuning worker {k} stopped (exit code {self._procs[k].exitcode})") from None
            if status != "ok":
                raise OcrtuneError(f"tuning worker {k} failed:\n{value}")
            out, cpu = value
            self.cpu_seconds += cpu
            answers.append(out)
        return answers

    def close(self) -> None:
        for c in self._conns:
            try:
                c.send(None)
                c.close()
            except OSError:
                pass
        for p in self._procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
        self._conns, self._procs = [], []

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
