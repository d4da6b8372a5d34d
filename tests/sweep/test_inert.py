"""Swept keys that no trial reads are refused, located, before a study exists (plan/inert.py):
the EMA's settings without an EMA, the unclip ratio of the other output mode, the cosine's
settings under a constant schedule; the switch swept, or fixed on by the space, makes them count."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocrtune.errors import InputError
from ocrtune.presets.load import load_preset
from ocrtune.sweep.plan.inert import inert_keys
from ocrtune.sweep.plan.space import load_space, param_dim, parse_space
from tests.sweep.helpers import OBJ, calls, sweep

POST = "models.head.postprocess."


def _preset(*sets: str):
    return load_preset("cpu-demo", list(sets)).preset


def _dims(doc: dict):
    return parse_space(doc, base=None).dims  # parsed without the preset: inert_keys is the check


@pytest.mark.parametrize(("key", "spec", "sets", "has", "needs"), [
    ("trainer.ema.decay", {"min": 0.9, "max": 0.999}, (), "trainer.ema.enabled=false", "trainer.ema.enabled=true"),
    ("trainer.ema.warmup", {"values": [True, False]}, (), "trainer.ema.enabled=false", "trainer.ema.enabled=true"),
    (POST + "polygon_unclip_ratio", {"values": [1.5, 2.0]}, (), POST + "use_polygon=false", POST + "use_polygon=true"),
    (POST + "box_unclip_ratio", {"values": [1.2, 1.5]}, (POST + "use_polygon=true",), POST + "use_polygon=true",
     POST + "use_polygon=false"),
    ("models.scheduler.T_max", {"values": [3, 6]}, ("models.scheduler.name=constant",),
     "models.scheduler.name=constant", "models.scheduler.name=cosine"),
])
def test_a_key_the_preset_never_reads_is_named_with_its_switch(key, spec, sets, has, needs):
    switch = has.split("=")[0]
    assert inert_keys(_preset(*sets), _dims({key: spec})) == {
        key: f"no trial reads it: the preset has {has}; add --set {needs} (or sweep {switch} too)"}


def test_the_interval_is_inert_only_when_neither_a_cosine_nor_a_warm_up_moves_the_rate():
    interval = {"models.scheduler.interval": {"values": ["epoch", "step"]}}
    flat = ("models.scheduler.name=constant", "models.scheduler.warmup_epochs=0")
    assert inert_keys(_preset(*flat), _dims(interval)) == {"models.scheduler.interval": (
        "no trial reads it: the preset has models.scheduler.name=constant and models.scheduler.warmup_epochs=0; "
        "add --set models.scheduler.name=cosine or --set models.scheduler.warmup_epochs=1 "
        "(or sweep models.scheduler.name or models.scheduler.warmup_epochs too)")}
    # either switch on, in the preset or the space, makes it count
    assert inert_keys(_preset("models.scheduler.name=constant"), _dims(interval)) == {}  # cpu-demo warms up 1 epoch
    assert inert_keys(_preset("models.scheduler.warmup_epochs=0"), _dims(interval)) == {}  # cpu-demo's cosine
    assert inert_keys(_preset(*flat), _dims({**interval, "models.scheduler.warmup_epochs": {"values": [0, 1]}})) == {}
    # a warm-up the preset refuses is reported as such, located, not a TypeError of the rule
    with pytest.raises(InputError, match="models.scheduler.warmup_epochs"):
        parse_space({**interval, "models.scheduler.warmup_epochs": {"values": ["one", "two"]}},
                    base=_preset(*flat), reserved={})
    both_off = inert_keys(_preset("models.scheduler.warmup_epochs=0"),
                          _dims({**interval, "models.scheduler.name": {"value": "constant"}}))
    assert both_off["models.scheduler.interval"].startswith(
        "no trial reads it: the space sets models.scheduler.name to constant and the preset has "
        "models.scheduler.warmup_epochs=0;")


def test_the_switch_on_in_the_preset_or_the_space_makes_the_key_count():
    decay = {"trainer.ema.decay": {"min": 0.9, "max": 0.999}}
    assert inert_keys(_preset("trainer.ema.enabled=true"), _dims(decay)) == {}
    assert inert_keys(_preset(), _dims({**decay, "trainer.ema.enabled": {"values": [False, True]}})) == {}
    assert inert_keys(_preset(), _dims({**decay, "trainer.ema.enabled": {"value": True}})) == {}
    off = inert_keys(_preset(), _dims({**decay, "trainer.ema.enabled": {"value": False}}))
    assert off["trainer.ema.decay"].startswith("no trial reads it: the space sets trainer.ema.enabled to false;")
    # a fixed value of an unread key changes nothing either way: not refused
    assert inert_keys(_preset(), _dims({"trainer.ema.decay": {"value": 0.99}})) == {}
    # the default lr sweep on cpu-demo (cosine) reads everything it varies
    assert inert_keys(_preset(), _dims({"models.optimizer.lr": {"min": 1e-4, "max": 1e-2}})) == {}


def test_a_space_file_points_at_the_key(tmp_path: Path):
    space = tmp_path / "space.yaml"
    space.write_text("models.optimizer.lr: {min: 1.0e-4, max: 1.0e-2}\n"
                     "trainer.ema.decay: {values: [0.99, 0.999]}\n")
    with pytest.raises(InputError) as err:
        load_space(space, base=_preset(), reserved={})  # as a training sweep reads it
    assert err.value.lines == [f"{space}:2:1 trainer.ema.decay: no trial reads it: the preset has "
                               "trainer.ema.enabled=false; add --set trainer.ema.enabled=true "
                               "(or sweep trainer.ema.enabled too)"]
    assert load_space(space, base=_preset("trainer.ema.enabled=true"), reserved={}).keys == ("models.optimizer.lr",
                                                                               "trainer.ema.decay")


def test_param_with_an_unread_key_is_one_line_and_exit_2(cli, tmp_path: Path):
    with pytest.raises(InputError, match="--param trainer.ema.decay: no trial reads it"):
        param_dim("trainer.ema.decay", 0.9, 0.999, base=_preset(), reserved={})
    # a training sweep: refused before the data is read or a study exists
    code, _, err = sweep(cli, tmp_path, "--param", "trainer.ema.decay", "--range", "0.9,0.999",
                         "--data", tmp_path / "no-data", "--storage", tmp_path / "s.db")
    assert code == 2 and err.strip().splitlines() == [
        "--param trainer.ema.decay: no trial reads it: the preset has trainer.ema.enabled=false; "
        "add --set trainer.ema.enabled=true (or sweep trainer.ema.enabled too)"]
    assert not (tmp_path / "s.db").exists() and not (tmp_path / "runs").exists()


def test_an_objective_sweep_hands_every_value_to_its_function(cli, tmp_path: Path, monkeypatch):
    """An --objective trains nothing: the preset's switches do not decide what it reads."""
    monkeypatch.setenv("OCRTUNE_TEST_CALLS", str(tmp_path / "calls.jsonl"))
    code, summary, err = sweep(cli, tmp_path, "--objective", OBJ + "first_value", "--param", "trainer.ema.decay",
                               "--range", "0.9,0.999", "--points", "2", "--stages", "1")
    assert code == 0, err
    assert sorted(c["params"]["trainer.ema.decay"] for c in calls(tmp_path) if "params" in c) == [0.9, 0.999]


def test_an_import_of_past_runs_is_not_refused():
    # the runs happened: the import records what they varied, read or not
    space = parse_space({"trainer.ema.decay": {"values": [0.9, 0.99]}}, base=_preset())
    assert space.keys == ("trainer.ema.decay",)
