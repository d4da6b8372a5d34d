from __future__ import annotations

from pathlib import Path

import pytest

from ocrtune.errors import InputError
from ocrtune.presets.load import available_presets, load_preset, parse_scalar

BUILTIN = ["baseline", "run8", "run3", "hybrid", "cpu-demo"]


def write(d: Path, name: str, text: str) -> Path:
    p = d / f"{name}.yaml"
    p.write_text(text)
    return p


def lines_of(exc: pytest.ExceptionInfo) -> list[str]:
    return exc.value.lines


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_presets_validate(name):
    assert load_preset(name).preset is not None


def test_builtin_values_exactly_as_found():
    v = {n: load_preset(n).preset for n in ["baseline", "run8", "run3", "hybrid"]}
    for p in v.values():
        assert p.models.encoder.model_name == "efficientnet_b4"
        pp = p.models.head.postprocess
        assert (pp.thresh, pp.box_thresh, pp.max_candidates) == (0.29, 0.25, 600)
        assert p.models.scheduler.name == "cosine" and p.trainer.max_epochs == 22
    o, s = v["run8"].models.optimizer, v["run8"].models.scheduler
    assert (o.lr, o.weight_decay, s.T_max, s.eta_min) == (
        0.0005134333170096499, 6.797303101020006e-05, 24, 6.388390006720873e-06)
    o, s = v["run3"].models.optimizer, v["run3"].models.scheduler
    assert (o.lr, o.weight_decay, s.T_max, s.eta_min) == (
        0.0003845588887231477, 0.00013939498132089153, 22, 1.8596851896215065e-05)
    o, s = v["baseline"].models.optimizer, v["baseline"].models.scheduler
    assert (o.lr, o.weight_decay, s.T_max, s.eta_min) == (0.0004, 0.0001, 22, 0.00001)
    assert (v["baseline"].reported.hmean, v["baseline"].reported.precision, v["baseline"].reported.recall) == (96.53, 96.94, 96.36)
    assert v["hybrid"].reported is None
    o, s = v["hybrid"].models.optimizer, v["hybrid"].models.scheduler
    assert (o.lr, o.weight_decay, s.T_max, s.eta_min) == (0.00045, 0.000085, 22, 0.000008)


def test_bases_are_not_listed():
    names = available_presets()
    assert set(BUILTIN) <= set(names)
    assert not any(n.startswith("_") for n in names)


def test_extends_merges_deeply_and_child_wins(presets_dir):
    write(presets_dir, "parent", "models:\n  optimizer:\n    lr: 0.01\n    weight_decay: 0.5\nseed: 1\n")
    write(presets_dir, "child", "extends: parent\nmodels:\n  optimizer:\n    lr: 0.02\n")
    p = load_preset("child", dirs=[presets_dir]).preset
    assert p.models.optimizer.lr == 0.02
    assert p.models.optimizer.weight_decay == 0.5
    assert p.seed == 1


def test_extends_cycle_points_at_the_extends_that_closes_it(presets_dir):
    write(presets_dir, "a", "extends: b\n")
    write(presets_dir, "b", "seed: 1\nextends: a\n")
    with pytest.raises(InputError) as e:
        load_preset("a", dirs=[presets_dir])
    a, b = presets_dir / "a.yaml", presets_dir / "b.yaml"
    assert lines_of(e) == [f"{b}:2:10 extends: extends cycle: {a} -> {b} -> {a}"]
    write(presets_dir, "self", "extends: self\n")
    with pytest.raises(InputError) as e:
        load_preset("self", dirs=[presets_dir])
    me = presets_dir / "self.yaml"
    assert lines_of(e) == [f"{me}:1:10 extends: extends cycle: {me} -> {me}"]


def test_extends_missing_parent_points_at_the_line(presets_dir):
    write(presets_dir, "orphan", "seed: 3\nextends: nosuchparent\n")
    with pytest.raises(InputError) as e:
        load_preset("orphan", dirs=[presets_dir])
    assert "orphan.yaml:2:10 extends: preset not found" in lines_of(e)[0]


def test_unknown_key_located_with_suggestion(presets_dir):
    write(
        presets_dir,
        "typo",
        "# a comment\nextends: run8\nmodels:\n  optimizer:\n    lrr: 0.001\n  head:\n    postprocess:\n      box_tresh: 0.3\n",
    )
    with pytest.raises(InputError) as e:
        load_preset("typo", dirs=[presets_dir])
    lines = lines_of(e)
    assert len(lines) == 2
    assert lines[0].endswith("typo.yaml:5:5 models.optimizer.lrr: unknown key (did you mean 'lr'?)")
    assert lines[1].endswith("typo.yaml:8:7 models.head.postprocess.box_tresh: unknown key (did you mean 'box_thresh'?)")


