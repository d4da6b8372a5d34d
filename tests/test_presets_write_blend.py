"""`presets blend` regressions: no self-extending preset, paths that work anywhere, --set, names."""

from __future__ import annotations

import json
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


def test_blend_applies_set_to_the_blended_result(cli, here):
    code, _, err = cli("presets", "blend", "baseline", "run8", "--name", "z", "--set", "seed=3",
                       "--set", "models.optimizer.lr=1e-4", "-s", "reported.hmean=90")
    assert code == 0, err
    p = load_preset(here / "presets" / "z.yaml").preset
    assert p.seed == 3 and p.models.optimizer.lr == 1e-4 and p.reported is not None and p.reported.hmean == 90
    assert p.models.scheduler.T_max == 23  # still blended
    text = (here / "presets" / "z.yaml").read_text()
    assert "seed: 3  # was 42 in baseline" in text and "in the blend" in text


def test_blend_set_is_checked_against_the_blend_not_the_first_preset(cli, here):
    # 0.00042 is above baseline's lr (0.0004) but below the blended one (about 0.000457)
    code, _, err = cli("presets", "blend", "baseline", "run8", "--name", "z", "--set", "models.scheduler.eta_min=0.00042")
    assert code == 0, err
    assert load_preset(here / "presets" / "z.yaml").preset.models.scheduler.eta_min == 0.00042


@pytest.mark.parametrize("item,line", [
    ("models.optimizer.lr=0", "--set models.optimizer.lr: must be > 0.0"),
    ("models.optimizer.lrr=1", "--set models.optimizer.lrr: unknown key (did you mean 'lr'?)"),
    ("models.scheduler.eta_min=0.01", "--set models.scheduler.eta_min: must be below models.optimizer.lr"),
])
def test_blend_bad_set_is_located_and_writes_nothing(cli, here, item, line):
    code, _, err = cli("presets", "blend", "baseline", "run8", "--name", "z", "--set", item)
    assert code == 2 and err.strip().startswith(line) and "Traceback" not in err
    assert not (here / "presets").exists()


@pytest.mark.parametrize("given,ok", [("mix.yaml", True), ("a b", False), ("x/y", False), ("_b", False)])
def test_blend_names(cli, here, given, ok):
    code, _, err = cli("presets", "blend", "baseline", "run8", "--name", given)
    if ok:
        assert code == 0 and (here / "presets" / "mix.yaml").is_file(), err
    else:
        assert code == 2 and err.strip().startswith("--name:") and len(err.strip().splitlines()) == 1
        assert not (here / "presets").exists()


def test_blend_reports_the_values_it_wrote_after_set(cli, here):
    (here / "p").mkdir()
    (here / "p" / "a.yaml").write_text("extends: cpu-demo\ntrainer:\n  max_epochs: 8\n")
    (here / "p" / "b.yaml").write_text("extends: cpu-demo\ntrainer:\n  max_epochs: 10\n")
    args = ("presets", "blend", "p/a.yaml", "p/b.yaml", "--set", "trainer.max_epochs=2", "--set", "seed=4")
    code, out, err = cli(*args, "--name", "j", "--json")
    assert code == 0, err
    rows = {v["key"]: v for v in json.loads(out)["values"]}
    assert rows["trainer.max_epochs"] == {"key": "trainer.max_epochs", "a": 8, "b": 10, "value": 2, "how": "--set"}
    assert rows["seed"] == {"key": "seed", "a": 7, "b": 7, "value": 4, "how": "--set"}  # not blended, but written
    p = load_preset(here / "presets" / "j.yaml").preset
    assert p.trainer.max_epochs == 2 and p.seed == 4
    code, out, err = cli(*args, "--name", "t")
    assert code == 0, err
    line = next(ln for ln in out.splitlines() if "trainer.max_epochs" in ln)
    assert [cell.strip() for cell in line.split("│")[1:-1]] == ["trainer.max_epochs", "8", "10", "2", "--set"]


def test_blend_without_set_reports_the_blend(cli, here):
    code, out, err = cli("presets", "blend", "baseline", "run8", "--name", "plain", "--json")
    assert code == 0, err
    rows = {v["key"]: v for v in json.loads(out)["values"]}
    assert rows["models.scheduler.T_max"] == {"key": "models.scheduler.T_max", "a": 22, "b": 24, "value": 23, "how": "linear"}
    assert all(v["how"] == "linear" for v in rows.values())


def test_blend_of_different_encoders_warns_and_says_what_it_took_from_where(cli, here):
    code, out, err = cli("presets", "blend", "baseline", "cpu-demo", "--name", "mix")
    assert code == 0, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("warning: baseline and cpu-demo use different encoders (efficientnet_b4, resnet10t);"
                               " the blend uses baseline's and interpolates sizes tuned for each: ")
    for mixed in ("models.decoder.inner_channels 160 (baseline 256, cpu-demo 64)",
                  "datasets.image_size 672 (baseline 1024, cpu-demo 320)"):
        assert mixed in lines[0]
    assert lines[1] == ("taken from baseline, not blended: models.encoder.model_name=efficientnet_b4 (cpu-demo has"
                        " resnet10t), models.encoder.pretrained=true (cpu-demo has false), models.optimizer.name=adam"
                        " (cpu-demo has adamw), dataloader.num_workers=auto (cpu-demo has 0), trainer.precision=auto"
                        " (cpu-demo has 32-true)")
    assert lines[2] == f"wrote {Path('presets') / 'mix.yaml'}"
    text = (here / "presets" / "mix.yaml").read_text()
    assert "# baseline and cpu-demo use different encoders (efficientnet_b4, resnet10t): this blend uses baseline's" in text
    # --set takes a side too, and --json carries the same lines
    code, out, err = cli("presets", "blend", "baseline", "cpu-demo", "--name", "mix2", "--json",
                         "--set", "models.encoder.model_name=resnet18")
    assert code == 0, err
    caveats = json.loads(out)["caveats"]
    assert "the blend uses resnet18 (--set)" in caveats[0]
    assert caveats[-1] == ("taken from --set, not blended: models.encoder.model_name=resnet18"
                           " (baseline efficientnet_b4, cpu-demo resnet10t)")
    assert err.strip() == caveats[0]  # the warning reaches the terminal with --json too
    assert "this blend uses the --set one" in (here / "presets" / "mix2.yaml").read_text()


def test_blend_of_the_same_encoder_has_no_warning(cli, here):
    code, out, err = cli("presets", "blend", "baseline", "run8", "--name", "same")
    assert code == 0, err
    assert "warning" not in err and "taken from" not in err
    assert "different encoders" not in (here / "presets" / "same.yaml").read_text()
