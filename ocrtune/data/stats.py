"""Dataset scan behind ``ocrtune data stats`` and ``ocrtune data check``.

One pass per split: annotation structure (raised as ``InputError``, since nothing can be
trusted after it), then per image the header size and the word geometry (reported as
``DataProblem`` records, since training can go on without the bad words). ``stats`` reads image
headers only, so a scan of thousands of images takes seconds; ``check`` decodes every image,
so a truncated file that training would have to skip is reported too (decoding costs about
three times the header scan, too much for a summary). Every other problem is found by both.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocrtune.data.formats import Annotations, DataProblem, KeyIndex, loads_json, sanitize
from ocrtune.data.formats.records import read_text
from ocrtune.data.images import image_size, load_image
from ocrtune.data.layout import available_splits, list_images, resolve_split
from ocrtune.errors import InputError

__all__ = ["FILE_PROBLEM_KINDS", "SplitStats", "scan_split", "scan_dataset"]

#: Kinds found at file level (word-level kinds come from ``formats.PROBLEM_KINDS``).
FILE_PROBLEM_KINDS = ("empty-split", "missing-image", "unannotated", "unreadable", "size-mismatch")


@dataclass
class SplitStats:
    """What one split holds and what is wrong with it."""

    split: str
    image_dir: Path
    annotation: Path | None
    n_images: int = 0
    n_annotated: int = 0
    n_words: int = 0
    words_per_image: list[int] = field(default_factory=list, repr=False)
    long_sides: list[int] = field(default_factory=list, repr=False)
    vertex_counts: Counter[int] = field(default_factory=Counter)
    problems: list[DataProblem] = field(default_factory=list)
    decoded: bool = False  # pixels decoded (``check``), or only headers read (``stats``)

    @property
    def problem_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(p.kind for p in self.problems).items()))

    @property
    def words_min(self) -> int | None:
        return min(self.words_per_image) if self.words_per_image else None

    @property
    def words_max(self) -> int | None:
        return max(self.words_per_image) if self.words_per_image else None

    @property
    def words_mean(self) -> float | None:
        wpi = self.words_per_image
        return sum(wpi) / len(wpi) if wpi else None

    def to_dict(self, max_listed: int = 10) -> dict[str, Any]:
        return {
            "split": self.split,
            "image_dir": str(self.image_dir),
            "annotation": str(self.annotation) if self.annotation else None,
            "images": self.n_images,
            "images_decoded": self.decoded,
            "annotated_images": self.n_annotated,
            "words": self.n_words,
            "words_per_image": {
                "min": self.words_min,
                "mean": round(self.words_mean, 3) if self.words_mean is not None else None,
                "max": self.words_max,
            },
            "long_side": {
                "min": min(self.long_sides) if self.long_sides else None,
                "max": max(self.long_sides) if self.long_sides else None,
            },
            "vertices": {str(k): v for k, v in sorted(self.vertex_counts.items())},
            "problems": {
                "total": len(self.problems),
                "by_kind": self.problem_counts,
                "first": [_problem_dict(p) for p in self.problems[:max_listed]],
            },
        }


def _problem_dict(p: DataProblem) -> dict[str, Any]:
    return {"kind": p.kind, "file": p.file, "line": p.line, "column": p.column, "image": p.image,
            "word": p.word, "message": p.message, "dropped": p.dropped}


def _sizes(stats: SplitStats, files: dict[str, Path], decode: bool = False) -> dict[str, tuple[int, int]]:
    sizes: dict[str, tuple[int, int]] = {}
    for name, path in files.items():
        try:
            sizes[name] = load_image(path)[1] if decode else image_size(path)
        except InputError as exc:
            reason = exc.problems[0].message
            stats.problems.append(DataProblem("unreadable", reason, str(path), name, dropped=True))
            continue
        stats.long_sides.append(max(sizes[name]))
    return sizes


def _scan_annotations(
    stats: SplitStats, anns: Annotations, files: dict[str, Path], sizes: dict[str, tuple[int, int]]
) -> None:
    src = str(stats.annotation)
    for name, ann in anns.items():
        if name not in files:
            stats.problems.append(DataProblem(
                "missing-image", f"no such file in {stats.image_dir}", src, name, dropped=True))
            continue
        size = sizes.get(name)
        declared = (ann.width, ann.height)
        if size is not None and None not in declared and size != declared:
            stats.problems.append(DataProblem(
                "size-mismatch",
                f"img_w x img_h is {ann.width}x{ann.height} but the image is {size[0]}x{size[1]}",
                src, name))
        width, height = size if size is not None else (None, None)
        clean, problems = sanitize(ann, width, height, file=src)
        stats.problems.extend(problems)
        stats.words_per_image.append(len(clean.words))
        stats.n_words += len(clean.words)
        stats.vertex_counts.update(len(w.points) for w in ann.words)
    for name in files:
        if name not in anns:
            stats.problems.append(DataProblem(
                "unannotated", f"image has no entry in {stats.annotation}", str(files[name]), name))


def scan_split(root: str | Path, split: str, decode: bool = False, *, asked: bool = True) -> SplitStats:
    """Scan one split; raises ``InputError`` only for a missing split or a malformed JSON.

    ``decode`` reads every pixel (catches truncated files that training would skip); otherwise
    only headers are read. An image folder with nothing in it is a problem when the split was
    ``asked`` for or its annotations list images; an empty placeholder found while scanning
    every split is not.
    """
    image_dir, annotation = resolve_split(root, split)
    stats = SplitStats(split, image_dir, annotation, decoded=decode)
    files = {p.name: p for p in list_images(image_dir)}
    stats.n_images = len(files)
    sizes = _sizes(stats, files, decode)
    if annotation is not None:
        text = read_text(annotation, "annotation file")
        anns = loads_json(text, annotation)
        stats.n_annotated = len(anns)
        _scan_annotations(stats, anns, files, sizes)
        src = str(annotation)
        if any(p.file == src for p in stats.problems):
            index = KeyIndex(text)  # one pass over the text locates them all
            stats.problems = [p.located(index) if p.file == src else p for p in stats.problems]
    if not files and (asked or stats.n_annotated):  # training or scoring on it would fail
        stats.problems.insert(0, DataProblem("empty-split", "split folder holds no images", str(image_dir)))
    return stats


def scan_dataset(root: str | Path, splits: list[str] | None = None, decode: bool = False) -> list[SplitStats]:
    """Scan ``splits`` (default: every split with an image folder) of a dataset directory."""
    wanted = splits if splits else available_splits(root)
    if not wanted:
        resolve_split(root, "train")  # raises the "what was looked for" message
    # train and val are what training reads: an empty one is always a problem, an empty extra
    # folder (a test placeholder) only when asked for
    return [scan_split(root, s, decode, asked=bool(splits) or s in ("train", "val")) for s in wanted]
