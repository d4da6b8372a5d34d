"""`presets new/blend` write through the run directory's atomic writer and never overwrite unasked."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from ocrtune.presets import write
from ocrtune.presets.load import load_preset


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _first_token(monkeypatch: pytest.MonkeyPatch, first: str) -> None:
    """The next temp name the writer draws is ``first``; later ones are random again."""
    real = secrets.token_hex
    tokens = iter([first])
    monkeypatch.setattr(secrets, "token_hex", lambda n=None: next(tokens, None) or real(n))


@pytest.mark.parametrize("force", [False, True])
def test_a_stray_temp_file_does_not_stop_the_write(cli, here, monkeypatch, force):
    (here / "presets").mkdir()
    if force:
        (here / "presets" / "n1.yaml").write_text("extends: run8\nseed: 1\n")
    stray = here / "presets" / ".n1.yaml.deadbeef.tmp"
    stray.write_text("left by a crash\n")
    _first_token(monkeypatch, "deadbeef")
    code, _, err = cli("presets", "new", "n1", "--from", "run8", "--set", "seed=5", *(["--force"] if force else []))
    assert code == 0, err
    assert load_preset(here / "presets" / "n1.yaml").preset.seed == 5
    assert stray.read_text() == "left by a crash\n"
    assert sorted(p.name for p in (here / "presets").iterdir()) == [".n1.yaml.deadbeef.tmp", "n1.yaml"]


def test_a_file_that_appears_after_the_check_is_not_overwritten(cli, here, monkeypatch):
    (here / "presets").mkdir()
    target = here / "presets" / "late.yaml"
    target.write_text("seed: 1  # someone else's\n")
    monkeypatch.setattr(write, "_check_free", lambda *a, **k: None)  # as if it appeared just after the check
    code, _, err = cli("presets", "blend", "baseline", "run8", "--name", "late")
    assert code == 2 and "already exists (pass --force to overwrite)" in err and "Traceback" not in err
    assert target.read_text() == "seed: 1  # someone else's\n"
    assert [p.name for p in (here / "presets").iterdir()] == ["late.yaml"]
