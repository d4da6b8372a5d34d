"""The suite's ``xdist_group`` marks hold under CI's ``-n 2 --dist loadgroup``: every test of a
group runs on one worker, so a file's module-scoped training is built once (tests/conftest.py
tags grouped tests for pytest-xdist again; pytest 9.2's node ids no longer take its own tag)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist")

# Two files of one group, each with a module-scoped fixture, and ungrouped tests to share out.
GROUPED = """\
import os

import pytest

pytestmark = pytest.mark.xdist_group("train")


@pytest.fixture(scope="module")
def built():
    with open(os.environ["BUILD_LOG"], "a") as f:
        f.write(f"{__name__} {os.environ['PYTEST_XDIST_WORKER']}\\n")


@pytest.mark.parametrize("i", range(6))
def test_uses_it(built, i):
    pass
"""
FREE = """\
import pytest


@pytest.mark.parametrize("i", range(12))
def test_free(i):
    pass
"""


def test_a_group_runs_on_one_worker_and_builds_a_module_fixture_once(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(Path(__file__).with_name("conftest.py"), suite / "conftest.py")
    (suite / "pytest.ini").write_text("[pytest]\n")
    for name in ("test_a", "test_b"):
        (suite / f"{name}.py").write_text(GROUPED)
    (suite / "test_free.py").write_text(FREE)
    log = tmp_path / "builds.log"
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p", "no:cacheprovider",
                        "--basetemp", str(tmp_path / "tmp")], cwd=suite, env={**os.environ, "BUILD_LOG": str(log)},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "24 passed" in r.stdout, r.stdout
    builds = [line.split() for line in log.read_text().splitlines()]
    assert sorted(module for module, _ in builds) == ["test_a", "test_b"]  # each module's fixture once
    assert len({worker for _, worker in builds}) == 1, builds  # both on the group's one worker
