"""Fine-tuning from a checkpoint: ``train --init RUN|CKPT`` loads every tensor whose name and
shape match (same preset, another head), refuses another encoder and unreadable sources before
a run exists, and records its source; ``models.encoder.pretrained_path`` takes an ocrtune
checkpoint's encoder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ocrtune.errors import InputError
from ocrtune.model.checkpoint import TrainedWeights, read_checkpoint
from ocrtune.model.encoder import build_encoder
from ocrtune.model.init_from import Part, init_module, match_weights, preset_for_init
from ocrtune.presets.load import load_preset
from ocrtune.presets.schema import EncoderConfig
from tests._runs import receipts, train, train_argv

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("init_from")]

# tiny and quick; the lr is so small that one epoch leaves the loaded weights where they were
SMALL = ["datasets.image_size=128", "datasets.augment.enabled=false", "dataloader.batch_size=2"]
STILL = [*SMALL, "models.optimizer.lr=1e-9", "models.scheduler.name=constant", "models.scheduler.warmup_epochs=0"]
OTHER_HEAD = "models.decoder.out_channels=8"  # decoder smoothing convs and the whole head change shape
ENC = "model.encoder.model."


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return receipts(tmp_path_factory.mktemp("receipts"), n=2, seed=5, val_is_train=True)


@pytest.fixture(scope="module")
def source(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch run of cpu-demo: the checkpoint the tests start from."""
    return train(data, tmp_path_factory.mktemp("src-runs"), SMALL, epochs=1, name="src").run_dir


