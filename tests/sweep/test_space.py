"""Sweep spaces: every distribution, and located errors for keys the preset does not have."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ocrtune.errors import InputError
from ocrtune.presets.schema import Preset
from ocrtune.sweep.plan.space import leaf_keys, leaf_kind, load_space, param_dim, parse_space


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return p


def error_lines(tmp_path: Path, text: str, base: Preset | None = None) -> list[str]:
    with pytest.raises(InputError) as e:
        load_space(write(tmp_path, text), base=base)
    return e.value.lines


def at(text: str, line: int, token: str) -> str:
    """``line:col`` of the first ``token`` on 1-based ``line`` of ``text``."""
    return f"{line}:{text.splitlines()[line - 1].index(token) + 1}"


def one_error(tmp_path: Path, text: str, base: Preset | None = None) -> str:
    lines = error_lines(tmp_path, text, base)
    assert len(lines) == 1, lines
    return lines[0]


def test_issue_example_parses_every_kind(tmp_path):
    s = load_space(write(tmp_path, (
        "models.optimizer.lr: {distribution: log_uniform, min: 2.5e-4, max: 6e-4}\n"
        "models.scheduler.T_max: {values: [20, 22, 24]}\n"
        "models.optimizer.weight_decay: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-3}\n"
        "models.head.postprocess.thresh: {distribution: uniform, min: 0.2, max: 0.4}\n"
        "models.head.postprocess.box_thresh: {min: 0.3, max: 0.5}\n"
        "dataloader.batch_size: {min: 4, max: 16}\n"
        "models.head.postprocess.max_candidates: {distribution: int_uniform, min: 200, max: 600}\n"
        "models.head.k: {distribution: q_uniform, min: 40, max: 60, q: 5}\n"
        "models.decoder.name: {distribution: categorical, values: [fpn, unet]}\n"
        "models.decoder.asf: {value: true}\n"
        "seed: {distribution: constant, value: 7}\n"
    )))
    kinds = {d.key: (d.kind, d.leaf) for d in s.dims}
    assert kinds == {
        "models.optimizer.lr": ("log_uniform", "float"),
        "models.scheduler.T_max": ("choice", "int"),
        "models.optimizer.weight_decay": ("log_uniform", "float"),
        "models.head.postprocess.thresh": ("uniform", "float"),
        "models.head.postprocess.box_thresh": ("uniform", "float"),
        "dataloader.batch_size": ("int_uniform", "int"),
        "models.head.postprocess.max_candidates": ("int_uniform", "int"),
        "models.head.k": ("q_uniform", "float"),
        "models.decoder.name": ("choice", "other"),
        "models.decoder.asf": ("fixed", "bool"),
        "seed": ("fixed", "int"),
    }
    lr = s["models.optimizer.lr"]
    assert (lr.low, lr.high) == (2.5e-4, 6e-4)
    assert s["models.scheduler.T_max"].values == (20, 22, 24)
    assert s["models.head.k"].q == 5.0
    assert s.file is not None and s.file.endswith("space.yaml")


def test_samples_and_grids_stay_in_range_with_the_right_types():
    s = parse_space({
        "models.optimizer.lr": {"distribution": "log_uniform", "min": 1e-5, "max": 1e-2},
        "models.head.postprocess.thresh": {"min": 0.2, "max": 0.4},
        "dataloader.batch_size": {"min": 2, "max": 5},
        "models.head.k": {"distribution": "q_uniform", "min": 40, "max": 60, "q": 7.5},
        "models.decoder.name": {"values": ["fpn", "unet"]},
    })
    rng = np.random.default_rng(0)
    draws = [{d.key: d.sample(rng) for d in s.dims} for _ in range(400)]
    lrs = np.array([d["models.optimizer.lr"] for d in draws])
    assert lrs.min() >= 1e-5 and lrs.max() <= 1e-2
    # log-uniform: about a third of the draws in each decade
    assert 0.25 < np.mean(lrs < 1e-4) < 0.42 and 0.25 < np.mean(lrs > 1e-3) < 0.42
    assert all(type(d["dataloader.batch_size"]) is int for d in draws)
    assert {d["dataloader.batch_size"] for d in draws} == {2, 3, 4, 5}  # bounds inclusive
    assert {d["models.head.k"] for d in draws} <= {45.0, 52.5, 60.0}
    assert {d["models.decoder.name"] for d in draws} == {"fpn", "unet"}
    assert all(0.2 <= d["models.head.postprocess.thresh"] <= 0.4 for d in draws)
    assert s["models.optimizer.lr"].grid(4) == (1e-5, 1e-4, 1e-3, 1e-2)
    assert s["models.head.postprocess.thresh"].grid(3) == (0.2, 0.3, 0.4)
    assert s["dataloader.batch_size"].grid(10) == (2, 3, 4, 5)
    assert s["models.head.k"].grid(10) == (45.0, 52.5, 60.0)
    assert s["models.decoder.name"].grid(2) == ("fpn", "unet")


def test_wandb_sweep_file_and_nested_forms(tmp_path):
    s = load_space(write(tmp_path, (
        "method: bayes\n"
        "metric: {name: val/hmean, goal: maximize}\n"
        "program: train.py\n"
        "parameters:\n"
        "  models:\n"
        "    parameters:\n"
        "      optimizer:\n"
        "        parameters:\n"
        "          lr: {distribution: log_uniform_values, min: 1.0e-4, max: 1.0e-3}\n"
        "  trainer:\n"
        "    max_epochs: {values: [1, 2]}\n"
    )))
    assert s.keys == ("models.optimizer.lr", "trainer.max_epochs")
    assert (s.method, s.metric, s.goal, s.ignored) == ("bayes", "val/hmean", "maximize", ("program",))


def test_unknown_key_is_located_with_a_did_you_mean(tmp_path):
    line = one_error(tmp_path, "models.optimizer.lr: {values: [1.0e-3]}\nmodels.head.thresh: {min: 0.2, max: 0.4}\n")
    assert line.endswith("space.yaml:2:1 models.head.thresh: unknown key 'thresh' in models.head "
                         "(did you mean 'models.head.postprocess.thresh'?)")
    line = one_error(tmp_path, "trainer:\n  max_epocs: {values: [1, 2]}\n")
    assert "space.yaml:2:3 trainer.max_epocs: unknown key 'max_epocs' in trainer (did you mean 'max_epochs'?)" in line
    line = one_error(tmp_path, "modles.optimizer.lr: {value: 1.0e-3}\n")
    assert "unknown key 'modles'" in line and "did you mean 'models.optimizer.lr'" in line


def test_non_numeric_and_section_keys_are_rejected(tmp_path):
    lines = error_lines(tmp_path, (
        "datasets.augment.enabled: {min: 0, max: 1}\n"
        "models.optimizer.name: {distribution: uniform, min: 0, max: 1}\n"
        "datasets.augment: {value: 3}\n"
        "models.optimizer.lr.x: {value: 3}\n"
        "models.scheduler.T_max: {distribution: log_uniform, min: 10, max: 30}\n"
    ))
    assert len(lines) == 5
    assert "space.yaml:1:1 datasets.augment.enabled: is not numeric (bool)" in lines[0]
    assert "space.yaml:2:1 models.optimizer.name: is not numeric (other)" in lines[1]
    assert "space.yaml:3:1 datasets.augment: 'datasets.augment' is a section" in lines[2]
    assert "space.yaml:4:1 models.optimizer.lr.x: 'models.optimizer.lr' is a value, not a section" in lines[3]
    assert "space.yaml:5:1 models.scheduler.T_max: is an integer key; use int_uniform" in lines[4]


def test_ranges_the_preset_rejects_are_located_at_the_bound(tmp_path):
    text = "models.optimizer.lr: {distribution: uniform, min: 0.0, max: 1.0e-3}\n"
    line = one_error(tmp_path, text)
    assert f"space.yaml:{at(text, 1, '0.0')} models.optimizer.lr: min 0.0 is rejected by the preset: must be > 0.0" in line
    text = "models.optimizer.lr: {distribution: log_uniform, min: -9.2, max: -6.9}\n"
    line = one_error(tmp_path, text)
    assert f"space.yaml:{at(text, 1, '-9.2')} " in line and "not exponents" in line
    line = one_error(tmp_path, "models.head.postprocess.thresh: {min: 0.5, max: 1.5}\n")
    assert "max 1.5 is rejected by the preset: must be <= 1.0" in line
    text = "models.decoder.name: {values: [fpn, unet, bifpn]}\n"
    line = one_error(tmp_path, text)
    assert f"space.yaml:{at(text, 1, '[')} models.decoder.name: values[2] 'bifpn' is rejected" in line
    line = one_error(tmp_path, "datasets.image_size: {values: [1024, 1000]}\n")
    assert "values[1] 1000 is rejected by the preset: must be a positive multiple of 32" in line


def test_cross_key_rules_use_the_base_preset_and_other_swept_keys(tmp_path):
    base = Preset.model_validate({"models": {"scheduler": {"eta_min": 1e-5}}})
    line = one_error(tmp_path, "models.optimizer.lr: {distribution: log_uniform, min: 1.0e-6, max: 1.0e-3}\n", base)
    assert "min 1e-06 is rejected by the preset (makes models.models.scheduler.eta_min invalid)" not in line
    assert "min 1e-06 is rejected by the preset (makes models.scheduler.eta_min invalid)" in line
    assert load_space(write(tmp_path, "models.optimizer.lr: {min: 1.0e-4, max: 1.0e-3}\n"), base=base)
    # both swept: some combination of ends breaks eta_min < lr; the message names it
    text = (
        "models.optimizer.lr: {distribution: log_uniform, min: 2.5e-4, max: 6.0e-4}\n"
        "models.scheduler.eta_min: {min: 0.0, max: 1.0e-3}\n"
    )
    line = one_error(tmp_path, text)
    assert f"space.yaml:{at(text, 2, '1.0e-3')} models.scheduler.eta_min: max 0.001 is rejected by the preset with " \
           "models.optimizer.lr=0.00025: must be below models.optimizer.lr" in line
    assert load_space(write(tmp_path, (
        "models.optimizer.lr: {distribution: log_uniform, min: 2.5e-4, max: 6.0e-4}\n"
        "models.scheduler.eta_min: {values: [0.0, 1.0e-5]}\n"
    )))


def test_spec_mistakes(tmp_path):
    text = (
        "models.optimizer.lr: {distrbution: log_uniform, min: 1.0e-4, max: 1.0e-3}\n"
        "models.optimizer.weight_decay: {distribution: normal, min: 0.0, max: 1.0}\n"
        "models.head.k: {min: 60, max: 40}\n"
        "models.head.postprocess.thresh: {values: []}\n"
        "models.loss.prob_weight: {distribution: q_uniform, min: 1, max: 5}\n"
        "models.loss.thresh_weight: 3\n"
        "models.loss.binary_weight: {min: one, max: 2}\n"
        "models.loss.negative_ratio: {distribution: q_uniform, min: 1.1, max: 1.9, q: 1}\n"
    )
    lines = error_lines(tmp_path, text)
    assert len(lines) == 8, lines
    assert f"{at(text, 1, 'distrbution')} models.optimizer.lr: unexpected 'distrbution' for uniform (did you mean 'distribution'?)" in lines[0]
    assert f"{at(text, 2, 'normal')} models.optimizer.weight_decay: unsupported distribution 'normal'" in lines[1]
    assert f"{at(text, 3, '60')} models.head.k: min must be below max" in lines[2]
    assert f"{at(text, 4, '[]')} models.head.postprocess.thresh: values must be a non-empty list" in lines[3]
    assert "5:1 models.loss.prob_weight: q_uniform needs 'q'" in lines[4]
    assert "6:1 models.loss.thresh_weight: expected a spec such as {values: [...]}" in lines[5]
    assert f"{at(text, 7, 'one')} models.loss.binary_weight: min must be a finite number (got 'one')" in lines[6]
    assert f"{at(text, 8, '1}')} models.loss.negative_ratio: q must be > 0 with a multiple of q between" in lines[7]


def test_duplicate_keys_and_wandb_file_mistakes(tmp_path):
    line = one_error(tmp_path, "models.optimizer.lr: {value: 1.0e-3}\nmodels:\n  optimizer:\n    lr: {value: 2.0e-3}\n")
    assert "4:5 models.optimizer.lr: is given twice" in line
    text = "methd: grid\nmetric: {goal: up}\nparameters:\n  seed: {values: [1, 2]}\n"
    lines = error_lines(tmp_path, text)
    assert "1:1 methd: unknown sweep file key (did you mean 'method'?)" in lines[0]
    assert f"{at(text, 2, 'up')} metric.goal: must be maximize or minimize" in lines[1]
    line = one_error(tmp_path, "method: grid\nparameters: {}\n")
    assert "parameters: must be a non-empty mapping" in line


def test_file_errors(tmp_path):
    with pytest.raises(InputError) as e:
        load_space(tmp_path / "nope.yaml")
    assert "sweep space file not found" in str(e.value)
    with pytest.raises(InputError, match="sweep space file is not a file"):
        load_space(tmp_path)
    line = one_error(tmp_path, "models.optimizer.lr: {min: 1.0e-4, max: [\n")
    assert "space.yaml:" in line and "invalid YAML" in line
    assert "non-empty mapping" in one_error(tmp_path, "- 1\n- 2\n")


def test_param_dim_checks_the_hierarchical_key():
    d = param_dim("models.optimizer.lr", 1e-5, 1e-2)
    assert (d.kind, d.low, d.high) == ("log_uniform", 1e-5, 1e-2)
    assert param_dim("models.head.postprocess.thresh", 0.1, 0.5, log=False).kind == "uniform"
    with pytest.raises(InputError) as e:
        param_dim("models.optimizer.learning_rate", 1e-5, 1e-2)
    assert e.value.lines == ["--param models.optimizer.learning_rate: unknown key 'learning_rate' in "
                             "models.optimizer (did you mean 'models.optimizer.lr'?)"]
    with pytest.raises(InputError, match="needs a float key"):
        param_dim("models.scheduler.T_max", 10, 30)
    with pytest.raises(InputError, match="must be below models.optimizer.lr"):
        param_dim("models.optimizer.lr", 1e-6, 1e-2, base=Preset.model_validate({"models": {"scheduler": {"eta_min": 5e-6}}}))


def test_leaf_lookup():
    assert leaf_kind("models.optimizer.lr") == "float"
    assert leaf_kind("trainer.gradient_clip_val") == "float"  # float | None
    assert leaf_kind("trainer.max_epochs") == "int"
    assert leaf_kind("datasets.augment.enabled") == "bool"
    assert leaf_kind("datasets.augment.scale") == "other"
    assert leaf_kind("dataloader.num_workers") == "int"  # a number or auto: a range is of the number
    assert leaf_kind("dataloader.pad") == "other"  # named settings only
    assert leaf_kind("models.optimizer") is None and leaf_kind("models.nope") is None
    keys = leaf_keys()
    assert "models.head.postprocess.thresh" in keys and "seed" in keys and "models.head" not in keys
