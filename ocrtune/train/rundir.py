"""Run-directory layout, atomic writes, and run lookup (no torch).

``runs/<date>-<name>/``
    config.yaml     the fully resolved preset the run trained with
    metrics.csv     one row per epoch
    summary.json    status, best epoch and scores, wall time, device
    checkpoints/    best.ckpt (by val H-mean) and last.ckpt (for --resume)
    heartbeat       touched every 30 s while the run trains (its mtime is the sign of life)

Every file is written through a temp file beside it and ``os.replace`` (never the temp folder,
never a copy across file systems), so a crash or a full disk never leaves half a file.

``summary.json`` names the process that trains the run (``owner``: host, pid, start time). A
run recorded as ``running`` whose process is gone is shown ``killed`` (this host) or ``lost``
(another machine, silent for ``SILENT_AFTER_S``): ``run_state`` derives that when reading and
never rewrites another process's summary.
"""

from __future__ import annotations

import csv
import datetime as _dt
import errno
import io
import json
import os
import re
import secrets
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from ocrtune.diskspace import disk_usage_near
from ocrtune.errors import InputError
from ocrtune.procs import Owner

CONFIG = "config.yaml"
METRICS = "metrics.csv"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
BEST = "best.ckpt"
LAST = "last.ckpt"
HEARTBEAT = "heartbeat"

STATUSES = ("running", "completed", "diverged", "oom", "failed", "interrupted")  # as summary.json records them
RESUMABLE = ("interrupted", "killed", "lost", "failed")  # last.ckpt may continue these
HEARTBEAT_S = 30.0  # how often a training process touches its run's heartbeat file
SILENT_AFTER_S = 600.0  # another machine's run with no sign of life for this long is lost

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
    mode (not mkstemp's 0600), like the checkpoints beside it. An error names ``path``, not
    the temp file.

    ``exclusive`` never replaces a file, not even one that appeared a moment ago
    (``FileExistsError``): the temp file is hard-linked to the name, which fails if it exists.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path, text.encode("utf-8"))
    try:
        if not exclusive:
            _replace(tmp, path)
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


def write_bytes_atomic(path: Path, data: bytes | memoryview) -> None:
    """``write_text_atomic`` for bytes (checkpoints): written beside ``path`` and renamed, so a
    full disk leaves the previous file whole and no temp folder is involved."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_temp(path, data)
    try:
        _replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_temp(path: Path, data: bytes | memoryview) -> Path:
    """``data`` in a new temp file beside ``path``, flushed to disk; nothing left on failure."""
    try:
        fd, tmp = _open_temp(path)
    except OSError as e:
        raise located(e, path) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise located(e, path) from e
        raise
    return tmp


def _replace(tmp: Path, path: Path) -> None:
    try:
        os.replace(tmp, path)
    except OSError as e:
        raise located(e, path) from e


def _open_temp(path: Path) -> tuple[int, Path]:
    """A new hidden file beside ``path``, created 0o666 so the umask applies."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def located(e: OSError, path: Path | str) -> OSError:
    """The same error (same type and errno) naming ``path``: the file the user knows, not the
    hidden temp file that was being written for it."""
    if e.errno is None:
        return e
    return type(e)(e.errno, e.strerror, str(path))


def os_error_line(e: OSError) -> str:
    """One located line for a file error: ``FILE: what (N MB free there)``, the free space
    given where the disk is full."""
    where = ", ".join(str(f) for f in (e.filename, e.filename2) if f)
    what = e.strerror or str(e) or type(e).__name__
    line = f"{where}: {what}" if where else what
    if e.errno in (errno.ENOSPC, errno.EDQUOT) and e.filename:
        free = free_space(Path(str(e.filename)))
        if free is not None:
            line += f" ({free} free there)"
    return line