def test_cross_key_rule_blames_the_key_the_child_changed(presets_dir):
    write(presets_dir, "bad", "extends: run8\nmodels:\n  optimizer:\n    lr: 1.0e-6\n")
    with pytest.raises(InputError) as e:
        load_preset("bad", dirs=[presets_dir])
    # run8's eta_min (6.4e-6) is now above lr: the child's lr is the change, not run8's eta_min
    assert lines_of(e) == [
        f"{presets_dir / 'bad.yaml'}:4:5 models.optimizer.lr: must be above models.scheduler.eta_min "
        "(6.38839e-06) (got 1e-06)"
    ]
    write(presets_dir, "low", "extends: baseline\ndatasets:\n  thresh_max: 0.2\n")
    with pytest.raises(InputError) as e:
        load_preset("low", dirs=[presets_dir])
    assert lines_of(e) == [
        f"{presets_dir / 'low.yaml'}:3:3 datasets.thresh_max: must be above datasets.thresh_min (0.3) (got 0.2)"
    ]
    # the child's own eta_min is blamed over the lr it inherits
    write(presets_dir, "high", "extends: baseline\nmodels:\n  scheduler:\n    eta_min: 0.01\n")
    with pytest.raises(InputError) as e:
        load_preset("high", dirs=[presets_dir])
    assert lines_of(e) == [
        f"{presets_dir / 'high.yaml'}:4:5 models.scheduler.eta_min: must be below models.optimizer.lr (0.0004) (got 0.01)"
    ]


def test_cross_key_rule_blames_the_set_option_over_files(presets_dir):
    with pytest.raises(InputError) as e:
        load_preset("baseline", ["models.optimizer.lr=1e-6"])
    assert lines_of(e) == ["--set models.optimizer.lr: must be above models.scheduler.eta_min (1e-05) (got 1e-06)"]
    write(presets_dir, "high", "extends: baseline\nmodels:\n  scheduler:\n    eta_min: 0.01\n")
    with pytest.raises(InputError) as e:
        load_preset("high", ["models.optimizer.lr=1e-3"], dirs=[presets_dir])
    assert lines_of(e) == ["--set models.optimizer.lr: must be above models.scheduler.eta_min (0.01) (got 0.001)"]
    # both set on the command line: the later one
    with pytest.raises(InputError) as e:
        load_preset("baseline", ["models.optimizer.lr=1e-6", "models.scheduler.eta_min=1e-3"])
    assert lines_of(e) == ["--set models.scheduler.eta_min: must be below models.optimizer.lr (1e-06) (got 0.001)"]


def test_yaml_syntax_error_has_line(presets_dir):
    write(presets_dir, "broken", "seed: 1\nmodels: : 2\n")
    with pytest.raises(InputError) as e:
        load_preset("broken", dirs=[presets_dir])
    assert lines_of(e)[0].endswith("broken.yaml:2:9: invalid YAML: mapping values are not allowed here")


def test_not_a_mapping(presets_dir):
    write(presets_dir, "list", "- 1\n- 2\n")
    with pytest.raises(InputError, match="must be a mapping"):
        load_preset("list", dirs=[presets_dir])


def test_wrong_type_message(presets_dir):
    write(presets_dir, "wt", "dataloader:\n  batch_size: many\n")
    with pytest.raises(InputError) as e:
        load_preset("wt", dirs=[presets_dir])
    assert "wt.yaml:2:3 dataloader.batch_size:" in lines_of(e)[0]
    assert "'many'" in lines_of(e)[0]


def test_overrides_are_yaml_scalars_and_validated():
    p = load_preset("run8", ["models.optimizer.lr=5e-4", "trainer.max_epochs=3", "models.decoder.asf=true",
                             "models.encoder.out_indices=[2, 3, 4]"]).preset
    assert p.models.optimizer.lr == 5e-4 and isinstance(p.models.optimizer.lr, float)
    assert p.trainer.max_epochs == 3 and p.models.decoder.asf is True
    assert p.models.encoder.out_indices == [2, 3, 4]
    with pytest.raises(InputError) as e:
        load_preset("run8", ["models.optimizer.lrr=5e-4"])
    assert lines_of(e) == ["--set models.optimizer.lrr: unknown key (did you mean 'lr'?)"]
    with pytest.raises(InputError) as e:
        load_preset("run8", ["models.optimizer.lr=-1"])
    assert lines_of(e) == ["--set models.optimizer.lr: must be > 0.0 (got -1)"]


def test_override_syntax_errors():
    with pytest.raises(InputError, match="expected KEY=VALUE"):
        load_preset("run8", ["models.optimizer.lr"])
    with pytest.raises(InputError, match="is a value, not a section"):
        load_preset("run8", ["seed.x=1"])


def test_parse_scalar():
    assert parse_scalar("5e-4") == 5e-4
    assert parse_scalar("3") == 3 and isinstance(parse_scalar("3"), int)
    assert parse_scalar("false") is False
    assert parse_scalar("null") is None
    assert parse_scalar("adamw") == "adamw"


