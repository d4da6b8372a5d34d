"""What crosses the k-fold's module and process boundaries: its settings (``kfold.json``),
a fold's result (``result.json``) and the summary ``kfold`` and ``kfold status`` show."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ocrtune.errors import InputError
from ocrtune.kfold.folds import ImageEntry
from ocrtune.presets.compare import flatten
from ocrtune.presets.schema import current_dump
from ocrtune.sweep.types import Difference

VERSION = 1
PRESET_OPTION = "--preset/--set"


@dataclass(frozen=True)
class KFoldSettings:
    """Everything that decides what a k-fold trains, and so may not change on resume: the
    resolved preset (``base``, with ``trainer.max_epochs`` the epochs each fold trains), the
    data (its root, and the split, words and content hashes of every image), the folds, the
    seed, and the fold every image is held out in."""

    name: str
    preset: str
    base: dict[str, Any]
    data: str
    splits: tuple[str, ...]
    folds: int
    seed: int
    images: tuple[ImageEntry, ...]
    assignment: dict[str, int]

    @property
    def epochs(self) -> int:
        return int(self.base.get("trainer", {}).get("max_epochs", 0))

    def held_out(self, fold: int) -> list[ImageEntry]:
        return [im for im in self.images if self.assignment[im.name] == fold]

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION, "name": self.name, "preset": self.preset, "data": self.data,
            "splits": list(self.splits), "folds": self.folds, "seed": self.seed, "epochs": self.epochs,
            "base": self.base,
            "images": {im.name: {"fold": self.assignment[im.name], "split": im.split, "words": im.words,
                                 "sha256": im.sha256, "label_sha256": im.label_sha256} for im in self.images},
        }

    @classmethod
    def read(cls, path: Path) -> KFoldSettings:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise InputError(f"corrupt k-fold settings: {e.msg}", file=str(path), line=e.lineno) from None
        try:
            images = raw["images"]
            return cls(
                name=str(raw["name"]), preset=str(raw["preset"]), base=dict(raw["base"]), data=str(raw["data"]),
                splits=tuple(raw["splits"]), folds=int(raw["folds"]), seed=int(raw["seed"]),
                images=tuple(ImageEntry(n, str(v["split"]), int(v["words"]), str(v["sha256"]),
                                        str(v.get("label_sha256", ""))) for n, v in images.items()),
                assignment={n: int(v["fold"]) for n, v in images.items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise InputError(f"not a k-fold settings file ({type(e).__name__}: {e})", file=str(path)) from None

    def differences(self, stored: KFoldSettings) -> list[Difference]:
        """What differs from the stored settings, each named by the option that sets it."""
        out: list[Difference] = []
        for key, option in (("preset", "--preset"), ("folds", "--folds"), ("seed", "--seed"), ("data", "--data"),
                            ("splits", "datasets.train/val (--preset/--set)")):
            a, b = getattr(stored, key), getattr(self, key)
            if a != b:
                out.append(Difference(key, list(a) if isinstance(a, tuple) else a,
                                      list(b) if isinstance(b, tuple) else b, option))
        old, new = flatten(current_dump(stored.base)), flatten(current_dump(self.base))
        for k in sorted(set(old) | set(new)):
            if old.get(k) != new.get(k):
                opt = f"{k} (--epochs/{PRESET_OPTION})" if k == "trainer.max_epochs" else f"{k} ({PRESET_OPTION})"
                out.append(Difference(f"base.{k}", old.get(k), new.get(k), opt))
        change = content_change(stored.images, self.images)
        if change:
            out.append(Difference("images", len(stored.images), len(self.images), f"--data images ({change})"))
        elif (stored.folds, stored.seed) == (self.folds, self.seed) and stored.assignment != self.assignment:
            moved = sum(1 for n, k in self.assignment.items() if stored.assignment.get(n) != k)
            out.append(Difference("assignment", 0, moved, "images in another fold (same data, folds and seed; "
                                  "another ocrtune version?)"))
        return out


def content_change(old: Sequence[ImageEntry], new: Sequence[ImageEntry]) -> str:
    """'2 images changed (a.jpg, b.jpg), 1 added (c.jpg)', or '' when the images are the same."""
    a, b = {im.name: im for im in old}, {im.name: im for im in new}
    parts = []
    for what, names in (
        ("changed", [n for n in a if n in b and (a[n].sha256, a[n].split) != (b[n].sha256, b[n].split)]),
        ("relabelled", [n for n in a if n in b and a[n].sha256 == b[n].sha256 and
                        (a[n].label_sha256, a[n].words) != (b[n].label_sha256, b[n].words)]),
        ("added", [n for n in b if n not in a]),
        ("removed", [n for n in a if n not in b]),
    ):
        if names:
            shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
            parts.append(f"{len(names)} image{'s' if len(names) != 1 else ''} {what} ({shown})")
    return "; ".join(parts)


@dataclass(frozen=True)
class Scores:
    """CLEval recall, precision and H-mean (fractions 0..1)."""

    hmean: float
    precision: float
    recall: float

    @classmethod
    def of(cls, d: Mapping[str, Any] | None) -> Scores | None:
        if not isinstance(d, Mapping) or not all(isinstance(d.get(k), (int, float)) for k in ("hmean", "precision", "recall")):
            return None
        return cls(float(d["hmean"]), float(d["precision"]), float(d["recall"]))


@dataclass(frozen=True)
class FoldResult:
    """How one fold's process ended (``folds/<k>/result.json``). ``oof``: CLEval (image mean)
    of ``best.ckpt``'s predictions on the held-out images; ``best_val``: the run's own
    best-epoch validation scores (the same images, scored during training)."""

    fold: int
    status: str
    run_dir: str | None = None
    images: int = 0
    best_epoch: int | None = None  # counted from 1
    oof: Scores | None = None
    oof_global: Scores | None = None
    best_val: Scores | None = None
    error: str | None = None
    hint: str | None = None
    device: str | None = None
    wall_time_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> FoldResult:
        return cls(
            fold=int(d.get("fold", 0)), status=str(d.get("status", "failed")), run_dir=d.get("run_dir"),
            images=int(d.get("images") or 0), best_epoch=d.get("best_epoch"), oof=Scores.of(d.get("oof")),
            oof_global=Scores.of(d.get("oof_global")), best_val=Scores.of(d.get("best_val")), error=d.get("error"),
            hint=d.get("hint"), device=d.get("device"), wall_time_s=d.get("wall_time_s"),
        )


# A fold's state as ``kfold status`` sees it: a result's status, or one of these.
PENDING, RUNNING, STOPPED = "pending", "running", "stopped"


@dataclass(frozen=True)
class FoldRow:
    fold: int
    images: int
    words: int
    status: str
    run_dir: str | None = None
    best_epoch: int | None = None
    oof: Scores | None = None
    best_val: Scores | None = None
    error: str | None = None
    epochs_done: int | None = None  # a fold still running (or stopped): epochs trained so far


@dataclass(frozen=True)
class KFoldSummary:
    """The folds and the out-of-fold scores: ``mean`` is the mean of the folds' scores, ``pooled``
    CLEval over every held-out image together (image mean, the competition's number; the
    fold means weigh a small fold's images more), ``pooled_global`` pools character counts.
    The pooled scores exist once every fold completed."""

    name: str
    dir: str
    preset: str
    data: str
    folds: int
    seed: int
    epochs: int
    state: str  # finished, running, incomplete
    rows: tuple[FoldRow, ...]
    mean: Scores | None = None
    pooled: Scores | None = None
    pooled_global: Scores | None = None
    images: int = 0
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def completed(self) -> int:
        return sum(1 for r in self.rows if r.status == "completed")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
