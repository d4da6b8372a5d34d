"""The sweep's state for people (``summarize``, ``sweep status``, the live view): trials of a
dead worker shown as lost without writing, a warning when every trial scored 0, stages counted
from 1."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ocrtune.errors import InputError
from ocrtune.presets.schema import Preset
from ocrtune.sweep.run.liveness import process_start
from ocrtune.sweep.store import Store
from ocrtune.sweep.summary import summarize
from ocrtune.sweep.types import Batch, GridSearch, SweepConfig
from tests.sweep.helpers import LR, OBJ, sweep, table_rows


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.05")


def _sweep_store(tmp_path: Path, name: str, objective: str | None = None) -> tuple[Store, SweepConfig]:
    base = Preset.model_validate({"models": {"scheduler": {"eta_min": 0}}}).model_dump(mode="json")
    cfg = SweepConfig(name=name, preset="cpu-demo", base=base, objective=objective, search=GridSearch(), epochs=2,
                      dims=({"key": LR, "kind": "choice", "leaf": "float", "values": [1e-4, 1e-3, 1e-2]},))
    store = Store.open(name, runs_dir=tmp_path / "runs", create=True)
    store.set_config(cfg)
    return store, cfg


def test_status_shows_trials_of_a_killed_coordinator_as_lost_without_writing(cli, tmp_path):
    store, _ = _sweep_store(tmp_path, "k")
    plan = store.add_plan(Batch(({LR: 1e-4}, {LR: 1e-3}, {LR: 1e-2}), 0, False, "3 of 3 grid trials"))
    for slot in range(3):
        store.enqueue(plan, slot)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    start = process_start(gone.pid)
    gone.wait()  # a coordinator killed with -9: its pid is gone
    dead = store.claim({"pid": gone.pid, "pid_start": start, "slot": "cpu0"})
    alive = store.claim({"slot": "cpu1"})  # this process: alive
    remote = store.claim({"host": "elsewhere/1/2", "pid": 7, "slot": "gpu0"})
    store.set_attrs(remote.trial_id, heartbeat=time.time() - 600)
    store.close()

    code, out, err = cli("sweep", "status", "k", "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0, err
    s = json.loads(out)
    rows = {t["number"]: t for t in s["trials"]}
    assert rows[dead.number]["status"] == "lost" and rows[dead.number]["duration_s"] is None
    assert f"worker process {gone.pid} on this host is gone" in rows[dead.number]["error"]
    assert rows[remote.number]["status"] == "lost" and "no heartbeat from elsewhere pid 7" in rows[remote.number]["error"]
    assert rows[alive.number]["status"] == "running"
    assert s["counts"] == {"lost": 2, "running": 1}
    code, out, _ = cli("sweep", "status", "k", "--runs-dir", tmp_path / "runs")
    row = next(line for line in out.splitlines() if line.startswith(f"│ {dead.number} "))
    assert "lost" in row and row.rstrip("│ ").endswith("-")  # no growing time

    store = Store.open("k", runs_dir=tmp_path / "runs")
    try:  # status wrote nothing: the next coordinator run decides
        assert [(t.state, t.status) for t in store.trials()] == [("running", "running")] * 3
    finally:
        store.close()


def test_a_sweep_where_every_trial_scored_zero_says_so(cli, tmp_path):
    from ocrtune.cli.sweep import render

    store, cfg = _sweep_store(tmp_path, "z")
    plan = store.add_plan(Batch(({LR: 1e-4}, {LR: 1e-3}), 0, False, "2 of 3 grid trials"))
    for slot in range(2):
        store.enqueue(plan, slot)
        store.finish(store.claim().trial_id, "completed", 0.0, {"epochs": 2})
    summary = summarize(store, cfg)
    assert summary.best.trial is not None
    assert summary.warning.startswith("no trial scored above 0 (2 scored)") and "check the data and --epochs" in \
        summary.warning
    live = render(summary, final=False)
    assert any("warning: no trial scored above 0" in str(getattr(p, "plain", "")) for p in live.renderables)
    cfg_obj = SweepConfig.from_dict({**cfg.to_dict(), "objective": OBJ + "curve_only"})
    assert summarize(store, cfg_obj).warning is None  # an objective's 0 is just a value
    store.close()
    code, out, err = cli("sweep", "status", "z", "--runs-dir", tmp_path / "runs", "--json")
    assert code == 0 and json.loads(out)["warning"] == summary.warning
    code, out, err = cli("sweep", "status", "z", "--runs-dir", tmp_path / "runs")
    assert "warning: no trial scored above 0" in out

    store = Store.open("z", runs_dir=tmp_path / "runs")
    store.enqueue(plan, 0, attempt=2)
    store.finish(store.claim().trial_id, "completed", 0.25, {"epochs": 2})
    assert summarize(store, cfg).warning is None
    store.close()


def test_stages_are_counted_from_one_in_output_but_stored_from_zero(cli, tmp_path):
    code, s, err = sweep(cli, tmp_path, "--objective", OBJ + "curve_only", "--range", "2e-5,1e-2", "--points", "3",
                         "--stages", "4", "--min-improvement", "0.9", "--name", "st")
    assert code == 0, err
    # the second stage did not improve the best (smoothed) score enough
    assert s["reason"].startswith("stage 2 improved the best (smoothed) score by")
    assert [(b["index"], b["stage"]) for b in s["batches"]] == [(0, 1), (1, 2)]
    assert {(t["batch"], t["stage"]) for t in s["trials"]} == {(0, 1), (1, 2)}
    code, out, _ = cli("sweep", "status", "st", "--runs-dir", tmp_path / "runs")
    stages = [r["stage"] for r in table_rows(out)]
    assert stages == ["1"] * 3 + ["2"] * 3 and "stopped" not in out and "finished: stage 2 improved" in out
    store = Store.open("st", runs_dir=tmp_path / "runs")
    try:
        assert store.finished()["reason"].startswith("stage 2 improved")  # the stored text is for people too
    finally:
        store.close()


def test_a_missing_sweep_is_named_by_the_argument_status_takes(cli, tmp_path):
    """`sweep status NAME` takes a positional NAME: the line says NAME, not --name."""
    code, out, err = cli("sweep", "status", "nosuch", "--runs-dir", tmp_path / "runs")
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("NAME: no sweep named 'nosuch'") and "--name" not in lines[0]
    store, _ = _sweep_store(tmp_path, "other")  # a study file that holds another sweep
    store.close()
    db = tmp_path / "runs" / "sweeps" / "other" / "study.db"
    code, _, err = cli("sweep", "status", "nosuch", "--storage", db)
    assert code == 2 and err.strip().startswith("NAME: no sweep named 'nosuch' in"), err
    with pytest.raises(InputError, match="no sweep named") as e:  # elsewhere the default stays --name
        Store.open("nosuch", runs_dir=tmp_path / "runs")
    assert e.value.problems[0].key == "--name"
