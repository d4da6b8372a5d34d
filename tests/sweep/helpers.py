"""Helpers shared by the sweep tests: running ``ocrtune sweep`` in-process or as a real process,
reading the objectives' call log, and a fake ``nvidia-smi``. No tests here.

The objectives live in ``tests/sweep_objectives.py`` (``--objective tests.sweep_objectives:NAME``);
trial processes import them from the directory the sweep runs in, the repository root here.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
LR = "models.optimizer.lr"
OBJ = "tests.sweep_objectives:"
MAIN = "import sys; from ocrtune.cli.app import main; sys.argv[0] = 'ocrtune'; main()"


def sweep(cli, tmp_path: Path, *args: Any) -> tuple[int, dict | None, str]:
    """``ocrtune sweep --json`` in this process: (exit code, the summary or None, stderr)."""
    code, out, err = cli("sweep", "--runs-dir", tmp_path / "runs", "--json", "--no-report", *args)
    return code, (json.loads(out) if out.strip().startswith("{") else None), err


def one_line(err: str) -> str:
    """The only line of ``err`` (asserting there is one, and no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def calls(tmp_path: Path) -> list[dict]:
    """The objectives' call log (``$OCRTUNE_TEST_CALLS``), one dict per start or end."""
    p = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def table_rows(out: str) -> list[dict[str, str]]:
    """The trial table of ``sweep status`` as one dict per row, keyed by the column headers."""
    lines = [line for line in out.splitlines() if line.startswith("┃") or line.startswith("│")]
    head = [c.strip() for c in lines[0].strip("┃").split("┃")]
    return [dict(zip(head, (c.strip() for c in line.strip("│").split("│")))) for line in lines[1:]]


def sweep_cmd(tmp_path: Path, *args: str) -> list[str]:
    """``ocrtune sweep`` as its own process (run it with ``cwd=REPO``), without the report (tests
    of reports ask for it)."""
    return [sys.executable, "-c", MAIN, "sweep", "--runs-dir", str(tmp_path / "runs"), "--no-report", *args]


def env_for(tmp_path: Path, sleep: float) -> dict[str, str]:
    return {**os.environ, "OCRTUNE_SWEEP_POLL_S": "0.05", "OCRTUNE_TEST_SLEEP": str(sleep),
            "OCRTUNE_TEST_CALLS": str(tmp_path / "calls.jsonl")}


def wait_for(pred, timeout: float = 60.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def assert_each_slot_once(summary: dict) -> None:
    """Every planned slot has exactly one result and nothing is left queued or running."""
    results = Counter((t["plan"], t["slot_index"]) for t in summary["trials"]
                      if t["state"] in ("complete", "pruned") or t["status"] in ("diverged", "oom", "failed"))
    planned = {(b["seq"], i) for b in summary["batches"] for i in range(b["planned"])}
    assert set(results) == planned and set(results.values()) == {1}
    assert not [t for t in summary["trials"] if t["state"] in ("waiting", "running")]


def fake_nvidia_smi(tmp_path: Path, monkeypatch, *indices: int) -> None:
    """An ``nvidia-smi`` on PATH that lists GPUs ``indices`` (the query ``gpu_ids`` makes)."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + "".join(f"echo {i}\n" for i in indices))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