def _state(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def _module(*sets: str):
    from ocrtune.train.module import DBNetModule

    return DBNetModule(load_preset("cpu-demo", [*SMALL, *sets]).preset.model_dump(mode="json"))


# --- matching (pure) --------------------------------------------------------------------------

def test_match_weights_sorts_every_tensor_by_part():
    z = torch.zeros
    source = {"model.encoder.model.conv.weight": z(4, 3), "model.decoder.lat.weight": z(8, 4),
              "model.head.prob.weight": z(1, 8), "model.head.prob.1.num_batches_tracked": z(()),
              "model.head.old.weight": z(2)}
    target = {"model.encoder.model.conv.weight": z(4, 3), "model.decoder.lat.weight": z(4, 4),
              "model.head.prob.weight": z(1, 8), "model.head.prob.1.num_batches_tracked": z(()),
              "model.decoder.asf.weight": z(3)}
    report, chosen = match_weights(source, target, source_label="s.ckpt", encoder="resnet10t")
    assert set(chosen) == {"model.encoder.model.conv.weight", "model.head.prob.weight",
                           "model.head.prob.1.num_batches_tracked"}  # counters load but do not count
    assert (report.loaded, report.mismatched, report.missing, report.unexpected) == (2, 1, 1, 1)
    dec = report.part(Part.DECODER)
    assert [(m.name, m.source, m.target) for m in dec.mismatched] == [("model.decoder.lat.weight", (8, 4), (4, 4))]
    assert dec.missing == ("model.decoder.asf.weight",)
    assert report.part(Part.HEAD).unexpected == ("model.head.old.weight",)
    assert report.headline() == ("weights from s.ckpt: loaded 2 of 4 tensors (encoder 1/1, decoder 0/2, head 1/1); "
                                 "not loaded: 1 of another shape, 1 not in the checkpoint, 1 only in the checkpoint")
    assert len(report.details()) == 3
    assert report.record()["skipped"] == {"shape_mismatch": 1, "missing": 1, "unexpected": 1}


def test_an_encoder_the_checkpoint_replaces_whole_is_not_downloaded():
    preset = load_preset("cpu-demo", ["models.encoder.pretrained=true"]).preset
    weights = TrainedWeights(Path("s.ckpt"), {"models": {"encoder": {"model_name": "resnet10t",
                                                                     "out_indices": [1, 2, 3, 4]}}}, {})
    assert preset_for_init(preset, weights).models.encoder.pretrained is False
    fewer = TrainedWeights(Path("s.ckpt"), {"models": {"encoder": {"model_name": "resnet10t", "out_indices": [1, 2]}}},
                           {})
    assert preset_for_init(preset, fewer).models.encoder.pretrained is True  # stages 3-4 keep hub weights


# --- loading into a model --------------------------------------------------------------------

def test_init_into_another_head_loads_the_encoder_and_names_the_rest(source):
    weights = read_checkpoint(source / "checkpoints" / "best.ckpt")
    module = _module(OTHER_HEAD)
    fresh = {k: v.clone() for k, v in module.state_dict().items()}
    report = init_module(module, weights)
    after = module.state_dict()
    encoder = {k: v for k, v in weights.state_dict.items() if k.startswith(ENC)}
    assert encoder and all(torch.equal(after[k], v) for k, v in encoder.items())
    assert any(not torch.equal(fresh[k], v) for k, v in encoder.items())  # so loading changed the model
    enc, head = report.part(Part.ENCODER), report.part(Part.HEAD)
    assert len(enc.loaded) == enc.in_model > 0 and not enc.mismatched
    assert head.mismatched and all(torch.equal(after[m.name], fresh[m.name]) for m in head.mismatched)
    assert len(report.part(Part.DECODER).loaded) > 0  # the lateral 1x1 convs keep their shape


def test_nothing_that_fits_is_refused(source):
    weights = read_checkpoint(source / "checkpoints" / "best.ckpt")
    renamed = TrainedWeights(weights.path, weights.preset, {"other." + k: v for k, v in weights.state_dict.items()})
    with pytest.raises(InputError) as err:
        init_module(_module(), renamed)
    prob = err.value.problems[0]
    assert prob.key == "--init" and prob.file == str(weights.path) and "no tensor" in prob.message


# --- the train command -----------------------------------------------------------------------

def test_init_fine_tunes_the_same_preset_and_records_the_source(source, data, tmp_path, cli):
    code, out, err = cli(*train_argv(data, tmp_path, STILL, "--epochs", "1", "--init", source, "--json"))
    assert code == 0, err
    ckpt = (source / "checkpoints" / "best.ckpt").resolve()
    assert f"weights from {ckpt}: loaded " in err
    run = Path(json.loads(out)["run_dir"])
    summary = json.loads((run / "summary.json").read_text())
    init = summary["init"]
    assert init["source"] == str(ckpt) and init["encoder"] == "resnet10t"
    assert init["loaded"] > 0 and init["skipped"] == {"shape_mismatch": 0, "missing": 0, "unexpected": 0}
    assert f"# weights initialised from {ckpt}" in (run / "config.yaml").read_text().splitlines()[:5]
    src, new = _state(ckpt), _state(run / "checkpoints" / "last.ckpt")
    convs = [k for k in src if k.endswith(".weight") and src[k].dim() == 4]
    assert convs and all(torch.allclose(new[k], src[k], atol=1e-6) for k in convs)
    # a fresh optimizer and schedule: Adam's step counts start again, at the new preset's lr
    opt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["optimizer_states"][0]
    assert {float(st["step"]) for st in opt["state"].values()} == {1.0}
    assert opt["param_groups"][0]["lr"] == pytest.approx(1e-9)
    # a preset made from the run says the weights it started from, and the --init that starts there
    code, _, err = cli("presets", "new", "ft", "--from", run, "--dir", tmp_path / "p", "--presets-dir", tmp_path)
    assert code == 0, err
    header = " ".join(line.lstrip("# ") for line in (tmp_path / "p" / "ft.yaml").read_text().splitlines())
    assert f"add --init {ckpt}" in header


def test_init_into_another_head_says_what_was_not_loaded(source, data, tmp_path, cli):
    code, _, err = cli(*train_argv(data, tmp_path, [*STILL, OTHER_HEAD], "--epochs", "1", "--init", source,
                                   "--quiet", "--verbose"))
    assert code == 0, err
    assert "of another shape" in err and "head: model.head.prob.0.weight has shape [16, 64, 3, 3] in the checkpoint, " \
        "[8, 32, 3, 3] here" in err
    run = next(tmp_path.iterdir())
    init = json.loads((run / "summary.json").read_text())["init"]
    assert init["parts"]["encoder"]["shape_mismatch"] == 0 and init["parts"]["head"]["shape_mismatch"] > 0
    # runs show says it again, as the one line training printed (not the stored dict)
    headline = next(line for line in err.splitlines() if line.startswith("weights from "))
    code, out, _ = cli("runs", "show", run)
    assert code == 0 and "'shape_mismatch'" not in out
    cells = " ".join(out.replace("│", " ").split())  # the table's wrapped cell, read as one line
    assert " ".join(headline.split()[-6:]) in cells


def test_init_refuses_another_encoder_before_a_run_exists(source, data, tmp_path, cli):
    code, _, err = cli("train", "-p", "cpu-demo", "--set", "models.encoder.model_name=resnet14t", "--data", data,
                       "--runs-dir", tmp_path, "--init", source)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "best.ckpt --init: the checkpoint's encoder is resnet10t" in err and "resnet14t" in err
    assert not any(tmp_path.iterdir())


def test_bad_init_sources_are_one_located_line(source, data, tmp_path, cli):
    runs = tmp_path / "runs"
    empty = runs / "2026-01-01-empty"
    empty.mkdir(parents=True)
    shutil.copy(source / "config.yaml", empty / "config.yaml")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes((source / "checkpoints" / "best.ckpt").read_bytes()[:2000])
    plain = tmp_path / "plain.pt"
    torch.save({"conv.weight": torch.zeros(2, 2)}, plain)
    cases = [(empty, f"{empty / 'checkpoints'} --init: run has no checkpoint"),
             (corrupt, f"{corrupt} --init: cannot read checkpoint"),
             (plain, f"{plain} --init: not an ocrtune checkpoint"),
             ("no-such-run", "--init no-such-run: run not found (looked for a run directory and under ")]
    for ref, line in cases:
        code, _, err = cli("train", "-p", "cpu-demo", "--data", data, "--runs-dir", runs, "--init", ref)
        assert code == 2 and err.startswith(line) and len(err.strip().splitlines()) == 1, (ref, err)
    assert sorted(p.name for p in runs.iterdir()) == ["2026-01-01-empty"]


def test_init_with_resume_is_refused(source, tmp_path, cli):
    code, _, err = cli("train", "--resume", source, "--init", source, "--epochs", "2")
    assert code == 2 and err.strip() == "--init: a resumed run continues its own weights; --init starts a new run"


# --- models.encoder.pretrained_path ----------------------------------------------------------

def test_pretrained_path_takes_an_ocrtune_checkpoints_encoder(source):
    ckpt = source / "checkpoints" / "best.ckpt"
    src = _state(ckpt)
    enc = build_encoder(EncoderConfig(model_name="resnet10t", pretrained_path=str(ckpt)))
    got = enc.model.state_dict()
    assert got and all(torch.equal(v, src[ENC + k]) for k, v in got.items())
    fewer = build_encoder(EncoderConfig(model_name="resnet10t", pretrained_path=str(ckpt), out_indices=[1, 2]))
    assert all(torch.equal(v, src[ENC + k]) for k, v in fewer.model.state_dict().items())
    with pytest.raises(InputError) as err:
        build_encoder(EncoderConfig(model_name="resnet14t", pretrained_path=str(ckpt)))
    prob = err.value.problems[0]
    assert prob.key == "models.encoder.pretrained_path" and prob.file == str(ckpt)
    assert "encoder is resnet10t, not resnet14t" in prob.message
