"""A full disk (or any OSError on a sweep's files) stops the sweep at once in one located line,
loses nothing and counts no trial as failed; the same command resumes it once there is room."""

from __future__ import annotations

import errno
import json
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy

from ocrtune.sweep.run.guards import Patient, SweepFilesError, disk_trouble, failed_file, files_error
from ocrtune.sweep.store import Store

REPO = Path(__file__).resolve().parents[2]
CURVES = "tests.sweep.curves:"
ARGS = ("--objective", CURVES + "disk_full", "--range", "1e-5,1e-2", "--points", "4", "--stages", "2",
        "--min-improvement", "0", "--epochs", "1", "--name", "full")


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")


def _slots_once(tmp_path: Path) -> None:
    """After the resume: every planned slot has exactly one completed result, none failed."""
    store = Store.open("full", None, runs_dir=tmp_path / "runs")
    try:
        trials, plans = store.trials(), store.plans()
    finally:
        store.close()
    done = Counter((t.plan, t.slot) for t in trials if t.status == "completed")
    assert set(done.values()) == {1} and len(done) == sum(len(p.params) for p in plans) == 8
    assert not [t for t in trials if t.status == "failed"]


def test_trial_process_finding_the_disk_full_stops_the_sweep_and_resume_finishes(cli, tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    flag = tmp_path / "disk-is-full"
    flag.touch()
    monkeypatch.setenv("OCRTUNE_TEST_DISK_FULL", str(flag))
    code, out, err = cli("sweep", "--no-report", "--runs-dir", str(tmp_path / "runs"), *ARGS)
    assert code == 1
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "No space left on device" in line]
    assert len(lines) == 1, err
    # the file the trial process could not write, not just its trial folder
    assert lines[0].startswith(f"error: {flag}.ckpt: No space left on device (")
    assert "MB free there" in lines[0] and "re-run the same command" in lines[0]
    flag.unlink()  # room again
    code, out, err = cli("sweep", "--no-report", "--runs-dir", str(tmp_path / "runs"), *ARGS, "--json")
    assert code == 0, err
    assert json.loads(out)["state"] == "finished"
    _slots_once(tmp_path)


def test_sweep_files_that_cannot_be_written_stop_the_sweep_in_one_line(cli, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import ocrtune.sweep.run.worker as worker

    real = worker.write_json_atomic
    written: list[Path] = []

    def full(path: Path, data: object) -> None:
        if len(written) >= 3:  # the fourth spec.json finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)
        real(path, data)

    monkeypatch.setattr(worker, "write_json_atomic", full)
    code, out, err = cli("sweep", "--no-report", "--runs-dir", str(tmp_path / "runs"), *ARGS)
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if "No space left on device" in line]
    assert len(lines) == 1 and "spec.json" in lines[0], err
    monkeypatch.setattr(worker, "write_json_atomic", real)
    code, out, err = cli("sweep", "--no-report", "--runs-dir", str(tmp_path / "runs"), *ARGS)
    assert code == 0, err
    _slots_once(tmp_path)


def test_a_full_store_is_not_retried_for_a_minute() -> None:
    calls = Patient(grace_s=60, poll_s=0.01, store_file="runs/sweeps/x/study.db")

    def write() -> None:
        try:
            raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("database or disk is full"))
        except sqlalchemy.exc.OperationalError as e:
            raise e

    with pytest.raises(SweepFilesError, match=r"runs/sweeps/x/study.db: database or disk is full"):
        calls.call(write)
    # other store failures are still retried (FAILED comes back, no exception)
    assert calls.call(lambda: (_ for _ in ()).throw(sqlalchemy.exc.OperationalError("x", {}, Exception("locked")))) \
        is not None


def test_disk_trouble_reads_errnos_texts_and_causes() -> None:
    assert disk_trouble(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_trouble(OSError(errno.EROFS, "Read-only file system"))
    assert disk_trouble("OSError: [Errno 28] No space left on device: 'x.ckpt'")
    assert not disk_trouble(OSError(errno.ENOENT, "No such file or directory"))
    assert not disk_trouble("ValueError: lr must be positive")
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("save failed") from inner
    except RuntimeError as outer:
        assert disk_trouble(outer)
    msg = str(files_error(Path("/tmp/definitely/missing/spec.json"), OSError(errno.ENOSPC, "No space left on device")))
    assert msg.startswith("/tmp/definitely/missing/spec.json: No space left on device (") and "MB free there" in msg


def test_the_line_names_the_file_the_error_names() -> None:
    """A trial process's error reaches the worker as text: the file is read back from Python's
    OSError wording; an error that names no file (a write() on an open file) names the trial folder."""
    trial = Path("/tmp/sweeps/x/trials/0003")
    text = "/tmp/sweeps/x/trials/0003: OSError: [Errno 28] No space left on device: '/data/it\\'s/best.ckpt'"
    assert failed_file(text) == "/data/it's/best.ckpt"
    assert str(files_error(trial, text)).startswith("/data/it's/best.ckpt: No space left on device (")
    unnamed = "/tmp/sweeps/x/trials/0003: OSError: [Errno 28] No space left on device"
    assert failed_file(unnamed) is None
    assert str(files_error(trial, unnamed)).startswith(f"{trial}: No space left on device (")
    # an exception object: its filename, also behind a wrapper
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/last.ckpt")
        except OSError as inner:
            raise RuntimeError("checkpoint save failed") from inner
    except RuntimeError as outer:
        assert str(files_error(trial, outer)).startswith("/data/last.ckpt: ")
