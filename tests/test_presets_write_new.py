"""`presets new` regressions: nothing broken is left on disk, no silent shadowing, names, comments."""

from __future__ import annotations

import os
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


def test_new_over_a_blend_of_itself_is_refused_and_leaves_compare_working(cli, here):
    code, _, err = cli("presets", "blend", "baseline", "run8", "--name", "hy")
    assert code == 0, err
    code, _, err = cli("presets", "new", "baseline", "--from", "hy")
    assert code == 2 and "Traceback" not in err
    assert files(here / "presets") == ["hy.yaml"]
    code, out, err = cli("compare", "baseline", "run8")
    assert code == 0 and "+28.4%" in out, err


def test_new_that_fails_at_its_destination_restores_the_old_file(cli, here):
    presets = here / "presets"
    presets.mkdir()
    (presets / "a.yaml").write_text("extends: b\nseed: 1\n")
    old = "extends: run8\nseed: 2\n"
    (presets / "b.yaml").write_text(old)
    # b written from a (which extends b) can only extend itself: a cycle once it is on disk
    code, _, err = cli("presets", "new", "b", "--from", "a", "--force")
    assert code == 2 and "extends cycle" in err and "nothing written" in err
    assert (presets / "b.yaml").read_text() == old
    assert files(presets) == ["a.yaml", "b.yaml"]  # no temporary or backup file left behind


def test_new_refuses_to_shadow_a_builtin_preset(cli, here):
    builtin = load_preset("run8").path
    code, _, err = cli("presets", "new", "run8", "--from", "baseline")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "run8" in lines[0] and str(builtin) in lines[0]
    assert "--force" in lines[0]
    assert not (here / "presets").exists()
    code, out, _ = cli("compare", "baseline", "run8")
    assert code == 0 and "no differing parameters" not in out
    # --force says the user means it
    code, _, err = cli("presets", "new", "run8", "--from", "baseline", "--force")
    assert code == 0, err
    assert load_preset(here / "presets" / "run8.yaml").preset.models.optimizer.lr == 0.0004


def test_new_refuses_to_shadow_presets_anywhere_on_the_search_path(cli, here):
    mine, env_dir, local = here / "mine", here / "env", here / "presets"
    for d in (mine, env_dir, local):
        d.mkdir()
    (mine / "m1.yaml").write_text("extends: run8\n")
    (env_dir / "e1.yml").write_text("extends: run8\n")
    (local / "l1.yaml").write_text("extends: run8\n")
    out = here / "out"
    code, _, err = cli("presets", "new", "m1", "--from", "run8", "--dir", out, "--presets-dir", mine)
    assert code == 2 and "mine/m1.yaml" in err
    code, _, err = cli("presets", "new", "e1", "--from", "run8", "--dir", out, env={"OCRTUNE_PRESETS": str(env_dir)})
    assert code == 2 and "env/e1.yml" in err
    code, _, err = cli("presets", "new", "l1", "--from", "run8", "--dir", out)
    assert code == 2 and "presets/l1.yaml" in err
    assert not out.exists()
    # a .yml twin in the destination folder would be shadowed too
    out.mkdir()
    (out / "t1.yml").write_text("extends: run8\n")
    code, _, err = cli("presets", "new", "t1", "--from", "run8", "--dir", out)
    assert code == 2 and "t1.yml" in err and files(out) == ["t1.yml"]


def test_new_keeps_explicit_reported_values_and_resets_inherited_ones(cli, here):
    code, _, err = cli("presets", "new", "m5", "--from", "run8", "--set", "reported.hmean=99")
    assert code == 0, err
    rep = load_preset(here / "presets" / "m5.yaml").preset.reported
    assert rep is not None and rep.hmean == 99 and rep.epoch is None and rep.note is None
    assert "not yet measured" not in (here / "presets" / "m5.yaml").read_text()


@pytest.mark.parametrize("given,stem", [("x.yaml", "x"), ("y.yml", "y"), ("v1.5-demo", "v1.5-demo")])
def test_new_strips_a_yaml_suffix_from_the_name(cli, here, given, stem):
    code, _, err = cli("presets", "new", given, "--from", "run8")
    assert code == 0, err
    assert files(here / "presets") == [f"{stem}.yaml"]


@pytest.mark.parametrize("bad", ["a b", "a/b", "../x", ".hidden", "_base", "", "x\ty", "tab\n"])
def test_new_rejects_names_that_are_not_plain_stems(cli, here, bad):
    code, _, err = cli("presets", "new", bad, "--from", "run8")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (here / "presets").exists() and files(here) == []


