"""Postprocess search spaces: the sweep's format with short keys, located errors, the default space."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocrtune.errors import InputError
from ocrtune.presets.load import load_preset
from ocrtune.tune.settings import PostSettings, full_key
from ocrtune.tune.space import default_space, load_space

BASE = load_preset("cpu-demo").preset


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return p


def one_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(InputError) as e:
        load_space(write(tmp_path, text), BASE)
    assert len(e.value.lines) == 1, e.value.lines
    return e.value.lines[0]


def test_short_and_full_keys_mean_the_same(tmp_path):
    short = load_space(write(tmp_path, "thresh: {values: [0.2, 0.3]}\nuse_polygon: {values: [false, true]}\n"), BASE)
    full = load_space(write(tmp_path, "models.head.postprocess.thresh: {values: [0.2, 0.3]}\n"
                                      "models:\n  head:\n    postprocess:\n      use_polygon: {values: [false, true]}\n"),
                      BASE)
    assert short.keys == full.keys == (full_key("thresh"), full_key("use_polygon"))
    assert short["models.head.postprocess.thresh"].values == (0.2, 0.3)


def test_a_typo_is_one_located_line_with_a_suggestion(tmp_path):
    line = one_error(tmp_path, "thresh: {values: [0.2, 0.3]}\nbox_thres: {min: 0.2, max: 0.4}\n")
    assert line.endswith("space.yaml:2:1 models.head.postprocess.box_thres: unknown key 'box_thres' in "
                         "models.head.postprocess (did you mean 'box_thresh'?)")


def test_a_full_key_typo_is_located_too(tmp_path):
    line = one_error(tmp_path, "models.head.postprocess.threshold: {values: [0.2]}\n")
    assert "space.yaml:1:1" in line and "did you mean 'thresh'?" in line


def test_a_key_outside_the_postprocess_is_refused(tmp_path):
    line = one_error(tmp_path, "models.optimizer.lr: {values: [0.001, 0.002]}\n")
    assert "space.yaml:1:1 models.optimizer.lr: is not a postprocess setting" in line


def test_values_the_preset_rejects_are_located_at_the_value(tmp_path):
    line = one_error(tmp_path, "thresh: {min: 0.2, max: 1.4}\n")
    assert "space.yaml:1:" in line and "max 1.4 is rejected by the preset" in line


def test_a_missing_space_file_is_bad_input(tmp_path):
    with pytest.raises(InputError, match="search space file not found"):
        load_space(tmp_path / "nope.yaml", BASE)
    with pytest.raises(InputError, match=f"^{tmp_path} --space: search space file is not a file$"):
        load_space(tmp_path, BASE)


def test_the_default_space_surrounds_the_checkpoints_settings():
    cur = PostSettings.of(BASE.models.head.postprocess)  # cpu-demo: thresh 0.3, box 0.5, ratio 1.5
    space = default_space(cur, BASE)
    assert space.keys == (full_key("thresh"), full_key("box_thresh"), full_key("box_unclip_ratio"))
    assert space[full_key("thresh")].grid(5) == (0.2, 0.25, 0.3, 0.35, 0.4)
    assert space[full_key("box_thresh")].grid(5) == (0.3, 0.4, 0.5, 0.6, 0.7)
    assert space[full_key("box_unclip_ratio")].grid(5) == (1.0, 1.25, 1.5, 1.75, 2.0)
    polygons = load_preset("cpu-demo", ["models.head.postprocess.use_polygon=true"]).preset
    poly = default_space(PostSettings.of(polygons.models.head.postprocess), polygons)
    assert full_key("polygon_unclip_ratio") in poly.keys and full_key("box_unclip_ratio") not in poly.keys