def free_space(path: Path) -> str | None:
    """Free space on the file system that holds ``path`` (or its nearest existing folder)."""
    usage = disk_usage_near(path)
    if usage is None:
        return None
    free = usage.free
    for unit, size in (("GB", 1e9), ("MB", 1e6)):
        if free >= size:
            return f"{free / size:.1f} {unit}"
    return f"{free / 1e3:.1f} kB"


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

    @property
    def default_ckpt(self) -> Path:
        """What naming the run loads (evaluate, predict, --init): best.ckpt, else last.ckpt."""
        return self.best_ckpt if self.best_ckpt.is_file() else self.last_ckpt

    @property
    def heartbeat(self) -> Path:
        return self.path / HEARTBEAT

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


@dataclass(frozen=True)
class RunState:
    """A run's status as people should see it: ``recorded`` is what summary.json says;
    ``status`` differs only for a ``running`` run whose process is gone (``killed``) or that
    another machine stopped updating (``lost``), and ``reason`` says why. ``resume`` is the
    command that continues the run, where last.ckpt can."""

    status: str
    recorded: str
    reason: str | None = None
    resume: str | None = None


def run_state(run: RunDir, summary: dict[str, Any], now: float | None = None) -> RunState:
    """Derive the shown status from the recorded one, the owner and the run's last sign of life
    (read only: another process's summary is never rewritten)."""
    recorded = str(summary.get("status") or "unknown")
    status, reason = recorded, None
    if recorded == "running":
        owner = Owner.from_json(summary.get("owner"))
        if owner is not None and owner.here:
            if owner.gone_here():
                status, reason = "killed", f"its process ({owner.pid}, this host) ended without recording an outcome"
        elif owner is not None:
            silent = (now if now is not None else time.time()) - last_sign_of_life(run)
            if silent > SILENT_AFTER_S:
                status = "lost"
                reason = f"no sign of life from {owner.host.split('/')[0]} (pid {owner.pid}) for {_duration(silent)}"
    return RunState(status, recorded, reason, resume_for(run, summary, status))


def check_not_running(run: RunDir, summary: dict[str, Any]) -> None:
    """Refuse to resume a run whose recorded owner still trains it: two processes writing one
    run's files would mix their epochs. Runs from before owners were recorded are not refused."""
    owner = Owner.from_json(summary.get("owner"))
    if owner is None or run_state(run, summary).status != "running":
        return
    where = "this host" if owner.here else owner.host.split("/")[0]
    raise InputError(f"this run is still training (pid {owner.pid} on {where}); stop it first, "
                     "or wait until `ocrtune runs show` no longer says running", file=str(run.path))


def last_sign_of_life(run: RunDir) -> float:
    """The newest modification time of the files a training process keeps touching."""
    times = []
    for p in (run.heartbeat, run.summary_path, run.metrics):
        try:
            times.append(p.stat().st_mtime)
        except OSError:
            continue
    return max(times, default=0.0)


def resume_command(run: RunDir) -> str:
    return f"ocrtune train --resume {shlex.quote(str(run.path))}"


def resume_for(run: RunDir, summary: dict[str, Any], status: str) -> str | None:
    """The command that continues a run that stopped (``RESUMABLE``) before its last epoch;
    None where there is nothing to continue or no last.ckpt to continue from."""
    done, target = summary.get("epochs_completed"), summary.get("max_epochs")
    finished = isinstance(done, int) and isinstance(target, int) and done >= target
    return resume_command(run) if status in RESUMABLE and run.last_ckpt.is_file() and not finished else None


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


class Heartbeat:
    """Touches a run's ``heartbeat`` file every ``every`` seconds from a daemon thread while the
    run trains: another machine tells a live run from a lost one by its age. A failed touch (a
    full disk) is skipped; the next one tries again."""

    def __init__(self, path: Path, every: float = HEARTBEAT_S) -> None:
        self.path = path
        self.every = every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        self._touch()
        self._thread = threading.Thread(target=self._beat, name="ocrtune-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self._touch()

    def _touch(self) -> None:
        try:
            os.utime(self.path)
        except FileNotFoundError:
            try:
                self.path.touch()
            except OSError:
                pass
        except OSError:
            pass
