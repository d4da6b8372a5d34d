from __future__ import annotations

import pytest
from pydantic import ValidationError

from ocrtune.presets.schema import FieldError, Preset, field_names


def make(**sections):
    return Preset.model_validate(sections)


def test_defaults_are_valid():
    p = Preset()
    assert p.models.encoder.out_indices == [1, 2, 3, 4]
    assert p.datasets.image_size % 32 == 0


@pytest.mark.parametrize(
    "data, loc",
    [
        ({"models": {"optimizer": {"lr": 0}}}, ("models", "optimizer", "lr")),
        ({"models": {"optimizer": {"lr": -1e-4}}}, ("models", "optimizer", "lr")),
        ({"models": {"optimizer": {"weight_decay": -1e-6}}}, ("models", "optimizer", "weight_decay")),
        ({"models": {"scheduler": {"T_max": 0}}}, ("models", "scheduler", "T_max")),
        ({"models": {"head": {"postprocess": {"thresh": 1.2}}}}, ("models", "head", "postprocess", "thresh")),
        ({"models": {"head": {"postprocess": {"box_thresh": -0.1}}}}, ("models", "head", "postprocess", "box_thresh")),
        ({"models": {"head": {"postprocess": {"max_candidates": 0}}}}, ("models", "head", "postprocess", "max_candidates")),
        ({"datasets": {"image_size": 1000}}, ("datasets", "image_size")),
        ({"datasets": {"image_size": 0}}, ("datasets", "image_size")),
        ({"datasets": {"thresh_max": 1.5}}, ("datasets", "thresh_max")),
        ({"dataloader": {"batch_size": 0}}, ("dataloader", "batch_size")),
        ({"dataloader": {"pad": "tight"}}, ("dataloader", "pad")),
        ({"trainer": {"precision": "fp8"}}, ("trainer", "precision")),
        ({"models": {"encoder": {"out_indices": [3, 2]}}}, ("models", "encoder", "out_indices")),
        ({"models": {"optimizer": {"lrr": 1e-3}}}, ("models", "optimizer", "lrr")),
        ({"modles": {}}, ("modles",)),
    ],
)
def test_range_and_unknown_key_rules(data, loc):
    with pytest.raises(ValidationError) as e:
        Preset.model_validate(data)
    assert tuple(str(x) for x in e.value.errors()[0]["loc"])[: len(loc)] == loc


def test_eta_min_must_be_below_lr():
    with pytest.raises(ValidationError, match="must be below models.optimizer.lr"):
        make(models={"optimizer": {"lr": 1e-4}, "scheduler": {"eta_min": 1e-4}})
    # a constant schedule ignores eta_min
    make(models={"optimizer": {"lr": 1e-4}, "scheduler": {"name": "constant", "eta_min": 1e-3}})


def test_thresh_order():
    with pytest.raises(ValidationError, match=r"must be below datasets\.thresh_max \(0\.3\) \(got 0\.7\)"):
        make(datasets={"thresh_min": 0.7, "thresh_max": 0.3})


def test_cross_key_rules_tell_each_side():
    with pytest.raises(ValidationError) as e:
        make(models={"optimizer": {"lr": 1e-4}, "scheduler": {"eta_min": 1e-3}})
    rule = e.value.errors()[0]["ctx"]["error"]
    assert isinstance(rule, FieldError) and rule.key == "scheduler.eta_min"
    assert rule.messages == {
        "scheduler.eta_min": "must be below models.optimizer.lr (0.0001) (got 0.001)",
        "optimizer.lr": "must be above models.scheduler.eta_min (0.001) (got 0.0001)",
    }


def test_reported_block_accepts_percentages_and_nothing_else():
    p = make(reported={"hmean": 96.53, "precision": 96.94, "recall": 96.36})
    assert p.reported is not None and p.reported.hmean == 96.53
    with pytest.raises(ValidationError):
        make(reported={"hmean": 101})
    with pytest.raises(ValidationError):
        make(reported={"f1": 90})


def test_field_names_walks_nested_models():
    assert "lr" in field_names(("models", "optimizer"))
    assert "thresh" in field_names(("models", "head", "postprocess"))
    assert "hmean" in field_names(("reported",))
    assert field_names(("models", "optimizer", "lr")) is None


@pytest.mark.parametrize(
    "data, key",
    [
        ({"seed": True}, "seed"),
        ({"models": {"optimizer": {"lr": True}}}, "models.optimizer.lr"),
        ({"dataloader": {"batch_size": True}}, "dataloader.batch_size"),
        ({"trainer": {"gradient_clip_val": False}}, "trainer.gradient_clip_val"),
        ({"trainer": {"devices": True}}, "trainer.devices"),
        ({"models": {"encoder": {"out_indices": [1, True]}}}, "models.encoder.out_indices"),
        ({"datasets": {"augment": {"scale": [True, 2]}}}, "datasets.augment.scale"),
        ({"reported": {"hmean": True}}, "reported.hmean"),
    ],
)
def test_booleans_are_not_numbers(data, key):
    with pytest.raises(ValidationError) as e:
        Preset.model_validate(data)
    (err,) = e.value.errors()
    assert ".".join(str(x) for x in err["loc"]) == key
    assert "expected a number, not true/false" in err["msg"]


def test_bool_fields_still_take_booleans():
    p = make(models={"encoder": {"pretrained": True}, "decoder": {"asf": True}}, datasets={"augment": {"enabled": False}})
    assert p.models.encoder.pretrained is True and p.models.decoder.asf is True
    assert p.datasets.augment.enabled is False


