from __future__ import annotations

import json
from pathlib import Path

from ocrtune import __version__
from ocrtune.presets.load import load_preset


def test_help_lists_commands_and_version(cli):
    code, out, _ = cli("--help")
    assert code == 0
    for c in ("presets", "compare"):
        assert c in out
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"ocrtune {__version__}"


def test_presets_list(cli):
    code, out, _ = cli("presets", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["run8"]["lr"] == 0.0005134333170096499 and rows["baseline"]["reported_hmean"] == 96.53
    assert rows["hybrid"]["reported_hmean"] is None and rows["run8"]["encoder"] == "efficientnet_b4"
    code, out, _ = cli("presets", "list")
    assert code == 0 and "efficientnet_b4" in out and "96.53" in out


def test_presets_list_marks_invalid_preset(cli, presets_dir):
    (presets_dir / "zz-bad.yaml").write_text("models:\n  optimizer:\n    lr: -1\n")
    code, out, _ = cli("presets", "list", "--json", "--presets-dir", presets_dir)
    assert code == 0
    bad = [r for r in json.loads(out) if r["name"] == "zz-bad"][0]
    assert "zz-bad.yaml:3:5 models.optimizer.lr: must be > 0.0" in bad["error"]


def test_presets_show_resolves(cli):
    code, out, _ = cli("presets", "show", "run8", "--set", "trainer.max_epochs=3", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["trainer"]["max_epochs"] == 3 and data["models"]["scheduler"]["T_max"] == 24
    code, out, _ = cli("presets", "show", "run8")
    assert "lr: 0.0005134333170096499" in out and out.startswith("# run8: resolved from")


def test_presets_validate_exit_codes(cli, presets_dir):
    code, _, err = cli("presets", "validate")
    assert code == 0 and "ok  baseline" in err
    bad = presets_dir / "bad.yaml"
    bad.write_text("extends: run8\nmodels:\n  optimizer:\n    lrr: 0.001\n")
    code, _, err = cli("presets", "validate", str(bad), "run8")
    assert code == 2
    assert "bad.yaml:4:5 models.optimizer.lrr: unknown key (did you mean 'lr'?)" in err
    assert "ok  run8" in err and "1 of 2 preset(s) invalid" in err
    code, _, err = cli("presets", "validate", "run8", "--set", "datasets.image_size=1000")
    assert code == 2 and "--set datasets.image_size: must be a positive multiple of 32" in err


def test_set_error_on_show_is_one_line_exit_2(cli):
    code, out, err = cli("presets", "show", "run8", "--set", "models.optimizer.lrr=1")
    assert code == 2 and out == ""
    assert err.strip() == "--set models.optimizer.lrr: unknown key (did you mean 'lr'?)"


def test_presets_new_keeps_comments_and_applies_changes(cli, tmp_path):
    out_dir = tmp_path / "mine"
    code, _, err = cli("presets", "new", "fast8", "--from", "run8", "--set", "models.optimizer.lr=3e-4",
                       "--set", "trainer.max_epochs=5", "--dir", out_dir)
    assert code == 0, err
    text = (out_dir / "fast8.yaml").read_text()
    # run8's header ("values exactly as the sweep proposed them") is not true of the changed copy
    assert "# Best trial of the learning-rate sweep" not in text
    assert "\n# Derived from run8 (" in text
    assert ") with these overrides: models.optimizer.lr=3e-4, trainer.max_epochs=5.\n" in text
    assert "lr: 0.0003  # was 0.0005134333170096499 in run8" in text
    assert "weight_decay: 6.797303101020006e-05" in text  # untouched values keep every digit
    p = load_preset(out_dir / "fast8.yaml").preset
    assert p.models.optimizer.lr == 3e-4 and p.trainer.max_epochs == 5
    assert p.models.scheduler.eta_min == 6.388390006720873e-06
    assert p.reported is None  # changed settings are not run8's measured scores
    # never overwrite silently
    code, _, err = cli("presets", "new", "fast8", "--from", "run8", "--dir", out_dir)
    assert code == 2 and "already exists" in err
    assert (out_dir / "fast8.yaml").read_text() == text


def test_presets_new_invalid_override_writes_nothing(cli, tmp_path):
    code, _, err = cli("presets", "new", "x", "--from", "run8", "--set", "models.optimizer.lr=0", "--dir", tmp_path)
    assert code == 2 and "--set models.optimizer.lr: must be > 0.0" in err
    assert not (tmp_path / "x.yaml").exists()


def test_presets_blend_writes_loadable_preset(cli, tmp_path):
    code, _, err = cli("presets", "blend", "baseline", "run8", "--name", "mid", "--dir", tmp_path, "--log", "--json")
    assert code == 0, err
    p = load_preset(tmp_path / "mid.yaml").preset
    assert abs(p.models.optimizer.lr - (0.0004 * 0.0005134333170096499) ** 0.5) < 1e-15
    assert p.models.scheduler.T_max == 23 and p.reported is None
    text = (tmp_path / "mid.yaml").read_text()
    assert text.startswith("# Created") and "extends: baseline" in text and "(log, w=0.5)" in text


def test_blend_bad_weight(cli, tmp_path):
    code, _, err = cli("presets", "blend", "baseline", "run8", "--name", "m", "--weight", "2", "--dir", tmp_path)
    assert code == 2 and "--weight: must be in [0, 1]" in err
    assert not any(Path(tmp_path).iterdir())


def test_odd_inputs_give_located_lines(cli, presets_dir, tmp_path):
    (presets_dir / "latin1.yaml").write_bytes("seed: 1\ndescription: caf\xe9\n".encode("latin-1"))
    code, _, err = cli("presets", "show", presets_dir / "latin1.yaml")
    assert code == 2 and "latin1.yaml:2: not UTF-8 text" in err
    code, _, err = cli("presets", "show", "run8", "--set", "models.optimizer.lr=.inf")
    assert code == 2 and "--set models.optimizer.lr" in err
    code, out, _ = cli("presets", "show", "run8", "--set", "description=run # 3", "--json")
    assert code == 0 and json.loads(out)["description"] == "run # 3"
    # user text is never read as rich markup
    code, out, err = cli("compare", "run8", "run3", "--set", "datasets.root=/data/[/x]", "--all")
    assert code == 0 and "/data/[/x]" in out


def test_dotted_preset_names(cli, presets_dir):
    (presets_dir / "v1.5-demo.yaml").write_text("extends: cpu-demo\nseed: 3\n")
    code, out, _ = cli("presets", "show", "v1.5-demo", "--presets-dir", presets_dir)
    assert code == 0 and out.startswith("# v1.5-demo: resolved from")


def test_blend_keeps_image_size_on_its_grid(cli, tmp_path):
    code, _, err = cli("presets", "blend", "cpu-demo", "baseline", "--name", "mix", "--weight", "0.3", "--dir", tmp_path)
    assert code == 0, err
    size = load_preset(tmp_path / "mix.yaml").preset.datasets.image_size
    assert size % 32 == 0 and size == 32 * round((320 + 0.3 * (1024 - 320)) / 32)


def test_new_keeps_the_source_base_when_it_lives_elsewhere(cli, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "_receipt-b4.yaml").write_text("models:\n  encoder:\n    model_name: resnet18\n")
    (src / "child.yaml").write_text("extends: _receipt-b4\nseed: 5\n")
    out = tmp_path / "out"
    code, _, err = cli("presets", "new", "foo", "--from", src / "child.yaml", "--dir", out)
    assert code == 0, err
    assert load_preset(out / "foo.yaml").preset.models.encoder.model_name == "resnet18"


def test_a_missing_presets_dir_is_refused_by_every_command(cli, tmp_path):
    missing = tmp_path / "nope"
    a_file = tmp_path / "f.yaml"
    a_file.write_text("seed: 1\n")
    for args in (("presets", "list"), ("presets", "show", "baseline"), ("presets", "validate"),
                 ("compare", "baseline", "run8"), ("train", "--resume", "no-such-run")):
        code, out, err = cli(*args, "--presets-dir", missing)
        assert code == 2, args
        assert err.strip() == f"--presets-dir {missing}: folder not found", args
        assert out == ""
    code, _, err = cli("presets", "list", "--presets-dir", a_file)
    assert code == 2 and err.strip() == f"--presets-dir {a_file}: not a folder"
    code, out, _ = cli("presets", "list", "--presets-dir", tmp_path, "--json")  # a folder: searched as before
    assert code == 0 and "baseline" in out


def test_validate_refuses_an_empty_preset(cli, tmp_path):
    empty, comments, braces = (tmp_path / f"{n}.yaml" for n in ("empty", "comments", "braces"))
    empty.write_text("")
    comments.write_text("# nothing here yet\n")
    braces.write_text("{}\n")
    copy = tmp_path / "copy.yaml"
    copy.write_text("extends: baseline\n")
    code, _, err = cli("presets", "validate", empty, comments, braces, copy)
    assert code == 2
    lines = err.strip().splitlines()
    assert [ln.split(": ")[0] for ln in lines[:3]] == [str(empty), str(comments), str(braces)]
    assert all("empty preset: it sets nothing and extends nothing" in ln for ln in lines[:3])
    assert f"ok  copy ({copy})" in lines and lines[-1] == "3 of 4 preset(s) invalid"
