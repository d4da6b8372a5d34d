"""Shared fixtures: a CLI runner and a scratch presets folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Tests run two workers on two cores: one thread each keeps torch from oversubscribing, and
# makes the tiny trainings' numbers the same wherever they run (thread count changes the sums).
os.environ["OMP_NUM_THREADS"] = "1"
# Wide, fixed terminal for rendered tables (rich reads this once, at import).
os.environ["COLUMNS"] = "200"


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep user settings and caches out of tests."""
    monkeypatch.delenv("OCRTUNE_PRESETS", raising=False)
    monkeypatch.setenv("OCRTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "ocrtune-cache"))


@pytest.fixture
def cli():
    """Invoke the real root app; returns (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from ocrtune.cli.app import app

    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        r = runner.invoke(app, [str(a) for a in args], env=env)
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        return r.exit_code, r.stdout, r.stderr

    return run


@pytest.fixture
def presets_dir(tmp_path: Path) -> Path:
    d = tmp_path / "presets"
    d.mkdir()
    return d
