"""`presets new` regressions: nothing broken is left on disk, no silent shadowing, names, comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocrtune.presets.load import load_preset


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder, so ./presets is this test's own."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_new_keeps_explicit_reported_values_and_resets_inherited_ones(cli, here):
    code, _, err = cli("presets", "new", "m5", "--from", "run8", "--set", "reported.hmean=99")
    assert code == 0, err
    rep = load_preset(here / "presets" / "m5.yaml").preset.reported
    assert rep is not None and rep.hmean == 99 and rep.epoch is None and rep.note is None
    assert "not yet measured" not in (here / "presets" / "m5.yaml").read_text()


def test_new_says_once_what_it_derives_from_and_comments_inherited_values(cli, here):
    assert cli("presets", "new", "a1", "--from", "run8")[0] == 0
    code, _, err = cli("presets", "new", "a2", "--from", "a1", "--set", "seed=3")
    assert code == 0, err
    text = (here / "presets" / "a2.yaml").read_text()
    assert text.count("# Created") == 1 and "presets new a2 --from a1" in text
    assert "# Best trial of the learning-rate sweep" in text  # run8's own comment survives
    assert "seed: 3  # was 42 in a1" in text  # 42 comes from run8's base, _receipt-b4
    assert load_preset(here / "presets" / "a1.yaml").preset.description == "derived from run8"
    assert load_preset(here / "presets" / "a2.yaml").preset.description == "derived from a1 with seed changed"
    # an explicit description wins
    code, _, err = cli("presets", "new", "a3", "--from", "a1", "--set", "description=my own")
    assert code == 0, err
    assert load_preset(here / "presets" / "a3.yaml").preset.description == "my own"


def test_new_comments_a_default_value_as_such(cli, here):
    (here / "bare.yaml").write_text("seed: 1\n")
    code, _, err = cli("presets", "new", "b2", "--from", here / "bare.yaml", "--set", "models.optimizer.lr=0.002")
    assert code == 0, err
    assert "lr: 0.002  # was 0.001 in" in (here / "presets" / "b2.yaml").read_text()
    assert "(default)" in (here / "presets" / "b2.yaml").read_text()
