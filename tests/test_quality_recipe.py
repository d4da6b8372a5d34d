"""The four-command recipe of docs/quality.md runs end to end (tiny sizes): synthetic receipts
in SROIE's convention, pretraining on them, fine-tuning on other receipts with ``--init`` and an
EMA, and tuning the postprocess thresholds on the train split with the documented space."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests._runs import receipts, sets

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SMALL = ["datasets.image_size=128", "datasets.augment.enabled=false", "dataloader.batch_size=2"]


def _section(heading: str) -> str:
    return (REPO / "docs" / "quality.md").read_text().split(heading, 1)[1]


def _recipe() -> str:
    return _section("## The recipe: four commands")


def _commands(section: str) -> list[str]:
    """The ``ocrtune`` commands of a section's first bash block, continuation lines joined and
    its shell variables (``ARCH="..."``) expanded."""
    joined = re.sub(r"\\\n\s*", " ", section.split("```bash", 1)[1].split("```", 1)[0])
    env = dict(re.findall(r'^(\w+)="([^"]*)"$', joined, re.M))
    return [re.sub(r"\$(\w+)", lambda m: env[m.group(1)], line)
            for line in joined.splitlines() if line.startswith("ocrtune ")]


def _recipe_commands() -> list[str]:
    return _commands(_recipe())


def _goal_commands() -> list[str]:
    return _commands(_section("## The longer recipe, at the goal"))


def _post_space() -> str:
    return _recipe().split("```yaml\n", 1)[1].split("```", 1)[0]


def test_the_documented_recipe_is_the_one_tested():
    synth, pre, fine, post = _recipe_commands()
    assert synth.startswith("ocrtune data synth ") and "--style real" in synth and "--granularity line" in synth
    assert pre.startswith("ocrtune train ") and "--name pre" in pre and "--init" not in pre
    assert "--set models.scheduler.interval=step --set models.scheduler.T_max=1" in pre and "--epochs 2" in pre
    assert fine.startswith("ocrtune train ") and re.search(r"--init \S*-pre\b", fine)
    assert "--set trainer.ema.enabled=true" in fine
    # step 3 anneals: its documented schedule is the one fitted to its epochs (measured that way)
    from ocrtune.presets.load import load_preset
    from ocrtune.train.schedule import fitted_sets

    sets_ = re.findall(r"--set (\S+)", fine)
    epochs = int(re.search(r"--epochs (\d+)", fine).group(1))
    sched = load_preset("cpu-demo", sets_).preset.models.scheduler
    assert sched.interval == "step" and fitted_sets(sched, epochs) == [], (epochs, sched)
    assert post.startswith("ocrtune tune-postprocess runs/<date>-finetune ") and "--split train" in post
    assert "--space post-space.yaml" in post
    # the measurement script searches the documented space
    assert _post_space() in (REPO / "bench" / "bench_recipe_sroie.py").read_text()


def test_the_goal_recipe_chains_its_runs_as_measured():
    """Each run of the goal recipe starts from the one before, with the larger model, a schedule
    fitted to its epochs, a falling lr and the sizes and lengths measured (512 px x 2 epochs,
    1024 x 12 and x 4, 1280 x 8)."""
    from ocrtune.presets.load import load_preset
    from ocrtune.train.schedule import fitted_sets

    synth, *trains, evaluate = _goal_commands()
    assert synth.startswith("ocrtune data synth data/synth-line --n 2000 ") and "--granularity line" in synth
    assert len(trains) == 4 and all(t.startswith("ocrtune train --preset cpu-demo ") for t in trains)
    names, sizes, lrs, lengths = [], [], [], []
    for cmd in trains:
        preset = load_preset("cpu-demo", re.findall(r"--set (\S+)", cmd)).preset  # every value valid
        assert preset.models.encoder.model_name == "resnet18d" and preset.models.decoder.inner_channels == 128
        assert preset.trainer.precision == "bf16-mixed"
        epochs = int(re.search(r"--epochs (\d+)", cmd).group(1))
        assert preset.models.scheduler.interval == "step" and fitted_sets(preset.models.scheduler, epochs) == []
        init = re.search(r"--init (\S+)", cmd)
        assert (init.group(1) if init else None) == (f"runs/<date>-{names[-1]}" if names else None)
        assert ("--data data/synth-line" in cmd) == (not names)
        names.append(re.search(r"--name (\S+)", cmd).group(1))
        sizes.append(preset.datasets.image_size)
        lrs.append(preset.models.optimizer.lr)
        lengths.append(epochs)
    assert sizes == [512, 1024, 1024, 1280] and lrs[1:] == [0.002, 0.0005, 0.00025]
    assert lengths == [2, 12, 4, 8]
    assert all(load_preset("cpu-demo", re.findall(r"--set (\S+)", t)).preset.trainer.ema.enabled for t in trains[1:])
    assert evaluate == f"ocrtune evaluate runs/<date>-{names[-1]}"


def test_synth_pretrain_finetune_end_to_end(tmp_path, cli):
    syn = tmp_path / "synth-line"
    code, out, err = cli("data", "synth", syn, "--n", "6", "--size", "192", "--style", "real",
                         "--granularity", "line", "--val-fraction", "0.34", "--workers", "2")
    assert code == 0, err
    runs = tmp_path / "runs"
    code, out, err = cli("train", "--preset", "cpu-demo", "--data", syn, *sets(SMALL), "--epochs", "2",
                         "--set", "models.scheduler.interval=step", "--set", "models.scheduler.T_max=1",
                         "--name", "pre", "--runs-dir", runs, "--json")
    assert code == 0, err
    pre = Path(json.loads(out)["run_dir"])
    real = receipts(tmp_path / "real", n=2, seed=7, val_is_train=True)  # stands in for SROIE
    code, out, err = cli("train", "--preset", "cpu-demo", "--data", real,
                         *sets([*SMALL, "trainer.ema.enabled=true", "models.scheduler.interval=step",
                                "models.scheduler.T_max=1"]),
                         "--epochs", "2", "--init", pre, "--name", "finetune", "--runs-dir", runs, "--json")
    assert code == 0, err
    run = Path(json.loads(out)["run_dir"])
    fine = json.loads((run / "summary.json").read_text())
    assert fine["status"] == "completed"
    assert fine["init"]["source"] == str((pre / "checkpoints" / "best.ckpt").resolve())
    assert fine["init"]["skipped"] == {"shape_mismatch": 0, "missing": 0, "unexpected": 0}  # the same network
    assert fine["init"]["loaded"] > 0

    # the goal recipe's continuations: --init the fine-tuned run again, at another size and lr
    code, out, err = cli("train", "--preset", "cpu-demo", "--data", real,
                         *sets([*SMALL, "datasets.image_size=160", "models.optimizer.lr=0.0005",
                                "trainer.ema.enabled=true", "models.scheduler.interval=step"]),
                         "--epochs", "1", "--init", run, "--name", "more", "--runs-dir", runs, "--json")
    assert code == 0, err
    more = json.loads((Path(json.loads(out)["run_dir"]) / "summary.json").read_text())
    assert more["status"] == "completed" and more["init"]["source"] == str((run / "checkpoints" / "best.ckpt").resolve())
    assert more["init"]["loaded"] == fine["init"]["loaded"] and not any(more["init"]["skipped"].values())

    space = tmp_path / "post-space.yaml"
    space.write_text(_post_space())
    code, out, err = cli("tune-postprocess", run, "--data", real, "--split", "train", "--space", space,
                         "--name", "sroie-post", "--out-dir", tmp_path / "presets", "--json")
    assert code == 0, err
    tuned = json.loads(out)
    assert tuned["split"] == "train" and tuned["distinct_settings"] == 245
    # one epoch at 128 px finds no words yet: every setting scores 0, so none is written (writing
    # the tuned preset is tests/tune's); the recipe's commands and its space are what is checked
    assert tuned["improved"] is False and "no preset written" in tuned["preset_note"]