def test_new_says_once_what_it_derives_from_and_comments_inherited_values(cli, here):
    assert cli("presets", "new", "a1", "--from", "run8")[0] == 0
    code, _, err = cli("presets", "new", "a2", "--from", "a1", "--set", "seed=3")
    assert code == 0, err
    text = (here / "presets" / "a2.yaml").read_text()
    assert text.count("# Created") == 1 and "presets new a2 --from a1" in text
    assert "# Best trial of the learning-rate sweep" in (here / "presets" / "a1.yaml").read_text()  # a copy keeps it
    assert "# Best trial of the learning-rate sweep" not in text  # describes run8's values, which seed=3 changed
    assert "# Derived from a1 (presets/a1.yaml) with these overrides: seed=3.\n" in text
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


def test_new_file_is_readable_like_the_others(cli, here):
    assert cli("presets", "new", "r1", "--from", "run8")[0] == 0
    mode = (here / "presets" / "r1.yaml").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_new_from_a_blend_drops_the_blend_notes_and_keeps_the_users_comments(cli, here):
    (here / "p").mkdir()
    (here / "p" / "a.yaml").write_text("extends: cpu-demo\ntrainer:\n  max_epochs: 8\n")
    (here / "p" / "b.yaml").write_text("extends: cpu-demo\ntrainer:\n  max_epochs: 10\nmodels:\n  optimizer:\n    lr: 0.004\n")
    code, _, err = cli("presets", "blend", "p/a.yaml", "p/b.yaml", "--name", "x", "--set", "trainer.max_epochs=2",
                       "--set", "seed=4")
    assert code == 0, err
    blend = here / "presets" / "x.yaml"
    text = blend.read_text()
    assert "# was 9 in the blend" in text and "# was 7 in p/a.yaml" in text and "(linear, w=0.5)" in text
    # the user annotates the blend by hand
    text = text.replace("seed: 4  # was 7 in p/a.yaml\n", "seed: 4  # was 7 in p/a.yaml\n# my own note on seeds\n")
    blend.write_text(text.replace("description:", "# why this blend exists\ndescription:"))
    code, _, err = cli("presets", "new", "y", "--from", "x", "--set", "models.scheduler.T_max=5")
    assert code == 0, err
    out = (here / "presets" / "y.yaml").read_text()
    assert "in the blend" not in out and "in p/a.yaml" not in out and "->" not in out
    assert "  max_epochs: 2\n" in out and "seed: 4\n# my own note on seeds\n" in out
    assert "# why this blend exists\n" in out and "T_max: 5  # was 16 in x" in out
    p = load_preset(here / "presets" / "y.yaml").preset
    assert p.trainer.max_epochs == 2 and p.seed == 4 and p.models.optimizer.lr == pytest.approx(0.003)
    # one more step: y's own notes are y's derivation, not z's
    code, _, err = cli("presets", "new", "z", "--from", "y")
    assert code == 0, err
    out = (here / "presets" / "z.yaml").read_text()
    assert "T_max: 5\n" in out and "was 16" not in out and "# my own note on seeds" in out


def test_new_keeps_note_like_comments_in_a_file_ocrtune_did_not_write(cli, here):
    (here / "mine.yaml").write_text("extends: run8\nseed: 3  # was 42 in the blend\ntrainer:\n  max_epochs: 9  # not yet measured\n")
    code, _, err = cli("presets", "new", "c1", "--from", here / "mine.yaml")
    assert code == 0, err
    out = (here / "presets" / "c1.yaml").read_text()
    assert "seed: 3  # was 42 in the blend" in out and "max_epochs: 9  # not yet measured" in out


def test_new_set_keeps_the_comment_lines_below_a_changed_value(cli, here):
    (here / "u.yaml").write_text(
        "extends: run8\nseed: 3  # mine\n# about the trainer\ntrainer:\n  max_epochs: 9\n  # inner note\n"
        "reported:\n# after reported\ndescription: d\n"
    )
    code, _, err = cli("presets", "new", "u2", "--from", here / "u.yaml", "--set", "seed=4", "--set", "trainer.max_epochs=5")
    assert code == 0, err
    out = (here / "presets" / "u2.yaml").read_text()
    assert "seed: 4  # was 3 in " in out and "\n# about the trainer\ntrainer:\n" in out
    assert "max_epochs: 5  # was 9 in " in out and "\n  # inner note\n" in out
    assert "# not yet measured\n# after reported\n" in out