def test_presets_found_by_path_env_and_dir(presets_dir, monkeypatch, tmp_path):
    p = write(presets_dir, "mine", "extends: run8\nseed: 99\n")
    assert load_preset(p).preset.seed == 99
    assert load_preset("mine", dirs=[presets_dir]).preset.seed == 99
    with pytest.raises(InputError, match="preset not found"):
        load_preset("mine")
    monkeypatch.setenv("OCRTUNE_PRESETS", str(presets_dir))
    assert load_preset("mine").preset.seed == 99


def test_not_found_suggests():
    with pytest.raises(InputError) as e:
        load_preset("baselin")
    assert "did you mean 'baseline'" in lines_of(e)[0]


def test_not_found_names_the_folders_searched(monkeypatch, tmp_path):
    from ocrtune.presets import load

    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OCRTUNE_PRESETS", raising=False)
    monkeypatch.setattr(load, "builtin_dir", lambda: tmp_path / "no-builtin")
    with pytest.raises(InputError) as e:
        load_preset("baseline", dirs=[mine])
    assert lines_of(e) == [f"baseline: preset not found; looked in {mine}"]
    mine.rmdir()
    with pytest.raises(InputError) as e:
        load_preset("baseline", dirs=[mine])
    assert lines_of(e) == [
        "baseline: preset not found; none of the preset folders exists "
        f"({mine}, {tmp_path / 'presets'}, {tmp_path / 'no-builtin'})"
    ]


def test_set_boolean_for_a_number_is_rejected():
    with pytest.raises(InputError) as e:
        load_preset("baseline", ["seed=true", "models.optimizer.lr=true"])
    assert lines_of(e) == [
        "--set models.optimizer.lr: expected a number, not true/false (got true)",
        "--set seed: expected a number, not true/false (got true)",
    ]


def test_range_checks_read_as_one_line_each():
    with pytest.raises(InputError) as e:
        load_preset("baseline", ["datasets.augment.scale=[1]", "trainer.devices=0", "models.encoder.out_indices=[1, 1, 2]"])
    assert lines_of(e) == [
        "--set models.encoder.out_indices: lists stage 1 more than once (got [1, 1, 2])",
        "--set datasets.augment.scale: expected two numbers [min, max] (got [1])",
        "--set trainer.devices: must be a device count >= 1, -1 (every GPU) or auto (got 0)",
    ]
    assert load_preset("cpu-demo", ["trainer.max_epochs=1"]).preset.trainer.max_epochs == 1  # a smoke run


@pytest.mark.parametrize(
    "item, line",
    [
        # a mistyped top-level section: the file never named it, --set did
        ("model.optimizer.lr=1e-3", "--set model: unknown key (did you mean 'models'?)"),
        ("models.optimizr.lr=1e-3", "--set models.optimizr: unknown key (did you mean 'optimizer'?)"),
        ("models.optimizer.lrr=1e-3", "--set models.optimizer.lrr: unknown key (did you mean 'lr'?)"),
        ("traner.max_epochs=3", "--set traner: unknown key (did you mean 'trainer'?)"),
    ],
)
def test_a_set_typo_at_any_depth_is_blamed_on_set(item, line):
    with pytest.raises(InputError) as e:
        load_preset("run8", [item])
    assert lines_of(e) == [line]


def test_a_set_typo_in_a_section_the_file_has_is_still_located_at_the_set():
    with pytest.raises(InputError) as e:
        load_preset("run8", ["seed=3", "dataloader.batch_sise=2"])  # _receipt-b4 has a dataloader section
    assert lines_of(e) == ["--set dataloader.batch_sise: unknown key (did you mean 'batch_size'?)"]


EMPTY = "empty preset: it sets nothing and extends nothing, so it would train with the built-in defaults; " \
        "add settings or `extends: NAME`"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# and another\n", "{}\n", "null\n", "~\n",
                                  "extends: null\n"])
def test_an_empty_preset_is_an_error(presets_dir, text):
    path = write(presets_dir, "blank", text)
    with pytest.raises(InputError) as e:
        load_preset(path)
    assert lines_of(e) == [f"{path}: {EMPTY}"]


def test_an_empty_preset_that_extends_one_is_a_copy(presets_dir):
    write(presets_dir, "copy", "# the same as baseline, under another name\nextends: baseline\n")
    assert load_preset(presets_dir / "copy.yaml").preset == load_preset("baseline").preset


def test_extending_an_empty_preset_blames_the_empty_file(presets_dir):
    write(presets_dir, "hollow", "# nothing yet\n")
    child = write(presets_dir, "child", "extends: hollow\nseed: 3\n")
    with pytest.raises(InputError) as e:
        load_preset(child)
    assert lines_of(e) == [f"{presets_dir / 'hollow.yaml'}: {EMPTY}"]
