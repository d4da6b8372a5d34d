"""`presets blend` regressions: no self-extending preset, paths that work anywhere, names."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocrtune.presets.load import load_preset


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_blend_named_like_its_first_preset_is_refused(cli, here):
    code, _, err = cli("presets", "blend", "baseline", "run8", "--name", "baseline")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "baseline" in err
    assert not (here / "presets").exists()
    code, out, _ = cli("compare", "baseline", "run8")
    assert code == 0 and "+28.4%" in out


def test_forced_blend_named_like_its_first_preset_extends_the_original(cli, here):
    code, _, err = cli("presets", "blend", "baseline", "run8", "--name", "baseline", "--force")
    assert code == 0, err
    loaded = load_preset(here / "presets" / "baseline.yaml")
    assert loaded.chain[1] != loaded.chain[0] and loaded.preset.models.scheduler.T_max == 23
    code, _, err = cli("compare", "baseline", "run8")
    assert code == 0, err


def test_blend_of_a_path_extends_it_from_anywhere(cli, here, monkeypatch):
    (here / "p").mkdir()
    (here / "p" / "good.yaml").write_text("extends: run8\nseed: 7\n")
    code, _, err = cli("presets", "blend", "p/good.yaml", "run8", "--name", "gb")
    assert code == 0, err
    elsewhere = here / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert load_preset(here / "presets" / "gb.yaml").preset.seed == 7


@pytest.mark.parametrize("given,ok", [("mix.yaml", True), ("a b", False), ("x/y", False), ("_b", False)])
def test_blend_names(cli, here, given, ok):
    code, _, err = cli("presets", "blend", "baseline", "run8", "--name", given)
    if ok:
        assert code == 0 and (here / "presets" / "mix.yaml").is_file(), err
    else:
        assert code == 2 and err.strip().startswith("--name:") and len(err.strip().splitlines()) == 1
        assert not (here / "presets").exists()
