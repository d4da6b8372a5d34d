"""Fine-tuning sweeps: ``ocrtune sweep --init RUN|CKPT`` starts every training trial (warm or
cold) from the checkpoint's matching weights, as ``train --init`` does; the source is checked
once before the study exists, stored with the sweep, shown, recorded in each trial's summary and
written into the report's train commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ocrtune.presets.load import load_preset
from ocrtune.sweep.store import Store
from ocrtune.sweep.types import SweepConfig, TrialSpec
from tests._runs import receipts, train
from tests.sweep.helpers import LR, OBJ, one_line

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sweep_init")]

SMALL = ["datasets.image_size=128", "datasets.augment.enabled=false", "dataloader.batch_size=2"]
# so small a learning rate that one epoch leaves the loaded conv weights where they were
STILL = [*SMALL, "models.scheduler.name=constant", "models.scheduler.warmup_epochs=0"]
GRID = ("--strategy", "grid", "--param", LR, "--range", "1e-9,2e-9", "--points", "2", "--epochs", "1")


@pytest.fixture(autouse=True)
def _fast(monkeypatch):
    monkeypatch.setenv("OCRTUNE_SWEEP_POLL_S", "0.1")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return receipts(tmp_path_factory.mktemp("receipts"), n=2, seed=5, size=128, val_is_train=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def source(data: Path, runs: Path) -> Path:
    """The "pretrained" run the sweeps fine-tune from: one epoch of cpu-demo (no warm-up, so its
    weights moved away from a fresh model's), in the sweeps' own --runs-dir (so ``--init pre``
    finds it by name)."""
    return train(data, runs, [*SMALL, "models.scheduler.warmup_epochs=0"], epochs=1, name="pre").run_dir


def _sweep(cli, runs: Path, data: Path, name: str, *args: str | Path) -> tuple[int, dict | None, str]:
    sets = [a for s in STILL for a in ("--set", s)]
    code, out, err = cli("sweep", "--preset", "cpu-demo", *sets, "--data", data, "--runs-dir", runs, "--name", name,
                         "--json", *args)
    return code, (json.loads(out) if out.strip().startswith("{") else None), err


def _state(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def _convs(state: dict[str, torch.Tensor]) -> list[str]:
    return [k for k, v in state.items() if k.endswith(".weight") and v.dim() == 4]


def _check_trials_started_from(summary: dict, ckpt: Path) -> None:
    """Every trial completed one epoch whose conv weights are still the source's, and its run's
    summary records the source as train --init does."""
    src = _state(ckpt)
    assert len(summary["trials"]) == 2 and summary["init"] == str(ckpt)
    for t in summary["trials"]:
        assert t["status"] == "completed", t["error"]
        run = Path(t["run_dir"])
        init = json.loads((run / "summary.json").read_text())["init"]
        assert init["source"] == str(ckpt) and init["encoder"] == "resnet10t"
        assert init["loaded"] > 0 and init["skipped"] == {"shape_mismatch": 0, "missing": 0, "unexpected": 0}
        new = _state(run / "checkpoints" / "last.ckpt")
        assert _convs(src) and all(torch.allclose(new[k], src[k], atol=1e-6) for k in _convs(src))
        spec = TrialSpec.read(run.parents[1] / "spec.json")
        assert spec.init == str(ckpt) and spec.params[LR] in (1e-9, 2e-9)
        log = (run.parents[1] / "trial.log").read_text()
        assert f"weights from {ckpt}: loaded {init['loaded']} of " in log


@pytest.fixture(scope="module")
def warm(cli, runs: Path, data: Path, source: Path) -> tuple[dict, str]:
    """A finished warm-trial sweep (the default) fine-tuning from the source run's folder."""
    monkey = pytest.MonkeyPatch()
    monkey.setenv("OCRTUNE_SWEEP_POLL_S", "0.1")
    try:
        code, summary, err = _sweep(cli, runs, data, "ft-warm", *GRID, "--init", source)
    finally:
        monkey.undo()
    assert code == 0 and summary is not None, err
    return summary, err


# --- trials start from the checkpoint ---------------------------------------------------------


def test_warm_trials_start_from_the_init_checkpoint(warm, source):
    summary, err = warm
    ckpt = (source / "checkpoints" / "best.ckpt").resolve()
    _check_trials_started_from(summary, ckpt)
    start = next(line for line in err.splitlines() if line.startswith("sweep ft-warm:"))
    assert f"1 epoch(s) a trial, from the weights of {ckpt}," in start
    assert "schedule:" not in err  # a constant rate has nothing to anneal


def test_cold_trials_start_from_the_init_checkpoint_named_as_a_run(cli, runs, data, source):
    # cpu-demo's cosine (T_max 16) for 1-epoch trials: the sweep says they do not anneal
    code, summary, err = _sweep(cli, runs, data, "ft-cold", *GRID, "--init", "pre", "--cold-trials",
                                "--set", "models.scheduler.name=cosine")
    assert code == 0 and summary is not None, err
    _check_trials_started_from(summary, (source / "checkpoints" / "best.ckpt").resolve())
    note = next(line for line in err.splitlines() if line.startswith("schedule:"))
    assert note.startswith("schedule: trials train 1 epoch(s); the cosine reaches eta_min after epoch 16 (T_max 16)")
    assert note.endswith("--set models.scheduler.T_max=1 --set models.scheduler.interval=step fits it to 1 epoch")


# --- stored, shown, resumed -------------------------------------------------------------------


def test_status_shows_the_source_and_a_resume_keeps_or_names_it(cli, warm, runs, data, source):
    ckpt = (source / "checkpoints" / "best.ckpt").resolve()
    code, out, _ = cli("sweep", "status", "ft-warm", "--runs-dir", runs)
    assert code == 0 and f"init: every trial starts from the weights of {ckpt}" in " ".join(out.split())
    # a resume without --init goes on from the stored checkpoint (the sweep had finished)
    code, summary, err = _sweep(cli, runs, data, "ft-warm", *GRID, "--no-report")
    assert code == 0 and summary is not None and summary["init"] == str(ckpt), err
    assert "nothing left to run" in err and len(summary["trials"]) == 2
    # another --init is a setting that differs, named like the others; nothing is run or stored
    last = (source / "checkpoints" / "last.ckpt").resolve()
    code, _, err = _sweep(cli, runs, data, "ft-warm", *GRID, "--init", last, "--no-report")
    assert code == 2 and f"--init: stored {str(ckpt)!r}, now {str(last)!r}" in one_line(err)
    store = Store.open("ft-warm", None, runs_dir=runs, read_only=True)
    try:
        assert store.config().init == str(ckpt) and len(store.trials()) == 2
    finally:
        store.close()


def test_report_commands_fine_tune_from_the_source(cli, warm, runs, source):
    ckpt = (source / "checkpoints" / "best.ckpt").resolve()
    code, out, err = cli("sweep", "report", "ft-warm", "--runs-dir", runs, "--json")
    assert code == 0, err
    rep = json.loads(out)
    best = next(r for r in rep["recommendations"] if r["kind"] == "best")
    assert best["command"].startswith("ocrtune train --preset ") and best["command"].endswith(f" --init {ckpt}")
    assert rep["init"] == str(ckpt)
    assert f"starting from the weights in best.ckpt of run {source.name} (every tensor" in rep["methods"]["markdown"]
    md = (Path(rep["folder"]) / "report.md").read_text()
    assert f"--init {ckpt}" in md and f"each from the weights of {ckpt}" in md


def test_presets_from_a_fine_tuning_trial_or_run_say_where_it_started(cli, warm, runs, source, tmp_path):
    """A preset holds no weights: one made from a fine-tuning trial (spec.json or the study) or
    from its run says the run started from a checkpoint, and the --init that starts there."""
    ckpt = (source / "checkpoints" / "best.ckpt").resolve()
    summary, _ = warm
    run_dir = Path(summary["trials"][0]["run_dir"])
    for ref in ("ft-warm:0", str(run_dir)):
        out_dir = tmp_path / ref.replace("/", "_").replace(":", "_")
        out_dir.mkdir()
        code, _, err = cli("presets", "new", "ft", "--from", ref, "--runs-dir", runs, "--presets-dir", out_dir,
                           "--dir", out_dir)
        assert code == 0, (ref, err)
        text = (out_dir / "ft.yaml").read_text()
        assert f"--init {ckpt}" in " ".join(line.lstrip("# ") for line in text.splitlines()), (ref, text[:800])


# --- refused before the study exists ----------------------------------------------------------


def test_bad_init_sources_are_one_line_and_no_study(cli, tmp_path, data, source):
    space = tmp_path / "space.yaml"
    space.write_text(f"{LR}: {{values: [1.0e-3]}}\nmodels.encoder.model_name: {{values: [resnet10t, resnet14t]}}\n")
    missing = tmp_path / "nowhere.ckpt"
    cases = [
        (("--init", missing), f"{missing} --init: no such checkpoint file"),
        (("--init", source, "--set", "models.encoder.model_name=resnet14t"),
         f"{(source / 'checkpoints' / 'best.ckpt').resolve()} --init: the checkpoint's encoder is resnet10t, the "
         "preset's models.encoder.model_name is resnet14t; fine-tuning needs the same encoder"),
        (("--init", source, "--space", space), "--init: the sweep's space swaps the encoder (models.encoder.model_name)"),
        (("--init", source, "--objective", OBJ + "logged"), "--init: an --objective sweep trains no model"),
    ]
    for args, line in cases:
        code, _, err = _sweep(cli, tmp_path / "runs", data, "bad", *args)
        assert code == 2 and one_line(err).startswith(line), (args, err)
        assert not (tmp_path / "runs" / "sweeps").exists()


def test_a_worker_checks_the_stored_source_before_taking_a_trial(cli, tmp_path, data):
    base = load_preset("cpu-demo", STILL).preset.model_dump(mode="json")
    gone = tmp_path / "moved" / "best.ckpt"
    cfg = SweepConfig(name="wk", preset="cpu-demo", base=base, data=str(data), init=str(gone),
                      dims=({"key": LR, "kind": "log_uniform", "leaf": "float", "low": 1e-4, "high": 1e-2},))
    store = Store.open("wk", runs_dir=tmp_path / "runs", create=True)
    store.set_config(cfg)
    store.close()
    code, _, err = cli("sweep", "worker", "--name", "wk", "--runs-dir", tmp_path / "runs", "--wait", "0",
                       "--max-idle", "0")
    assert code == 2 and one_line(err) == f"{gone} --init: no such checkpoint file"


# --- the stored settings (pure) ---------------------------------------------------------------


def test_init_is_stored_and_a_changed_one_is_a_difference():
    cfg = SweepConfig(name="s", preset="cpu-demo", init="/a/best.ckpt")
    back = SweepConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back.init == "/a/best.ckpt" and back.differences(cfg) == []
    assert SweepConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "init"}).init is None  # older sweeps
    assert [str(d) for d in SweepConfig(name="s", preset="cpu-demo").differences(cfg)] == \
        ["--init: stored '/a/best.ckpt', now (none)"]
    assert [(d.key, d.new, d.option) for d in cfg.differences(SweepConfig(name="s", preset="cpu-demo"))] == \
        [("init", "/a/best.ckpt", "--init")]
    spec = TrialSpec(name="t", params={}, epochs=1, metric="hmean", base={}, init="/a/best.ckpt")
    assert TrialSpec.from_json(json.loads(json.dumps(spec.to_json()))).init == "/a/best.ckpt"
