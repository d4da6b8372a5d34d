"""Run-directory layout, atomic writes, and run lookup (no torch).

``runs/<date>-<name>/``
    config.yaml     the fully resolved preset the run trained with
    metrics.csv     one row per epoch
    summary.json    status, best epoch and scores, wall time, device
    checkpoints/    best.ckpt (by val H-mean) and last.ckpt (for --resume)

Every file is written through a temp file and ``os.replace`` so a crash never leaves half a file.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ocrtune.errors import InputError

CONFIG = "config.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
BEST = "best.ckpt"
LAST = "last.ckpt"

STATUSES = ("running", "completed", "diverged", "oom", "failed", "interrupted")

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_prob",
    "train_thresh",
    "train_binary",
    "val_loss",
    "val_hmean",
    "val_precision",
    "val_recall",
    "val_iou_hmean",
    "lr",
    "grad_norm",
    "epoch_time_s",
    "peak_mem_mb",
)


def write_text_atomic(path: Path, text: str, exclusive: bool = False) -> None:
    """Temp file + rename, so no one ever reads half a file; the file gets the umask's usual
    mode (not mkstemp's 0600), like the checkpoints beside it.

    ``exclusive`` never replaces a file, not even one that appeared a moment ago
    (``FileExistsError``): the temp file is hard-linked to the name, which fails if it exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if not exclusive:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise
        except OSError:  # no hard links on this file system: an exclusive create instead
            with open(path, "x", encoding="utf-8") as f:
                try:
                    f.write(text)
                except BaseException:
                    path.unlink(missing_ok=True)  # ours, half written: never leave it behind
                    raise
    finally:
        tmp.unlink(missing_ok=True)


def _open_temp(path: Path) -> tuple[int, Path]:
    """A new hidden file beside ``path``, created 0o666 so the umask applies."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def shown_epoch(index: Any) -> Any:
    """An epoch as people count it (from 1); the run's files keep Lightning's index from 0."""
    return index + 1 if isinstance(index, int) and not isinstance(index, bool) else index


def slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return s or "run"


def new_run_dir(runs_dir: Path, name: str, today: _dt.date | None = None) -> Path:
    """Create ``runs/<date>-<name>``, adding ``-2``, ``-3`` ... rather than reusing a run."""
    stem = f"{(today or _dt.date.today()).isoformat()}-{slug(name)}"
    runs_dir.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        path = runs_dir / (stem if i == 1 else f"{stem}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / CHECKPOINTS).mkdir()
        return path
    raise InputError("too many runs with this name", file=str(runs_dir / stem))


@dataclass
class RunDir:
    path: Path

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def summary_path(self) -> Path:
        return self.path / SUMMARY

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def best_ckpt(self) -> Path:
        return self.checkpoints / BEST

    @property
    def last_ckpt(self) -> Path:
        return self.checkpoints / LAST

    def read_summary(self) -> dict[str, Any]:
        try:
            return json.loads(self.summary_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as e:
            raise InputError(f"corrupt summary: {e.msg}", file=str(self.summary_path), line=e.lineno) from None

    def write_summary(self, data: dict[str, Any]) -> None:
        write_json_atomic(self.summary_path, data)

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics.is_file():
            return []
        with self.metrics.open(newline="", encoding="utf-8") as f:
            return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]

    def write_metrics(self, rows: Sequence[dict[str, Any]]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(METRIC_COLUMNS), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(r.get(k)) for k in METRIC_COLUMNS})
        write_text_atomic(self.metrics, buf.getvalue())


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.8g}"
    return v


def _num(v: str | None) -> Any:
    if v is None or v == "":
        return None
    try:
        i = int(v)
        return i
    except ValueError:
        pass
    try:
        return float(v)
    except ValueError:
        return v


def find_run(ref: str | Path, runs_dir: Path = Path("runs")) -> RunDir:
    """A run by path, by directory name under ``runs_dir``, or by unique name suffix."""
    p = Path(ref)
    if p.is_dir() and ((p / SUMMARY).exists() or (p / CONFIG).exists()):
        return RunDir(p)
    cand = runs_dir / str(ref)
    if cand.is_dir() and ((cand / SUMMARY).exists() or (cand / CONFIG).exists()):
        return RunDir(cand)
    matches = [r for r in list_runs(runs_dir) if r.path.name.endswith(str(ref))]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        names = ", ".join(m.path.name for m in matches[:5])
        raise InputError(f"ambiguous run name; matches {names}", key=str(ref))
    raise InputError(f"run not found (looked for a run directory and under {runs_dir})", key=str(ref))


def list_runs(runs_dir: Path = Path("runs")) -> list[RunDir]:
    if not runs_dir.is_dir():
        return []
    return [RunDir(p) for p in sorted(runs_dir.iterdir()) if p.is_dir() and (p / CONFIG).exists()]


def list_trial_runs(sweep_dir: Path) -> list[tuple[int, RunDir]]:
    """A sweep's trial runs, ``trials/NNNN/runs/<date>-<name>/``, as ``(trial number, run)``
    by trial number. Folders an earlier sweep of the same name left (``NNNN.replaced-...``)
    are not this sweep's; trials that trained nothing (objective trials) have no run."""
    trials = sweep_dir / "trials"
    if not trials.is_dir():
        return []
    out: list[tuple[int, RunDir]] = []
    for t in sorted(trials.iterdir()):
        if t.is_dir() and t.name.isdigit():
            out += [(int(t.name), run) for run in list_runs(t / "runs")]
    return sorted(out, key=lambda x: (x[0], x[1].path.name))


def best_row(rows: Iterable[dict[str, Any]], key: str = "val_hmean") -> dict[str, Any] | None:
    """The epoch with the highest ``key`` (first one on ties), skipping epochs without it."""
    best = None
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and (best is None or v > best[key]):
            best = r
    return best
