from __future__ import annotations

import datetime as dt
import json

import pytest

from ocrtune.errors import InputError
from ocrtune.train.rundir import METRIC_COLUMNS, RunDir, best_row, find_run, list_runs, new_run_dir, write_json_atomic


def test_new_run_dir_never_reuses(tmp_path):
    day = dt.date(2026, 11, 22)
    a = new_run_dir(tmp_path, "cpu demo!", day)
    b = new_run_dir(tmp_path, "cpu demo!", day)
    assert a.name == "2026-11-22-cpu-demo" and b.name == "2026-11-22-cpu-demo-2"
    assert (a / "checkpoints").is_dir()


def test_metrics_round_trip_and_best(tmp_path):
    run = RunDir(new_run_dir(tmp_path, "r"))
    rows = [
        {"epoch": 0, "train_loss": 2.5, "val_hmean": 0.4, "lr": 1e-3},
        {"epoch": 1, "train_loss": 1.5, "val_hmean": 0.7, "lr": 5e-4},
        {"epoch": 2, "train_loss": 1.2, "val_hmean": 0.6, "lr": 1e-4},
    ]
    run.write_metrics(rows)
    header = run.metrics.read_text().splitlines()[0].split(",")
    assert tuple(header) == METRIC_COLUMNS
    back = run.read_metrics()
    assert [r["epoch"] for r in back] == [0, 1, 2]
    assert back[1]["val_hmean"] == 0.7 and back[0]["val_loss"] is None
    assert best_row(back)["epoch"] == 1
    assert best_row([{"val_hmean": None}]) is None


def test_atomic_json_leaves_no_temp_files(tmp_path):
    p = tmp_path / "s.json"
    write_json_atomic(p, {"a": 1})
    write_json_atomic(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [x.name for x in tmp_path.iterdir()] == ["s.json"]


def test_find_run_by_path_name_and_suffix(tmp_path):
    run = RunDir(new_run_dir(tmp_path, "alpha", dt.date(2026, 1, 2)))
    run.config.write_text("seed: 1\n")
    RunDir(new_run_dir(tmp_path, "beta", dt.date(2026, 1, 2))).config.write_text("seed: 1\n")
    assert find_run(run.path, tmp_path).path == run.path
    assert find_run("2026-01-02-alpha", tmp_path).path == run.path
    assert find_run("alpha", tmp_path).path == run.path
    assert len(list_runs(tmp_path)) == 2
    with pytest.raises(InputError, match="run not found"):
        find_run("gamma", tmp_path)
    with pytest.raises(InputError, match="ambiguous"):
        find_run("a", tmp_path)


def test_corrupt_summary_is_located(tmp_path):
    run = RunDir(new_run_dir(tmp_path, "r"))
    run.summary_path.write_text("{\n  'bad'\n")
    with pytest.raises(InputError) as e:
        run.read_summary()
    assert "summary.json:2" in e.value.lines[0]


def test_runs_list_survives_a_corrupt_summary(tmp_path, cli):
    good = RunDir(new_run_dir(tmp_path, "good"))
    good.config.write_text("seed: 1\n")
    good.write_summary({"status": "completed"})
    bad = RunDir(new_run_dir(tmp_path, "bad"))
    bad.config.write_text("seed: 1\n")
    bad.summary_path.write_text("{oops")
    code, out, _ = cli("runs", "list", "--runs-dir", tmp_path, "--json")
    assert code == 0
    status = {r["run"].split("-", 3)[-1]: r["status"] for r in json.loads(out)}
    assert status["good"] == "completed" and status["bad"].startswith("unreadable summary")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_get_the_umask_mode_not_0600(tmp_path, umask):
    import os
    import stat

    old = os.umask(umask)
    try:
        run = RunDir(new_run_dir(tmp_path, "r"))
        run.write_summary({"status": "running"})
        run.write_metrics([{"epoch": 0, "val_hmean": 0.5}])
        write_json_atomic(tmp_path / "eval-val.json", {"a": 1})
        write_json_atomic(tmp_path / "eval-val.json", {"a": 2})  # replacing keeps the umask mode too
    finally:
        os.umask(old)
    for p in (run.summary_path, run.metrics, tmp_path / "eval-val.json"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")]


def test_exclusive_write_without_hard_links_leaves_no_half_file(tmp_path, monkeypatch):
    import builtins
    import errno

    import ocrtune.train.rundir as rundir

    def no_links(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:3])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir.os, "link", no_links)
    monkeypatch.setattr(rundir, "open", lambda *a, **k: Full(builtins.open(*a, **k)), raising=False)
    target = tmp_path / "p.yaml"
    with pytest.raises(OSError, match="No space left"):
        rundir.write_text_atomic(target, "a: 1\n", exclusive=True)
    assert list(tmp_path.iterdir()) == []  # neither the half file nor the temp file