def _error(data):
    with pytest.raises(ValidationError) as e:
        Preset.model_validate(data)
    (err,) = e.value.errors()
    return ".".join(str(x) for x in err["loc"]), err


def test_a_warmup_as_long_as_the_run_is_allowed():
    # the cosine starts after the warm-up (see lr_factor); a 1-epoch smoke run of a preset that
    # warms up for 1 epoch (cpu-demo) trains at a reduced lr, which is what its user asked for
    p = make(models={"scheduler": {"warmup_epochs": 5, "T_max": 3}}, trainer={"max_epochs": 5})
    assert p.models.scheduler.warmup_epochs == 5 and p.trainer.max_epochs == 5


@pytest.mark.parametrize("devices", ["auto", 1, 4, -1, [0], [1, 0], "0,1", "2", "-1"])
def test_devices_lightning_takes(devices):
    assert make(trainer={"devices": devices}).trainer.devices == devices


@pytest.mark.parametrize(
    "devices, message",
    [
        (0, "must be a device count >= 1, -1 (every GPU) or auto (got 0)"),
        (-2, "must be a device count >= 1, -1 (every GPU) or auto (got -2)"),
        ("0", "must be a device count >= 1, -1 (every GPU) or auto (got '0')"),
        ([], "must list at least one device index"),
        ([0, 0], "must list distinct device indices >= 0 (got [0, 0])"),
        ([-1], "must list distinct device indices >= 0 (got [-1])"),
        ("gpu", "must be auto, a device count, -1 (every GPU) or device indices (got 'gpu')"),
    ],
)
def test_devices_lightning_rejects(devices, message):
    loc, err = _error({"trainer": {"devices": devices}})
    assert loc == "trainer.devices" and err["msg"] == f"Value error, {message}"


@pytest.mark.parametrize(
    "indices, message",
    [
        ([2, 2, 3], "lists stage 2 more than once (got [2, 2, 3])"),
        ([3, 2], "must list stages in increasing order, e.g. [2, 3] (got [3, 2])"),
        ([], "must list at least one encoder stage"),
    ],
)
def test_out_indices_unique_and_increasing(indices, message):
    loc, err = _error({"models": {"encoder": {"out_indices": indices}}})
    assert loc == "models.encoder.out_indices" and err["msg"] == f"Value error, {message}"


def test_out_indices_upper_end_is_left_to_the_model():
    # stage counts differ (ConvNeXt 4, ResNet 5, ViT 12): the encoder build checks the model's own
    assert make(models={"encoder": {"model_name": "vit_small_patch16_224", "out_indices": [8, 11]}})
    loc, _ = _error({"models": {"encoder": {"out_indices": [-1]}}})
    assert loc == "models.encoder.out_indices.0"


@pytest.mark.parametrize("scale, shown", [([1], "[1]"), ([0.5, 1, 2], "[0.5, 1, 2]"), (1.2, "1.2"), (None, "null")])
def test_scale_needs_two_numbers(scale, shown):
    loc, err = _error({"datasets": {"augment": {"scale": scale}}})
    assert loc == "datasets.augment.scale"
    assert err["msg"] == f"Value error, expected two numbers [min, max] (got {shown})"


@pytest.mark.parametrize(
    "key, top",
    [
        ("trainer.max_epochs", 1000),
        ("models.scheduler.T_max", 1000),
        ("models.scheduler.warmup_epochs", 1000),
        ("models.decoder.inner_channels", 2048),
        ("models.decoder.out_channels", 2048),
        ("models.head.postprocess.max_candidates", 10_000),
        ("datasets.image_size", 4096),
        ("dataloader.batch_size", 1024),
        ("trainer.accumulate_grad_batches", 1024),
        ("trainer.num_nodes", 1024),
        ("reported.epoch", 1000),
        ("seed", 2**32 - 1),
    ],
)
def test_counts_have_an_upper_bound_that_a_slipped_digit_crosses(key, top):
    """The largest value is accepted, one more is a located error saying the bound."""
    from ocrtune.presets.load import load_preset

    from ocrtune.errors import InputError

    assert _get(load_preset("cpu-demo", [f"{key}={top}"]).preset, key) == top
    got = top + 32 if top % 32 == 0 else top * 10  # past the bound (a multiple of 32 stays one)
    with pytest.raises(InputError) as e:
        load_preset("cpu-demo", [f"{key}={got}"])
    assert e.value.lines == [f"--set {key}: must be <= {top} (got {got})"]


def test_max_epochs_bound_is_located_in_the_file(tmp_path):
    from ocrtune.errors import InputError
    from ocrtune.presets.load import load_preset

    path = tmp_path / "long.yaml"
    path.write_text("extends: cpu-demo\ntrainer:\n  max_epochs: 100000000\n")
    with pytest.raises(InputError) as e:
        load_preset(path)
    assert e.value.lines == [f"{path}:3:3 trainer.max_epochs: must be <= 1000 (got 100000000)"]


def test_a_negative_seed_is_refused_before_training():
    """lightning's seed_everything takes 0..2**32-1 only; the preset says so, not a traceback mid-run."""
    from ocrtune.errors import InputError
    from ocrtune.presets.load import load_preset

    with pytest.raises(InputError) as e:
        load_preset("cpu-demo", ["seed=-1"])
    assert e.value.lines == ["--set seed: must be >= 0 (got -1)"]


def _get(preset, key):
    node = preset
    for part in key.split("."):
        node = getattr(node, part)
    return node
