"""Shared fixtures: a CLI runner, a scratch presets folder and tiny training data (the recipe
for small runs is tests/_runs.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests._runs")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# Tests run two workers on two cores: one thread each keeps torch from oversubscribing, and
# makes the tiny trainings' numbers the same wherever they run (thread count changes the sums).
os.environ["OMP_NUM_THREADS"] = "1"
# Wide, fixed terminal for rendered tables (rich reads this once, at import).
os.environ["COLUMNS"] = "200"


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make ``xdist_group`` marks hold again under ``-n 2 --dist loadgroup``, so a file's
    module-scoped training runs on one worker only, once. pytest-xdist 3.8 tags each grouped
    test by writing ``item._nodeid``, which pytest 9.2 no longer reads (its node ids are
    structured), so every group was silently split across workers (pytest-xdist#1386). A no-op
    outside xdist workers, and once xdist's own suffix is there."""
    if not getattr(config.option, "loadgroup", False):
        return
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # an older pytest: xdist's own tag works
        return
    for item in items:
        groups = {str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                  for m in item.iter_markers("xdist_group")}
        suffix = "@" + "_".join(sorted(groups))
        if groups and not item.nodeid.endswith(suffix):
            try:
                item._id = NodeId.parse(item.nodeid + suffix)  # what xdist's scheduler splits on
            except (AttributeError, TypeError, ValueError):  # pytest changed again: split groups, still correct
                return


@pytest.fixture(scope="session", autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory):
    """Keep user settings and caches out of tests, module- and session-scoped fixtures' runs too
    (they start before any function-scoped fixture)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OCRTUNE_PRESETS", raising=False)
        mp.setenv("OCRTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "ocrtune-cache"))
        yield


@pytest.fixture(scope="session")
def cli():
    """Invoke the real root app; returns (exit_code, stdout, stderr). Session-scoped, so shared
    runs (module- or session-scoped fixtures) can be made with the CLI too."""
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


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 256 px receipts (seed 3) whose val split is a copy of train, so a short run can show
    it learned something. One per worker, shared by every test file: read only, copy to change."""
    from tests._runs import receipts

    return receipts(tmp_path_factory.mktemp("tiny"), n=2, seed=3, val_is_train=True)
