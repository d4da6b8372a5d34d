"""Multi-machine sweep on a real PostgreSQL server: a coordinator that runs no trials itself
and two `ocrtune sweep worker` processes (separate run directories, as on two machines)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter

import pytest

from ocrtune.sweep.store import Store
from tests.sweep.helpers import LR, MAIN, REPO, assert_each_slot_once, calls, env_for, sweep_cmd

PG = os.environ.get("OCRTUNE_TEST_POSTGRES")
pytestmark = [pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.skipif(not PG, reason="OCRTUNE_TEST_POSTGRES is not set (no PostgreSQL server; .ci/run starts one)")]


def test_coordinator_and_two_workers_run_every_trial_exactly_once(tmp_path):
    name = f"mw-{uuid.uuid4().hex[:8]}"
    env = env_for(tmp_path, 0.1)
    coord = subprocess.Popen(
        sweep_cmd(tmp_path, "--objective", "tests.sweep_objectives:logged", "--range", "2e-5,1e-2", "--points", "4",
                  "--stages", "3", "--min-improvement", "0", "--epochs", "2", "--parallel", "0", "--storage", str(PG),
                  "--name", name, "--json"),
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    workers = [subprocess.Popen([sys.executable, "-c", MAIN, "sweep", "worker", "--storage", str(PG), "--name", name,
                                 "--runs-dir", str(tmp_path / f"machine{i}"), "--json"],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    try:
        out, err = coord.communicate(timeout=240)
        assert coord.returncode == 0, err
        ran = []
        for w in workers:
            wout, werr = w.communicate(timeout=60)
            assert w.returncode == 0, werr
            ran.append(json.loads(wout))
    finally:
        for p in (coord, *workers):
            p.kill()
    try:
        s = json.loads(out)
        assert s["state"] == "finished" and [b["index"] for b in s["batches"]] == [0, 1, 2]
        assert_each_slot_once(s)
        results = {t["number"] for t in s["trials"] if t["status"] in ("completed", "diverged")}
        per_worker = [{o["number"] for o in r} for r in ran]
        assert all(per_worker) and not (per_worker[0] & per_worker[1])  # both worked, never on the same trial
        assert per_worker[0] | per_worker[1] == results
        starts = Counter(c["params"][LR] for c in calls(tmp_path) if c["event"] == "start")
        assert set(starts.values()) == {1} and len(starts) == len(results)
        for i, numbers in enumerate(per_worker):  # each trial's files are on the machine that ran it
            for n in numbers:
                assert (tmp_path / f"machine{i}" / "sweeps" / name / "trials" / f"{n:04d}" / "result.json").is_file()
    finally:
        Store.open(name, PG).drop()
