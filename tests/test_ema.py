"""An EMA of the weights (``trainer.ema``): validation scores it, checkpoints carry it, evaluate
and ``--init`` use it, resume restores it, and the memory estimate counts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ocrtune.errors import InputError
from ocrtune.model.checkpoint import EMA_PREFIX, PREFIX, read_checkpoint
from ocrtune.model.init_from import init_module
from ocrtune.presets.load import load_preset
from ocrtune.train.resources import RunHeader, footprint_key, measure_footprint
from tests._runs import TINY, interrupt_before_epoch, train, train_argv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ema")]

# a short memory: the tiny run learns from scratch in 50 steps, faster than a long average follows
EMA = ["trainer.ema.enabled=true", "trainer.ema.decay=0.5"]


@pytest.fixture(scope="module")
def data(tiny_data: Path) -> Path:
    return tiny_data  # two receipts whose val split is a copy of train (conftest.py)


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short run that learns its two receipts (as test_train's), scored through its average."""
    return train(data, tmp_path_factory.mktemp("runs"), [*TINY, *EMA], epochs=25, name="ema").run_dir


def _module(*sets: str):
    from ocrtune.train.module import DBNetModule

    return DBNetModule(load_preset("cpu-demo", ["datasets.image_size=128", *sets]).preset.model_dump(mode="json"))


