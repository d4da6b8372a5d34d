"""The three-command recipe of docs/quality.md runs end to end (tiny sizes): synthetic receipts
in SROIE's convention, pretraining on them, fine-tuning on other receipts with ``--init``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests._runs import receipts, sets

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SMALL = ["datasets.image_size=128", "datasets.augment.enabled=false", "dataloader.batch_size=2"]


def _recipe_commands() -> list[str]:
    text = (REPO / "docs" / "quality.md").read_text()
    block = text.split("## The recipe: three commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)  # continuation lines joined
    return [line for line in joined.splitlines() if line.startswith("ocrtune ")]


def test_the_documented_recipe_is_the_one_tested():
    synth, pre, fine = _recipe_commands()
    assert synth.startswith("ocrtune data synth ") and "--style real" in synth and "--granularity line" in synth
    assert pre.startswith("ocrtune train ") and "--name pre" in pre and "--init" not in pre
    assert fine.startswith("ocrtune train ") and re.search(r"--init \S*-pre\b", fine)


def test_synth_pretrain_finetune_end_to_end(tmp_path, cli):
    syn = tmp_path / "synth-line"
    code, out, err = cli("data", "synth", syn, "--n", "6", "--size", "192", "--style", "real",
                         "--granularity", "line", "--val-fraction", "0.34", "--workers", "2")
    assert code == 0, err
    runs = tmp_path / "runs"
    code, out, err = cli("train", "--preset", "cpu-demo", "--data", syn, *sets(SMALL), "--epochs", "1",
                         "--name", "pre", "--runs-dir", runs, "--json")
    assert code == 0, err
    pre = Path(json.loads(out)["run_dir"])
    real = receipts(tmp_path / "real", n=2, seed=7, val_is_train=True)  # stands in for SROIE
    code, out, err = cli("train", "--preset", "cpu-demo", "--data", real, *sets(SMALL), "--epochs", "1",
                         "--init", pre, "--name", "finetune", "--runs-dir", runs, "--json")
    assert code == 0, err
    fine = json.loads((Path(json.loads(out)["run_dir"]) / "summary.json").read_text())
    assert fine["status"] == "completed"
    assert fine["init"]["source"] == str((pre / "checkpoints" / "best.ckpt").resolve())
    assert fine["init"]["skipped"] == {"shape_mismatch": 0, "missing": 0, "unexpected": 0}  # the same network
    assert fine["init"]["loaded"] > 0