def _state(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def _averages(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The checkpoint's EMA tensors, named as the model's."""
    return {PREFIX + k[len(EMA_PREFIX):]: v for k, v in state.items() if k.startswith(EMA_PREFIX)}


# --- the setting reaches timm's average ---------------------------------------------------------

def test_the_presets_decay_and_warmup_reach_the_average():
    module = _module("trainer.ema.enabled=true", "trainer.ema.decay=0.99")
    assert module.ema.get_decay(1) == 0.0  # the first update copies the weights: no random start
    assert module.ema.get_decay(101) == pytest.approx(1 - 101 ** (-2 / 3))  # warm-up: ~0.954
    assert module.ema.get_decay(100_000) == pytest.approx(0.99)
    flat = _module("trainer.ema.enabled=true", "trainer.ema.decay=0.99", "trainer.ema.warmup=false")
    assert flat.ema.get_decay(101) == pytest.approx(0.99)
    assert _module().ema is None  # off unless asked for


def test_the_average_is_not_trained():
    module = _module("trainer.ema.enabled=true")
    assert not any(p.requires_grad for p in module.ema.parameters())
    opt = module.configure_optimizers()["optimizer"]
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in module.model.parameters()}
    assert module.scored_model is module.ema.module


@pytest.mark.parametrize("setting", ["trainer.ema.decay=1", "trainer.ema.decay=0", "trainer.ema.decay=fast"])
def test_a_bad_decay_is_a_located_error(setting):
    with pytest.raises(InputError) as err:
        load_preset("cpu-demo", [setting])
    assert err.value.problems[0].key == "trainer.ema.decay"


def test_an_average_of_bf16_weights_is_refused_at_the_key_set_last():
    with pytest.raises(InputError) as err:
        load_preset("cpu-demo", ["trainer.precision=bf16-true", "trainer.ema.enabled=true"])
    [prob] = err.value.problems
    assert prob.key == "trainer.ema.enabled" and "use precision bf16-mixed" in prob.message
    with pytest.raises(InputError) as err:
        load_preset("cpu-demo", ["trainer.ema.enabled=true", "trainer.precision=bf16-true"])
    assert [p.key for p in err.value.problems] == ["trainer.precision"]
    load_preset("cpu-demo", ["trainer.ema.enabled=true", "trainer.precision=bf16-mixed"])  # fp32 weights: fine


# --- a run with an average ------------------------------------------------------------------------

def test_checkpoints_carry_the_average_beside_the_trained_weights(run):
    state = _state(run / "checkpoints" / "last.ckpt")
    model = {k: v for k, v in state.items() if k.startswith(PREFIX)}
    avg = _averages(state)
    assert set(avg) == set(model)
    floats = [k for k, v in model.items() if v.is_floating_point()]
    assert any(not torch.equal(avg[k], model[k]) for k in floats)  # an average, not a copy


def test_the_run_says_its_scores_are_the_averages(run, cli):
    summary = json.loads((run / "summary.json").read_text())
    assert summary["scored"] == "EMA of the weights (decay 0.5, warm-up)"
    code, out, err = cli("runs", "show", run)
    assert code == 0, err
    assert "EMA of the weights (decay 0.5, warm-up)" in out


def test_evaluate_scores_the_average_as_validation_did(run, data, cli):
    best = json.loads((run / "summary.json").read_text())["best"]["hmean"]
    assert best > 0.1  # the run learned its receipts (0 = nothing)
    code, out, err = cli("evaluate", run, "--data", data, "--json")
    assert code == 0, err
    assert json.loads(out)["cleval"]["image_mean"]["hmean"] == pytest.approx(best, abs=1e-9)


def test_evaluate_loads_the_average_as_the_model(run):
    from ocrtune.train.infer import load_checkpoint

    loaded = load_checkpoint(run)
    assert loaded.module.ema is None  # one set of weights for inference
    avg = _averages(_state(loaded.checkpoint))
    got = loaded.module.model.state_dict()
    assert all(torch.equal(got[k[len(PREFIX):]], v) for k, v in avg.items())
    # told the average is off, it loads the trained weights instead
    trained = {k[len(PREFIX):]: v for k, v in _state(loaded.checkpoint).items() if k.startswith(PREFIX)}
    got = load_checkpoint(run, ["trainer.ema.enabled=false"]).module.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in trained.items())
    assert any(not torch.equal(got[k[len(PREFIX):]], v) for k, v in avg.items() if v.is_floating_point())


def test_init_from_an_averaged_run_starts_from_the_average(run):
    weights = read_checkpoint(run / "checkpoints" / "best.ckpt")
    avg = _averages(_state(run / "checkpoints" / "best.ckpt"))
    assert all(torch.equal(weights.state_dict[k], v) for k, v in avg.items())
    assert not any(k.startswith(EMA_PREFIX) for k in weights.state_dict)

    module = _module(*TINY, *EMA)
    report = init_module(module, weights)
    assert report.missing == 0 and report.unexpected == 0  # its own average is not a target
    model, ema = module.model.state_dict(), module.ema.module.state_dict()
    assert all(torch.equal(model[k[len(PREFIX):]], v) for k, v in avg.items())
    assert all(torch.equal(ema[k], model[k]) for k in model)  # the average restarts there


def test_a_resumed_run_keeps_its_average(data, tmp_path, monkeypatch, cli):
    settings = [*TINY, *EMA]
    whole = train(data, tmp_path / "whole", settings, epochs=2)
    with monkeypatch.context() as m:
        interrupt_before_epoch(m, 1)
        code, _, err = cli(*train_argv(data, tmp_path / "cut", settings, "--epochs", "2"))
    assert code == 1, err
    [cut] = (tmp_path / "cut").iterdir()
    code, _, err = cli("train", "--resume", cut, "--runs-dir", tmp_path / "cut", "--quiet")
    assert code == 0, err
    a = _averages(_state(whole.run_dir / "checkpoints" / "last.ckpt"))
    b = _averages(_state(cut / "checkpoints" / "last.ckpt"))
    assert set(a) == set(b) and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


# --- what the run says and plans for ----------------------------------------------------------------

def test_the_memory_estimate_counts_the_average():
    plain = load_preset("cpu-demo", ["datasets.image_size=64"]).preset
    averaged = load_preset("cpu-demo", ["datasets.image_size=64", "trainer.ema.enabled=true"]).preset
    a, b = measure_footprint(plain, "32-true"), measure_footprint(averaged, "32-true")
    assert (a.optimizer_states, b.optimizer_states) == (2, 3) and a.params == b.params
    assert footprint_key(plain, "32-true") != footprint_key(averaged, "32-true")


def test_the_run_header_says_validation_scores_the_average(tmp_path):
    header = RunHeader(run_dir=tmp_path, device="cpu", precision="32-true", n_train=2, n_val=2, batch_size=1,
                       steps_per_epoch=2, epochs=3, ema_decay=0.999)
    assert "scores the EMA of weights (decay 0.999)" in header.line()
    assert "EMA" not in RunHeader(run_dir=tmp_path, device="cpu", precision="32-true", n_train=2, n_val=2,
                                  batch_size=1, steps_per_epoch=2, epochs=3).line()
